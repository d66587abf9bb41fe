"""Annealing functions, `Stepper`, `SmoothenValue` and `WeightedMean`, from the compiled core.

Scalars and NumPy arrays are computed in Rust (arrays on all cores, without the GIL);
torch tensors go through the same formulas in Python (`fastcb.reference`), on their device.
"""

from ._core import (
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
