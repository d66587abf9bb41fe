"""`FlatCosAnnealScheduler`: a flat learning rate, then an annealing to 0 (fastai v1's `fit_fc` schedule)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._utils import check_number
from ..anneal import annealing_cos, annealing_exp, annealing_linear
from ..errors import ArgumentTypeError
from .general_sched import GeneralScheduler, TrainingPhase

if TYPE_CHECKING:
    from ..learner import Learner

__all__ = ["FlatCosAnnealScheduler"]

_CURVES = {"cosine": annealing_cos, "linear": annealing_linear, "exponential": annealing_exp}


def FlatCosAnnealScheduler(learn: Learner, lr: float = 4e-3, tot_epochs: int = 1,  # noqa: N802
                           moms: tuple[float, float] = (0.95, 0.999), start_pct: float = 0.72,
                           curve: str = "cosine") -> GeneralScheduler:
    """A `GeneralScheduler`: `lr` and `moms[0]` constant for the first `start_pct` of the
    `tot_epochs` epochs' batches, then `lr` annealed to 0 along `curve` ('cosine', 'linear' or
    'exponential') with momentum `moms[1]`."""
    if curve not in _CURVES:
        raise ValueError(f"curve: expected one of {sorted(_CURVES)}, got {curve!r}")
    check_number("start_pct", start_pct, minimum=0, maximum=1, like_float=True, type_error=ArgumentTypeError)
    n = len(learn.data.train_dl)
    anneal_start = int(n * tot_epochs * start_pct)
    batch_finish = n * tot_epochs - anneal_start
    phases: list[TrainingPhase] = []
    if anneal_start:
        phases.append(TrainingPhase(anneal_start).schedule_hp("lr", lr).schedule_hp("mom", moms[0]))
    if batch_finish:
        phases.append(TrainingPhase(batch_finish).schedule_hp("lr", lr, anneal=_CURVES[curve])
                      .schedule_hp("mom", moms[1]))
    return GeneralScheduler(learn, phases)
