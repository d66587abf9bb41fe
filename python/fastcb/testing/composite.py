"""Properties of composable schedules (`fastcb.schedules`), read off their `spec`.

A schedule's `spec` names its parts: annealing leaves `("anneal", shape, degree, start, end)`,
joins `("join", edges, parts)` and restarts `("restarts", period, mult, inner)`. From it the
check knows where the phases meet, what each phase must start and end at, and which phases
are monotone, then evaluates the whole schedule in a few compiled calls.
"""

from typing import Any

import numpy as np
import numpy.typing as npt

from .._core import Schedule
from .checks import check_continuity, check_endpoints, check_finite, check_monotone, check_within

__all__ = ["phases", "check_schedule"]


#: `(lo, hi, shape, degree, start, end)`: one phase, at absolute positions
Phase = tuple[float, float, str, float | None, float, float]


def phases(spec: tuple[Any, ...], lo: float = 0.0, hi: float = 1.0) -> list[Phase]:
    """The annealing leaves of `spec` as `(lo, hi, shape, degree, start, end)`, in order, with
    absolute positions; a restarts part inside a join is one opaque phase `(lo, hi, 'restarts',
    None, low, high)` with its inner range."""
    kind = spec[0]
    if kind == "anneal":
        _, shape, degree, start, end = spec
        return [(lo, hi, shape, degree, start, end)]
    if kind == "join":
        _, edges, parts = spec
        out: list[Phase] = []
        for a, b, part in zip(edges, edges[1:], parts):
            # the last part also covers everything after its edge; clip it to `hi`
            out += phases(part, lo + (hi - lo) * a, lo + (hi - lo) * b)
        return out
    if kind == "restarts":
        inner = phases(spec[3])
        values = [v for p in inner for v in p[4:]]
        return [(lo, hi, "restarts", None, min(values), max(values))]
    raise ValueError(f"spec: unknown schedule kind {kind!r}")


def _final(shape: str, degree: float | None, start: float, end: float) -> float:
    return start if shape == "no" or (shape == "poly" and degree == 0) else end


def check_schedule(schedule: Schedule, n_steps: int = 10_000, *, continuous: bool = True, ulps: float = 8,
                   rtol: float = 1e-6) -> npt.NDArray[np.float64]:
    """A composable schedule over positions 0 → 1 (`n_steps` samples, one compiled call each):
    finite; within the range of its phases' endpoints; each phase monotone from its start to
    its end and hitting both (the start as its limit from the left edge); and, if `continuous`,
    no jump where phases meet. A top-level restarts schedule (SGDR, in steps) is checked
    over `n_steps` steps: within its range, at its start at every restart, monotone within cycles."""
    spec = schedule.spec
    name = repr(schedule)
    if spec[0] == "restarts":
        return _check_restarts(schedule, spec, n_steps, ulps, name)
    parts = phases(spec)
    values = np.asarray(schedule.sample(n_steps), dtype=np.float64)
    check_finite(values, name)
    ends = [v for p in parts for v in p[4:]]
    check_within(values, min(ends), max(ends), ulps=ulps, name=name)
    pos = np.arange(n_steps) / n_steps
    for i, (lo, hi, shape, degree, start, end) in enumerate(parts):
        phase = f"{name}, phase {i} ({shape} on [{lo:g}, {hi:g}])"
        final = _final(shape, degree, start, end)
        first = lo + (hi - lo) * 1e-14 if i else lo  # a later phase's own start is its limit from the right
        # a position at a join belongs to the later phase: an earlier phase's end is its limit from the left
        last = hi - (hi - lo) * 1e-14 if i + 1 < len(parts) else hi
        inside = np.asarray(schedule(np.concatenate([[first], pos[(pos > first) & (pos < last)], [last]])))
        if shape == "restarts":
            check_within(inside, start, end, ulps=ulps, name=phase)
            continue
        check_endpoints(inside, start, final, ulps=max(ulps, 1e4 if len(parts) > 1 else 0), name=phase)
        check_monotone(inside, start, final, ulps=ulps, name=phase)
    if continuous:
        joins = [p[0] for p in parts[1:]]
        span = max(abs(v) for v in ends) or 1.0
        width = min(hi - lo for lo, hi, *_ in parts)
        check_continuity(schedule, joins, span=span, eps=1e-10 * min(width, 1.0), rtol=rtol, name=name)
    return values


def _check_restarts(schedule: Schedule, spec: tuple[Any, ...], n_steps: int, ulps: float,
                    name: str) -> npt.NDArray[np.float64]:
    _, period, mult, inner = spec
    steps = np.arange(n_steps, dtype=np.float64)
    values = np.asarray(schedule(steps), dtype=np.float64)
    inner_parts = phases(inner)
    ends = [v for p in inner_parts for v in p[4:]]
    check_within(values, min(ends), max(ends), ulps=ulps, name=name)
    starts = [0.0]
    while starts[-1] < n_steps:
        starts.append(starts[-1] + period * mult ** (len(starts) - 1))
    first = inner_parts[0][4]
    at_starts = np.asarray(schedule(np.array(starts[:-1])), dtype=np.float64)
    check_endpoints(at_starts[:1], first, first, ulps=ulps, name=f"{name} at step 0")
    check_within(at_starts, first, first, ulps=max(ulps, 64), name=f"{name} at its restarts {starts[:-1][:5]}…")
    if len(inner_parts) == 1:
        _, _, shape, degree, start, end = inner_parts[0]
        for a, b in zip(starts, starts[1:]):
            cycle = values[int(np.ceil(a)) : int(min(np.ceil(b), n_steps))]
            check_monotone(cycle, start, _final(shape, degree, start, end), ulps=ulps, name=f"{name}, cycle at {a:g}")
    return values
