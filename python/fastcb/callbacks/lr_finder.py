"""`LRFinder`: a mock training with exponentially growing learning rates, to pick one."""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

import torch

from .._utils import check_number
from ..anneal import Stepper, annealing_exp
from ..distributed import is_main_process, unwrap
from ..learner_callback import LearnerCallback
from ..one_cycle import LearningRates, check_lr

if TYPE_CHECKING:
    from ..learner import Learner

__all__ = ["LRFinder"]


class LRFinder(LearnerCallback):
    """Grow the lr from `start_lr` to `end_lr` over `num_it` batches; stop early when the smoothed
    loss exceeds 4x the best (if `stop_div`); skip validation; restore the starting weights at the end."""

    def __init__(self, learn: Learner, start_lr: LearningRates = 1e-7, end_lr: LearningRates = 10, num_it: int = 100,
                 stop_div: bool = True) -> None:
        super().__init__(learn)
        start_lr, end_lr = check_lr(start_lr, "start_lr"), check_lr(end_lr, "end_lr")
        check_number("num_it", num_it, integer=True, positive=True)
        self.data, self.stop_div, self.num_it = learn.data, stop_div, num_it
        self.sched = Stepper((start_lr, end_lr), num_it, annealing_exp)

    def on_train_begin(self, pbar: Any, **kwargs: Any) -> dict[str, Any]:
        """Keep the starting weights (in memory) and set the first lr."""
        if pbar is not None:
            pbar.clean_on_interrupt = True
        self.opt = self.learn.opt
        self._saved = (copy.deepcopy(unwrap(self.learn.model).state_dict()), copy.deepcopy(self.opt.state_dict()))
        self.sched.restart()
        self.opt.lr = self.sched.start
        self.last_lr = None
        self.stop: int | None = None
        self.best_loss = 0.0
        return {"skip_validate": True}

    def on_batch_end(self, iteration: int, smooth_loss: Any, **kwargs: Any) -> dict[str, Any] | None:
        """Step the lr; stop when the schedule is done or the loss diverges."""
        if iteration == 0 or smooth_loss < self.best_loss:
            self.best_loss = smooth_loss
        self.opt.lr = self.last_lr = self.sched.step()
        diverged = self.stop_div and bool(smooth_loss > 4 * self.best_loss or torch.isnan(torch.as_tensor(smooth_loss)))
        if self.sched.is_done or diverged:
            if self.stop is None:
                self.stop = iteration
            return {"stop_epoch": True, "stop_training": True}
        return None

    def on_epoch_end(self, **kwargs: Any) -> dict[str, Any] | None:
        """Stop training once stopped."""
        if self.stop is not None:
            return {"stop_training": True}
        return None

    def on_train_end(self, **kwargs: Any) -> None:
        """Restore the weights and optimizer state from before the search."""
        model_state, opt_state = self._saved
        unwrap(self.learn.model).load_state_dict(model_state)
        self.opt.load_state_dict(opt_state)
        if getattr(self, "last_lr", None) is not None:
            self.opt.lr = self.last_lr  # as fastai: `learn.opt.lr` reads the last scheduled lr
        if hasattr(self.learn.model, "reset"):
            self.learn.model.reset()  # type: ignore[operator]  # the model's own method (fastai's RNNs)
        if not getattr(self.learn, "silent", False) and is_main_process():
            print("LR Finder is complete, type learn.recorder.plot() to see the graph.")
