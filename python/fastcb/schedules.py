"""Composable schedules, in the style of fastai v2 and optax: a schedule is a pure
function of position that evaluates a number, or a whole array in one compiled call.

    >>> sched = combine_scheds([0.3, 0.7], [SchedCos(0.04, 1.0), SchedCos(1.0, 1e-5)])
    >>> sched(0.3), sched(np.linspace(0, 1, 10**6)), sched.sample(10**7)

Positions run 0 → 1 over a schedule (fastai's `pct`), except `sgdr`, whose positions are
steps. Everything here builds a `fastcb._core.Schedule` (picklable, comparable, with a
`spec` of nested tuples); `OneCycleLR` of `fastcb.lr_scheduler` steps through the same
compiled joins.
"""

from __future__ import annotations

from collections.abc import Sequence

from ._core import Schedule

__all__ = [
    "Schedule",
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


def SchedNo(start: float, end: float = 0.0) -> Schedule:  # noqa: N802 - fastai's name
    """Constant at `start`."""
    return Schedule.anneal("no", start, end)


def SchedLin(start: float, end: float) -> Schedule:  # noqa: N802
    """Linear from `start` to `end`."""
    return Schedule.anneal("linear", start, end)


def SchedCos(start: float, end: float) -> Schedule:  # noqa: N802
    """Cosine from `start` to `end`."""
    return Schedule.anneal("cos", start, end)


def SchedExp(start: float, end: float) -> Schedule:  # noqa: N802
    """Exponential from `start` to `end` (same sign, non-zero start)."""
    return Schedule.anneal("exp", start, end)


def SchedPoly(start: float, end: float, power: float) -> Schedule:  # noqa: N802
    """Polynomial of degree `power` from `start` to `end`."""
    return Schedule.anneal("poly", start, end, power)


def combine_scheds(pcts: Sequence[float], scheds: Sequence[Schedule]) -> Schedule:
    """Schedule `i` runs over the fraction `pcts[i]` of 0 → 1 (the fractions sum to 1)."""
    return Schedule.combine([float(p) for p in pcts], list(scheds))


def combined_cos(pct: float, start: float, middle: float, end: float) -> Schedule:
    """fastai's `combined_cos`: cosine `start` → `middle` over `pct`, then `middle` → `end`."""
    return combine_scheds([pct, 1 - pct], [SchedCos(start, middle), SchedCos(middle, end)])


def join_scheds(edges: Sequence[float], scheds: Sequence[Schedule]) -> Schedule:
    """Schedules joined at increasing `edges` (one more than the schedules), in any unit."""
    return Schedule.join([float(e) for e in edges], list(scheds))


def warmup_decay(warmup: float, start: float, peak: float, end: float, up: str = "linear",
                 down: str = "cos") -> Schedule:
    """Warm-up (`up` shape) from `start` to `peak` over the fraction `warmup`, then decay
    (`down` shape) to `end`."""
    return Schedule.warmup_decay(warmup, start, peak, end, up, down)


def one_cycle(lr_max: float, pct_start: float = 0.3, div_factor: float = 25.0,
              final_div: float | None = None) -> Schedule:
    """fastai v1's one-cycle learning rate: cosine from `lr_max/div_factor` up to `lr_max`
    over `pct_start`, then down to `lr_max/final_div` (default `div_factor * 1e4`)."""
    if final_div is None:
        final_div = div_factor * 1e4
    return Schedule.one_cycle(lr_max, pct_start, div_factor, final_div)


def sgdr(max: float, min: float, period: float, mult: float = 1.0) -> Schedule:  # noqa: A002
    """Cosine with warm restarts over steps: `max` → `min` over `period` steps, each
    restart `mult` times longer."""
    return Schedule.sgdr(max, min, period, mult)


def wsd(warmup: float, decay: float, peak: float, start: float = 0.0, end: float = 0.0,
        up: str = "linear", down: str = "cos") -> Schedule:
    """Warmup-stable-decay over 0 → 1: warm-up from `start` over `warmup`, `peak` until
    `1 - decay`, then decay to `end`."""
    return Schedule.wsd(warmup, decay, start, peak, end, up, down)
