"""`OneCycleScheduler`: Leslie Smith's 1cycle policy for the learning rate and momentum."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..learner_callback import LearnerCallback
from ..one_cycle import check_lr, check_one_cycle, one_cycle_phases  # noqa: F401 (check_lr: LRFinder's)
from .general_sched import GeneralScheduler

if TYPE_CHECKING:
    from ..learner import Learner
    from ..one_cycle import LearningRates

__all__ = ["OneCycleScheduler"]


class OneCycleScheduler(GeneralScheduler):
    """Over n training batches: `int(n*pct_start)` batches of cosine warm-up from `lr_max/div_factor` to
    `lr_max`, then cosine annealing to `lr_max/final_div`; momentum follows the reverse cycle.
    With `on_device=True` the schedule runs on the device (see `GeneralScheduler`)."""

    def __init__(self, learn: Learner, lr_max: LearningRates, moms: float | list[float] | tuple[float, ...] = (0.95, 0.85),
                 div_factor: float = 25.0, pct_start: float = 0.3, final_div: float | None = None,
                 tot_epochs: int | None = None, start_epoch: int | None = None, on_device: bool = False) -> None:
        LearnerCallback.__init__(self, learn)
        self.on_device = bool(on_device)
        self.lr_max, self.moms, self.div_factor, self.pct_start, self.final_div = check_one_cycle(
            lr_max, moms, div_factor, pct_start, final_div)
        self.tot_epochs, self.start_epoch = tot_epochs, start_epoch

    def on_train_begin(self, n_epochs: int, epoch: int, **kwargs: Any) -> dict[str, Any] | None:
        """Build the two phases (`fastcb.one_cycle.one_cycle_phases`) and start them."""
        self.tot_epochs = n_epochs if self.tot_epochs is None else self.tot_epochs
        n = len(self.learn.data.train_dl) * self.tot_epochs
        phases = one_cycle_phases(n, self.lr_max, self.moms, self.div_factor, self.pct_start, self.final_div)
        return self.start_schedules(phases, epoch)

    def on_epoch_end(self, epoch: int, **kwargs: Any) -> dict[str, Any] | None:
        """Stop training past `tot_epochs`."""
        if epoch > self.tot_epochs:  # type: ignore[operator]  # not None: on_train_begin set it
            return {"stop_training": True}
        return None
