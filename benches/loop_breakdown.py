"""Where fastcb's per-batch microseconds go: each piece of `fit`'s training batch timed against
the bare PyTorch step on the *same batch*, interleaved batch by batch.

`bench_loop.py` times whole runs (one `fit_one_cycle` against one bare loop); on a loaded
machine a run's time moves by far more than the 10 us looked for. Here each pair is two steps
back to back (about a millisecond), so load that lasts longer than that hits both alike, and
the median over thousands of pairs is steady. Printed, in microseconds per training batch:

* `train batch`: fastcb's whole training batch (`loop.train_batch` with the Recorder and the
  one-cycle scheduler, as `fit_one_cycle` builds them) minus the bare step, and the parts of
  it timed alone (each against an empty call): the callbacks' dispatch, the Recorder's
  `on_batch_begin`, the scheduler's `on_batch_end`;
* the same hooks *in context*: each called next to a bare step, minus the bare step. A hook
  costs several times more there than alone: between two of torch's steps, which stream more
  code and data through the CPU than its L2 cache holds, it runs cold (its code and data come
  back from L3 or memory every batch); `loop_instructions.py --cache` counts those misses;
* `bookkeeping alone (hot)`: `train_batch` with the Recorder and the scheduler, torch's work
  (model, loss, backward, step) replaced by stand-ins that do nothing, against the same
  stand-ins called bare: what fastcb's own code costs when it stays in the caches;
* `per epoch` and `per fit`: what `fit` adds outside the batches (validation with the metric,
  the epoch's end: the losses' transfer and smoothing, the Recorder's table row; building the
  Learner, its optimizer, the callbacks), spread over the batches of `bench_loop.py`'s run.

    python benches/loop_breakdown.py [--batches 3000] [--epochs 3]
"""

import argparse
import contextlib
import io
import os
import statistics
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_loop import bare_loop, bare_train_step, fastcb_loop, make_data

from fastcb import DataBunch, Learner, accuracy
from fastcb.callback import CallbackHandler
from fastcb.callbacks.one_cycle import OneCycleScheduler
from fastcb.loop import train_batch
from fastcb.optim import OptimWrapper
from fastcb.progress import QuietMasterBar

ns = time.perf_counter_ns  # --clock cpu: time.thread_time_ns


def quartiles(xs):
    q1, q2, q3 = statistics.quantiles(xs, n=4)
    return q1, q2, q3


def dispatched(handler, i, event):
    """The hooks of the `i`-th batch event (`event`) as `train_batch` calls them: one hook taking
    one state value directly (`train_one`), else through `_run`."""
    one, calls, st = handler.train_one[i], handler.train_calls[i], handler.state_dict
    if one is None:
        return lambda *_: handler._run(event, calls)
    hook, get = one
    return lambda *_: hook(get(st))


def build(train_dl, valid_dl, epochs):
    """A Learner and a started handler, as `fit_one_cycle` builds them (Recorder, one-cycle, accuracy)."""
    data = DataBunch(train_dl, valid_dl, device="cpu")
    learn = Learner(data, torch.nn.Linear(10, 2), loss_func=F.cross_entropy, metrics=[accuracy], wd=0.0, silent=True)
    learn.create_opt(1e-2, 0.0)
    cbs = [cb(learn) for cb in learn.callback_fns] + [OneCycleScheduler(learn, 1e-2, tot_epochs=10 ** 6)]
    handler = CallbackHandler(cbs, learn.metrics)
    learn.cb_handler = handler
    handler.on_train_begin(epochs, pbar=QuietMasterBar(range(epochs)), metrics=learn.metrics)
    handler.set_dl(learn.data.train_dl)
    handler.on_epoch_begin()
    return learn, handler


class _Loss:
    """A stand-in for a loss tensor: what `train_batch` calls on one, doing nothing."""

    def __init__(self):
        self.data = torch.tensor(0.5)

    def dim(self):
        return 0

    def backward(self):
        pass


