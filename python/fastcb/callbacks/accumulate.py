"""`AccumulateScheduler`: step the optimizer every `n_step` batches, on gradients accumulated in between."""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

from .._utils import check_number
from ..learner_callback import LearnerCallback

if TYPE_CHECKING:
    from ..learner import Learner

__all__ = ["AccumulateScheduler"]


class AccumulateScheduler(LearnerCallback):
    """Accumulate gradients over `n_step` batches, divide them by the number of samples seen, then step.
    Leftover batches at the epoch's end are stepped too unless `drop_last`. Best with a loss using
    `reduction='sum'` (the division then gives the mean over the accumulated samples)."""

    def __init__(self, learn: Learner, n_step: int = 1, drop_last: bool = False) -> None:
        super().__init__(learn)
        check_number("n_step", n_step, integer=True, positive=True)
        self.n_step, self.drop_last = n_step, drop_last

    def on_train_begin(self, **kwargs: Any) -> None:
        """Advise a summed loss."""
        if getattr(self.learn.loss_func, "reduction", "sum") != "sum":
            warnings.warn("For better gradients consider 'reduction=sum'")

    def on_epoch_begin(self, **kwargs: Any) -> None:
        """Reset the counts."""
        self.acc_samples, self.acc_batches = 0.0, 0.0

    def on_batch_begin(self, last_input: Any, last_target: Any, **kwargs: Any) -> None:
        """Count the batch."""
        self.acc_samples += last_input.shape[0]
        self.acc_batches += 1

    def on_backward_end(self, **kwargs: Any) -> dict[str, Any] | None:
        """Every `n_step` batches, average the gradients and let the step happen; else skip step and zero."""
        if self.acc_batches % self.n_step == 0:
            self._average()
            return None
        return {"skip_step": True, "skip_zero": True}

    def _average(self) -> None:
        for p in self.learn.model.parameters():
            if p.requires_grad and p.grad is not None:
                p.grad.div_(self.acc_samples)
        self.acc_samples = 0

    def on_epoch_end(self, **kwargs: Any) -> None:
        """Step on what is left (unless `drop_last`), then clear the gradients."""
        if self.acc_samples:
            self._average()
            if not self.drop_last:
                self.learn.opt.step()
        self.learn.opt.zero_grad()
