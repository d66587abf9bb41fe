"""Callbacks that track a monitored value: early stopping, saving the best model, reducing the lr on
a plateau; and stopping on a NaN loss."""

from __future__ import annotations

import math
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from .._utils import check_number
from ..callback import Callback, check_state_number
from ..distributed import all_gather_object, is_main_process, is_sharded
from ..errors import ArgumentTypeError, NotSavedWarning, StateError
from ..learner_callback import LearnerCallback

if TYPE_CHECKING:
    from ..learner import Learner

__all__ = ["TrackerCallback", "EarlyStoppingCallback", "SaveModelCallback", "ReduceLROnPlateauCallback",
           "TerminateOnNaNCallback"]


class TerminateOnNaNCallback(Callback):
    """Stop training (and skip validation) as soon as the loss is NaN.

    Checking reads the loss on the host every batch: a synchronisation the default loop avoids.
    """

    def __init__(self) -> None:
        self.stop = False

    def on_batch_end(self, last_loss: torch.Tensor, epoch: int, num_batch: int,
                     **kwargs: Any) -> bool | dict[str, Any] | None:
        """Check `last_loss`."""
        if self.stop:
            return True
        if math.isnan(float(last_loss)):
            self.stop = True
            if is_main_process():
                print(f"Epoch/Batch ({epoch}/{num_batch}): Invalid loss, terminating training.")
            return {"stop_epoch": True, "stop_training": True, "skip_validate": True}
        return None


class TrackerCallback(LearnerCallback):
    """Keep track of the best value of `monitor` (`'train_loss'`, `'valid_loss'` or a metric's name)."""

    def __init__(self, learn: Learner, monitor: str = "valid_loss", mode: str = "auto") -> None:
        super().__init__(learn)
        if mode not in ("auto", "min", "max"):
            raise ValueError(f"mode: expected 'auto', 'min' or 'max', got {mode!r}")
        if not isinstance(monitor, str):
            raise TypeError(f"monitor: expected a name, got {type(monitor).__name__}")
        self.monitor, self.mode = monitor, mode
        lower = mode == "min" or (mode == "auto" and ("loss" in monitor or "error" in monitor))
        self.operator: Any = np.less if lower else np.greater  # a NumPy comparison ufunc

    state_attrs: tuple[str, ...] = ("best",)

    def on_train_begin(self, **kwargs: Any) -> None:
        """Reset the best value."""
        self.best = float("inf") if self.operator is np.less else -float("inf")

    def check_state_value(self, key: str, value: Any) -> None:
        """`best` is a number (not NaN)."""
        if key == "best":
            check_state_number(key, value)

    def get_monitor_value(self) -> float | None:
        """The latest value of `monitor` (a float; None before it exists)."""
        rec = self.learn.recorder
        if self.monitor == "train_loss":
            return float(rec.losses[-1]) if rec.losses else None
        if not rec.val_losses or rec.val_losses[-1] is None:
            return None
        if self.monitor == "valid_loss":
            return float(rec.val_losses[-1])
        names = list(rec.metrics_names)
        if self.monitor not in names:
            raise ValueError(f"monitor: {self.monitor!r} is not recorded; available: "
                             f"{['train_loss', 'valid_loss', *names]}")
        return float(rec.metrics[-1][names.index(self.monitor)]) if rec.metrics else None

    def _say(self, msg: str) -> None:
        if not getattr(self.learn, "silent", False) and is_main_process():
            print(msg)


