"""Host time per scheduler step, in one process:

(a) torch's `OneCycleLR.step()`, (b) fastcb's compiled drop-in `OneCycleLR.step()`,
(c) `DeviceSchedule.step()` in eager mode (torch operations on the parameters' device, here
the CPU), (d) `DeviceSchedule.step()` compiled with `torch.compile(fullgraph=True)` (one
inductor graph), and (e) the marginal cost of the schedule inside a compiled training step
(the same compiled step with and without `ds.step()`).

    PYTHONPATH=python python benches/bench_device_schedule.py [--quick]

Each figure is the median of `repeats` blocks of `n` calls; ratios are against torch's step.
"""

import argparse
import statistics
import time
import warnings

import torch

import fastcb.lr_scheduler as fl
from fastcb.schedules import DeviceSchedule, one_cycle


def per_call(fn, n, repeats):
    for _ in range(min(n, 200)):
        fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        for _ in range(n):
            fn()
        times.append((time.perf_counter() - t) / n)
    return statistics.median(times)


def sgd(tensor_lr, n_groups=1):
    torch.manual_seed(0)
    model = torch.nn.Sequential(*[torch.nn.Linear(64, 64) for _ in range(n_groups)])
    lr = (lambda: torch.tensor(1e-3)) if tensor_lr else (lambda: 1e-3)
    groups = [{"params": m.parameters(), "lr": lr()} for m in model]
    return model, torch.optim.SGD(groups, momentum=0.9, foreach=False)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer calls (a smoke run)")
    args = parser.parse_args(argv)
    n, repeats = (500, 3) if args.quick else (5000, 7)
    total = 10 * n * (repeats + 1) + 1000
    rows = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "step() before optimizer.step()": only the scheduler runs here
        _, opt = sgd(False)
        s = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=1e-2, total_steps=total, cycle_momentum=False)
        rows.append(("(a) torch OneCycleLR.step()", per_call(s.step, n, repeats)))
        _, opt = sgd(False)
        s = fl.OneCycleLR(opt, max_lr=1e-2, total_steps=total, cycle_momentum=False)
        rows.append(("(b) fastcb drop-in OneCycleLR.step()", per_call(s.step, n, repeats)))
    _, opt = sgd(True)
    ds = DeviceSchedule(opt, total, lr=one_cycle(1e-2))
    rows.append(("(c) DeviceSchedule.step(), eager (CPU)", per_call(ds.step, n, repeats)))
    _, opt = sgd(True)
    ds = DeviceSchedule(opt, total, lr=one_cycle(1e-2))
    compiled = torch.compile(ds.step, fullgraph=True)
    compiled()
    rows.append(("(d) DeviceSchedule.step(), torch.compile'd (CPU)", per_call(compiled, n, repeats)))

    # (e) inside a compiled training step: the same step with and without the schedule
    x, y = torch.randn(32, 64), torch.randn(32, 64)

    def make_step(with_schedule):
        model, opt = sgd(True)
        ds = DeviceSchedule(opt, total, lr=one_cycle(1e-2))

        @torch.compile
        def step():
            torch.nn.functional.mse_loss(model(x), y).backward()
            opt.step()
            opt.zero_grad(set_to_none=False)
            if with_schedule:
                ds.step()

        step()
        return step

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plain, scheduled = make_step(False), make_step(True)
        n_train = max(n // 5, 50)
        pairs = [(per_call(plain, n_train, 1), per_call(scheduled, n_train, 1)) for _ in range(repeats)]
    t_plain = statistics.median(p for p, _ in pairs)
    t_sched = statistics.median(s for _, s in pairs)
    extra = statistics.median(s - p for p, s in pairs)

    base = rows[0][1]
    print(f"host time per scheduler step (median of {repeats} x {n} calls; torch {torch.__version__}, CPU)")
    for name, t in rows:
        print(f"  {name:<50} {t * 1e6:8.2f} us   {base / t:6.2f}x torch")
    print(f"  (e) compiled training step (Linear 64x64, SGD): {t_plain * 1e6:.1f} us without the schedule, "
          f"{t_sched * 1e6:.1f} us with it: +{extra * 1e6:.2f} us (median of {repeats} paired runs)")


if __name__ == "__main__":
    main()
