"""Per-batch overhead of `learn.fit_one_cycle` (Recorder + accuracy) over a bare PyTorch loop.

Same process, same tiny model (Linear(10, 2)), same torch `DataLoader`s (batch 32), same optimizer
maths (Adam, betas (0.9, 0.99), no weight decay). The bare loop trains, then validates with the loss
and accuracy kept on the device and read once per epoch. Prints microseconds per training batch
(validation batches included in the time) and the difference. fastai v2 and Lightning are timed
too when installed.

    python benches/bench_loop.py [--epochs 3] [--n-train 6400] [--repeats 15] [--quick]

The figure that counts is the *paired* one: each repeat times every loop back to back (in an
order that rotates from repeat to repeat, each loop drawing the same shuffles), takes each
loop's difference to the bare loop of the same repeat, and the table reports the median of those
differences with their quartiles and a 95% confidence interval of the median (distribution-free:
order statistics), so that machine load, which moves every loop of a repeat alike, cancels out,
and what it does not cancel shows as the interval's width. `--quick` times only the bare loop
and fastcb's quiet loop.

The clock is wall-clock by default; `--clock cpu` takes the process's CPU time instead (the
loops are single-threaded: `torch.set_num_threads(1)`, no DataLoader workers), which leaves out
the time other processes hold the cores but not their effect on the caches, and was no steadier
here. To resolve a few microseconds on a 2-core VM take many repeats: `--quick --repeats 41`.

Why a few thousand instructions cost microseconds here: between two of torch's steps, which on
this model stream more code and data through the CPU than its L2 cache holds, what a loop adds
runs cold, its code and data fetched back from L3 or memory every batch, so it costs several
times what it costs in a tight loop (`loop_breakdown.py` times both; `loop_instructions.py
--cache` counts the cache misses).
"""

import argparse
import contextlib
import importlib.util
import io
import math
import os
import statistics
import time

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

import fastcb
from fastcb import DataBunch, Learner, accuracy


def make_data(n_train, n_valid, bs=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n_train + n_valid, 10, generator=g)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).long()
    train = TensorDataset(x[:n_train], y[:n_train])
    valid = TensorDataset(x[n_train:], y[n_train:])
    return DataLoader(train, batch_size=bs, shuffle=True), DataLoader(valid, batch_size=bs)


def bare_train_step(model, opt, xb, yb):
    """One training batch of the bare PyTorch loop (for the per-batch benches)."""
    loss = F.cross_entropy(model(xb), yb)
    loss.backward()
    opt.step()
    opt.zero_grad()


def bare_validate(model, valid_dl):
    """The bare loop's validation: the size-weighted mean loss and accuracy, read once."""
    model.eval()
    with torch.no_grad():
        losses, accs, sizes = [], [], []
        for xb, yb in valid_dl:
            out = model(xb)
            losses.append(F.cross_entropy(out, yb))
            accs.append(accuracy(out, yb))
            sizes.append(yb.shape[0])
        w = torch.tensor(sizes, dtype=torch.float32)
        return (torch.stack(losses) * w).sum().div(w.sum()).item(), (torch.stack(accs) * w).sum().div(w.sum()).item()


def bare_loop(train_dl, valid_dl, epochs):
    model = torch.nn.Linear(10, 2)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.99))
    for _ in range(epochs):
        model.train()
        for xb, yb in train_dl:  # inline, as a hand-written loop has it (no call per batch)
            loss = F.cross_entropy(model(xb), yb)
            loss.backward()
            opt.step()
            opt.zero_grad()
        bare_validate(model, valid_dl)


def fastcb_loop(train_dl, valid_dl, epochs, silent=True):
    data = DataBunch(train_dl, valid_dl, device="cpu")
    learn = Learner(data, torch.nn.Linear(10, 2), loss_func=F.cross_entropy, metrics=[accuracy], wd=0.0,
                    silent=silent)
    with contextlib.redirect_stdout(io.StringIO()):
        learn.fit_one_cycle(epochs, 1e-2)


def fastai2_loop(train_dl, valid_dl, epochs):
    from fastai.data.core import DataLoaders
    from fastai.learner import Learner as Learner2
    from fastai.metrics import accuracy as acc2

    dls = DataLoaders(train_dl, valid_dl)
    learn = Learner2(dls, torch.nn.Linear(10, 2), loss_func=F.cross_entropy, metrics=[acc2], wd=0.0)
    with learn.no_bar(), learn.no_logging():
        learn.fit_one_cycle(epochs, 1e-2)


