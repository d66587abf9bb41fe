"""`LearnerTensorboardWriter`: losses, metrics, weight histograms, gradient statistics and the model graph
as TensorBoard event files, through `torch.utils.tensorboard` (needs the `tensorboard` package:
`pip install fastcb[tensorboard]`)."""

from __future__ import annotations

import os
import statistics
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from .._utils import check_number
from ..data import DatasetType
from ..learner_callback import LearnerCallback

if TYPE_CHECKING:
    from torch.utils.tensorboard import SummaryWriter

    from ..learner import Learner

__all__ = ["LearnerTensorboardWriter", "HistogramTBWriter", "ModelStatsTBWriter", "GraphTBWriter"]


def _summary_writer(log_dir: str | os.PathLike[str]) -> SummaryWriter:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as e:
        raise ImportError("LearnerTensorboardWriter needs the tensorboard package: pip install fastcb[tensorboard]") from e
    return SummaryWriter(str(log_dir))


class HistogramTBWriter:
    """Write a histogram of each parameter of a model (tag `name/weights/<param>`)."""

    def write(self, model: nn.Module, iteration: int, tbwriter: SummaryWriter, name: str = "model") -> None:
        """Write the histograms at step `iteration`."""
        for param_name, values in model.named_parameters():
            tbwriter.add_histogram(f"{name}/weights/{param_name}", values.detach().cpu(), global_step=iteration)


class ModelStatsTBWriter:
    """Write statistics of a model's gradients (tags `name/gradients/<stat>`): average, median, max and
    min of the per-parameter norms, number of zeros, average, median, max and min gradient."""

    def write(self, model: nn.Module, iteration: int, tbwriter: SummaryWriter, name: str = "model_stats") -> None:
        """Write the statistics at step `iteration` (nothing without gradients)."""
        grads = [p.grad.detach().float().cpu() for p in model.parameters() if p.grad is not None]
        if not grads:
            return
        norms = [g.norm().item() for g in grads]
        stats = {"avg_norm": sum(norms) / len(grads), "median_norm": statistics.median(norms),
                 "max_norm": max(norms), "min_norm": min(norms),
                 "num_zeros": sum(int((g == 0).sum()) for g in grads),
                 "avg_gradient": sum(g.mean().item() for g in grads) / len(grads),
                 "median_gradient": statistics.median(g.median().item() for g in grads),
                 "max_gradient": max(g.max().item() for g in grads), "min_gradient": min(g.min().item() for g in grads)}
        for k, v in stats.items():
            tbwriter.add_scalar(f"{name}/gradients/{k}", v, global_step=iteration)


class GraphTBWriter:
    """Write a model's graph (traced on `input_to_model`)."""

    def write(self, model: nn.Module, tbwriter: SummaryWriter, input_to_model: Any) -> None:
        """Write the graph; a model that can't be traced gives a warning, not an error."""
        try:
            with warnings.catch_warnings():  # torch >= 2.10 deprecates the jit tracer add_graph uses
                warnings.simplefilter("ignore", FutureWarning)
                tbwriter.add_graph(model=model, input_to_model=input_to_model)
        except Exception as e:  # tracing is best effort: data-dependent control flow etc.
            warnings.warn(f"LearnerTensorboardWriter: could not write the model graph ({e})")


class LearnerTensorboardWriter(LearnerCallback):
    """Write to TensorBoard under `base_dir/name`: the training loss every `loss_iters` batches
    (`/metrics/train_loss`), weight histograms every `hist_iters`, gradient statistics every
    `stats_iters`, and at each epoch's end the validation loss and metrics (`/metrics/<name>`) and
    embeddings; the model graph at the start. Costs nothing between those steps."""

    def __init__(self, learn: Learner, base_dir: str | os.PathLike[str], name: str, loss_iters: int = 25,
                 hist_iters: int = 500, stats_iters: int = 100) -> None:
        super().__init__(learn)
        for arg, v in (("loss_iters", loss_iters), ("hist_iters", hist_iters), ("stats_iters", stats_iters)):
            check_number(arg, v, integer=True, positive=True)
        self.base_dir, self.name = Path(base_dir), name
        self.loss_iters, self.hist_iters, self.stats_iters = loss_iters, hist_iters, stats_iters
        self.tbwriter = _summary_writer(self.base_dir / name)
        self.hist_writer, self.stats_writer, self.graph_writer = HistogramTBWriter(), ModelStatsTBWriter(), GraphTBWriter()
        self.metrics_root = "/metrics/"

    def on_train_begin(self, **kwargs: Any) -> None:
        """Write the model graph, traced on one item."""
        dl = self.learn.data.dl(DatasetType.Single) or self.learn.data.train_dl
        if dl is not None and len(dl):
            self.graph_writer.write(self.learn.model, self.tbwriter, next(iter(dl))[0])

    def on_backward_end(self, iteration: int, train: bool, **kwargs: Any) -> None:
        """Write gradient statistics (the gradients are there until the optimizer zeroes them)."""
        if train and iteration % self.stats_iters == 0:
            self.stats_writer.write(self.learn.model, iteration, self.tbwriter)

    def on_batch_end(self, last_loss: torch.Tensor, iteration: int, train: bool, **kwargs: Any) -> None:
        """Write the training loss and the weight histograms on their schedules."""
        if iteration == 0 or not train:
            return
        if iteration % self.loss_iters == 0:
            self.tbwriter.add_scalar(self.metrics_root + "train_loss", float(last_loss), global_step=iteration)
        if iteration % self.hist_iters == 0:
            self.hist_writer.write(self.learn.model, iteration, self.tbwriter)

    def on_epoch_end(self, last_metrics: list[Any] | None, iteration: int, **kwargs: Any) -> None:
        """Write the validation loss and metrics (named as in the Recorder), and embeddings."""
        names = self.learn.recorder.names[2:]
        for name, value in zip(names, last_metrics or []):
            if value is not None and not isinstance(value, (list, tuple)):
                self.tbwriter.add_scalar(self.metrics_root + name, float(value), global_step=iteration)
        for name, emb in self.learn.model.named_children():
            if isinstance(emb, nn.Embedding):
                self.tbwriter.add_embedding(emb.weight.detach().cpu(), global_step=iteration, tag=name)
        self.tbwriter.flush()

    def on_train_end(self, **kwargs: Any) -> None:
        """Flush the event file."""
        self.tbwriter.flush()


