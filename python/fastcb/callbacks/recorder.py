"""`Recorder`: learning rates, momentums, losses and metrics of a training run, and their plots."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from .._core import record_lr_mom, recorder_batch_begin
from .._utils import host_floats
from ..callback import check_state_number, compiled_as, train_only, uses_state
from ..errors import StateError
from ..learner_callback import LearnerCallback
from ..optim import OptimWrapper
from ..plotting import finish_figure, pyplot
from ..progress import format_time

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from ..learner import Learner

__all__ = ["Recorder", "RecordedFloat"]


class RecordedFloat(np.float64):
    """A number the Recorder holds: a NumPy float64, so a Python `float` (arithmetic, comparisons,
    formatting, `json`), with `.item()`. Code written for fastai v1's Recorder, whose records were
    0-dim tensors, also calls `.cpu()`, `.detach()`, `.numpy()` and `.data` on them (fastai's
    `to_np(x)` is `x.data.cpu().numpy()`): those return the number itself.

    >>> x = RecordedFloat(0.25)
    >>> x + 1, x.item(), x.data.cpu().numpy().item(), isinstance(x, float)
    (np.float64(1.25), 0.25, 0.25, True)
    """

    __slots__ = ()

    def cpu(self) -> RecordedFloat:
        """This number (it is on the host)."""
        return self

    def detach(self) -> RecordedFloat:
        """This number (nothing to detach from)."""
        return self

    def numpy(self) -> np.float64:
        """This number as a plain NumPy float64."""
        return np.float64(self)

    @property
    def data(self) -> RecordedFloat:  # a tensor's `.data`, not NumPy's buffer
        """This number (a tensor's `.data`)."""
        return self


def _is_number(v: Any) -> bool:
    """A one-number tensor or a float (what the Recorder records as a `RecordedFloat`); None, ints
    and per-group arrays are recorded as they are."""
    return isinstance(v, (float, np.floating)) or (isinstance(v, torch.Tensor) and v.numel() == 1)


def _plain(v: Any) -> Any:
    """A record as a checkpoint keeps it: a Python float (None, ints and arrays stay)."""
    return float(v) if _is_number(v) else v


def _recorded(values: list[Any], what: str = "last_metrics") -> list[Any]:
    """`values` (in place) with each one-number tensor and float made a `RecordedFloat`, the tensors
    brought to the host in one transfer (`host_floats`); other values stay."""
    idx = [i for i, v in enumerate(values) if _is_number(v)]
    if idx:
        for i, x in zip(idx, host_floats([values[i] for i in idx], what).tolist()):
            values[i] = RecordedFloat(x)
    return values


def _fmt(stat: Any) -> str:
    if stat is None:
        return "#na#"
    if isinstance(stat, int):
        return str(stat)
    return f"{float(stat):.6f}"


class Recorder(LearnerCallback):
    """Record, per training batch, the lr and momentum (at batch begin) and the smoothed loss; per epoch,
    the validation loss and metrics. Runs first (`_order=-10`).

    Losses, validation losses and metrics are `RecordedFloat`s (float64 numbers that also answer
    the tensor methods fastai code calls on its Recorder's records), or None where there was no
    value; lrs and moms are floats or per-layer-group arrays. The smoothed losses are the
    handler's: the raw losses stay on the device during an epoch and are smoothed at its end,
    after one transfer to the host; the validation loss and metrics come to the host then too.
    """

    _order = -10

    def __init__(self, learn: Learner, add_time: bool = True, silent: bool = False) -> None:
        super().__init__(learn)
        if getattr(self.learn, "opt", None) is None:
            self.learn.create_opt(self.learn.lr_range(slice(3e-3)), self.learn.wd)
        self.opt = self.learn.opt
        self.train_dl = self.learn.data.train_dl
        self.no_val, self.silent, self.add_time = False, silent, add_time
        self.losses: list[Any] = []  # see the class doc for the types of the records
        self.val_losses: list[Any] = []
        self.lrs: list[Any] = []
        self.moms: list[Any] = []
        self.metrics: list[list[Any]] = []
        self.nb_batches: list[int] = []
        self.pbar: Any = None
        self.names: list[str] = []
        self.metrics_names: list[str] = []

    def on_train_begin(self, pbar: Any, metrics_names: list[str], **kwargs: Any) -> None:
        """Reset the records and write the table header."""
        self.pbar = pbar
        self.names = ["epoch", "train_loss"] if self.no_val else ["epoch", "train_loss", "valid_loss"]
        self.metrics_names = list(metrics_names) + list(getattr(self, "_added_met_names", []))
        self.names += self.metrics_names
        if self.add_time:
            self.names.append("time")
        if not self.silent and pbar is not None:
            pbar.write(self.names, table=True)
        self.losses, self.val_losses, self.lrs, self.moms, self.metrics, self.nb_batches = [], [], [], [], [], []

    #: The run's history; `names`, `add_time`, `silent` are configuration.
    state_attrs = ("losses", "val_losses", "lrs", "moms", "metrics", "nb_batches")

    def check_state_value(self, key: str, value: Any) -> None:
        """Each record is a list: batch counts are ints; losses, lrs, moms numbers (or per-group arrays,
        or None where there was no value); `metrics` one list per epoch."""
        if not isinstance(value, (list, tuple)):
            raise StateError(f"state[{key!r}]: expected a list, got {type(value).__name__}")
        for i, v in enumerate(value):
            where = f"{key}[{i}]"
            if key == "nb_batches":
                check_state_number(where, v, integer=True, minimum=0)
            elif key == "metrics":
                if not isinstance(v, (list, tuple)) or not all(_is_value(m) for m in v):
                    raise StateError(f"state[{where!r}]: expected a list of numbers, got {v!r}")
            elif not _is_value(v):
                raise StateError(f"state[{where!r}]: expected a number, got {type(v).__name__}")

    def state_dict(self) -> dict[str, Any]:
        """The history as plain numbers: each `RecordedFloat` becomes a Python float."""
        state = super().state_dict()
        for key in ("losses", "val_losses"):
            if key in state:
                state[key] = [_plain(v) for v in state[key]]
        if "metrics" in state:
            state["metrics"] = [[_plain(m) for m in ms] for ms in state["metrics"]]
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the history (checked first; lists are copied, numbers as `RecordedFloat`s)."""
        self.check_state_dict(state)
        state = {k: list(v) for k, v in state.items()}
        for key in ("losses", "val_losses"):
            if key in state:
                state[key] = _recorded(state[key], f"state[{key!r}]")
        if "metrics" in state:
            state["metrics"] = [_recorded(list(ms), "state['metrics']") for ms in state["metrics"]]
        vars(self).update(state)

    def on_epoch_begin(self, **kwargs: Any) -> None:
        """Note when the epoch started (wall-clock, for the table's time column)."""
        self.epoch_start_time = time.time()

    @train_only
    @uses_state("train")
    @compiled_as(lambda cb, hook: partial(recorder_batch_begin, cb, hook, OptimWrapper))
    def on_batch_begin(self, train: bool, **kwargs: Any) -> None:
        """Record the learning rate and momentum of this training batch."""
        if train:
            # Read from the instance dict: each `self.x` of a LearnerCallback passes through its
            # `__getattr__` slot (Python can't specialize it), and this runs every batch.
            d = self.__dict__
            opt = d["opt"]
            if type(opt) is OptimWrapper:  # both in one call (a subclass may redefine the properties):
                # read and appended by one compiled call in the plain case (`OptimWrapper.lr_mom`'s)
                if record_lr_mom(opt.__dict__, d["lrs"], d["moms"]):
                    return
                lr, mom = OptimWrapper._lr_mom(opt)
            else:
                lr, mom = opt.lr, opt.mom
            d["lrs"].append(lr)
            d["moms"].append(mom)

    def on_epoch_end(self, epoch: int, num_batch: int, smooth_loss: Any, smooth_losses: list[float], last_metrics: list[Any] | None, **kwargs: Any) -> None:
        """Record the epoch's smoothed losses (the handler brings them to the host once), the
        validation loss and the metrics."""
        self.nb_batches.append(num_batch)
        self._add_losses(smooth_losses)
        if self.losses:
            smooth_loss = self.losses[-1]
        if last_metrics is not None:
            _recorded(last_metrics)  # in place: the callbacks after this one read host values too
            self.val_losses.append(last_metrics[0])
        else:
            last_metrics = [] if self.no_val else [None]
        if len(last_metrics) > 1:
            self.metrics.append(list(last_metrics[1:]))
        self.format_stats([epoch, smooth_loss] + list(last_metrics))

    def on_train_end(self, smooth_losses: list[float], **kwargs: Any) -> None:
        """Keep the losses of a last, interrupted epoch."""
        self._add_losses(smooth_losses)

    def _add_losses(self, smooth_losses: list[float]) -> None:
        self.losses.extend(map(RecordedFloat, smooth_losses))

    def format_stats(self, stats: Sequence[Any]) -> None:
        """Write one row of the table (`stats` in the order of `names`)."""
        cells = [_fmt(s) for _, s in zip(self.names, stats)]
        if self.add_time:
            cells.append(format_time(time.time() - getattr(self, "epoch_start_time", time.time())))
        if not self.silent and self.pbar is not None:
            self.pbar.write(cells, table=True)

    def add_metric_names(self, names: Iterable[str]) -> None:
        """Add `names` to the metric names (for callbacks that append their own metrics)."""
        self._added_met_names = list(getattr(self, "_added_met_names", [])) + list(names)

    # -- plots ----------------------------------------------------------------------------
    @staticmethod
    def _split(vals: Any, skip_start: int, skip_end: int) -> Any:  # a list or an array, sliced
        return vals[skip_start:-skip_end] if skip_end > 0 else vals[skip_start:]

    def _split_val(self, vals: Any, skip_start: int, skip_end: int) -> Any:  # a list or an array, sliced
        val_iter = np.cumsum(self.nb_batches)
        start = (val_iter - skip_start >= 0).nonzero()[0].min()
        end = (val_iter[-1] - val_iter - skip_end >= 0).nonzero()[0].max() + 1
        return vals[start:end] if skip_end > 0 else vals[start:]

    def _losses(self) -> list[float]:
        return [float(v) for v in self.losses]

    def plot_lr(self, show_moms: bool = False, skip_start: int = 0, skip_end: int = 0,
                return_fig: bool | None = None) -> Figure | None:
        """Plot the learning rate (and the momentum if `show_moms`) against iterations."""
        lrs = self._split(self.lrs, skip_start, skip_end)
        its = self._split(list(range(len(self.lrs))), skip_start, skip_end)
        if show_moms:
            fig, axs = pyplot().subplots(1, 2, figsize=(12, 4), layout="constrained")
            axs[0].plot(its, _last_group(lrs), label="learning rate (last layer group)")
            axs[1].plot(its, _last_group(self._split(self.moms, skip_start, skip_end)), color="C1",
                        label="momentum (last layer group)")
            axs[1].set_xlabel("Iterations")
            axs[1].set_ylabel("Momentum")
            axs[1].set_title("Momentum per training batch")
            axs[1].legend()
            ax = axs[0]
        else:
            fig, ax = pyplot().subplots(layout="constrained")
            ax.plot(its, _last_group(lrs), label="learning rate (last layer group)")
        ax.set_xlabel("Iterations")
        ax.set_ylabel("Learning Rate")
        ax.set_title("Learning rate per training batch")
        ax.legend()
        return finish_figure(fig, self.learn.path / "plot_lr.png", return_fig, self.silent)

    def plot(self, skip_start: int = 10, skip_end: int = 5, suggestion: bool = False, return_fig: bool | None = None,
             show_grid: bool = False, **kwargs: Any) -> Figure | None:
        """Plot loss against learning rate (log scale); with `suggestion`, mark the steepest descent
        (kept in `min_grad_lr`)."""
        lrs = _last_group(self._split(self.lrs, skip_start, skip_end))
        losses = self._split(self._losses(), skip_start, skip_end)
        if "k" in kwargs:
            from scipy.interpolate import UnivariateSpline

            losses = list(UnivariateSpline(np.arange(len(losses)), losses, **kwargs)(np.arange(len(losses))))
        fig, ax = pyplot().subplots(1, 1, layout="constrained")
        ax.plot(lrs, losses, label="smoothed training loss")
        ax.set_ylabel("Loss")
        ax.set_xlabel("Learning Rate (log scale)")
        ax.set_xscale("log")
        ax.set_title("Learning-rate finder")
        if show_grid:
            ax.grid(True, which="both", ls="-")
        if suggestion:
            if len(losses) < 2:
                raise ValueError("skip_start/skip_end: too few points left to suggest a learning rate")
            mg = int(np.gradient(np.array(losses)).argmin())
            self.min_grad_lr = lrs[mg]
            ax.plot(lrs[mg], losses[mg], markersize=10, marker="o", color="red", linestyle="none",
                    label=f"suggested lr = {lrs[mg]:.2e} (steepest descent)")
            if not self.silent:
                print(f"Min numerical gradient: {lrs[mg]:.2E}")
                print(f"Min loss divided by 10: {lrs[int(np.argmin(losses))] / 10:.2E}")
        ax.legend()
        return finish_figure(fig, self.learn.path / "plot.png", return_fig, self.silent)

    def plot_losses(self, skip_start: int = 0, skip_end: int = 0, return_fig: bool | None = None,
                    show_grid: bool = False) -> Figure | None:
        """Plot training and validation losses against batches processed."""
        fig, ax = pyplot().subplots(1, 1, layout="constrained")
        losses = self._losses()
        ax.plot(self._split(list(range(len(losses))), skip_start, skip_end),
                self._split(losses, skip_start, skip_end), label="Train")
        vals = [float(v) for v in self.val_losses if v is not None]
        if vals and len(vals) == len(self.nb_batches):
            ax.plot(self._split_val(np.cumsum(self.nb_batches), skip_start, skip_end),
                    self._split_val(vals, skip_start, skip_end), label="Validation")
        ax.grid(show_grid)
        ax.set_ylabel("Loss")
        ax.set_xlabel("Batches processed")
        ax.set_title("Training and validation losses")
        ax.legend()
        return finish_figure(fig, self.learn.path / "plot_losses.png", return_fig, self.silent)

    def plot_metrics(self, skip_start: int = 0, skip_end: int = 0, return_fig: bool | None = None,
                     show_grid: bool = False) -> Figure | None:
        """Plot each metric against batches processed."""
        if not self.metrics:
            raise ValueError("There are no metrics to plot (train with `metrics=` and validation data).")
        n = len(self.metrics[0])
        fig, axes = pyplot().subplots(n, 1, figsize=(6, 4 * n), layout="constrained")
        axes = np.atleast_1d(axes).flatten()
        val_iter = self._split_val(np.cumsum(self.nb_batches), skip_start, skip_end)
        for i, ax in enumerate(axes):
            values = self._split_val([float(m[i]) for m in self.metrics], skip_start, skip_end)
            ax.plot(val_iter, values, marker="o", label=f"{self.metrics_names[i]} (validation, per epoch)")
            ax.grid(show_grid)
            ax.set_ylabel(str(self.metrics_names[i]))
            ax.set_xlabel("Batches processed")
            ax.set_title(f"{self.metrics_names[i]} per epoch")
            ax.legend()
        return finish_figure(fig, self.learn.path / "plot_metrics.png", return_fig, self.silent)


def _is_value(v: object) -> bool:
    """A recorded value: None, a number, a one-number tensor or a 1-D array of numbers (per layer group)."""
    if v is None or (isinstance(v, (int, float, np.number)) and not isinstance(v, bool)):
        return True
    if isinstance(v, torch.Tensor):
        return v.numel() == 1 and not v.dtype.is_complex
    return isinstance(v, np.ndarray) and v.ndim <= 1 and v.dtype.kind in "iuf"


def _last_group(vals: Iterable[Any]) -> list[float]:
    """Per-layer-group arrays reduced to the last group's value (what fastai plots)."""
    return [float(np.asarray(v).reshape(-1)[-1]) if v is not None else np.nan for v in vals]
