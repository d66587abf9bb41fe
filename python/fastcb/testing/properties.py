"""Whole-object properties: annealing functions, `Stepper`s, resuming, drop-in schedulers.

Each builds the values of the object under test (one compiled call where it can) and runs
the checks of `fastcb.testing.checks` on them; failures are `AssertionError`s naming what
broke, at which step and group.
"""

import copy
import math
import pickle
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from ..anneal import AnnealPoly, Stepper, shape_of
from ..preview import schedule_values
from .checks import check_close, check_endpoints, check_monotone, check_within

__all__ = ["shape_of", "check_annealing", "check_stepper", "check_resume", "check_dropin", "read_hyper"]

_SCHEDULERS = (torch.optim.lr_scheduler.LRScheduler, torch.optim.lr_scheduler.ReduceLROnPlateau)


def _final(func: Callable[..., Any], start: npt.ArrayLike, end: npt.ArrayLike) -> npt.ArrayLike:
    """Where the shape ends: `start` for the constant shapes, `end` otherwise."""
    if shape_of(func) == "no" or (isinstance(func, AnnealPoly) and func.degree == 0):
        return start
    return end


def _name(func: object) -> str:
    return getattr(func, "__name__", None) or repr(func)


def check_annealing(func: Callable[[Any, Any, Any], Any], start: npt.ArrayLike, end: npt.ArrayLike,
                    n_steps: int = 10_000, *, monotone: bool = True, ulps: float = 4) -> npt.NDArray[np.float64]:
    """`func(start, end, pct)` over `n_steps` evenly spaced pcts in [0, 1] (one call): finite,
    within the endpoints, at `start` for pct 0 and `end` for pct 1 (`start` for `annealing_no`),
    and monotone unless `monotone=False`. `start`/`end` may be per-group arrays."""
    pct = np.linspace(0.0, 1.0, n_steps)
    if np.ndim(start) or np.ndim(end):
        pct = pct[:, None]
    values = np.asarray(func(start, end, pct), dtype=np.float64)
    final = _final(func, start, end)
    name = f"{_name(func)}({start!r}, {end!r}, pct)"
    check_within(values, start, final, ulps=ulps, name=name)
    check_endpoints(values, start, final, ulps=ulps, name=name)
    if monotone:
        check_monotone(values, start, final, ulps=ulps, name=name)
    return values


def check_stepper(stepper: Stepper, *, monotone: bool = True, ulps: float = 4,
                  max_steps: int = 64) -> npt.NDArray[np.float64]:
    """The whole schedule of `stepper` (from n=0 to n_iter, on a copy) starts at `start`, ends
    at its end, stays within them and is monotone (unless `monotone=False`); and from where the
    stepper is, `step()` gives exactly what `peek()` promised (up to `max_steps` steps)."""
    name = repr(stepper)
    full = copy.deepcopy(stepper)
    full.restart()
    values = schedule_values(full)
    start, final = stepper.start, _final(stepper.func, stepper.start, stepper.end)
    check_within(values, start, final, ulps=ulps, name=name)
    check_endpoints(values, start, final, ulps=ulps, name=name)
    if monotone:
        check_monotone(values, start, final, ulps=ulps, name=name)
    k = min(max(stepper.n_iter - stepper.n, 0), max_steps)
    moved = copy.deepcopy(stepper)
    stepped = np.array([np.asarray(moved.step(), dtype=np.float64) for _ in range(k)]).reshape((k, *values.shape[1:]))
    check_close(stepped, np.asarray(stepper.peek(k), dtype=np.float64), name=name, what="step()")
    return values


def read_hyper(optimizer: torch.optim.Optimizer) -> list[float]:
    """Each param group's learning rate, then its momentum (`momentum` or `betas[0]`) if any."""
    out = []
    for g in optimizer.param_groups:
        out.append(float(g["lr"]))
        if "betas" in g:
            out.append(float(g["betas"][0]))
        elif "momentum" in g:
            out.append(float(g["momentum"]))
    return out


