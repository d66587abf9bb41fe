"""The compiled core against its pure-Python peers, in one process, against its targets.

    python benches/bench_core.py [--quick]

The peers are `fastcb.bench`'s (fastai v1's Stepper with np.cos, the same with math.cos,
fastai's SmoothenValue, NumPy's vectorized formula); the floor of any per-step call from
Python into compiled code is one `math.cos(x)` call. `fastcb bench` prints the wider table.
Absolute times drift on a shared machine; the ratios are what to read (per call: the
thread's CPU time).
"""

import argparse
import math
import sys
import time
import timeit

import numpy as np

from fastcb import SmoothenValue, Stepper, annealing_cos
from fastcb.bench import FastaiSmoothenValue, FastaiStepper, fastai_annealing_cos, math_annealing_cos


def per_call(stmt, env, number):
    """Best-of-7 seconds per call of `stmt`, in this thread's CPU time (the other processes of a
    shared machine are not counted)."""
    return min(timeit.repeat(stmt, globals=env, number=number, repeat=7, timer=time.thread_time)) / number


def whole_schedule(n, repeat):
    """Best seconds of NumPy's vectorized cosine schedule and of fastcb's, over `n` steps.

    Wall-clock time, since fastcb's runs on all cores; the two alternate, so that a change in the
    machine's load falls on both alike.
    """
    pct = np.linspace(0.0, 1.0, n)
    runs = {
        "numpy": lambda: 0.1 + (1.0 - 0.1) / 2 * (np.cos(np.pi * pct) + 1),
        "fastcb": lambda: annealing_cos(1.0, 0.1, pct),
    }
    best = dict.fromkeys(runs, math.inf)
    for _ in range(repeat):
        for name, run in runs.items():
            best[name] = min(best[name], timeit.timeit(run, number=1))
    return best["numpy"], best["fastcb"]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (for tests)")
    args = parser.parse_args(argv)
    number = 20_000 if args.quick else 200_000
    big = 10**6 if args.quick else 10**7
    huge = 10**12
    env = {
        "math": math, "x": 0.3, "annealing_cos": annealing_cos,
        "np_stepper": FastaiStepper((1.0, 0.0), huge, fastai_annealing_cos),
        "math_stepper": FastaiStepper((1.0, 0.0), huge, math_annealing_cos),
        "stepper": Stepper((1.0, 0.0), huge, annealing_cos),
        "py_smooth": FastaiSmoothenValue(0.98), "smooth": SmoothenValue(0.98),
    }
    t = {name: per_call(stmt, env, number) for name, stmt in {
        "floor": "math.cos(x)",
        "annealing_cos": "annealing_cos(1.0, 0.0, x)",
        "np_stepper": "np_stepper.step()",
        "math_stepper": "math_stepper.step()",
        "stepper": "stepper.step()",
        "py_smooth": "py_smooth.add_value(x)",
        "smooth": "smooth.add_value(x)",
    }.items()}
    floor = t["floor"]
    rows = [
        ("math.cos(x) call (the floor)", t["floor"], "1.00x floor"),
        ("fastcb annealing_cos(s, e, p)", t["annealing_cos"], f"{t['annealing_cos'] / floor:.2f}x floor (target <= 3x)"),
        ("fastai Stepper.step (np.cos)", t["np_stepper"], ""),
        ("fastai Stepper.step (math.cos)", t["math_stepper"], ""),
        ("fastcb Stepper.step (cos)", t["stepper"],
         f"{t['stepper'] / floor:.2f}x floor (target <= 2x); {t['np_stepper'] / t['stepper']:.1f}x faster than np.cos "
         f"(target >= 8x), {t['math_stepper'] / t['stepper']:.1f}x than math.cos"),
        ("fastai SmoothenValue.add_value", t["py_smooth"], ""),
        ("fastcb SmoothenValue.add_value", t["smooth"], f"{t['py_smooth'] / t['smooth']:.1f}x faster (target >= 4x)"),
    ]
    print(f"{'per call':34s} {'ns':>9s}")
    for name, secs, note in rows:
        print(f"{name:34s} {secs * 1e9:9.1f}  {note}")
    numpy_t, ours_t = whole_schedule(big, 3 if args.quick else 7)
    print(f"\nwhole cosine schedule of {big:.0e} steps: NumPy {numpy_t * 1e3:.1f} ms, "
          f"fastcb {ours_t * 1e3:.1f} ms: {numpy_t / ours_t:.2f}x NumPy's speed (target >= 1x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
