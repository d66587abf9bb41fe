"""`fastcb bench`: fastcb against the pure-Python peers installed here, in one process, as ratios.

Per step: an annealing call, `Stepper.step()`, `SmoothenValue.add_value()` against fastai
v1's Python (its code, inlined below), and the drop-in schedulers' `step()` against torch's
same class (and transformers' factory when installed). Whole schedules: one compiled call
against the best NumPy expression and a Python loop. The floor of any per-step call from
Python into compiled code is one `math.cos(x)` call, printed first. Absolute times drift on
a shared machine; read the ratios.
"""

import importlib.util
import math
import timeit
import warnings
from collections.abc import Callable, Iterable

import numpy as np
import numpy.typing as npt
import torch

from . import lr_scheduler, schedules
from .anneal import SmoothenValue, Stepper, annealing_cos

#: One benchmark: `(what, peer name, peer seconds, fastcb seconds)`.
Row = tuple[str, str, float, float]

__all__ = ["run_bench", "run_per_call", "format_table", "numpy_one_cycle", "FastaiStepper", "FastaiSmoothenValue",
           "fastai_annealing_cos", "math_annealing_cos"]


# -- fastai v1's pure-Python peers, as fastai writes them ------------------------------------


def fastai_annealing_cos(start: float, end: float, pct: float) -> float:
    """fastai v1's annealing_cos (numpy's cos on a Python float)."""
    cos_out = np.cos(np.pi * pct) + 1
    return end + (start - end) / 2 * cos_out


def math_annealing_cos(start: float, end: float, pct: float) -> float:
    """The same formula with `math.cos`: the fastest pure-Python version."""
    return end + (start - end) / 2 * (math.cos(math.pi * pct) + 1)


class FastaiStepper:
    """fastai v1's Stepper (alias Scheduler)."""

    def __init__(self, vals: tuple[float, float], n_iter: int, func: Callable[[float, float, float], float]) -> None:
        self.start, self.end = vals
        self.n_iter, self.func, self.n = max(1, n_iter), func, 0

    def step(self) -> float:
        """Advance one step and return the value there."""
        self.n += 1
        return self.func(self.start, self.end, self.n / self.n_iter)


class FastaiSmoothenValue:
    """fastai v1's SmoothenValue."""

    def __init__(self, beta: float) -> None:
        self.beta, self.n = beta, 0
        self.mov_avg: float = 0

    def add_value(self, val: float) -> None:
        """Fold `val` into the moving average."""
        self.n += 1
        self.mov_avg = self.beta * self.mov_avg + (1 - self.beta) * val
        self.smooth = self.mov_avg / (1 - self.beta**self.n)


def _hf_cosine_lambda(warmup: int, total: int) -> Callable[[int], float]:
    """transformers' `get_cosine_schedule_with_warmup` lambda, as a `LambdaLR` runs it."""

    def lr_lambda(step: int) -> float:
        if step < warmup:
            return float(step) / float(max(1, warmup))
        progress = float(step - warmup) / float(max(1, total - warmup))
        return max(0.0, 0.5 * (1.0 + math.cos(math.pi * 0.5 * 2.0 * progress)))

    return lr_lambda


# -- timing ------------------------------------------------------------------------------------


def _per_call(fn: Callable[[], object], number: int, repeat: int) -> float:
    """Best seconds per call of `fn` over `repeat` runs of `number` calls."""
    return min(timeit.repeat(fn, number=number, repeat=repeat)) / number


def run_per_call(fn: Callable[[], object], number: int = 20_000, repeat: int = 5) -> float:
    """Best seconds per call of `fn` (a quick measure: about a tenth of a second for a 1 µs call)."""
    return _per_call(fn, number, repeat)


def _optimizer(n_groups: int) -> torch.optim.Optimizer:
    groups = [{"params": [torch.zeros(1, requires_grad=True)], "lr": 0.1} for _ in range(n_groups)]
    opt = torch.optim.SGD(groups, lr=0.1, momentum=0.9)
    opt.step()  # torch warns when a scheduler steps before its optimizer ever did
    return opt


def _scheduler_rows(number: int, repeat: int) -> list[Row]:
    huge = 10**9  # so no schedule ends while being timed
    makers = {
        "OneCycleLR": lambda m, o: m.OneCycleLR(o, max_lr=0.1, total_steps=huge),
        "CosineAnnealingLR": lambda m, o: m.CosineAnnealingLR(o, T_max=huge),
        "SequentialLR (warm-up + cosine)": lambda m, o: m.SequentialLR(
            o, [m.LinearLR(o, 0.01, total_iters=10**6), m.CosineAnnealingLR(o, T_max=huge)], milestones=[10**6]),
    }
    rows: list[Row] = []
    for groups in (2, 10):
        for name, make in makers.items():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # torch's own deprecation chatter is not what is timed
                peer = make(torch.optim.lr_scheduler, _optimizer(groups))
                ours = make(lr_scheduler, _optimizer(groups))
                rows.append((f"{name}.step(), {groups} groups", "torch",
                             _per_call(peer.step, number, repeat), _per_call(ours.step, number, repeat)))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            peer_name = "transformers" if importlib.util.find_spec("transformers") else "torch LambdaLR + its lambda"
            if peer_name == "transformers":
                from transformers import get_cosine_schedule_with_warmup as hf_cosine

                peer = hf_cosine(_optimizer(groups), 1000, huge)
            else:
                peer = torch.optim.lr_scheduler.LambdaLR(_optimizer(groups), _hf_cosine_lambda(1000, huge))
            ours = lr_scheduler.get_cosine_schedule_with_warmup(_optimizer(groups), 1000, huge)
            rows.append((f"get_cosine_schedule_with_warmup, {groups} groups", peer_name,
                         _per_call(peer.step, number, repeat), _per_call(ours.step, number, repeat)))
    return rows


