"""`MLFlowTracker`: log a fit's parameters, per-epoch losses and metrics (and a file) to MLflow
(needs the `mlflow` package, or `mlflow-skinny`: `pip install fastcb[mlflow]`)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from types import ModuleType
from typing import TYPE_CHECKING, Any

from ..learner_callback import LearnerCallback

if TYPE_CHECKING:
    from ..learner import Learner

__all__ = ["MLFlowTracker"]


def _mlflow() -> ModuleType:
    try:
        import mlflow
    except ImportError as e:
        raise ImportError("MLFlowTracker needs the mlflow package: pip install fastcb[mlflow]") from e
    return mlflow


class MLFlowTracker(LearnerCallback):
    """At the start of each fit, create a run in experiment `exp_name` (created if needed) on the tracking
    server `uri` (or a local store, `file:/path`) and log `params`; after each epoch log the smoothed
    training loss, the validation loss and the metrics (named as in the Recorder) at step `epoch`;
    at the end log `nb_path` (if given) as an artifact and terminate the run."""

    def __init__(self, learn: Learner, exp_name: str, params: Mapping[str, Any],
                 nb_path: str | os.PathLike[str] | None = None, uri: str = "http://localhost:5000") -> None:
        super().__init__(learn)
        _mlflow()
        self.exp_name, self.params, self.nb_path, self.uri = exp_name, dict(params), nb_path, uri

    def on_train_begin(self, **kwargs: Any) -> None:
        """Create the run and log the parameters."""
        self.client = _mlflow().tracking.MlflowClient(self.uri)
        exp = self.client.get_experiment_by_name(self.exp_name)
        self.exp_id = self.client.create_experiment(self.exp_name) if exp is None else exp.experiment_id
        self.run = self.client.create_run(experiment_id=self.exp_id).info.run_id
        for k, v in self.params.items():
            self.client.log_param(run_id=self.run, key=k, value=v)

    def on_epoch_end(self, epoch: int, smooth_loss: Any, last_metrics: list[Any] | None, **kwargs: Any) -> None:
        """Log this epoch's losses and metrics."""
        if smooth_loss is None or last_metrics is None:
            return
        names = ["train_loss"] + self.learn.recorder.names[2:]
        for name, val in zip(names, [smooth_loss] + list(last_metrics)):
            if val is not None and not isinstance(val, (list, tuple)):
                self.client.log_metric(self.run, name, float(val), step=epoch)

    def on_train_end(self, exception: bool | BaseException = False, **kwargs: Any) -> None:
        """Log the artifact and end the run (FAILED if the fit raised)."""
        if self.nb_path is not None:
            self.client.log_artifact(run_id=self.run, local_path=str(self.nb_path))
        self.client.set_terminated(run_id=self.run, status="FAILED" if exception else "FINISHED")
