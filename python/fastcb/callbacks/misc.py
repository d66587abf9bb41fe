"""Small callbacks: `GradientClipping`, `BnFreeze`, `StopAfterNBatches`."""

from torch import nn

from .._utils import bn_types
from ..callback import Callback
from ..learner import LearnerCallback

__all__ = ["GradientClipping", "BnFreeze", "StopAfterNBatches"]


class GradientClipping(LearnerCallback):
    """Clip the gradient norm to `clip` before each optimizer step (no clipping when `clip` is 0)."""

    def __init__(self, learn, clip=0.0):
        super().__init__(learn)
        if clip < 0:
            raise ValueError(f"clip: expected a non-negative max norm, got {clip!r}")
        self.clip = clip

    def on_backward_end(self, **kwargs):
        """Clip the gradients."""
        if self.clip:
            nn.utils.clip_grad_norm_(self.learn.model.parameters(), self.clip)


class BnFreeze(LearnerCallback):
    """Keep the running statistics of frozen batchnorm layers fixed (eval mode) during training."""

    def on_epoch_begin(self, **kwargs):
        """Put frozen batchnorm layers in eval mode just after `model.train()`."""
        for m in self.learn.model.modules():
            if isinstance(m, bn_types) and not any(p.requires_grad for p in m.parameters()):
                m.eval()


class StopAfterNBatches(Callback):
    """Stop training (skipping validation) after `n_batches` batches."""

    def __init__(self, n_batches=2):
        if n_batches < 1:
            raise ValueError(f"n_batches: expected a positive int, got {n_batches!r}")
        self.n_batches = n_batches

    def on_batch_end(self, iteration, train, **kwargs):
        """Stop after the last batch wanted."""
        if train and iteration == self.n_batches - 1:
            return {"stop_epoch": True, "stop_training": True, "skip_validate": True}
