"""fastcb on a GPU, in one go (well under three minutes on one GPU): prints a report to paste into RESULTS.md.

    python benches/gpu_check.py            # on a machine with CUDA; exits 0 with a message without one
    python benches/gpu_check.py --smoke    # tiny sizes on the CPU: checks this script itself (CI does)

1. Host syncs of the default loop (`torch.cuda.set_sync_debug_mode("warn")`, warnings counted):
   inside training steps (target 0) and per epoch for two numbers of batches (target: the same).
2. fastcb's per-step overhead against a bare PyTorch loop, same model, optimizer and batches.
3. `OptimWrapper`'s decoupled weight decay (`torch._foreach_mul_`) against a per-parameter loop,
   on ResNet-50's parameter list (25.6M parameters in 161 tensors; shapes built here).
4. A fused AdamW with a tensor learning rate driven by fastcb's one-cycle schedule keeps its lr
   tensors (filled in place, no new tensor), and a CUDA graph of a capturable Adam step replays
   with the learning rates a fastcb `Stepper` writes into that tensor (no re-capture).
5. A whole training step (forward, backward, capturable Adam step, `DeviceSchedule` update) captured
   once in a CUDA graph and replayed 1000 steps follows the schedule exactly as the eager run does;
   time per step against the captured forward/backward/step with torch's `OneCycleLR.step()` in
   eager mode between replays. (`--smoke`: the same step eager and compiled, on the CPU.)
6. FSDP2 in a process group of one rank (NCCL; gloo with `--smoke`): the model sharded per layer
   group plus the root trains, and the training steps sync nothing with the host beyond FSDP's
   own collectives.

    python benches/gpu_check.py --out gpu_check.json   # also writes the checks and timings as JSON

Needs only torch, numpy and fastcb (fastprogress and matplotlib are not needed: the loop runs quiet).
"""

import argparse
import collections
import datetime
import functools
import platform
import statistics
import sys
import time
import traceback
import warnings

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import TensorDataset

import fastcb
from fastcb import Callback, DataBunch, Learner, OptimWrapper, Stepper, accuracy, annealing_cos

SYNC_MSG = "synchronizing CUDA operation"
RESULTS = []  # (check, passed, detail)
TIMINGS = {}  # name -> value, for --out


def say(*args):
    print(*args, flush=True)


def check(name, passed, detail=""):
    RESULTS.append((name, bool(passed), detail))
    say(f"  [{'PASS' if passed else 'FAIL'}] {name}{': ' + detail if detail else ''}")


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Batches:
    """Batches sliced from tensors already on the device: no DataLoader, no copies, no syncs."""

    def __init__(self, x, y, bs):
        self.x, self.y, self.bs = x, y, bs
        self.dataset = TensorDataset(x, y)

    def __len__(self):
        return len(self.x) // self.bs

    def __iter__(self):
        for i in range(len(self)):
            s = slice(i * self.bs, (i + 1) * self.bs)
            yield self.x[s], self.y[s]


def batches(device, n_batches, bs, width, n_classes=10, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n_batches * bs, width, generator=g)
    y = torch.randint(0, n_classes, (n_batches * bs,), generator=g)
    return Batches(x.to(device), y.to(device), bs)


def mlp(width, depth, n_classes=10, seed=0):
    torch.manual_seed(seed)
    layers = []
    for _ in range(depth):
        layers += [nn.Linear(width, width), nn.ReLU()]
    return nn.Sequential(*layers, nn.Linear(width, n_classes))


def learner(device, train, valid=None, model=None, **kwargs):
    data = DataBunch(train, valid, device=device)
    kwargs.setdefault("loss_func", F.cross_entropy)
    return Learner(data, model if model is not None else mlp(train.x.shape[1], 2), silent=True, **kwargs)


# -- 1. host syncs -------------------------------------------------------------------------------
class SyncWindow(Callback):
    """Turns sync warnings on at the start of each training step and off at its end."""

    def __init__(self, order):
        self._order = order

    def on_batch_begin(self, train, **kwargs):
        if self._order < 0 and train:
            torch.cuda.set_sync_debug_mode("warn")

    def on_batch_end(self, **kwargs):
        if self._order > 0:
            torch.cuda.set_sync_debug_mode("default")