class _WaitingTracker(TrackerCallback):
    """A tracker that counts the epochs (`wait`) since `monitor` last improved by `min_delta`."""

    def __init__(self, learn: Learner, monitor: str, mode: str, min_delta: float, patience: Any) -> None:
        super().__init__(learn, monitor=monitor, mode=mode)
        self.min_delta, self.patience = min_delta, patience
        if self.operator is np.less:
            self.min_delta *= -1

    state_attrs = ("best", "wait")

    def on_train_begin(self, **kwargs: Any) -> None:
        """Reset the wait."""
        self.wait = 0
        super().on_train_begin(**kwargs)

    def check_state_value(self, key: str, value: Any) -> None:
        """`best` is a number, `wait` a count."""
        if key == "wait":
            check_state_number(key, value, integer=True, minimum=0)
        super().check_state_value(key, value)

    def _waited_too_long(self) -> bool:
        """Compare the latest value with the best: True when it has now not improved for more
        than `patience` epochs (False too while there is no value yet)."""
        current = self.get_monitor_value()
        if current is None:
            return False
        if self.operator(current - self.min_delta, self.best):
            self.best, self.wait = current, 0
            return False
        self.wait += 1
        return bool(self.wait > self.patience)


class EarlyStoppingCallback(_WaitingTracker):
    """Stop training when `monitor` has not improved by `min_delta` for more than `patience` epochs."""

    def __init__(self, learn: Learner, monitor: str = "valid_loss", mode: str = "auto", min_delta: float = 0,
                 patience: int = 0) -> None:
        super().__init__(learn, monitor, mode, min_delta, patience)
        check_number("patience", patience, minimum=0, finite=False, like_float=True, type_error=ArgumentTypeError)

    def on_epoch_end(self, epoch: int, **kwargs: Any) -> dict[str, Any] | None:
        """Compare with the best and maybe stop."""
        if self._waited_too_long():
            self._say(f"Epoch {epoch}: early stopping")
            return {"stop_training": True}
        return None


def _fingerprint(path: str | os.PathLike[str]) -> list[int]:
    """What identifies the file at `path` as the one just written: inode, size, modification time."""
    st = os.stat(path)
    return [int(st.st_ino), int(st.st_size), int(st.st_mtime_ns)]


