"""Configurations of every `fastcb.lr_scheduler` class, buildable from fastcb's module or
torch's, so one drawn case gives a drop-in and its torch twin."""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any

import torch
from hypothesis import strategies as st

from .properties import check_dropin

if TYPE_CHECKING:
    from .strategies import OptimizerSpec

__all__ = ["SchedulerCase", "scheduler_cases", "SCHEDULER_NAMES", "check_dropin_case"]

#: The classes `scheduler_cases` draws from (all of `fastcb.lr_scheduler` but the base class).
SCHEDULER_NAMES = (
    "LambdaLR", "MultiplicativeLR", "StepLR", "MultiStepLR", "ConstantLR", "LinearLR", "ExponentialLR",
    "PolynomialLR", "CosineAnnealingLR", "CosineAnnealingWarmRestarts", "CyclicLR", "OneCycleLR",
    "SequentialLR", "ChainedScheduler", "ReduceLROnPlateau",
)


class Decay:
    """A picklable `lr_lambda`: `gamma ** (epoch // every)`."""

    def __init__(self, gamma: float, every: int = 1) -> None:
        self.gamma, self.every = gamma, every

    def __call__(self, epoch: int) -> float:
        return self.gamma ** (epoch // self.every)

    def __repr__(self) -> str:
        return f"Decay({self.gamma!r}, {self.every!r})"


@dataclass(frozen=True)
class SchedulerCase:
    """A scheduler class by name with its keyword arguments (children for the composites)."""

    name: str
    kwargs: dict[str, Any]

    def build(self, module: ModuleType, optimizer: torch.optim.Optimizer) -> Any:
        """The scheduler from `module` (`fastcb.lr_scheduler` or `torch.optim.lr_scheduler`)."""
        kwargs = dict(self.kwargs)
        if "schedulers" in kwargs:
            kwargs["schedulers"] = [c.build(module, optimizer) for c in kwargs["schedulers"]]
            if self.name == "ChainedScheduler":
                return getattr(module, self.name)(kwargs["schedulers"], optimizer=optimizer)
        return getattr(module, self.name)(optimizer, **kwargs)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.kwargs.items())
        return f"{self.name}({args})"


_steps = st.integers(1, 200)
_gamma = st.floats(0.5, 1.0)


def _simple(name: str) -> st.SearchStrategy[SchedulerCase]:
    """Strategies of `SchedulerCase(name, …)` for the classes without children."""
    b = st.builds
    return {
        "LambdaLR": b(dict, lr_lambda=b(Decay, _gamma, st.integers(1, 20))),
        "MultiplicativeLR": b(dict, lr_lambda=b(Decay, st.floats(0.9, 1.0))),
        "StepLR": b(dict, step_size=_steps, gamma=_gamma),
        "MultiStepLR": b(dict, milestones=st.lists(_steps, min_size=1, max_size=5, unique=True).map(sorted),
                         gamma=_gamma),
        "ConstantLR": b(dict, factor=st.floats(0.01, 1.0), total_iters=_steps),
        "LinearLR": b(dict, start_factor=st.floats(0.01, 1.0), end_factor=st.floats(0.0, 1.0), total_iters=_steps),
        "ExponentialLR": b(dict, gamma=st.floats(0.99, 1.0)),
        "PolynomialLR": b(dict, total_iters=_steps, power=st.floats(0.5, 3.0)),
        "CosineAnnealingLR": b(dict, T_max=_steps, eta_min=st.sampled_from((0.0, 1e-6))),
        "CosineAnnealingWarmRestarts": b(dict, T_0=_steps, T_mult=st.integers(1, 3),
                                         eta_min=st.sampled_from((0.0, 1e-6))),
        "CyclicLR": b(dict, base_lr=st.floats(1e-5, 1e-3), max_lr=st.floats(1e-3, 1.0), step_size_up=_steps,
                      step_size_down=st.none() | _steps,
                      mode=st.sampled_from(("triangular", "triangular2", "exp_range")),
                      gamma=st.floats(0.99, 1.0), cycle_momentum=st.booleans()),
        "OneCycleLR": b(dict, max_lr=st.floats(1e-4, 1.0), total_steps=st.integers(10, 10_000),
                        pct_start=st.floats(0.05, 0.9), anneal_strategy=st.sampled_from(("cos", "linear")),
                        cycle_momentum=st.booleans(), div_factor=st.floats(1.0, 100.0),
                        final_div_factor=st.floats(1.0, 1e5), three_phase=st.booleans()),
        "ReduceLROnPlateau": b(dict, mode=st.sampled_from(("min", "max")), factor=st.floats(0.1, 0.9),
                               patience=st.integers(0, 5), cooldown=st.integers(0, 3),
                               min_lr=st.sampled_from((0.0, 1e-6))),
    }[name].map(lambda kw: SchedulerCase(name, kw))