def count_syncs(fn):
    """Run `fn()`; the sync warnings it raised (with debug mode set by `fn` or around it)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            fn()
        finally:
            torch.cuda.set_sync_debug_mode("default")
    return [w for w in caught if SYNC_MSG in str(w.message)]


def sync_run(device, n_batches, epochs, window, opt_func=None):
    train, valid = batches(device, n_batches, 32, 64), batches(device, max(n_batches // 4, 1), 32, 64, seed=1)
    kwargs = {} if opt_func is None else {"opt_func": opt_func}
    learn = learner(device, train, valid, metrics=[accuracy], **kwargs)
    learn.fit_one_cycle(1, 1e-2)  # warm-up: CUDA context, kernels, allocator

    def go():
        if window:
            learn.fit_one_cycle(epochs, 1e-2, callbacks=[SyncWindow(-10_000), SyncWindow(10_000)])
        else:
            torch.cuda.set_sync_debug_mode("warn")
            learn.fit_one_cycle(epochs, 1e-2)

    return count_syncs(go), learn


def section_syncs(device, smoke):
    say("\n== 1. Host syncs of the default loop (fit_one_cycle, Recorder, accuracy metric, validation)")
    if device.type != "cuda":
        say("  (CUDA only: skipped)")
        return
    epochs = 2
    for label, opt_func in (("Adam (fastai's default)", None),
                            ("fused AdamW, tensor lr", fused_adamw(device))):
        say(f"  -- optimizer: {label}")
        in_step, learn = sync_run(device, 32, epochs, window=True, opt_func=opt_func)
        steps = epochs * 32
        sites = collections.Counter(f"{w.filename}:{w.lineno}" for w in in_step)
        say(f"  inside {steps} training steps: {len(in_step)} syncs ({len(in_step) / steps:.3f} per step)")
        for site, n in sites.most_common(5):
            say(f"      {n:4d}  {site}")
        check(f"no host sync inside a training step [{label}]", not in_step, f"{len(in_step)} in {steps} steps")
        per_epoch = {}
        for n_batches in (8, 32):
            whole, _ = sync_run(device, n_batches, epochs, window=False, opt_func=opt_func)
            per_epoch[n_batches] = len(whole) / epochs
            say(f"  whole run, {n_batches:3d} batches/epoch: {len(whole)} syncs in {epochs} epochs "
                f"({per_epoch[n_batches]:g} per epoch)")
            if n_batches == 32:
                for site, n in collections.Counter(f"{w.filename}:{w.lineno}" for w in whole).most_common(8):
                    say(f"      {n:4d}  {site}")
        check(f"syncs per epoch do not grow with the batches [{label}]", per_epoch[8] == per_epoch[32],
              f"{per_epoch[8]:g} (8 batches) vs {per_epoch[32]:g} (32 batches)")


# -- 2. per-step overhead ---------------------------------------------------------------------------
def timed(device, fn, repeats):
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        sync(device)
        t0 = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def section_overhead(device, smoke):
    say("\n== 2. Per-step time: fastcb's loop against a bare PyTorch loop (same model, Adam, batches)")
    configs = [("tiny MLP 64x2, bs 64", 64, 2, 64), ("MLP 2048x4, bs 512", 2048, 4, 512)]
    n_batches, repeats = (20, 2) if smoke else (200, 5)
    if smoke:
        configs = [("tiny MLP 16x2, bs 8", 16, 2, 8)]
    opt_func = functools.partial(torch.optim.Adam, betas=(0.9, 0.99))
    say(f"  {n_batches} steps per epoch, median of {repeats} epochs; microseconds per step")
    say(f"  {'model':24s} {'bare':>9s} {'fit':>9s} {'1cycle':>9s} {'overhead fit':>14s} {'overhead 1cycle':>16s}")
    for name, width, depth, bs in configs:
        data = batches(device, n_batches, bs, width)
        model = mlp(width, depth).to(device)
        opt = opt_func(model.parameters(), lr=1e-3)

        def bare(data=data, model=model, opt=opt):
            for xb, yb in data:
                loss = F.cross_entropy(model(xb), yb)
                loss.backward()
                opt.step()
                opt.zero_grad()

        learn = learner(device, data, model=mlp(width, depth), opt_func=opt_func, wd=0.0)
        t_bare = timed(device, bare, repeats)
        t_fit = timed(device, lambda learn=learn: learn.fit(1, 1e-3), repeats)
        t_cyc = timed(device, lambda learn=learn: learn.fit_one_cycle(1, 1e-3), repeats)
        us = [t / n_batches * 1e6 for t in (t_bare, t_fit, t_cyc)]
        say(f"  {name:24s} {us[0]:9.1f} {us[1]:9.1f} {us[2]:9.1f} "
            f"{us[1] - us[0]:+9.1f} ({us[1] / us[0] - 1:+.0%}) {us[2] - us[0]:+10.1f} ({us[2] / us[0] - 1:+.0%})")


# -- 3. decoupled weight decay ------------------------------------------------------------------------
def resnet50_shapes():
    """The shapes of torchvision's resnet50() parameters, in order (no torchvision needed)."""
    shapes = [(64, 3, 7, 7), (64,), (64,)]
    inplanes = 64
    for width, blocks in ((64, 3), (128, 4), (256, 6), (512, 3)):
        for b in range(blocks):
            shapes += [(width, inplanes, 1, 1), (width,), (width,), (width, width, 3, 3), (width,), (width,),
                       (width * 4, width, 1, 1), (width * 4,), (width * 4,)]
            if b == 0:
                shapes += [(width * 4, inplanes, 1, 1), (width * 4,), (width * 4,)]
            inplanes = width * 4
    return shapes + [(1000, 2048), (1000,)]


