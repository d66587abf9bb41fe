"""Hypothesis strategies for schedules, schedulers and optimizers.

Values are drawn where the formulas are well-conditioned (magnitudes in [1e-6, 1e6], no
subnormals), so a failing example points at a bug rather than at float64's limits.
"""

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from hypothesis import strategies as st

from .. import anneal
from ..anneal import SHAPES, Stepper
from ..schedules import Schedule

__all__ = [
    "BUILTIN_ANNEALINGS",
    "poly_degrees",
    "annealing_functions",
    "endpoints",
    "anneal_args",
    "anneal_cases",
    "steppers",
    "one_cycle_configs",
    "chained_schedules",
    "composite_schedules",
    "OptimizerSpec",
    "optimizer_specs",
]

#: fastcb's built-in annealing functions (the polynomial one is drawn by `annealing_functions`).
BUILTIN_ANNEALINGS = (anneal.annealing_no, anneal.annealing_linear, anneal.annealing_exp, anneal.annealing_cos)

_MAG: dict[str, Any] = dict(min_value=1e-6, max_value=1e6, allow_nan=False, allow_infinity=False, allow_subnormal=False)


def poly_degrees() -> st.SearchStrategy[float]:
    """Degrees for `annealing_poly`: whole (1 to 5) or fractional (0.5 to 5)."""
    return st.integers(1, 5).map(float) | st.floats(0.5, 5.0)


def annealing_functions(poly: bool = True, exp: bool = True,
                        no: bool = True) -> st.SearchStrategy[Callable[..., Any]]:
    """fastcb's annealing functions, `annealing_poly(degree)` included unless `poly=False`."""
    skip = {anneal.annealing_exp} if not exp else set()
    skip |= {anneal.annealing_no} if not no else set()
    funcs = [f for f in BUILTIN_ANNEALINGS if f not in skip]
    out = st.sampled_from(funcs)
    return out | poly_degrees().map(anneal.annealing_poly) if poly else out


@st.composite
def endpoints(draw: st.DrawFn, func: Callable[..., Any] | None = None, signed: bool = True) -> tuple[float, float]:
    """`(start, end)` valid for `func`: finite; for `annealing_exp` non-zero and of one sign."""
    mag = st.floats(**_MAG)
    if func is anneal.annealing_exp:
        sign = draw(st.sampled_from((1.0, -1.0))) if signed else 1.0
        return sign * draw(mag), sign * draw(mag)
    value = (mag | mag.map(lambda v: -v) | st.just(0.0)) if signed else (mag | st.just(0.0))
    return draw(value), draw(value)


@st.composite
def anneal_args(draw: st.DrawFn, func: Callable[..., Any] | None = None,
                signed: bool = True) -> tuple[float, float, float]:
    """A valid `(start, end, pct)` triple for `func` (pct in [0, 1])."""
    start, end = draw(endpoints(func, signed))
    return start, end, draw(st.floats(0.0, 1.0))


@st.composite
def anneal_cases(draw: st.DrawFn, funcs: st.SearchStrategy[Callable[..., Any]] | None = None, signed: bool = True,
                 groups: st.SearchStrategy[int] = st.just(0)) -> tuple[Callable[..., Any], Any, Any]:
    """`(func, start, end)`: an annealing function and valid endpoints for it; with
    `groups` drawing a positive number, `start`/`end` are arrays of that many values."""
    func = draw(funcs if funcs is not None else annealing_functions())
    n = draw(groups)
    if not n:
        start, end = draw(endpoints(func, signed))
        return func, start, end
    pairs = [draw(endpoints(func, signed)) for _ in range(n)]
    return func, np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs])


@st.composite
def steppers(draw: st.DrawFn, funcs: st.SearchStrategy[Callable[..., Any]] | None = None,
             n_iter: st.SearchStrategy[int] = st.integers(1, 10_000), groups: st.SearchStrategy[int] = st.just(0),
             advanced: bool = True) -> Stepper:
    """`Stepper`s over valid endpoints (arrays when `groups` draws a positive number), moved
    to a random point of their schedule if `advanced`."""
    func, start, end = draw(anneal_cases(funcs, groups=groups))
    stepper = Stepper((start, end), draw(n_iter), func)
    if advanced:
        stepper.n = draw(st.integers(0, stepper.n_iter))
    return stepper


@st.composite
def one_cycle_configs(draw: st.DrawFn, n_iter: st.SearchStrategy[int] = st.integers(2, 10_000)) -> dict[str, Any]:
    """Arguments of fastai's one-cycle policy plus `n_iter`, the number of training batches:
    `lr_max, moms, div_factor, pct_start, final_div` (`final_div` may be None: the default)."""
    lr_max = draw(st.floats(1e-5, 10.0))
    mom_hi = draw(st.floats(0.8, 0.99))
    return dict(
        lr_max=lr_max,
        moms=(mom_hi, draw(st.floats(0.5, mom_hi))),
        div_factor=draw(st.floats(1.0, 1e3)),
        pct_start=draw(st.floats(0.05, 0.95)),
        final_div=draw(st.none() | st.floats(1.0, 1e5)),
        n_iter=draw(n_iter),
    )


