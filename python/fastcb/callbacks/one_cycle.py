"""`OneCycleScheduler`: Leslie Smith's 1cycle policy for the learning rate and momentum."""

import numpy as np

from ..anneal import Stepper, annealing_cos
from ..learner_callback import LearnerCallback
from .general_sched import GeneralScheduler

__all__ = ["OneCycleScheduler"]  # and check_one_cycle, for the previews


def check_lr(lr, name):
    """`lr` as a positive float or a float64 array of positive values; ValueError naming `name` otherwise."""
    if isinstance(lr, (list, tuple, np.ndarray)):
        arr = np.asarray(lr, dtype=np.float64)
        if arr.ndim != 1 or arr.size == 0 or not np.all(np.isfinite(arr)) or np.any(arr <= 0):
            raise ValueError(f"{name}: expected positive finite learning rates, got {lr!r}")
        return arr
    if isinstance(lr, bool) or not isinstance(lr, (int, float, np.floating, np.integer)):
        raise TypeError(f"{name}: expected a number, a slice or an array of numbers, got {type(lr).__name__}")
    if not np.isfinite(lr) or lr <= 0:
        raise ValueError(f"{name}: expected a positive finite learning rate, got {lr!r}")
    return float(lr)


def _positive(v, name):
    if isinstance(v, bool) or not isinstance(v, (int, float, np.floating, np.integer)) or not v > 0:
        raise ValueError(f"{name}: expected a positive number, got {v!r}")
    return float(v)


def check_one_cycle(lr_max, moms=(0.95, 0.85), div_factor=25.0, pct_start=0.3, final_div=None):
    """The one-cycle policy's arguments checked (ValueError/TypeError naming the argument) and
    completed: `(lr_max, moms as a pair, div_factor, pct_start, final_div)`. Training and the
    previews (`fastcb.preview.one_cycle_trace`, `fastcb plot one-cycle`) apply these same rules."""
    lr_max = check_lr(lr_max, "lr_max")
    div_factor = _positive(div_factor, "div_factor")
    if isinstance(pct_start, bool) or not isinstance(pct_start, (int, float)) or not 0 <= pct_start <= 1:
        raise ValueError(f"pct_start: expected a number in [0, 1], got {pct_start!r}")
    final_div = div_factor * 1e4 if final_div is None else _positive(final_div, "final_div")
    moms = tuple(moms) if isinstance(moms, (list, tuple)) else (moms, moms)
    if len(moms) != 2:
        raise ValueError(f"moms: expected one momentum or a pair, got {moms!r}")
    return lr_max, moms, div_factor, pct_start, final_div


class OneCycleScheduler(GeneralScheduler):
    """Over n training batches: `int(n*pct_start)` batches of cosine warm-up from `lr_max/div_factor` to
    `lr_max`, then cosine annealing to `lr_max/final_div`; momentum follows the reverse cycle.
    With `on_device=True` the schedule runs on the device (see `GeneralScheduler`)."""

    def __init__(self, learn, lr_max, moms=(0.95, 0.85), div_factor=25.0, pct_start=0.3, final_div=None,
                 tot_epochs=None, start_epoch=None, on_device=False):
        LearnerCallback.__init__(self, learn)
        self.on_device = bool(on_device)
        self.lr_max, self.moms, self.div_factor, self.pct_start, self.final_div = check_one_cycle(
            lr_max, moms, div_factor, pct_start, final_div)
        self.tot_epochs, self.start_epoch = tot_epochs, start_epoch

    def on_train_begin(self, n_epochs, epoch, **kwargs):
        """Build the two phases (as fastai: `Stepper`s of `int(n*pct_start)` and the rest) and start them."""
        self.tot_epochs = n_epochs if self.tot_epochs is None else self.tot_epochs
        n = len(self.learn.data.train_dl) * self.tot_epochs
        a1 = int(n * self.pct_start)
        low_lr = self.lr_max / self.div_factor
        up = {"lr": Stepper((low_lr, self.lr_max), a1, annealing_cos),
              "mom": Stepper(self.moms, a1, annealing_cos)}
        down = {"lr": Stepper((self.lr_max, self.lr_max / self.final_div), n - a1, annealing_cos),
                "mom": Stepper((self.moms[1], self.moms[0]), n - a1, annealing_cos)}
        return self.start_schedules([up, down], epoch)

    def on_epoch_end(self, epoch, **kwargs):
        """Stop training past `tot_epochs`."""
        if epoch > self.tot_epochs:
            return {"stop_training": True}