def section_weight_decay(device, smoke):
    say("\n== 3. Decoupled weight decay: OptimWrapper (torch._foreach_mul_) vs a per-parameter loop")
    shapes = resnet50_shapes()
    if smoke:
        shapes = shapes[:20]
    params = [torch.zeros(s, device=device, requires_grad=True) for s in shapes]
    for p in params:
        p.grad = torch.zeros_like(p)
    n = sum(p.numel() for p in params)
    say(f"  ResNet-50 parameter list: {len(params)} tensors, {n / 1e6:.2f}M parameters")
    wd, lr = 1e-2, 1e-3
    ow = OptimWrapper(torch.optim.SGD(params, lr=lr), wd=wd, true_wd=True)
    iters = 5 if smoke else 100

    def fastcb_decay():
        for _ in range(iters):
            ow._decay()

    def loop_decay():
        with torch.no_grad():
            for _ in range(iters):
                for p in params:
                    if p.grad is not None:
                        p.mul_(1 - wd * lr)

    t_foreach = timed(device, fastcb_decay, 3) / iters
    t_loop = timed(device, loop_decay, 3) / iters
    say(f"  per step: OptimWrapper {t_foreach * 1e3:.3f} ms, per-parameter loop {t_loop * 1e3:.3f} ms "
        f"-> {t_loop / t_foreach:.1f}x")
    bytes_moved = 2 * 4 * n
    say(f"  OptimWrapper's effective bandwidth: {bytes_moved / t_foreach / 1e9:.0f} GB/s (read + write fp32)")
    # same result
    a = [torch.ones(s, device=device) for s in shapes[:3]]
    torch._foreach_mul_(a, 1 - wd * lr)
    check("foreach decay equals the per-parameter formula", all(torch.equal(x, torch.full_like(x, 1 - wd * lr))
                                                                for x in a))


# -- 4. fused / capturable optimizers with tensor learning rates ----------------------------------------------
def fused_adamw(device):
    """An `opt_func`: a fused AdamW whose learning rates are tensors on `device` (fresh ones per optimizer)."""

    def make(groups):
        return torch.optim.AdamW(groups, lr=torch.tensor(1e-3, device=device), fused=True)

    return make


