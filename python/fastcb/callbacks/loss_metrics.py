"""`LossMetrics`: report the parts of a composite loss (its `metrics` dict) as metrics."""

import warnings
from typing import Any

from ..learner_callback import LearnerCallback

__all__ = ["LossMetrics"]


class LossMetrics(LearnerCallback):
    """Add the validation means of `loss_func.metrics[name]` for each name of `loss_func.metric_names`
    (values the loss function stores on each call) to the metrics."""

    _order = -20  # before the Recorder reads the metrics

    def on_train_begin(self, **kwargs: Any) -> None:
        """Add the names to the Recorder."""
        self.names = list(getattr(self.learn.loss_func, "metric_names", None) or [])
        if not self.names:
            warnings.warn("LossMetrics requested but no loss_func.metric_names provided")
        self.learn.recorder.add_metric_names(self.names)

    def on_epoch_begin(self, **kwargs: Any) -> None:
        """Reset the sums."""
        self.metrics = {name: 0.0 for name in self.names}
        self.nums = 0

    def on_batch_end(self, last_target: Any, train: bool, **kwargs: Any) -> None:
        """Accumulate the validation batch's values, weighted by its size."""
        if train:
            return
        bs = last_target.size(0)
        for name in self.names:
            self.metrics[name] += bs * self.learn.loss_func.metrics[name].detach().cpu()
        self.nums += bs

    def on_epoch_end(self, last_metrics: list[Any], **kwargs: Any) -> dict[str, Any] | None:
        """Append the means."""
        if not self.nums:
            return None
        return {"last_metrics": last_metrics + [self.metrics[name] / self.nums for name in self.names]}
