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


def make_opt(groups: int) -> torch.optim.Optimizer:
    params = [{"params": [torch.nn.Parameter(torch.zeros(1))], "lr": 0.01 * (i + 1)} for i in range(groups)]
    return torch.optim.SGD(params, lr=0.01, momentum=0.9)


CASES = {
    "OneCycleLR": lambda m, o: m.OneCycleLR(o, max_lr=1.0, total_steps=BIG),
    "CosineAnnealingLR": lambda m, o: m.CosineAnnealingLR(o, T_max=10_000),
    "SequentialLR warm-up + cosine": lambda m, o: m.SequentialLR(
        o, [m.LinearLR(o, start_factor=0.01, total_iters=10), m.CosineAnnealingLR(o, T_max=10_000)], milestones=[10]
    ),
    "cosine-with-warmup factory": lambda m, o: (F if m is F else _HF).get_cosine_schedule_with_warmup(o, 10, BIG),
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


def per_step(sched, n: int = 20_000, repeats: int = 7) -> float:
    """Best mean seconds per `step()` over `repeats` runs of `n` steps."""
    sched.optimizer.step()  # torch checks that the optimizer steps first
    for _ in range(200):
        sched.step()
    best = math.inf
    for _ in range(repeats):
        step = sched.step
        t = time.perf_counter()
        for _ in range(n):
            step()
        best = min(best, (time.perf_counter() - t) / n)
    return best


def bench_steps() -> None:
    print(f"{'scheduler.step()':34s} {'groups':>6s} {'torch µs':>9s} {'fastcb µs':>10s} {'ratio':>7s}")
    for name, build in CASES.items():
        for groups in (2, 10):
            theirs = per_step(build(T, make_opt(groups)))
            ours = per_step(build(F, make_opt(groups)))
            print(f"{name:34s} {groups:6d} {theirs * 1e6:9.3f} {ours * 1e6:10.3f} {theirs / ours:6.1f}x")


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
    bench_steps()
    bench_whole_schedule()