def section_tensor_lr(device, smoke):
    say("\n== 4. Tensor learning rates: fused AdamW under fit_one_cycle; a captured capturable Adam step")
    train = batches(device, 8, 32, 64)
    learn = learner(device, train, batches(device, 2, 32, 64, seed=1), opt_func=fused_adamw(device))
    learn.create_opt(1e-2, learn.wd)
    before = [(id(g["lr"]), g["lr"].data_ptr()) for g in learn.opt.opt.param_groups]
    learn.fit_one_cycle(3, 1e-2)
    groups = learn.opt.opt.param_groups
    after = [(id(g["lr"]), g["lr"].data_ptr()) for g in groups]
    final = groups[-1]["lr"].item()
    say(f"  {len(groups)} param group(s); lr tensor at the end {final:.6g}, schedule's {learn.opt.lr:.6g}; "
        f"first recorded lr {learn.recorder.lrs[0]:.6g}")
    check("fused AdamW keeps its lr tensors (same objects, same storage) through fit_one_cycle",
          before == after and all(isinstance(g["lr"], torch.Tensor) for g in groups))
    check("the lr tensor holds the schedule's value", abs(final - learn.opt.lr) <= 1e-6 * abs(learn.opt.lr)
          and learn.recorder.lrs[0] != learn.opt.lr)
    if device.type != "cuda":
        say("  (CUDA graph capture: CUDA only, skipped)")
        return
    model = nn.Sequential(nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 10)).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=torch.tensor(1e-3, device=device), capturable=True)
    ow = OptimWrapper(opt)
    x = torch.randn(64, 256, device=device)
    y = torch.randint(0, 10, (64,), device=device)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(model(x), y).backward()
            opt.step()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    opt.zero_grad(set_to_none=True)
    with torch.cuda.graph(graph):
        F.cross_entropy(model(x), y).backward()
        opt.step()
    lr_tensor = opt.param_groups[0]["lr"]
    ptr = lr_tensor.data_ptr()
    w = model[0].weight
    ow.lr = 0.0
    w0 = w.detach().clone()
    graph.replay()
    torch.cuda.synchronize()
    frozen, change0 = torch.equal(w, w0), (w - w0).abs().max().item()
    sched = Stepper((1e-2, 1e-4), 20, annealing_cos)
    kept, last = True, None
    for _ in range(20):
        last = sched.step()
        ow.lr = last
        w0 = w.detach().clone()
        graph.replay()
        kept = kept and opt.param_groups[0]["lr"] is lr_tensor and lr_tensor.data_ptr() == ptr
    torch.cuda.synchronize()
    moved, change = not torch.equal(w, w0), (w - w0).abs().max().item()
    say(f"  captured step replayed 21 times; lr tensor now {lr_tensor.item():.6g}, the Stepper's last {last:.6g}")
    check("a captured step reads the lr tensor fastcb writes (lr 0: no change; scheduled lr: moves)", frozen and moved,
          f"max change {change0:.3g} at lr 0, {change:.3g} at lr {last:.3g}")
    check("the scheduler kept the captured lr tensor (no re-capture needed)", kept)