class _Optimizer:
    """A stand-in for the optimizer: the real one's param groups (the hooks read and write
    them), a step and a zero_grad that do nothing."""

    def __init__(self, param_groups):
        self.param_groups = param_groups

    def step(self):
        pass

    def zero_grad(self):
        pass


def stand_ins(train_dl, valid_dl, epochs):
    """`(bare, fastcb)`: a training batch with torch's work replaced by stand-ins that do nothing,
    called bare and through `train_batch` with the Recorder and the one-cycle scheduler."""
    learn, handler = build(train_dl, valid_dl, epochs)
    out, loss = torch.zeros(32, 2), _Loss()
    opt = _Optimizer(learn.opt.opt.param_groups)
    learn.opt.opt = opt

    def model(xb):
        return out

    def loss_func(out, yb):
        return loss

    def bare(xb, yb):
        loss_func(model(xb), yb).backward()
        opt.step()
        opt.zero_grad()

    rec = handler.callbacks[0]

    def fastcb(xb, yb):
        train_batch(model, xb, yb, loss_func, learn.opt, handler)
        if len(handler._epoch_losses) > 4096:
            handler._epoch_losses.clear(), rec.lrs.clear(), rec.moms.clear()

    return bare, fastcb


def paired(batches, a, b, rounds):
    """`b(batch) - a(batch)` in us, alternating which runs first: the quartiles of the paired
    differences, and the difference of the two 10th percentiles (the undisturbed runs: load only
    ever adds time)."""
    ta, tb = [], []
    for r in range(rounds):
        for i, (xb, yb) in enumerate(batches):
            first, second = (a, b) if (i + r) % 2 else (b, a)
            t0 = ns()
            first(xb, yb)
            t1 = ns()
            second(xb, yb)
            t2 = ns()
            ta.append(t1 - t0 if first is a else t2 - t1)
            tb.append(t1 - t0 if first is b else t2 - t1)
    diffs = [(y - x) / 1e3 for x, y in zip(ta, tb)]
    low_a, low_b = statistics.quantiles(ta, n=10)[0] / 1e3, statistics.quantiles(tb, n=10)[0] / 1e3
    return (*quartiles(diffs), low_b - low_a, low_a)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=3000, help="paired training batches per measure")
    parser.add_argument("--epochs", type=int, default=3, help="the epochs of bench_loop's run (per-fit costs)")
    parser.add_argument("--fits", type=int, default=20, help="paired runs for the per-epoch and per-fit part")
    parser.add_argument("--clock", choices=["wall", "cpu"], default="cpu",
                        help="cpu (default): this thread's CPU time, which leaves out the time other processes "
                             "hold the cores; wall: perf_counter")
    args = parser.parse_args()
    global ns
    ns = time.perf_counter_ns if args.clock == "wall" else time.thread_time_ns
    torch.set_num_threads(1)
    train_dl, valid_dl = make_data(6400, 1600)
    n_per_epoch = len(train_dl)
    batches = list(train_dl)
    rounds = max(1, args.batches // len(batches))

    # the bare step and fastcb's, each on its own model
    bare_model = torch.nn.Linear(10, 2)
    bare_opt = torch.optim.Adam(bare_model.parameters(), lr=1e-3, betas=(0.9, 0.99))

    def bare(xb, yb):
        bare_train_step(bare_model, bare_opt, xb, yb)

    learn, handler = build(train_dl, valid_dl, args.epochs)

    def fastcb_batch(xb, yb):  # what `fit` runs per training batch
        loss_func, opt = learn.loss_func, learn.opt
        if loss_func and opt is not None:
            train_batch(learn.model, xb, yb, loss_func, opt, handler)
        if len(handler._epoch_losses) > 4096:  # the epoch's end would take them: keep memory flat
            handler._epoch_losses.clear()

    plain, plain_handler = build(train_dl, valid_dl, args.epochs)
    plain_handler.callbacks, plain_handler.metrics = [], []
    plain_handler._refresh()

    def no_callbacks(xb, yb):
        train_batch(plain.model, xb, yb, plain.loss_func, plain.opt, plain_handler)
        plain_handler._epoch_losses.clear()

    rec, sched = handler.callbacks
    rec_call, sched_call = dispatched(handler, 0, "batch_begin"), dispatched(handler, 5, "batch_end")

    def nothing(xb, yb):
        pass

    def nothing_either(xb, yb):
        pass

    def recorder(xb, yb):
        rec_call()
        if len(rec.lrs) > 4096:
            rec.lrs.clear(), rec.moms.clear()

    def scheduler(xb, yb):
        sched_call()

    def opt_wrapper(xb, yb):  # the bare step through fastcb's OptimWrapper
        loss = F.cross_entropy(bare_model(xb), yb)
        loss.backward()
        learn_bare.step()
        learn_bare.zero_grad()

    learn_bare = OptimWrapper(bare_opt)

    ctx_model = torch.nn.Linear(10, 2)  # a bare step with a hook beside it (its own model and optimizer)
    ctx_opt = torch.optim.Adam(ctx_model.parameters(), lr=1e-3, betas=(0.9, 0.99))

    def recorder_in_context(xb, yb):
        recorder(xb, yb)
        bare_train_step(ctx_model, ctx_opt, xb, yb)

    def scheduler_in_context(xb, yb):
        bare_train_step(ctx_model, ctx_opt, xb, yb)
        sched_call()

    hot_step, hot_fastcb = stand_ins(train_dl, valid_dl, args.epochs)

    load = os.getloadavg()
    print(f"torch {torch.__version__}; Linear(10,2), batch 32; load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print(f"{'per training batch (us)':46s} {'median':>8s} {'quartiles':>18s} {'p10-p10':>8s} {'p10 of a':>9s}")
    rows = [
        ("fastcb's training batch - bare step", bare, fastcb_batch),
        ("  train_batch without callbacks - bare step", bare, no_callbacks),
        ("  OptimWrapper step+zero_grad - torch's", bare, opt_wrapper),
        ("  Recorder.on_batch_begin, in context", bare, recorder_in_context),
        ("  OneCycleScheduler.on_batch_end, in context", bare, scheduler_in_context),
        ("  Recorder.on_batch_begin alone (dispatched)", nothing, recorder),
        ("  OneCycleScheduler.on_batch_end alone", nothing, scheduler),
        ("fastcb's bookkeeping alone (hot, stand-ins)", hot_step, hot_fastcb),
        ("  (timer floor: nothing - nothing)", nothing, nothing_either),
    ]
    for label, a, b in rows:
        for xb, yb in batches[:50]:  # warm both
            a(xb, yb), b(xb, yb)
        q1, q2, q3, low, base = paired(batches, a, b, rounds)
        print(f"{label:46s} {q2:+8.2f} {f'[{q1:+.2f}, {q3:+.2f}]':>18s} {low:+8.2f} {base:9.1f}")

    # Whole runs: what is left after the batches is per epoch (validation, epoch end) and per fit.
    diffs = []
    n_batches = args.epochs * n_per_epoch
    for r in range(args.fits):
        pair = [(bare_loop, 0), (fastcb_loop, 1)][:: 1 if r % 2 else -1]
        t = [0.0, 0.0]
        for fn, k in pair:
            with contextlib.redirect_stdout(io.StringIO()):
                t0 = ns()
                fn(train_dl, valid_dl, args.epochs)
                t[k] = (ns() - t0) / 1e3 / n_batches
        diffs.append(t[1] - t[0])
    q1, q2, q3 = quartiles(diffs)
    print(f"{'whole run (bench_loop), paired per run':46s} {q2:+8.2f} {f'[{q1:+.2f}, {q3:+.2f}]':>18s}")
    load = os.getloadavg()
    print(f"load average after: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")


if __name__ == "__main__":
    main()