@dataclass(frozen=True)
class OptimizerSpec:
    """How to build an optimizer: its kind, one learning rate per param group, tensor or float lr.
    `build()` makes a fresh one each call, so two schedulers can run on twin optimizers."""

    kind: str
    lrs: tuple[float, ...]
    tensor_lr: bool = False
    momentum: float = 0.9
    weight_decay: float = 0.0
    kwargs: dict[str, Any] = field(default_factory=dict, compare=False)

    def build(self) -> torch.optim.Optimizer:
        """A new optimizer over one fresh 1-element parameter per group."""
        groups = [
            {"params": [torch.zeros(1, requires_grad=True)], "lr": torch.tensor(lr) if self.tensor_lr else lr}
            for lr in self.lrs
        ]
        if self.kind == "sgd":
            return torch.optim.SGD(groups, lr=self.lrs[0], momentum=self.momentum, weight_decay=self.weight_decay)
        cls = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}[self.kind]
        return cls(groups, lr=self.lrs[0], betas=(self.momentum, 0.999), weight_decay=self.weight_decay)


@functools.cache
def _warm_up_torch_optim() -> None:
    """torch's first optimizer takes seconds (lazy imports): pay it here, not in a test's first
    example, where Hypothesis would count it against the deadline."""
    for kind in ("sgd", "adam", "adamw"):
        OptimizerSpec(kind, (0.1,)).build()


def optimizer_specs(kinds: Sequence[str] = ("sgd", "adam", "adamw"), n_groups: st.SearchStrategy[int] = st.integers(1, 4),
                    tensor_lr: st.SearchStrategy[bool] = st.booleans()) -> st.SearchStrategy[OptimizerSpec]:
    """`OptimizerSpec`s: SGD (with momentum), Adam or AdamW, several param groups with distinct
    learning rates, float or tensor learning rates."""
    _warm_up_torch_optim()
    return _optimizer_specs(kinds, n_groups, tensor_lr)


@st.composite
def _optimizer_specs(draw: st.DrawFn, kinds: Sequence[str], n_groups: st.SearchStrategy[int],
                     tensor_lr: st.SearchStrategy[bool]) -> OptimizerSpec:
    n = draw(n_groups)
    lrs = tuple(draw(st.lists(st.floats(1e-5, 1.0), min_size=n, max_size=n)))
    return OptimizerSpec(
        kind=draw(st.sampled_from(kinds)),
        lrs=lrs,
        tensor_lr=draw(tensor_lr),
        momentum=draw(st.floats(0.5, 0.99)),
        weight_decay=draw(st.sampled_from((0.0, 1e-2))),
    )


def _fractions(draw: st.DrawFn, k: int, min_size: float = 0.02) -> list[float]:
    """`k` positive fractions summing to exactly 1 (the last takes the rounding)."""
    raw = [draw(st.floats(min_size, 1.0)) for _ in range(k)]
    total = sum(raw)
    out = [r / total for r in raw[:-1]]
    return out + [1.0 - sum(out)]


@st.composite
def chained_schedules(draw: st.DrawFn, max_phases: int = 4, shapes: Sequence[str] = SHAPES) -> Schedule:
    """`combine`d annealing phases where each phase starts at the value the previous one
    ended at (so the whole is continuous); values positive, as learning rates are."""
    k = draw(st.integers(1, max_phases))
    level = st.floats(1e-6, 10.0)
    values, parts = [draw(level)], []
    for _ in range(k):
        shape = draw(st.sampled_from(shapes))
        nxt = values[-1] if shape == "no" else draw(level)
        degree = draw(poly_degrees()) if shape == "poly" else None
        parts.append(Schedule.anneal(shape, values[-1], nxt, degree))
        values.append(nxt)
    return parts[0] if k == 1 else Schedule.combine(_fractions(draw, k), parts)


@st.composite
def composite_schedules(draw: st.DrawFn) -> Schedule:
    """Composable schedules of every kind: chained phases, one-cycle, warm-up + decay,
    warmup-stable-decay and SGDR restarts."""
    lr = st.floats(1e-5, 10.0)
    _warmup = st.just(0.0) | st.floats(0.01, 0.9)
    shape = st.sampled_from(("linear", "cos"))
    kind = draw(st.sampled_from(("chain", "one_cycle", "warmup_decay", "wsd", "sgdr")))
    if kind == "chain":
        return draw(chained_schedules())
    if kind == "one_cycle":
        c = draw(one_cycle_configs())
        final_div = c["final_div"] or c["div_factor"] * 1e4
        return Schedule.one_cycle(c["lr_max"], c["pct_start"], c["div_factor"], final_div)
    if kind == "warmup_decay":
        peak = draw(lr)
        return Schedule.warmup_decay(draw(_warmup), peak * draw(st.floats(0.0, 1.0)), peak,
                                     peak * draw(st.floats(0.0, 1.0)), draw(shape), draw(shape))
    if kind == "wsd":
        peak, warmup = draw(lr), draw(_warmup.filter(lambda w: w <= 0.5))
        decay = draw(st.floats(0.05, 1.0 - warmup))
        return Schedule.wsd(warmup, decay, 0.0, peak, peak * draw(st.floats(0.0, 1.0)), draw(shape), draw(shape))
    peak = draw(lr)
    return Schedule.sgdr(peak, peak * draw(st.floats(0.0, 1.0)), float(draw(st.integers(1, 500))),
                         float(draw(st.integers(1, 3))))