# -- 5. a whole step with its schedule in one CUDA graph ----------------------------------------------------
def section_cuda_graph_schedule(device, smoke):
    say("\n== 5. A whole training step with a DeviceSchedule, captured once in a CUDA graph")
    from fastcb.schedules import DeviceSchedule, one_cycle

    n_steps = 20 if smoke else 1000
    width = 32 if smoke else 512
    sched = one_cycle(1e-3)

    def setup(capturable):
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(width, width), nn.ReLU(), nn.Linear(width, 10)).to(device)
        kw = {"capturable": True} if capturable else {"foreach": False}
        opt = torch.optim.Adam(model.parameters(), lr=torch.tensor(1e-3, device=device), **kw)
        return model, opt

    g = torch.Generator().manual_seed(1)
    x = torch.randn(64, width, generator=g).to(device)
    y = torch.randint(0, 10, (64,), generator=g).to(device)

    def train_step(model, opt, ds):
        F.cross_entropy(model(x), y).backward()
        opt.step()
        ds.step()

    def warmed_up():
        """A model and optimizer after 3 warm-up steps (a capture needs the optimizer's state
        and the grads to exist), with the schedule back at step 0: the same for both runs."""
        model, opt = setup(capturable=device.type == "cuda")
        ds = DeviceSchedule(opt, n_steps, lr=sched)
        for _ in range(3):
            opt.zero_grad(set_to_none=False)
            train_step(model, opt, ds)
        ds.load_state_dict({"step": 0})
        return model, opt, ds

    # eager reference run: the lrs it uses, step by step
    model, opt, ds = warmed_up()
    eager_lrs = []
    for _ in range(n_steps):
        opt.zero_grad(set_to_none=False)
        train_step(model, opt, ds)
        eager_lrs.append(opt.param_groups[0]["lr"].detach().clone())
    eager_lrs = torch.stack(eager_lrs).double().cpu()
    want = torch.tensor([sched((k + 1) / n_steps) for k in range(n_steps)], dtype=torch.float64)
    err = ((eager_lrs - want).abs() / want.abs()).max().item()
    check("eager: the lr tensor follows the Schedule (float32, 1e-6 rel)", err <= 1e-6, f"max rel err {err:.2g}")
    eager_w = [p.detach().clone() for p in model.parameters()]
    if device.type != "cuda":
        model, opt, ds = warmed_up()
        step = torch.compile(functools.partial(train_step, model, opt, ds), backend="eager")
        lrs = []
        for _ in range(n_steps):
            opt.zero_grad(set_to_none=False)
            step()
            lrs.append(opt.param_groups[0]["lr"].detach().clone())
        check("compiled (CPU): the same lrs as eager, step by step", torch.equal(torch.stack(lrs).double(), eager_lrs))
        wdiff = max((a - b).abs().max().item() for a, b in zip(eager_w, model.parameters()))
        check("... and the same weights (1e-5)", wdiff <= 1e-5, f"max |diff| {wdiff:.3g}")
        say("  (CUDA graph capture: CUDA only, skipped)")
        return
    # captured: the warm-up on a side stream, then the whole step captured once
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        model, opt, ds = warmed_up()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        opt.zero_grad(set_to_none=False)
        train_step(model, opt, ds)
    lrs = []
    for _ in range(n_steps):
        graph.replay()
        lrs.append(opt.param_groups[0]["lr"].detach().clone())
    torch.cuda.synchronize()
    graph_lrs = torch.stack(lrs).double().cpu()
    check(f"captured once, replayed {n_steps} steps: the same lrs as the eager run", torch.equal(graph_lrs, eager_lrs),
          f"max |diff| {(graph_lrs - eager_lrs).abs().max().item():.3g}")
    wdiff = max((a - b).abs().max().item() for a, b in zip(eager_w, model.parameters()))
    check("... and the same weights (1e-4)", wdiff <= 1e-4, f"max |diff| {wdiff:.3g}")

    # timing: the captured whole step vs a captured fwd/bwd/step with torch's OneCycleLR eager between replays
    def per_step(fn, n):
        for _ in range(20):
            fn()
        torch.cuda.synchronize()
        t = time.perf_counter()
        for _ in range(n):
            fn()
        torch.cuda.synchronize()
        return (time.perf_counter() - t) / n

    t_graph = per_step(graph.replay, n_steps)
    model2, opt2 = setup(capturable=True)
    torch_sched = torch.optim.lr_scheduler.OneCycleLR(opt2, max_lr=1e-3, total_steps=10 * n_steps + 100,
                                                      cycle_momentum=False)
    with torch.cuda.stream(side):
        for _ in range(3):
            opt2.zero_grad(set_to_none=False)
            F.cross_entropy(model2(x), y).backward()
            opt2.step()
    torch.cuda.current_stream().wait_stream(side)
    graph2 = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph2):
        opt2.zero_grad(set_to_none=False)
        F.cross_entropy(model2(x), y).backward()
        opt2.step()

    def torch_step():
        graph2.replay()
        torch_sched.step()

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t_torch = per_step(torch_step, n_steps)
    TIMINGS.update(graph_step_us=t_graph * 1e6, graph_plus_torch_scheduler_us=t_torch * 1e6)
    say(f"  whole step in one graph: {t_graph * 1e6:.1f} us/step; captured step + torch OneCycleLR.step() "
        f"in eager between replays: {t_torch * 1e6:.1f} us/step ({t_torch / t_graph:.2f}x)")


