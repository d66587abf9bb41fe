"""Per-step cost of fastcb's drop-in schedulers against torch's, in one process, and
whole-schedule evaluation of a one-cycle schedule against NumPy. Prints ratios.

    python benches/bench_lr_scheduler.py
"""

from __future__ import annotations

import math
import time

import numpy as np
import torch
import torch.optim.lr_scheduler as T

import fastcb.lr_scheduler as F
from fastcb import schedules
from fastcb.bench import numpy_one_cycle

BIG = 10**9  # schedules long enough never to end while timing


def make_opt(groups: int, tensor: bool = False) -> torch.optim.Optimizer:
    def lr(i):
        v = 0.01 * (i + 1)
        return torch.tensor(v) if tensor else v

    params = [{"params": [torch.nn.Parameter(torch.zeros(1))], "lr": lr(i)} for i in range(groups)]
    return torch.optim.SGD(params, lr=0.01, momentum=0.9)


#: every compiled class, and the transformers factory (a LambdaLR over a partial)
CASES = {
    "LambdaLR (transformers cosine)": lambda m, o: (F if m is F else _HF).get_cosine_schedule_with_warmup(o, 10, BIG),
    "StepLR": lambda m, o: m.StepLR(o, step_size=7, gamma=0.999),
    "MultiStepLR": lambda m, o: m.MultiStepLR(o, milestones=[BIG], gamma=0.5),
    "ConstantLR": lambda m, o: m.ConstantLR(o, factor=0.5, total_iters=BIG),
    "LinearLR": lambda m, o: m.LinearLR(o, start_factor=0.5, total_iters=BIG),
    "ExponentialLR": lambda m, o: m.ExponentialLR(o, gamma=0.99999),
    "PolynomialLR": lambda m, o: m.PolynomialLR(o, total_iters=BIG, power=1.5),
    "CosineAnnealingLR": lambda m, o: m.CosineAnnealingLR(o, T_max=10_000),
    "CosineAnnealingWarmRestarts": lambda m, o: m.CosineAnnealingWarmRestarts(o, T_0=1000, T_mult=2),
    "CyclicLR": lambda m, o: m.CyclicLR(o, base_lr=0.001, max_lr=0.1, step_size_up=500),
    "OneCycleLR": lambda m, o: m.OneCycleLR(o, max_lr=1.0, total_steps=BIG),
    "SequentialLR warm-up + cosine": lambda m, o: m.SequentialLR(
        o, [m.LinearLR(o, start_factor=0.01, total_iters=10), m.CosineAnnealingLR(o, T_max=10_000)], milestones=[10]
    ),
}


class _HF:
    """transformers' get_cosine_schedule_with_warmup, as transformers builds it (a LambdaLR
    over a functools.partial of a module-level function)."""

    @staticmethod
    def _factor(step, *, num_warmup_steps, num_training_steps, num_cycles=0.5, min_lr_rate=0.0):
        if step < num_warmup_steps:
            return float(step) / float(max(1, num_warmup_steps))
        progress = float(step - num_warmup_steps) / float(max(1, num_training_steps - num_warmup_steps))
        factor = 0.5 * (1.0 + math.cos(math.pi * float(num_cycles) * 2.0 * progress))
        return max(0, factor * (1 - min_lr_rate) + min_lr_rate)

    @classmethod
    def get_cosine_schedule_with_warmup(cls, opt, w, total):
        from functools import partial

        return T.LambdaLR(opt, partial(cls._factor, num_warmup_steps=w, num_training_steps=total))


def per_step(sched, n: int = 5_000, repeats: int = 9) -> float:
    """Best mean seconds per `step()` over `repeats` runs of `n` steps, in this thread's CPU
    time (`time.thread_time`: what other processes take of a shared machine is not counted;
    one step of either library runs on this thread alone)."""
    sched.optimizer.step()  # torch checks that the optimizer steps first
    for _ in range(200):
        sched.step()
    best = math.inf
    for _ in range(repeats):
        step = sched.step
        t = time.thread_time()
        for _ in range(n):
            step()
        best = min(best, (time.thread_time() - t) / n)
    return best


def copies_per_step(sched, n: int = 50) -> float:
    """How many new tensors a step puts in `_last_lr`, on average: torch's `_last_lr` holds a
    `clone()` of every tensor lr, and fastcb's reuses the previous step's only where the value
    did not change, so each value that changes costs a clone in either library."""
    before, made = sched.get_last_lr(), 0
    for _ in range(n):
        sched.step()
        now = sched.get_last_lr()
        made += sum(a is not b for a, b in zip(now, before, strict=True))
        before = now
    return made / n


