"""fastai v2's `fit_sgdr` and `fit_flat_cos` on fastcb's `Learner` (a mixin of it).

Their schedules are fastai v2's (`fastcb.schedules`: a position at a join belongs to the
later part, per-layer-group learning rates give per-group values), set before each batch by
`ParamScheduler` at `pct_train = train_iter / (n_epochs * batches per epoch)`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import numpy.typing as npt

from . import schedules as S
from ._utils import check_number, listify
from .callbacks.param_sched import ParamScheduler
from .errors import ArgumentTypeError
from .settings import DEFAULT_LR

if TYPE_CHECKING:
    from .callback import Callback
    from .learner import Learner

__all__ = ["FitV2Mixin"]


def _group_lrs(learn: Learner, lr: Any) -> npt.NDArray[np.float64]:
    """fastai v2's `lr_max` array: one learning rate per layer group."""
    lr = learn.lr_range(lr)
    n = len(learn.layer_groups)
    try:
        arr = np.array(np.broadcast_to(np.asarray(lr, dtype=np.float64), (n,)))
    except (TypeError, ValueError):
        arr = None
    if arr is None or not np.all(np.isfinite(arr)) or np.any(arr <= 0):
        raise ValueError(f"lr: expected positive learning rates (a number, a slice or one per each of the {n} "
                         f"layer groups), got {lr!r}")
    return arr


class FitV2Mixin:
    """fastai v2's `fit_sgdr` and `fit_flat_cos` on a fastcb `Learner`."""

    def fit_flat_cos(self, n_epoch: int, lr: Any = None, div_final: float = 1e5, pct_start: float = 0.75,
                     wd: Any = None, callbacks: Sequence[Callback] | None = None) -> None:
        """Fit for `n_epoch` epochs at a flat `lr` for `pct_start` of the batches, then cosine
        annealing to `lr/div_final` (fastai v2's `fit_flat_cos`; `lr` defaults to `DEFAULT_LR`)."""
        learn = cast("Learner", self)  # a mixin of Learner
        lr = _group_lrs(learn, DEFAULT_LR if lr is None else lr)
        check_number("pct_start", pct_start, positive=True, below=1, like_float=True, type_error=ArgumentTypeError)
        scheds = {"lr": S.combined_cos(pct_start, lr, lr, lr / div_final)}
        learn.fit(n_epoch, lr, wd=wd, callbacks=[ParamScheduler(learn, scheds), *listify(callbacks)])

    def fit_sgdr(self, n_cycles: int, cycle_len: int, lr_max: Any = None, cycle_mult: int = 2, wd: Any = None,
                 callbacks: Sequence[Callback] | None = None) -> None:
        """Fit for `n_cycles` cosine cycles from `lr_max` to 0, the first `cycle_len` epochs
        long and each next one `cycle_mult` times longer (fastai v2's `fit_sgdr`; with
        `cycle_mult=1`, where fastai divides by zero, `n_cycles * cycle_len` epochs)."""
        for name, v in (("n_cycles", n_cycles), ("cycle_len", cycle_len), ("cycle_mult", cycle_mult)):
            check_number(name, v, integer=True, positive=True)
        learn = cast("Learner", self)  # a mixin of Learner
        lr_max = _group_lrs(learn, DEFAULT_LR if lr_max is None else lr_max)
        if cycle_mult == 1:
            n_epoch = cycle_len * n_cycles
        else:
            n_epoch = cycle_len * (cycle_mult**n_cycles - 1) // (cycle_mult - 1)
        pcts = [cycle_len * cycle_mult**i / n_epoch for i in range(n_cycles)]
        scheds = {"lr": S.combine_scheds(pcts, [S.SchedCos(lr_max, 0) for _ in range(n_cycles)])}
        learn.fit(n_epoch, lr_max, wd=wd, callbacks=[ParamScheduler(learn, scheds), *listify(callbacks)])


