"""Mixup (https://arxiv.org/abs/1710.09412): `MixUpCallback` mixes pairs of training inputs and targets,
`MixUpLoss` weighs the loss of both targets accordingly."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from .._utils import check_number
from ..errors import ArgumentTypeError
from ..learner_callback import LearnerCallback

if TYPE_CHECKING:
    from ..learner import Learner

__all__ = ["MixUpCallback", "MixUpLoss"]


class MixUpCallback(LearnerCallback):
    """Replace each training batch by a mix of it with a shuffled copy, weights from Beta(`alpha`, `alpha`)
    (the larger of λ and 1-λ on the original). With `stack_y` the targets are stacked with λ and the
    loss is wrapped in `MixUpLoss` for the fit (restored after); else targets are mixed linearly.
    With `stack_x` the model gets `[x, x_shuffled, λ]` instead of the mixed input."""

    def __init__(self, learn: Learner, alpha: float = 0.4, stack_x: bool = False, stack_y: bool = True) -> None:
        super().__init__(learn)
        check_number("alpha", alpha, positive=True, finite=False, like_float=True, type_error=ArgumentTypeError)
        self.alpha, self.stack_x, self.stack_y = alpha, stack_x, stack_y

    def on_train_begin(self, **kwargs: Any) -> None:
        """Wrap the loss function."""
        if self.stack_y:
            self.learn.loss_func = MixUpLoss(self.learn.loss_func)

    def on_batch_begin(self, last_input: Any, last_target: Any, train: bool, **kwargs: Any) -> dict[str, Any] | None:
        """Mix the training batch."""
        if not train:
            return None
        lambd = np.random.beta(self.alpha, self.alpha, last_target.size(0))
        lambd = np.concatenate([lambd[:, None], 1 - lambd[:, None]], 1).max(1)
        lambd = torch.as_tensor(lambd, dtype=last_input.dtype, device=last_input.device)
        shuffle = torch.randperm(last_target.size(0)).to(last_input.device)
        x1, y1 = last_input[shuffle], last_target[shuffle]
        new_input: Any
        if self.stack_x:
            new_input = [last_input, x1, lambd]
        else:
            shape = [lambd.size(0)] + [1] * (x1.dim() - 1)
            new_input = last_input * lambd.view(shape) + x1 * (1 - lambd).view(shape)
        if self.stack_y:
            new_target = torch.cat([last_target[:, None].float(), y1[:, None].float(), lambd[:, None].float()], 1)
        else:
            if last_target.dim() == 2:
                lambd = lambd.unsqueeze(1).float()
            new_target = last_target.float() * lambd + y1.float() * (1 - lambd)
        return {"last_input": new_input, "last_target": new_target}

    def on_train_end(self, **kwargs: Any) -> None:
        """Give the loss function back."""
        if self.stack_y and isinstance(self.learn.loss_func, MixUpLoss):
            self.learn.loss_func = self.learn.loss_func.get_old()


class MixUpLoss(nn.Module):
    """`crit` on stacked mixup targets `[y1, y2, λ]`: `λ·crit(out, y1) + (1-λ)·crit(out, y2)`, reduced by
    `reduction` ('mean', 'sum' or 'none'); plain targets go to `crit` directly."""

    def __init__(self, crit: Callable[..., torch.Tensor], reduction: str = "mean") -> None:
        super().__init__()
        if reduction not in ("mean", "sum", "none"):
            raise ValueError(f"reduction: expected 'mean', 'sum' or 'none', got {reduction!r}")
        if hasattr(crit, "reduction"):
            self.crit, self.old_red = crit, crit.reduction
            self.crit.reduction = "none"
        else:
            self.crit, self.old_crit = partial(crit, reduction="none"), crit
        self.reduction = reduction

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The mixed loss."""
        if target.dim() == 2:
            loss1, loss2 = self.crit(output, target[:, 0].long()), self.crit(output, target[:, 1].long())
            d = loss1 * target[:, 2] + loss2 * (1 - target[:, 2])
        else:
            d = self.crit(output, target)
        if self.reduction == "mean":
            return d.mean()
        if self.reduction == "sum":
            return d.sum()
        return d

    def get_old(self) -> Callable[..., torch.Tensor]:
        """The original loss function (its `reduction` restored)."""
        if hasattr(self, "old_crit"):
            return self.old_crit
        self.crit.reduction = self.old_red
        return self.crit
