"""Composable schedules, in the style of fastai v2 and optax: a schedule is a pure
function of position that evaluates a number, or a whole array in one compiled call.

    >>> sched = combine_scheds([0.3, 0.7], [SchedCos(0.04, 1.0), SchedCos(1.0, 1e-5)])
    >>> sched(0.3)
    1.0
    >>> lrs = sched(np.linspace(0, 1, 10**6))    # a million values in one call
    >>> len(sched.sample(10**7)), float(lrs[-1])  # or the whole schedule over n steps
    (10000000, 1e-05)

Positions run 0 → 1 over a schedule (fastai's `pct`), except `sgdr`, whose positions are
steps. The fastai v2 names compute fastai v2's values: `SchedPoly(start, end, power)` is
`start + (end - start) * pos**power` (fastai v1's `annealing_poly` is another formula), and a
position exactly at a join of `combine_scheds` belongs to the later schedule. Given NumPy
arrays of per-group values (as fastai's `fit_*` pass them), a builder returns
`GroupSchedules`, one schedule per parameter group, whose values are arrays.

A schedule called on a torch tensor computes on its device with torch operations, also
inside `torch.compile`; `DeviceSchedule` writes an optimizer's hyper-parameters from them. Everything here builds a `fastcb._core.Schedule` (picklable, comparable, with a
`spec` of nested tuples); `OneCycleLR` of `fastcb.lr_scheduler` steps through the same
compiled joins.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt

from ._core import Schedule
from .device_schedule import DeviceSchedule, torch_schedule
from .errors import ShapeError

#: A value of a schedule: one number, or one per parameter group (a 1-D array or list).
Value: TypeAlias = "float | Sequence[float] | npt.NDArray[np.float64]"
#: What the builders return: one `Schedule`, or one per group.
Sched: TypeAlias = "Schedule | GroupSchedules"

__all__ = [
    "Schedule",
    "GroupSchedules",
    "DeviceSchedule",
    "torch_schedule",
    "SchedNo",
    "SchedLin",
    "SchedCos",
    "SchedExp",
    "SchedPoly",
    "combine_scheds",
    "combined_cos",
    "join_scheds",
    "warmup_decay",
    "one_cycle",
    "sgdr",
    "wsd",
]


class GroupSchedules(tuple):
    """One `Schedule` per parameter group (built from arrays of per-group values); called
    at a position, the array of the groups' values (a last axis of groups for arrays and
    tensors of positions).

    >>> both = SchedLin([1.0, 2.0], 0.0)
    >>> len(both), both(0.25)
    (2, array([0.75, 1.5 ]))
    """

    __slots__ = ()

    def __call__(self, pos: Any) -> Any:
        vals = [s(pos) for s in self]
        if isinstance(pos, (int, float)):
            return np.array(vals)
        if hasattr(vals[0], "unsqueeze"):  # torch tensors
            import torch

            return torch.stack(vals, dim=-1)
        return np.stack(vals, axis=-1)

    def __repr__(self) -> str:
        return f"GroupSchedules({list(self)!r})"


def _groups(build: Callable[..., Schedule], *args: Any) -> Sched:
    """`build(*args)`, or one schedule per group where some arguments are per-group arrays."""
    def is_group(a: object) -> bool:
        return isinstance(a, (np.ndarray, list, tuple)) and not isinstance(a, GroupSchedules)

    per_group = [a for a in args if is_group(a)]
    if not per_group:
        return build(*args)
    try:
        n = np.broadcast_shapes(*(np.shape(a) for a in per_group))
    except ValueError:
        raise ShapeError(f"per-group values: shapes {[np.shape(a) for a in per_group]} don't broadcast") from None
    if len(n) != 1:
        raise ShapeError(f"per-group values: expected 1-D arrays (one value per group), got shape {n}")
    cols = [np.broadcast_to(np.asarray(a, dtype=np.float64), n).tolist() if is_group(a) else [a] * n[0] for a in args]
    return GroupSchedules(build(*col) for col in zip(*cols))


def SchedNo(start: Value, end: Value = 0.0) -> Sched:  # noqa: N802 - fastai's name
    """Constant at `start`.

    >>> SchedNo(0.1)(0.7)
    0.1
    """
    return _groups(lambda a, b: Schedule.anneal("no", a, b), start, end)


def SchedLin(start: Value, end: Value) -> Sched:  # noqa: N802
    """Linear from `start` to `end`.

    >>> SchedLin(1.0, 0.0)(0.25)
    0.75
    """
    return _groups(lambda a, b: Schedule.anneal("linear", a, b), start, end)


def SchedCos(start: Value, end: Value) -> Sched:  # noqa: N802
    """Cosine from `start` to `end`.

    >>> sched = SchedCos(1.0, 0.0)
    >>> sched(0.0), sched(0.5), sched(1.0)
    (1.0, 0.5, 0.0)
    >>> sched(np.linspace(0, 1, 5)).round(4)
    array([1.    , 0.8536, 0.5   , 0.1464, 0.    ])
    """
    return _groups(lambda a, b: Schedule.anneal("cos", a, b), start, end)


def SchedExp(start: Value, end: Value) -> Sched:  # noqa: N802
    """Exponential from `start` to `end` (same sign, non-zero start).

    >>> round(SchedExp(1.0, 0.01)(0.5), 12)
    0.1
    """
    return _groups(lambda a, b: Schedule.anneal("exp", a, b), start, end)


def SchedPoly(start: Value, end: Value, power: Value) -> Sched:  # noqa: N802
    """fastai v2's polynomial schedule: `start + (end - start) * pos**power`.

    >>> SchedPoly(0.0, 1.0, 2.0)(0.5)
    0.25
    """
    return _groups(Schedule.power, start, end, power)


def combine_scheds(pcts: Sequence[float], scheds: Sequence[Sched]) -> Sched:
    """Schedule `i` runs over the fraction `pcts[i]` of 0 → 1 (the fractions sum to 1); a
    position exactly at a join belongs to the later schedule, as in fastai v2.

    >>> sched = combine_scheds([0.25, 0.75], [SchedLin(0.0, 1.0), SchedCos(1.0, 0.0)])
    >>> sched(0.125), sched(0.25), sched(1.0)
    (0.5, 1.0, 0.0)
    """
    pcts = [float(p) for p in pcts]
    scheds = list(scheds)
    groups = {len(s) for s in scheds if isinstance(s, GroupSchedules)}
    if not groups:
        return Schedule.combine(pcts, scheds)  # type: ignore[arg-type]  # no GroupSchedules among them
    if len(groups) > 1:
        raise ShapeError(f"scheds: per-group schedules of different group counts {sorted(groups)}")
    n = groups.pop()
    return GroupSchedules(Schedule.combine(pcts, [s[g] if isinstance(s, GroupSchedules) else s for s in scheds])
                          for g in range(n))


def combined_cos(pct: float, start: Value, middle: Value, end: Value) -> Sched:
    """fastai's `combined_cos`: cosine `start` → `middle` over `pct`, then `middle` → `end`.

    >>> sched = combined_cos(0.3, 0.1, 1.0, 0.0)
    >>> round(sched(0.0), 12), sched(0.3), sched(1.0)
    (0.1, 1.0, 0.0)
    """
    return combine_scheds([pct, 1 - pct], [SchedCos(start, middle), SchedCos(middle, end)])


def join_scheds(edges: Sequence[float], scheds: Sequence[Schedule]) -> Schedule:
    """Schedules joined at increasing `edges` (one more than the schedules), in any unit; a
    position exactly at an edge belongs to the later schedule.

    >>> sched = join_scheds([0, 100, 1000], [Schedule.anneal("linear", 0.0, 1.0), Schedule.constant(1.0)])
    >>> sched(50), sched(100), sched(5000)
    (0.5, 1.0, 1.0)
    """
    return Schedule.join([float(e) for e in edges], list(scheds))


def warmup_decay(warmup: float, start: Value, peak: Value, end: Value, up: str = "linear",
                 down: str = "cos") -> Sched:
    """Warm-up (`up` shape) from `start` to `peak` over the fraction `warmup`, then decay
    (`down` shape) to `end`.

    >>> sched = warmup_decay(0.1, 0.0, 1.0, 0.0)
    >>> sched(0.05), sched(0.1), sched(1.0)
    (0.5, 1.0, 0.0)
    """
    return _groups(lambda a, b, c: Schedule.warmup_decay(warmup, a, b, c, up, down), start, peak, end)


def one_cycle(lr_max: Value, pct_start: float = 0.3, div_factor: float = 25.0,
              final_div: float | None = None) -> Sched:
    """fastai v1's one-cycle learning rate: cosine from `lr_max/div_factor` up to `lr_max`
    over `pct_start`, then down to `lr_max/final_div` (default `div_factor * 1e4`); the
    defaults are `Schedule.one_cycle`'s.

    >>> sched = one_cycle(1.0)
    >>> round(sched(0.0), 12), sched(0.3), sched(1.0)
    (0.04, 1.0, 4e-06)
    """
    return _groups(lambda lr: Schedule.one_cycle(lr, pct_start, div_factor, final_div), lr_max)


def sgdr(max: Value, min: Value, period: float, mult: float = 1.0) -> Sched:  # noqa: A002
    """Cosine with warm restarts over steps: `max` → `min` over `period` steps, each
    restart `mult` times longer.

    >>> sched = sgdr(1.0, 0.0, period=10, mult=2)
    >>> sched(0), sched(5), sched(10), sched(20)
    (1.0, 0.5, 1.0, 0.5)
    """
    return _groups(lambda a, b: Schedule.sgdr(a, b, period, mult), max, min)


def wsd(warmup: float, decay: float, peak: Value, start: Value = 0.0, end: Value = 0.0, up: str = "linear",
        down: str = "cos") -> Sched:
    """Warmup-stable-decay over 0 → 1: warm-up from `start` over `warmup`, `peak` until
    `1 - decay`, then decay to `end`.

    >>> sched = wsd(0.1, 0.2, peak=1.0)
    >>> sched(0.05), sched(0.5), sched(1.0)
    (0.5, 1.0, 0.0)
    """
    return _groups(lambda p, a, b: Schedule.wsd(warmup, decay, a, p, b, up, down), peak, start, end)
