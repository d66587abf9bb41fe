"""Small callbacks: `GradientClipping`, `BnFreeze`, `StopAfterNBatches`, `RecordOnCPU`, `ShowGraph`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from torch import nn

from .._utils import bn_types, check_number, to_cpu
from ..callback import Callback
from ..errors import ArgumentTypeError
from ..learner_callback import LearnerCallback

if TYPE_CHECKING:
    from ..learner import Learner

__all__ = ["GradientClipping", "BnFreeze", "StopAfterNBatches", "RecordOnCPU", "ShowGraph"]


class GradientClipping(LearnerCallback):
    """Clip the gradient norm to `clip` before each optimizer step (no clipping when `clip` is 0)."""

    def __init__(self, learn: Learner, clip: float = 0.0) -> None:
        super().__init__(learn)
        check_number("clip", clip, minimum=0, finite=False, like_float=True, type_error=ArgumentTypeError)
        self.clip = clip

    def on_backward_end(self, **kwargs: Any) -> None:
        """Clip the gradients."""
        if self.clip:
            nn.utils.clip_grad_norm_(self.learn.model.parameters(), self.clip)


class BnFreeze(LearnerCallback):
    """Keep the running statistics of frozen batchnorm layers fixed (eval mode) during training."""

    def on_epoch_begin(self, **kwargs: Any) -> None:
        """Put frozen batchnorm layers in eval mode just after `model.train()`."""
        for m in self.learn.model.modules():
            if isinstance(m, bn_types) and not any(p.requires_grad for p in m.parameters()):
                m.eval()


class StopAfterNBatches(Callback):
    """Stop training (skipping validation) after `n_batches` batches."""

    def __init__(self, n_batches: int = 2) -> None:
        check_number("n_batches", n_batches, minimum=1, finite=False, like_float=True, type_error=ArgumentTypeError)
        self.n_batches = n_batches

    def on_batch_end(self, iteration: int, train: bool, **kwargs: Any) -> dict[str, Any] | None:
        """Stop after the last batch wanted."""
        if train and iteration == self.n_batches - 1:
            return {"stop_epoch": True, "stop_training": True, "skip_validate": True}
        return None


class RecordOnCPU(Callback):
    """Keep a CPU copy of each batch's input and target (as `input` and `target`)."""

    def on_batch_begin(self, last_input: Any, last_target: Any, **kwargs: Any) -> None:
        """Copy the batch to the CPU."""
        self.input, self.target = to_cpu(last_input), to_cpu(last_target)


class ShowGraph(LearnerCallback):
    """After each epoch, draw the training and validation losses in the progress bar's graph."""

    def on_epoch_end(self, n_epochs: int, last_metrics: list[Any] | None, **kwargs: Any) -> None:
        """Update the graph (when there is a validation loss and a graph to update)."""
        if last_metrics is None or last_metrics[0] is None:
            return None
        rec = self.learn.recorder
        pbar = getattr(rec, "pbar", None)
        if pbar is None or not hasattr(pbar, "update_graph"):
            return None
        losses = [float(l) for l in rec.losses]
        val_losses = [float(v) for v in rec.val_losses]
        iters = range(len(losses))
        val_iter = np.array(rec.nb_batches).cumsum()
        x_bounds = (0, (n_epochs - len(rec.nb_batches)) * rec.nb_batches[-1] + len(losses))
        y_bounds = (0, max(max(losses), max(val_losses)))
        pbar.update_graph([(iters, losses), (val_iter, val_losses)], x_bounds, y_bounds)
        return None