# -- 6. FSDP2 on one device ------------------------------------------------------------------------
def section_fsdp(device, smoke):
    say("\n== 6. FSDP2 (`to_distributed(strategy='fsdp')`) in a process group of one rank")
    import socket

    import torch.distributed as dist
    from torch.distributed.tensor import DTensor

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(backend, init_method=f"tcp://127.0.0.1:{port}", rank=0, world_size=1,
                            **({"device_id": device} if device.type == "cuda" else {}))
    try:
        n_batches, width = (8, 32) if smoke else (32, 512)
        train, valid = batches(device, n_batches, 32, width), batches(device, 4, 32, width, seed=1)
        learn = learner(device, train, valid, model=mlp(width, 2).to(device), metrics=[accuracy])
        learn.split(lambda m: [m[:2], m[2:]]).to_distributed(strategy="fsdp")
        p = next(learn.model.parameters())
        from torch.distributed.fsdp import FSDPModule

        sharded = [type(m).__name__ for m in learn.model.modules() if isinstance(m, FSDPModule)]
        check("parameters sharded: DTensors; the layer groups' Linears and the root are FSDP modules",
              isinstance(p, DTensor) and len(sharded) == 4, f"{type(p).__name__} {tuple(p.shape)}; {sharded}")
        learn.fit_one_cycle(1, 1e-2)  # warm-up
        losses = []
        if device.type == "cuda":
            caught = count_syncs(lambda: learn.fit_one_cycle(2, 1e-2, callbacks=[SyncWindow(-10_000),
                                                                               SyncWindow(10_000)]))
            ours = [w for w in caught if "torch/distributed" not in w.filename.replace("\\", "/")]
            say(f"  inside {2 * n_batches} training steps: {len(caught)} syncs, {len(caught) - len(ours)} of them "
                f"in FSDP's own code")
            for site, n in collections.Counter(f"{w.filename}:{w.lineno}" for w in caught).most_common(5):
                say(f"      {n:4d}  {site}")
            check("no host sync inside an FSDP training step beyond FSDP's own", not ours,
                  f"{len(ours)} in {2 * n_batches} steps")
        else:
            say("  (sync counting is CUDA only)")
            learn.fit_one_cycle(2, 1e-2)
        losses = [float(v) for v in learn.recorder.val_losses]
        say(f"  validation losses: {', '.join(f'{v:.4f}' for v in losses)}")
        check("FSDP training runs and the loss is finite", all(v == v and abs(v) != float("inf") for v in losses))
    finally:
        dist.destroy_process_group()


def header(device):
    say("fastcb GPU check")
    say(f"  date (UTC)   {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M}")
    say(f"  python       {platform.python_version()}   torch {torch.__version__}   fastcb {fastcb.__version__}")
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        say(f"  device       {props.name} ({props.total_memory / 2**30:.0f} GiB), CUDA {torch.version.cuda}")
    else:
        say(f"  device       CPU ({platform.processor() or platform.machine()}), smoke sizes")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes on the CPU (tests the script)")
    parser.add_argument("--out", help="also write the checks and timings as JSON to this path")
    args = parser.parse_args(argv)
    if not args.smoke and not torch.cuda.is_available():
        say("gpu_check: no CUDA device here: nothing to check (run it on a GPU machine; --smoke tests it on CPU).")
        return 0
    device = torch.device("cpu") if args.smoke else torch.device("cuda", torch.cuda.current_device())
    torch.backends.cudnn.benchmark = False
    header(device)
    start = time.perf_counter()
    crashed = []
    for section in (section_syncs, section_overhead, section_weight_decay, section_tensor_lr,
                    section_cuda_graph_schedule, section_fsdp):
        try:
            section(device, args.smoke)
        except Exception:
            crashed.append(section.__name__)
            say(f"  !! {section.__name__} crashed:")
            say("     " + traceback.format_exc().replace("\n", "\n     "))
    failed = [name for name, ok, _ in RESULTS if not ok]
    say(f"\n== Summary ({time.perf_counter() - start:.0f} s): {len(RESULTS) - len(failed)}/{len(RESULTS)} checks "
        f"passed" + (f"; crashed: {', '.join(crashed)}" if crashed else ""))
    for name in failed:
        say(f"  FAIL {name}")
    if args.out:
        import json

        with open(args.out, "w") as f:
            json.dump({"device": str(device), "torch": torch.__version__, "smoke": args.smoke,
                       "checks": [{"name": n, "passed": ok, "detail": d} for n, ok, d in RESULTS],
                       "timings": TIMINGS, "crashed": crashed}, f, indent=1)
        say(f"  wrote {args.out}")
    return 1 if failed or crashed else 0


if __name__ == "__main__":
    sys.exit(main())