_LEAVES = tuple(n for n in SCHEDULER_NAMES if n not in ("SequentialLR", "ChainedScheduler", "ReduceLROnPlateau"))
# Chaining multiplies factors: only the classes whose step composes ("chainable") go in ChainedScheduler.
_CHAINABLE = ("StepLR", "MultiStepLR", "ConstantLR", "LinearLR", "ExponentialLR", "PolynomialLR", "MultiplicativeLR")


@st.composite
def _composite(draw: st.DrawFn, name: str) -> SchedulerCase:
    pool = _LEAVES if name == "SequentialLR" else _CHAINABLE
    kids = draw(st.lists(st.sampled_from(pool).flatmap(_simple), min_size=2, max_size=3))
    if name == "ChainedScheduler":
        return SchedulerCase(name, {"schedulers": kids})
    milestones = sorted(draw(st.lists(_steps, min_size=len(kids) - 1, max_size=len(kids) - 1, unique=True)))
    return SchedulerCase(name, {"schedulers": kids, "milestones": milestones})


def scheduler_cases(names: str | Iterable[str] = SCHEDULER_NAMES) -> st.SearchStrategy[SchedulerCase]:
    """`SchedulerCase`s for the classes in `names` (all by default), with valid arguments;
    `SequentialLR` and `ChainedScheduler` get 2–3 children."""
    names = (names,) if isinstance(names, str) else tuple(names)
    unknown = sorted(set(names) - set(SCHEDULER_NAMES))
    if unknown:
        raise ValueError(f"names: unknown scheduler classes {unknown}; known: {SCHEDULER_NAMES}")
    return st.sampled_from(names).flatmap(
        lambda n: _composite(n) if n in ("SequentialLR", "ChainedScheduler") else _simple(n)
    )


def check_dropin_case(case: SchedulerCase, spec: OptimizerSpec, n_steps: int | None = None, *, rtol: float = 1e-12,
                      module: ModuleType | None = None) -> tuple[Any, Any] | None:
    """Build `case` over two optimizers from `spec` (an `OptimizerSpec`), once from `module`
    (default `fastcb.lr_scheduler`) and once from torch, and `check_dropin` them over
    `n_steps` steps (default: one past the schedule's length, to cover torch's end). If
    torch refuses the arguments, the drop-in must refuse them with the same exception type."""
    if module is None:
        from .. import lr_scheduler

        module = lr_scheduler
    twin_opt, fast_opt = spec.build(), spec.build()
    with warnings.catch_warnings(record=True) as twin_warned:
        warnings.simplefilter("always")
        try:
            twin = case.build(torch.optim.lr_scheduler, twin_opt)
        except Exception as e:  # torch's refusal is the behaviour to match
            try:
                case.build(module, fast_opt)
            except type(e):
                return None
            raise AssertionError(f"{case}: torch raised {e!r} at construction, the drop-in did not") from None
    with warnings.catch_warnings(record=True) as fast_warned:
        warnings.simplefilter("always")
        fast = case.build(module, fast_opt)
    if [w.category for w in fast_warned] != [w.category for w in twin_warned]:
        raise AssertionError(
            f"{case}: warned {[str(w.message) for w in fast_warned]} at construction; torch warned "
            f"{[str(w.message) for w in twin_warned]}"
        )
    if n_steps is None:
        n_steps = case.kwargs.get("total_steps", 300) + 1
    check_dropin(fast, twin, n_steps, rtol=rtol)
    return fast, twin
