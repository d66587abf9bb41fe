"""The annealing formulas in plain Python.

They are the oracle the compiled core is tested against, and the path for values the core
does not take (torch tensors): the same formula, evaluated with the value's own arithmetic,
so a tensor stays on its device. Scalars use `math`, in the order of operations DESIGN.md
fixes, which the compiled results equal bit for bit.
"""

import functools
import math
import operator
from collections.abc import Iterable
from typing import Any

__all__ = [
    "annealing_no",
    "annealing_linear",
    "annealing_exp",
    "annealing_cos",
    "do_annealing_poly",
    "smoothen",
    "checked",
]


def _cos(x: Any) -> Any:
    """`math.cos` for numbers, the value's own `cos` otherwise (tensors, arrays)."""
    return math.cos(x) if isinstance(x, (int, float)) else x.cos()


def annealing_no(start: Any, end: Any, pct: Any) -> Any:
    """No annealing: always `start`."""
    return start


def annealing_linear(start: Any, end: Any, pct: Any) -> Any:
    """`start + pct*(end-start)`."""
    return start + pct * (end - start)


def annealing_exp(start: Any, end: Any, pct: Any) -> Any:
    """`start * (end/start)**pct`."""
    return start * (end / start) ** pct


def annealing_cos(start: Any, end: Any, pct: Any) -> Any:
    """`end + (start-end)/2 * (cos(pi*pct) + 1)`."""
    return end + (start - end) / 2 * (_cos(math.pi * pct) + 1)


def do_annealing_poly(start: Any, end: Any, pct: Any, degree: float) -> Any:
    """`end + (start-end) * (1-pct)**degree`."""
    return end + (start - end) * (1 - pct) ** degree


def smoothen(beta: float, values: Iterable[float]) -> list[float]:
    """The successive `smooth` values of fastai's `SmoothenValue(beta)` fed `values`."""
    n, mov_avg, out = 0, 0.0, []
    for v in values:
        n += 1
        mov_avg = beta * mov_avg + (1 - beta) * v
        out.append(mov_avg / (1 - beta**n))
    return out


def checked(name: str, start: Any, end: Any, pct: Any, *degree: float) -> Any:
    """The formula `name` (e.g. "annealing_cos") on tensors, refusing what the compiled core
    refuses for numbers: a NaN or inf in an argument or in the result is a ValueError naming
    it. The check reads one boolean back from the tensors' device."""
    import torch

    args = {"start": start, "end": end, "pct": pct}
    for k, v in args.items():
        if isinstance(v, (int, float)) and not math.isfinite(v):
            raise ValueError(f"{k}: expected a finite number, got {v!r}")
    out = globals()[name](start, end, pct, *degree)
    args["result"] = out
    tensors = {k: v for k, v in args.items() if isinstance(v, torch.Tensor)}
    flags = [torch.isfinite(v).all() for v in tensors.values()]
    try:  # one read-back for all (a CPU flag combines with a device one)
        ok = bool(functools.reduce(operator.and_, flags))
    except RuntimeError:
        ok = all(bool(f) for f in flags)
    if ok:
        return out
    for k, v in tensors.items():
        if not bool(torch.isfinite(v).all()):
            if k == "result":
                raise ValueError(f"{name.removeprefix('do_')}: the result on tensors is NaN or overflows")
            raise ValueError(f"{k}: expected a finite number, got a tensor holding NaN or inf")
    return out