def bench_steps(tensor: bool) -> list[tuple[str, int, float]]:
    """Prints torch's and fastcb's per-step cost; returns `(name, groups, ratio)`. With tensor
    lrs, also the ratio the clones bound: torch's time over the time of the clones fastcb's
    step must make (`copies_per_step` of them, at a `clone()`'s cost), the most any step
    that keeps torch's `_last_lr` copies could reach."""
    kind = "tensor" if tensor else "float"
    bound = f" {'clones':>6s} {'bound':>7s}" if tensor else ""
    print(f"\n{'scheduler.step(), ' + kind + ' lrs':34s} {'groups':>6s} {'torch µs':>9s} {'fastcb µs':>10s} {'ratio':>7s}"
          + bound)
    clone = per_call(torch.tensor(0.5).clone) if tensor else 0.0
    out = []
    for name, build in CASES.items():
        for groups in (2, 10):
            theirs = per_step(build(T, make_opt(groups, tensor)))
            ours = per_step(build(F, make_opt(groups, tensor)))
            line = f"{name:34s} {groups:6d} {theirs * 1e6:9.3f} {ours * 1e6:10.3f} {theirs / ours:6.1f}x"
            if tensor:
                sched = build(F, make_opt(groups, tensor))
                per_step(sched, n=10, repeats=1)  # past the first steps (torch's own)
                copies = copies_per_step(sched)
                line += f" {copies:6.1f} " + (f"{theirs / (copies * clone):6.1f}x" if copies else "      -")
            print(line, flush=True)
            out.append((name, groups, theirs / ours))
    return out


def per_call(fn, n: int = 20_000, repeats: int = 9) -> float:
    """Best mean seconds per call of `fn` (thread CPU time, as `per_step`)."""
    best = math.inf
    for _ in range(repeats):
        t = time.thread_time()
        for _ in range(n):
            fn()
        best = min(best, (time.thread_time() - t) / n)
    return best


def bench_tensor_floor() -> None:
    """What a step with tensor lrs cannot avoid where a value changes (torch's step does the
    same per group: a `fill_` and a `clone()` for `_last_lr`), and the reads that prove a
    value unchanged (`requires_grad`, `_version`, `data_ptr()`): µs per call on a 0-dim
    float32 tensor."""
    t = torch.tensor(0.5)
    ops = {
        "fill_(float)": lambda: t.fill_(0.25),
        "clone()": t.clone,
        "t * float (torch's get_lr arithmetic, one op)": lambda: t * 0.5,
        "requires_grad": lambda: t.requires_grad,
        "_version": lambda: t._version,
        "data_ptr()": t.data_ptr,
    }
    print("\nper tensor learning rate, per call (what bounds the tensor ratios where a value changes)")
    for name, fn in ops.items():
        print(f"  {name:46s} {per_call(fn) * 1e6:7.3f} µs")


def best_time(fn, repeats: int = 5) -> float:
    best = math.inf
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def bench_whole_schedule(n: int = 10**7) -> None:
    sched = schedules.one_cycle(1.0, 0.3, 25.0, 25e4)
    ours = sched.sample(n)
    theirs = numpy_one_cycle(n, 1.0, 0.3, 25.0, 25e4)
    assert np.allclose(ours, theirs, rtol=1e-9, atol=1e-15)
    t_np = best_time(lambda: numpy_one_cycle(n, 1.0, 0.3, 25.0, 25e4))
    t_ours = best_time(lambda: sched.sample(n))
    print(f"\none-cycle, {n:.0e} steps: NumPy {t_np * 1e3:.1f} ms, fastcb {t_ours * 1e3:.1f} ms, "
          f"ratio {t_np / t_ours:.1f}x")


if __name__ == "__main__":
    print(f"torch {torch.__version__}, numpy {np.__version__}")
    for tensor in (False, True):
        ratios = bench_steps(tensor)
        short = [f"{n} at {g}: {r:.1f}x" for n, g, r in ratios if r < (5 if g == 2 else 10)]
        print("below target (5x at 2 groups, 10x at 10):", "; ".join(short) or "none")
    bench_tensor_floor()
    bench_whole_schedule()
