"""`TrackEpochCallback`: remember the last completed epoch in a file, and start after it next time."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from ..learner_callback import LearnerCallback

if TYPE_CHECKING:
    from ..learner import Learner

__all__ = ["TrackEpochCallback"]


class TrackEpochCallback(LearnerCallback):
    """Write each completed epoch to `learn.path/learn.model_dir/name`; a fit starts at the epoch after
    the one in that file (or at `epoch_offset`). `restart()` forgets it."""

    _order = -20  # before the schedulers, which jump to the start epoch

    def __init__(self, learn: Learner, name: str | os.PathLike[str] = "epoch", epoch_offset: int | None = None) -> None:
        super().__init__(learn)
        learn._test_writeable_path()
        self.path = learn.path / learn.model_dir / name
        if epoch_offset is not None:
            self.start_epoch = epoch_offset
        else:
            try:
                self.start_epoch = int(self.path.read_text()) + 1
            except (OSError, ValueError):
                self.start_epoch = 0

    def on_train_begin(self, **kwargs: Any) -> dict[str, Any]:
        """Start at `start_epoch`."""
        return {"epoch": self.start_epoch}

    def on_epoch_end(self, epoch: int, **kwargs: Any) -> None:
        """Record the epoch just completed."""
        self.path.write_text(f"{epoch}")

    def restart(self) -> None:
        """Forget the recorded epoch."""
        self.path.unlink(missing_ok=True)
