"""Property checks on schedule values: each raises an `AssertionError` that says what broke.

They take whole schedules as arrays (one row per step, one column per param group), so a
check costs one compiled evaluation plus a few NumPy passes, whatever the length.
"""

from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

_Floats = npt.NDArray[np.float64]

__all__ = [
    "check_finite",
    "check_within",
    "check_monotone",
    "check_endpoints",
    "check_continuity",
    "check_close",
]

_EPS = np.finfo(np.float64).eps


def _arrays(values: npt.ArrayLike, start: npt.ArrayLike, end: npt.ArrayLike) -> tuple[_Floats, _Floats, _Floats]:
    values = np.asarray(values, dtype=np.float64)
    start = np.broadcast_to(np.asarray(start, dtype=np.float64), values.shape[1:])
    end = np.broadcast_to(np.asarray(end, dtype=np.float64), values.shape[1:])
    return values, start, end


def _tol(start: _Floats, end: _Floats, ulps: float) -> _Floats:
    """`ulps` units in the last place of the larger endpoint: the formulas' own rounding."""
    return ulps * _EPS * np.maximum(np.abs(start), np.abs(end))


def _where(mask: npt.NDArray[np.bool_]) -> tuple[int, tuple[int, ...]]:
    idx = np.argwhere(mask)[0]
    return int(idx[0]), tuple(int(i) for i in idx[1:])


def _at(step: int, group: tuple[int, ...]) -> str:
    return f"step {step}" + (f", group {group[0]}" if group else "")


def check_finite(values: npt.ArrayLike, name: str = "schedule") -> None:
    """Every value is finite (no NaN, no infinity)."""
    values = np.asarray(values, dtype=np.float64)
    bad = ~np.isfinite(values)
    if bad.any():
        step, group = _where(bad)
        key = (step, *group)
        raise AssertionError(f"{name}: value {values[key]!r} at {_at(step, group)} is not finite")


def check_within(values: npt.ArrayLike, start: npt.ArrayLike, end: npt.ArrayLike, *, ulps: float = 4,
                 name: str = "schedule") -> None:
    """Every value lies between `start` and `end` (either order), up to `ulps` of rounding."""
    values, start, end = _arrays(values, start, end)
    check_finite(values, name)
    tol = _tol(start, end, ulps)
    lo, hi = np.minimum(start, end) - tol, np.maximum(start, end) + tol
    bad = (values < lo) | (values > hi)
    if bad.any():
        step, group = _where(bad)
        key = (step, *group)
        raise AssertionError(
            f"{name}: value {values[key]!r} at {_at(step, group)} is outside "
            f"[{lo[group]!r}, {hi[group]!r}] (start {start[group]!r}, end {end[group]!r})"
        )


def check_monotone(values: npt.ArrayLike, start: npt.ArrayLike, end: npt.ArrayLike, *, ulps: float = 4,
                   name: str = "schedule") -> None:
    """Values move from `start` towards `end` without turning back (constant if they are equal)."""
    values, start, end = _arrays(values, start, end)
    check_finite(values, name)
    if len(values) < 2:
        return
    direction = np.sign(end - start)
    steps = np.diff(values, axis=0) * np.where(direction == 0, 1.0, direction)
    tol = _tol(start, end, ulps)
    bad = (steps < -tol) | ((direction == 0) & (np.abs(steps) > tol))
    if bad.any():
        step, group = _where(bad)
        key, after = (step, *group), (step + 1, *group)
        moving = "stay at" if direction[group] == 0 else "move monotonically towards"
        raise AssertionError(
            f"{name}: should {moving} end {end[group]!r} from start {start[group]!r}, but goes from "
            f"{values[key]!r} to {values[after]!r} between {_at(step, group)} and step {step + 1}"
        )


def check_endpoints(values: npt.ArrayLike, start: npt.ArrayLike, end: npt.ArrayLike, *, ulps: float = 4,
                    name: str = "schedule") -> None:
    """The first value is `start` and the last is `end`, up to `ulps` of rounding."""
    values, start, end = _arrays(values, start, end)
    if len(values) == 0:
        raise AssertionError(f"{name}: has no values")
    tol = _tol(start, end, ulps)
    for label, got, want in (("first", values[0], start), ("last", values[-1], end)):
        bad = ~(np.abs(got - want) <= tol)
        if np.any(bad):
            g = tuple(int(i) for i in np.argwhere(np.atleast_1d(bad))[0]) if bad.ndim else ()
            raise AssertionError(
                f"{name}: the {label} value {got[g]!r}{' of group ' + str(g[0]) if g else ''} should be "
                f"{want[g]!r} (within {ulps} ulps)"
            )


def check_continuity(schedule: Callable[[_Floats], Any], joins: npt.ArrayLike, *, span: float | None = None,
                     eps: float = 1e-10, rtol: float = 1e-6, name: str = "schedule") -> None:
    """No jump at the phase joins: `schedule` (positions array -> values array) has, at each
    position in `joins`, a value (of whichever phase the join belongs to) within `rtol * span`
    of the values just before and just after it (`eps` away, relative to the join's magnitude)."""
    joins = np.atleast_1d(np.asarray(joins, dtype=np.float64))
    if joins.size == 0:
        return
    h = eps * np.maximum(1.0, np.abs(joins))
    before = np.asarray(schedule(joins - h), dtype=np.float64)
    at = np.asarray(schedule(joins), dtype=np.float64)
    after = np.asarray(schedule(joins + h), dtype=np.float64)
    for v in (before, at, after):
        check_finite(v, name)
    if span is None:
        span = max(float(np.max(np.abs(v))) for v in (before, at, after))
        span = max(span, np.finfo(np.float64).tiny)
    jumps = np.maximum(np.abs(at - before), np.abs(after - at))
    later = np.abs(after - at) >= np.abs(at - before)  # report the side that jumps
    left, right = np.where(later, at, before), np.where(later, after, at)
    jump = jumps.reshape(len(joins), -1).max(axis=1)
    bad = jump > rtol * span
    if bad.any():
        i = int(np.argmax(bad))
        raise AssertionError(
            f"{name}: jumps by {jump[i]!r} at the join at {joins[i]!r} (from {left[i]!r} to {right[i]!r}); "
            f"allowed {rtol * span!r}"
        )


def check_close(got: npt.ArrayLike, want: npt.ArrayLike, *, rtol: float = 0.0, atol: float = 0.0, name: str = "schedule",
                what: str = "value") -> None:
    """`got` equals `want` elementwise within `atol + rtol * |want|` (exactly, by default)."""
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    if got.shape != want.shape:
        raise AssertionError(f"{name}: {what}s have shape {got.shape}, expected {want.shape}")
    rows = max(len(got), 1) if got.ndim else 1
    g, w = got.reshape(rows, -1), want.reshape(rows, -1)
    bad = ~(np.abs(g - w) <= atol + rtol * np.abs(w)) & ~(g == w)
    if bad.any():
        step, group = _where(bad)
        shown = group if got.ndim > 1 else ()
        key = (step, *group)
        raise AssertionError(
            f"{name}: {what} {g[key]!r} at {_at(step, shown)} differs from the expected "
            f"{w[key]!r} (rtol {rtol}, atol {atol})"
        )
