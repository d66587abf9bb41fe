"""fastcb's exceptions and warnings: one hierarchy, each class also a built-in users already catch.

`FastcbError` is the base of every error fastcb raises on purpose; each subclass is also the
built-in exception it refines (`ValueError`, `KeyError`, `OSError`), so `except ValueError`
keeps working.
"""

__all__ = ["FastcbError", "StateError", "CheckpointError", "CheckpointWriteError", "UnknownStateKeyError", "RankStalledError",
           "FastcbWarning", "NotSavedWarning"]


class FastcbError(Exception):
    """Base class of the errors fastcb raises on purpose."""


class StateError(FastcbError, ValueError):
    """A state dict that doesn't fit the object it is loaded into (the object was left unchanged)."""


class CheckpointError(FastcbError, ValueError):
    """A checkpoint that can't be read or doesn't fit the learner; the message says what and where
    (nothing was changed)."""


class CheckpointWriteError(FastcbError, OSError):
    """Writing a checkpoint failed (disk full, permissions, ...); the previous file at the target is intact."""


class UnknownStateKeyError(FastcbError, KeyError):
    """A hook returned a dict with a key that is not in `STATE_KEYS`."""

    def __str__(self):
        return str(self.args[0]) if self.args else ""


class FastcbWarning(UserWarning):
    """Base class of fastcb's warnings."""


class NotSavedWarning(FastcbWarning):
    """A log row or a checkpoint could not be written; training went on (said once per cause)."""


class RankStalledError(FastcbError, RuntimeError):
    """A rank of a multi-rank fit stopped making progress (`fastcb.watchdog`); the message names it,
    says where it stopped and shows its main thread's stack."""