def _plateau_metric(i: int) -> float:
    """A loss that improves, stalls and wobbles, so ReduceLROnPlateau has work to do."""
    return 1.0 / (1 + i // 3) + 0.01 * math.sin(i)


def _driver(obj: Any, step: Callable[[Any], Any] | None,
            ) -> tuple[Callable[[], Any], Callable[[], Any], Callable[[Any], None]]:
    """`(advance, get_state, set_state)` for a Stepper-like object or a torch scheduler."""
    if isinstance(obj, _SCHEDULERS):
        opt = obj.optimizer
        counter = [0]

        def advance() -> list[float]:
            opt.step()  # no gradients: a no-op, but torch warns when the scheduler steps first
            if isinstance(obj, torch.optim.lr_scheduler.ReduceLROnPlateau):
                obj.step(_plateau_metric(counter[0]))
            else:
                obj.step()
            counter[0] += 1
            return read_hyper(opt)

        def get_state() -> dict[str, Any]:
            return {"scheduler": obj.state_dict(), "optimizer": opt.state_dict(), "i": counter[0]}

        def set_state(state: dict[str, Any]) -> None:
            opt.load_state_dict(state["optimizer"])
            obj.load_state_dict(state["scheduler"])
            counter[0] = state["i"]

        return advance, get_state, set_state
    advance = (lambda: step(obj)) if step is not None else obj.step
    return advance, obj.state_dict, obj.load_state_dict


def _roundtrip(state: Any) -> Any:
    return pickle.loads(pickle.dumps(state))


def check_resume(make: Callable[[], Any], n_steps: int, at: int, *, step: Callable[[Any], Any] | None = None,
                 roundtrip: Callable[[Any], Any] = _roundtrip) -> None:
    """Resume-equivalence: `make()` builds the object (a Stepper, a torch or fastcb scheduler
    over its own optimizer, or anything with `state_dict`/`load_state_dict` and `step()`, or
    the given `step(obj)`). One copy runs `n_steps` steps; another, freshly made, loads the
    first's state taken after `at` steps (passed through `roundtrip`, pickle by default) and
    must then produce identical values."""
    if not 0 <= at <= n_steps:
        raise ValueError(f"at: expected a step between 0 and n_steps ({n_steps}), got {at}")
    first = make()
    advance, get_state, _ = _driver(first, step)
    for _ in range(at):
        advance()
    state = roundtrip(get_state())
    expected = [np.asarray(advance(), dtype=np.float64) for _ in range(n_steps - at)]
    second = make()
    advance2, _, set_state = _driver(second, step)
    set_state(state)
    got = [np.asarray(advance2(), dtype=np.float64) for _ in range(n_steps - at)]
    name = f"{type(first).__name__} resumed after {at} steps"
    if got:
        check_close(np.array(got).reshape(len(got), -1), np.array(expected).reshape(len(expected), -1), name=name)


def _try_step(advance: Callable[[], Any]) -> tuple[Any, Exception | None, list[type[Warning]]]:
    """`(values, error, warning categories)` of one step; errors and warnings are behaviour to compare."""
    with warnings.catch_warnings(record=True) as warned:
        warnings.simplefilter("always")
        try:
            return advance(), None, [w.category for w in warned]
        except Exception as e:
            return None, e, [w.category for w in warned]


def check_dropin(fast: object, twin: torch.optim.lr_scheduler.LRScheduler | torch.optim.lr_scheduler.ReduceLROnPlateau,
                 n_steps: int, *, rtol: float = 1e-12) -> None:
    """Drop-in equivalence: scheduler `fast` and its torch `twin`, each over its own optimizer
    built alike, give the same learning rates and momenta at construction and at every one of
    `n_steps` steps (within `rtol` relative to the largest initial value), warn alike, and
    raise the same exception type at the same step if the twin raises. `fast` must be a torch `LRScheduler`."""
    name = f"{type(fast).__module__}.{type(fast).__name__}"
    if not isinstance(fast, _SCHEDULERS):
        raise AssertionError(f"{name} is not a torch LRScheduler, so torch code won't accept it")
    want0 = np.array(read_hyper(twin.optimizer))
    atol = rtol * float(np.max(np.abs(want0), initial=0.0))
    go_fast, _, _ = _driver(fast, None)
    go_twin, _, _ = _driver(twin, None)
    got, want = [read_hyper(fast.optimizer)], [list(want0)]  # row i: after i steps
    for i in range(1, n_steps + 1):
        w, w_err, w_warn = _try_step(go_twin)
        g, g_err, g_warn = _try_step(go_fast)
        if g_warn != w_warn:
            raise AssertionError(f"{name}: at step {i} the drop-in warned {g_warn}, torch's twin {w_warn}")
        if w_err is not None or g_err is not None:
            if type(w_err) is not type(g_err):
                raise AssertionError(
                    f"{name}: at step {i} torch's twin raised {w_err!r} but the drop-in raised {g_err!r}"
                )
            break
        got.append(g)
        want.append(w)
        if hasattr(twin, "get_last_lr"):
            last_got, last_want = [float(v) for v in fast.get_last_lr()], [float(v) for v in twin.get_last_lr()]
            if not np.allclose(last_got, last_want, rtol=rtol, atol=atol):
                raise AssertionError(f"{name}: get_last_lr() is {last_got} at step {i}, torch's is {last_want}")
    check_close(np.array(got), np.array(want), rtol=rtol, atol=atol, name=name, what="lr/momentum")
