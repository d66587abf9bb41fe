"""fastai v1's `fastai.train`: the training recipes as functions of a `Learner` (`fit_one_cycle(learn, ...)`,
`lr_find(learn)`, `to_fp16(learn)`...), also reachable as `Learner` methods through `TrainMixin`."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any, cast

from torch import nn
from torch.optim import Optimizer

from ._utils import listify
from .callbacks.flat_cos_anneal import FlatCosAnnealScheduler
from .callbacks.fp16 import MixedPrecision
from .callbacks.hooks import model_summary
from .callbacks.misc import GradientClipping
from .callbacks.mixup import MixUpCallback
from .callbacks.one_cycle import OneCycleScheduler
from .data import DatasetType
from .interpret import ClassificationInterpretation
from .settings import defaults

if TYPE_CHECKING:
    from .callback import Callback
    from .learner import Learner

__all__ = ["train_epoch", "fit_one_cycle", "lr_find", "one_cycle_scheduler", "to_fp16", "to_fp32", "mixup", "fit_fc", "clip_grad"]


def train_epoch(model: nn.Module, dl: Iterable[Any], opt: Optimizer, loss_func: Callable[..., Any]) -> None:
    """One plain epoch of `model` on `dl` with `opt` and `loss_func` (no callbacks)."""
    model.train()
    for xb, yb in dl:
        loss = loss_func(model(xb), yb)
        loss.backward()
        opt.step()
        opt.zero_grad()


def one_cycle_scheduler(lr_max: Any, **kwargs: Any) -> partial[OneCycleScheduler]:
    """A `OneCycleScheduler` factory with `lr_max` (for `callback_fns`)."""
    return partial(OneCycleScheduler, lr_max=lr_max, **kwargs)


def fit_one_cycle(learn: Learner, cyc_len: int, max_lr: Any = defaults.lr, moms: tuple[float, float] = (0.95, 0.85),
                  div_factor: float = 25.0, pct_start: float = 0.3, final_div: float | None = None,
                  wd: Any = None, callbacks: Sequence[Callback] | None = None, tot_epochs: int | None = None,
                  start_epoch: int | None = None) -> None:
    """Fit `learn` for `cyc_len` epochs following the 1cycle policy (`Learner.fit_one_cycle`)."""
    learn.fit_one_cycle(cyc_len, max_lr, moms=moms, div_factor=div_factor, pct_start=pct_start, final_div=final_div,
                        wd=wd, callbacks=callbacks, tot_epochs=tot_epochs, start_epoch=start_epoch)


def lr_find(learn: Learner, start_lr: Any = 1e-7, end_lr: Any = 10, num_it: int = 100, stop_div: bool = True,
            wd: Any = None) -> None:
    """Explore learning rates from `start_lr` to `end_lr` over `num_it` batches (`Learner.lr_find`)."""
    learn.lr_find(start_lr=start_lr, end_lr=end_lr, num_it=num_it, stop_div=stop_div, wd=wd)


def fit_fc(learn: Learner, tot_epochs: int = 1, lr: Any = defaults.lr, moms: tuple[float, float] = (0.95, 0.85),
           start_pct: float = 0.72, wd: Any = None, callbacks: Sequence[Callback] | None = None) -> None:
    """Fit `learn` for `tot_epochs` epochs at a flat `lr`, annealed (cosine) to 0 after `start_pct` of the batches."""
    max_lr = learn.lr_range(lr)
    cbs: list[Any] = listify(callbacks)
    cbs.append(FlatCosAnnealScheduler(learn, max_lr, moms=moms, start_pct=start_pct, tot_epochs=tot_epochs))
    learn.fit(tot_epochs, max_lr, wd=wd, callbacks=cbs)


def to_fp16(learn: Learner, loss_scale: float | None = None, max_noskip: int = 1000, dynamic: bool = True,
            clip: float | None = None, flat_master: bool = False, max_scale: float = 2**24,
            loss_fp32: bool = True) -> Learner:
    """Train `learn` in mixed precision (`MixedPrecision`, on `torch.amp`: the weights stay float32)."""
    to_fp32(learn)
    cb = MixedPrecision(learn, loss_scale=loss_scale, max_noskip=max_noskip, dynamic=dynamic, clip=clip,
                        flat_master=flat_master, max_scale=max_scale, loss_fp32=loss_fp32)
    learn.mp_cb = cb  # type: ignore[attr-defined]  # fastai's attribute, set only here
    learn.callbacks.append(cb)
    return learn


def to_fp32(learn: Learner) -> Learner:
    """Back to full precision: remove `MixedPrecision` callbacks, make the model float32."""
    learn.callbacks = [cb for cb in learn.callbacks if not isinstance(cb, MixedPrecision)]
    learn.model = learn.model.float()
    return learn


def mixup(learn: Learner, alpha: float = 0.4, stack_x: bool = False, stack_y: bool = True) -> Learner:
    """Train `learn` with mixup (https://arxiv.org/abs/1710.09412): adds a `MixUpCallback` factory."""
    learn.callback_fns.append(partial(MixUpCallback, alpha=alpha, stack_x=stack_x, stack_y=stack_y))
    return learn


def clip_grad(learn: Learner, clip: float = 0.1) -> Learner:
    """Clip the gradient norm to `clip` during training (a `GradientClipping` factory)."""
    learn.callback_fns.append(partial(GradientClipping, clip=clip))
    return learn


class TrainMixin:
    """The `fastai.train` recipes as `Learner` methods."""

    to_fp16 = to_fp16
    to_fp32 = to_fp32
    mixup = mixup
    fit_fc = fit_fc
    clip_grad = clip_grad

    def interpret(self, ds_type: DatasetType | None = None) -> ClassificationInterpretation:
        """A `ClassificationInterpretation` of the predictions on `ds_type` (the validation set by default)."""
        return ClassificationInterpretation.from_learner(cast("Learner", self), ds_type=ds_type or DatasetType.Valid)

    def summary(self) -> str:
        """The layer-by-layer summary of the model on one batch (`model_summary`)."""
        return model_summary(cast("Learner", self))