class SaveModelCallback(TrackerCallback):
    """Save the model as `name` when `monitor` improves (`every='improvement'`, reloaded at the end)
    or as `name_<epoch>` after each epoch (`every='epoch'`).

    Each file is a full checkpoint (`Learner.save(..., with_opt=True)`): `fit(...,
    start_epoch=k)` with this callback loads `name_<k-1>` and continues that run exactly. It
    runs after the other callbacks at epoch end, so the checkpoint holds their updated state.
    Under a process group rank 0 writes the files; every rank loads them.

    At train end the best model is reloaded only if this run wrote it and the file is still the one
    it wrote (a `bestmodel.pth` left by another run never replaces the weights). A failed write
    (disk full, ...) warns once per cause and training goes on, the last good file intact;
    `on_train_end` says which epochs were not saved.
    """

    _order = 50

    def __init__(self, learn: Learner, monitor: str = "valid_loss", mode: str = "auto", every: str = "improvement",
                 name: str = "bestmodel") -> None:
        super().__init__(learn, monitor=monitor, mode=mode)
        if every not in ("improvement", "epoch"):
            raise ValueError(f"every: expected 'improvement' or 'epoch', got {every!r}")
        self.every, self.name = every, name
        self.written: list[int] | bool | None = None  # the fingerprint of the best-model file this run wrote
        self._not_saved: list[int] = []
        self._causes: set[tuple[str, int | None]] = set()

    state_attrs = ("best", "written")

    def on_train_begin(self, epoch: int = 0, **kwargs: Any) -> None:
        """Reset the best value; nothing written by this run yet. A fit starting at epoch k > 0 loads
        `name_<k-1>` (then `fit` continues that checkpoint)."""
        super().on_train_begin(**kwargs)
        self.written, self._not_saved, self._causes = None, [], set()
        if epoch:
            try:
                self.learn.load(f"{self.name}_{epoch - 1}", purge=False)
                self._say(f"Loaded {self.name}_{epoch - 1}")
            except FileNotFoundError:
                self._say(f"Model {self.name}_{epoch - 1} not found.")

    def check_state_value(self, key: str, value: Any) -> None:
        """`best` is a number; `written` None, True (another rank wrote) or a file's fingerprint."""
        if key == "written" and not (value is None or value is True or (
                isinstance(value, list) and len(value) == 3 and all(type(v) is int for v in value))):
            raise StateError(f"state['written']: expected None, True or a file fingerprint, got {value!r}")
        super().check_state_value(key, value)

    def _save(self, file: str, epoch: int) -> Path | None:
        """Save; on an IO error warn (once per cause), note the epoch and go on. True when written."""
        try:
            path = self.learn.save(file, epoch=epoch, return_path=True)
        except OSError as e:
            self._not_saved.append(epoch)
            cause = (type(e).__name__, e.errno)
            if cause not in self._causes:
                self._causes.add(cause)
                warnings.warn(f"SaveModelCallback: epoch {epoch} was not saved ({e}); training goes on, the last "
                              f"file written is intact", NotSavedWarning, stacklevel=2)
            return None
        return path  # type: ignore[return-value]  # saved under a name: `save` returns its Path

    def on_epoch_end(self, epoch: int, **kwargs: Any) -> None:
        """Save if this epoch is the best so far (or every epoch)."""
        if self.every == "epoch":
            self._save(f"{self.name}_{epoch}", epoch)
            return
        current = self.get_monitor_value()
        if current is not None and self.operator(current, self.best):
            self._say(f"Better model found at epoch {epoch} with {self.monitor} value: {current}.")
            self.best = current
            path = self._save(self.name, epoch)
            if path is not None:
                self.written = _fingerprint(path) if is_main_process() else True

    def _reload_best(self) -> bool:
        """True if the best-model file is the one this run wrote (decided on rank 0 under a process group)."""
        path = self.learn.path / self.learn.model_dir / f"{self.name}.pth"
        if is_sharded(self.learn.model):
            path = path.with_suffix(".dcp") / "fastcb.pth"  # what `save` returned (`fastcb.sharded`)
        ok = False
        if is_main_process() and self.written is not None:
            try:
                ok = _fingerprint(path) == self.written
            except OSError:
                ok = False
            if not ok:
                warnings.warn(f"SaveModelCallback: {path} changed since this run wrote it; it was not reloaded",
                              NotSavedWarning, stacklevel=3)
        return all_gather_object(ok)[0]

    def on_train_end(self, **kwargs: Any) -> None:
        """Say what was not saved; load the best model this run saved."""
        if self._not_saved:
            warnings.warn(f"SaveModelCallback: the checkpoints of epochs {self._not_saved} were not saved",
                          NotSavedWarning, stacklevel=2)
        if self.every == "improvement" and self._reload_best():
            self.learn.load(self.name, purge=False, resume=False)


class ReduceLROnPlateauCallback(_WaitingTracker):
    """Multiply the lr by `factor` when `monitor` has not improved for more than `patience` epochs."""

    def __init__(self, learn: Learner, monitor: str = "valid_loss", mode: str = "auto", patience: int = 0,
                 factor: float = 0.2, min_delta: float = 0, min_lr: float = 0.001) -> None:
        super().__init__(learn, monitor, mode, min_delta, patience)
        check_number("factor", factor, positive=True, below=1, like_float=True, type_error=ArgumentTypeError)
        self.factor, self.min_lr = factor, min_lr

    def on_train_begin(self, **kwargs: Any) -> None:
        """Reset the wait; the optimizer is the one of this fit."""
        self.opt = self.learn.opt
        super().on_train_begin(**kwargs)

    def on_epoch_end(self, epoch: int, **kwargs: Any) -> None:
        """Compare with the best and maybe reduce the lr."""
        if self._waited_too_long() and self.opt.lr > self.min_lr:
            self.opt.lr = np.asarray(self.opt._lr) * self.factor
            self.wait = 0
            self._say(f"Epoch {epoch}: reducing lr to {self.opt.lr}")


