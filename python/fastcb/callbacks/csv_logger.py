"""`CSVLogger`: one CSV row per epoch with the recorded losses and metrics."""

import csv
import os
import time

from ..distributed import is_main_process
from ..learner import LearnerCallback
from ..progress import format_time

__all__ = ["CSVLogger"]


class CSVLogger(LearnerCallback):
    """Write the epoch, losses and metrics of each epoch to `learn.path/<filename>.csv` (on rank 0 only)."""

    def __init__(self, learn, filename="history", append=False):
        super().__init__(learn)
        self.filename, self.path, self.append = filename, self.learn.path / f"{filename}.csv", append
        self.add_time = True
        self.file = None

    def read_logged_file(self):
        """The logged rows (a pandas DataFrame when pandas is installed, else a list of dicts)."""
        try:
            import pandas as pd
        except ImportError:
            with self.path.open(newline="") as f:
                return list(csv.DictReader(f))
        return pd.read_csv(self.path)

    def on_train_begin(self, **kwargs):
        """Open the file and write the header."""
        if not is_main_process():
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        add_header = not self.path.exists() or not self.append
        self.file = self.path.open("a" if self.append else "w")
        if add_header:
            names = self.learn.recorder.names
            self.file.write(",".join(names if self.add_time else [n for n in names if n != "time"]) + "\n")

    def on_epoch_begin(self, **kwargs):
        """Note when the epoch started."""
        self.start_epoch = time.time()

    def on_epoch_end(self, epoch, smooth_loss, last_metrics, **kwargs):
        """Append the epoch's row (values read once per epoch)."""
        if self.file is None:
            return
        rec = self.learn.recorder
        smooth_loss = rec.losses[-1] if rec.losses else smooth_loss
        values = [epoch, smooth_loss] + list(last_metrics or [])
        stats = [str(v) if isinstance(v, int) else "#na#" if v is None else f"{float(v):.6f}" for v in values]
        stats = stats[: len(rec.names) - (1 if "time" in rec.names else 0)]
        if self.add_time:
            stats.append(format_time(time.time() - self.start_epoch))
        self.file.write(",".join(stats) + "\n")
        self.file.flush()
        os.fsync(self.file.fileno())

    def on_train_end(self, **kwargs):
        """Close the file."""
        if self.file is not None:
            self.file.close()
            self.file = None