def lightning_loop(train_dl, valid_dl, epochs):
    try:
        import lightning.pytorch as pl
    except ImportError:
        import pytorch_lightning as pl

    class Module(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(10, 2)

        def training_step(self, batch, _):
            xb, yb = batch
            return F.cross_entropy(self.lin(xb), yb)

        def validation_step(self, batch, _):
            xb, yb = batch
            out = self.lin(xb)
            self.log("valid_loss", F.cross_entropy(out, yb))
            self.log("accuracy", accuracy(out, yb))

        def configure_optimizers(self):
            opt = torch.optim.Adam(self.parameters(), lr=1e-3, betas=(0.9, 0.99))
            total = epochs * len(train_dl)
            sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=1e-2, total_steps=total)
            return [opt], [{"scheduler": sched, "interval": "step"}]

    trainer = pl.Trainer(max_epochs=epochs, enable_progress_bar=False, enable_model_summary=False, logger=False,
                         enable_checkpointing=False, accelerator="cpu", num_sanity_val_steps=0)
    trainer.fit(Module(), train_dl, valid_dl)


def median_interval(xs, level=0.95):
    """A distribution-free `level` confidence interval of the median of `xs`: the order statistics
    `(x_(k), x_(n+1-k))` with the largest `k` whose binomial(n, 1/2) coverage is at least `level`."""
    xs, n = sorted(xs), len(xs)
    k = 0
    while k + 1 <= n // 2 and 1 - 2 * sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n >= level:
        k += 1
    return (xs[k - 1], xs[n - k]) if k else (float("-inf"), float("inf"))


def time_it(fn, *args, repeats, clock=time.perf_counter):
    times = []
    for _ in range(repeats):
        t0 = clock()
        fn(*args)
        times.append(clock() - t0)
    return times


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--n-train", type=int, default=6400)
    parser.add_argument("--n-valid", type=int, default=1600)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                        help="wall: perf_counter; cpu: the process's CPU time (time.process_time), which "
                             "leaves out the time other processes hold the cores")
    parser.add_argument("--quick", action="store_true", help="only the bare loop and fastcb's quiet loop")
    args = parser.parse_args()
    torch.set_num_threads(1)
    train_dl, valid_dl = make_data(args.n_train, args.n_valid)
    n_batches = args.epochs * len(train_dl)

    peers = {"bare torch loop": bare_loop, "fastcb fit_one_cycle (quiet)": fastcb_loop,
             "fastcb fit_one_cycle (fastprogress bars)": lambda t, v, e: fastcb_loop(t, v, e, silent=False)}
    if args.quick:
        del peers["fastcb fit_one_cycle (fastprogress bars)"]
    elif importlib.util.find_spec("fastai") and importlib.util.find_spec("fastai.learner"):
        peers["fastai v2 fit_one_cycle"] = fastai2_loop
    else:
        print("fastai v2: not installed, skipped")
    if args.quick:
        pass
    elif importlib.util.find_spec("lightning") or importlib.util.find_spec("pytorch_lightning"):
        peers["Lightning Trainer.fit + OneCycleLR"] = lightning_loop
    else:
        print("Lightning: not installed, skipped")

    load_before = os.getloadavg()  # the figures mean little on a loaded machine: say how loaded it was
    for fn in peers.values():  # warm-up (imports, allocator, first DataLoader iterator)
        fn(train_dl, valid_dl, 1)
    # Interleave the repeats so that machine noise hits every peer alike; rotate the order so that
    # no loop always runs first (or right after the allocation-heavy one).
    names = list(peers)
    clock = time.perf_counter if args.clock == "wall" else time.process_time
    times = {name: [] for name in names}
    for r in range(args.repeats):
        for name in names[r % len(names):] + names[:r % len(names)]:
            torch.manual_seed(r)  # the same shuffles for every loop of a repeat
            times[name] += time_it(peers[name], train_dl, valid_dl, args.epochs, repeats=1, clock=clock)
    load_after = os.getloadavg()
    per_batch = {name: [t / n_batches * 1e6 for t in ts] for name, ts in times.items()}
    bare = per_batch["bare torch loop"]
    print(f"fastcb {fastcb.__version__}, torch {torch.__version__}; Linear(10,2), batch 32, "
          f"{len(train_dl)} train + {len(valid_dl)} valid batches/epoch, {args.epochs} epochs, "
          f"{args.repeats} paired repeats, {args.clock} clock; load average {load_before[0]:.2f} before, "
          f"{load_after[0]:.2f} after ({os.cpu_count()} cores)")
    print(f"{'loop':42s} {'us/train batch':>14s} {'added (paired median)':>22s} {'quartiles':>18s} "
          f"{'95% CI of the median':>22s}")
    for name, ts in per_batch.items():
        diffs = [t - b for t, b in zip(ts, bare)]
        q1, _, q3 = statistics.quantiles(diffs, n=4) if len(diffs) > 1 else (diffs[0],) * 3
        lo, hi = median_interval(diffs)
        print(f"{name:42s} {statistics.median(ts):14.1f} {statistics.median(diffs):+22.1f} "
              f"{f'[{q1:+.1f}, {q3:+.1f}]':>18s} {f'[{lo:+.1f}, {hi:+.1f}]':>22s}")


if __name__ == "__main__":
    main()