def numpy_one_cycle(n: int, lr_max: float = 1.0, pct_start: float = 0.3, div: float = 25.0,
                    final_div: float = 25e4) -> npt.NDArray[np.float64]:
    """The fastest NumPy one-cycle found: positions in place, both phases by slices, one cos."""
    x = np.arange(n, dtype=np.float64)
    x /= n
    k = int(np.searchsorted(x, pct_start, side="right"))
    lo, hi, end = lr_max / div, lr_max, lr_max / final_div
    x[:k] /= pct_start
    x[k:] -= pct_start
    x[k:] /= 1 - pct_start
    x *= np.pi
    np.cos(x, out=x)
    x += 1
    x[:k] *= (lo - hi) / 2
    x[:k] += hi
    x[k:] *= (hi - end) / 2
    x[k:] += end
    return x


def run_bench(quick: bool = False, torch_schedulers: bool = True) -> list[Row]:
    """Time everything; returns rows `(what, peer name, peer seconds, fastcb seconds)`, with
    the floor row's fastcb time being `math.cos` itself."""
    number, repeat = (500, 2) if quick else (50_000, 5)
    big = 10**5 if quick else 10**7
    x = 0.3
    stepper_peer, stepper_math = FastaiStepper((1.0, 0.0), 10**12, fastai_annealing_cos), FastaiStepper(
        (1.0, 0.0), 10**12, math_annealing_cos)
    ours = Stepper((1.0, 0.0), 10**12, annealing_cos)
    py_smooth, smooth = FastaiSmoothenValue(0.98), SmoothenValue(0.98)
    floor = _per_call(lambda: math.cos(x), number, repeat)
    rows: list[Row] = [("floor: one math.cos(x) call", "-", floor, floor)]
    ours_anneal = _per_call(lambda: annealing_cos(1.0, 0.0, x), number, repeat)
    rows += [
        ("annealing_cos(start, end, pct)", "fastai v1 (np.cos)", _per_call(lambda: fastai_annealing_cos(1.0, 0.0, x),
                                                                         number, repeat), ours_anneal),
        ("annealing_cos(start, end, pct)", "Python (math.cos)", _per_call(lambda: math_annealing_cos(1.0, 0.0, x),
                                                                        number, repeat), ours_anneal),
        ("Stepper.step()", "fastai v1 (np.cos)", _per_call(stepper_peer.step, number, repeat),
         _per_call(ours.step, number, repeat)),
        ("Stepper.step()", "Python (math.cos)", _per_call(stepper_math.step, number, repeat),
         _per_call(ours.step, number, repeat)),
        ("SmoothenValue.add_value(v)", "fastai v1", _per_call(lambda: py_smooth.add_value(x), number, repeat),
         _per_call(lambda: smooth.add_value(x), number, repeat)),
    ]
    if torch_schedulers:
        rows += _scheduler_rows(number, repeat)
    pct = np.linspace(0.0, 1.0, big)
    whole_repeat = 3
    rows += [
        (f"annealing_cos over {big:.0e} pcts", "NumPy expression",
         _per_call(lambda: 0.0 + (1.0 - 0.0) / 2 * (np.cos(np.pi * pct) + 1), 1, whole_repeat),
         _per_call(lambda: annealing_cos(1.0, 0.0, pct), 1, whole_repeat)),
        (f"one-cycle schedule, {big:.0e} steps", "NumPy expression", _per_call(lambda: numpy_one_cycle(big), 1,
                                                                              whole_repeat),
         # (a number as lr_max makes one Schedule, not GroupSchedules)
         _per_call(lambda: schedules.one_cycle(1.0, 0.3, 25.0, 25e4).sample(big), 1,  # type: ignore[union-attr]
                   whole_repeat)),
    ]
    loop_n = big // 100

    def python_loop() -> list[float]:
        s = FastaiStepper((1.0, 0.0), loop_n, math_annealing_cos)
        return [s.step() for _ in range(loop_n)]

    rows.append((f"Stepper: next {loop_n:.0e} values", "Python loop of step()",
                 _per_call(python_loop, 1, whole_repeat),
                 _per_call(lambda: Stepper((1.0, 0.0), loop_n, annealing_cos).peek(loop_n), 1, whole_repeat)))
    return rows


def _fmt_time(seconds: float) -> str:
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6), ("ns", 1e-9)):
        if seconds >= scale:
            return f"{seconds / scale:7.2f} {unit}"
    return f"{seconds / 1e-9:7.2f} ns"


def format_table(rows: Iterable[Row]) -> str:
    """The rows as a text table: per benchmark, the peer's time, fastcb's and the speed-up."""
    head = ("benchmark", "peer", "peer", "fastcb", "speed-up")
    body = [(what, peer, _fmt_time(p), _fmt_time(o), "-" if peer == "-" else f"{p / o:8.1f}x")
            for what, peer, p, o in rows]
    widths = [max(len(r[i]) for r in [head, *body]) for i in range(5)]
    line = "  ".join(f"{{:<{w}}}" if i < 2 else f"{{:>{w}}}" for i, w in enumerate(widths))
    out = [line.format(*head), line.format(*("-" * w for w in widths))]
    out += [line.format(*r) for r in body]
    return "\n".join(out)
