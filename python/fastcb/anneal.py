"""Annealing functions, `Stepper`, `SmoothenValue` and `WeightedMean`, from the compiled core.

Scalars and NumPy arrays are computed in Rust (arrays on all cores, without the GIL);
torch tensors go through the same formulas in Python (`fastcb.reference`), on their device.
"""

from collections.abc import Callable
from typing import Any

from ._core import (
    SHAPES,  # noqa: F401 - re-exported: the shape table
    AnnealPoly,
    SmoothenValue,
    Stepper,
    WeightedMean,
    annealing_cos,
    annealing_exp,
    annealing_linear,
    annealing_no,
    annealing_poly,
    do_annealing_poly,
)

#: fastai's later name for `Stepper`.
Scheduler = Stepper

_BUILT_IN = {annealing_no: "no", annealing_linear: "linear", annealing_exp: "exp", annealing_cos: "cos"}


def shape_of(func: Callable[..., Any]) -> str | None:
    """The shape name (one of `SHAPES`) of fastcb's built-in annealing function `func`, else None."""
    if isinstance(func, AnnealPoly):
        return "poly"
    try:
        return _BUILT_IN.get(func)
    except TypeError:  # unhashable callables are never built-ins
        return None

__all__ = [
    "annealing_no",
    "annealing_linear",
    "annealing_exp",
    "annealing_cos",
    "do_annealing_poly",
    "annealing_poly",
    "AnnealPoly",
    "Stepper",
    "Scheduler",
    "SmoothenValue",
    "WeightedMean",
]
