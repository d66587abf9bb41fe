"""`CSVLogger`: one CSV row per epoch with the recorded losses and metrics."""

from __future__ import annotations

import csv
import os
import time
import warnings
from typing import IO, TYPE_CHECKING, Any

from ..distributed import is_main_process
from ..errors import NotSavedWarning
from ..learner_callback import LearnerCallback
from ..progress import format_time

if TYPE_CHECKING:
    from ..learner import Learner

__all__ = ["CSVLogger"]


class CSVLogger(LearnerCallback):
    """Write the epoch, losses and metrics of each epoch to `learn.path/<filename>.csv` (on rank 0 only).

    The file is overwritten by a new run unless `append`; a run resumed with `fit(...,
    start_epoch=k)` always appends (its first epochs are in the file already). A row that can't be
    written (disk full, ...) warns once per cause and training goes on; `on_train_end` says which
    epochs were not logged.
    """

    def __init__(self, learn: Learner, filename: str = "history", append: bool = False) -> None:
        super().__init__(learn)
        self.filename, self.path, self.append = filename, self.learn.path / f"{filename}.csv", append
        self.add_time = True
        self.file: IO[str] | None = None

    def read_logged_file(self) -> Any:
        """The logged rows (a pandas DataFrame when pandas is installed, else a list of dicts)."""
        try:
            import pandas as pd
        except ImportError:
            with self.path.open(newline="") as f:
                return list(csv.DictReader(f))
        return pd.read_csv(self.path)

    def on_train_begin(self, **kwargs: Any) -> None:
        """Nothing written yet: the file is opened at the first epoch end (then it is known whether
        the run resumes)."""
        self.file, self._opened = None, False
        self._not_logged: list[int] = []
        self._causes: set[tuple[str, int | None]] = set()

    def _open(self, epoch: int) -> None:
        self._opened = True
        append = self.append or epoch > 0
        add_header = not append or not self.path.exists() or self.path.stat().st_size == 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.file = self.path.open("a" if append else "w")
        if add_header:
            names = self.learn.recorder.names
            self.file.write(",".join(names if self.add_time else [n for n in names if n != "time"]) + "\n")

    def on_epoch_begin(self, **kwargs: Any) -> None:
        """Note when the epoch started."""
        self.epoch_start_time = time.time()

    def on_epoch_end(self, epoch: int, smooth_loss: Any, last_metrics: list[Any] | None, **kwargs: Any) -> None:
        """Append the epoch's row (values read once per epoch)."""
        if not is_main_process():
            return
        rec = self.learn.recorder
        smooth_loss = rec.losses[-1] if rec.losses else smooth_loss
        values = [epoch, smooth_loss] + list(last_metrics or [])
        stats = [str(v) if isinstance(v, int) else "#na#" if v is None else f"{float(v):.6f}" for v in values]
        stats = stats[: len(rec.names) - (1 if "time" in rec.names else 0)]
        if self.add_time:
            stats.append(format_time(time.time() - self.epoch_start_time))
        try:
            if not self._opened:
                self._open(epoch)
            if self.file is None:
                raise OSError(f"{self.path} could not be opened")
            self.file.write(",".join(stats) + "\n")
            self.file.flush()
            os.fsync(self.file.fileno())
        except OSError as e:
            self._not_logged.append(epoch)
            cause = (type(e).__name__, e.errno)
            if cause not in self._causes:
                self._causes.add(cause)
                warnings.warn(f"CSVLogger: epoch {epoch} was not logged to {self.path} ({e}); training goes on",
                              NotSavedWarning, stacklevel=2)

    def on_train_end(self, **kwargs: Any) -> None:
        """Close the file; say which epochs were not logged."""
        if self.file is not None:
            try:
                self.file.close()
            except OSError:
                pass  # its rows were flushed (or reported) one by one
            self.file = None
        if getattr(self, "_not_logged", None):
            warnings.warn(f"CSVLogger: epochs {self._not_logged} are not in {self.path}", NotSavedWarning,
                          stacklevel=2)
