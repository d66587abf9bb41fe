"""fastcb's exceptions and warnings: one hierarchy, each class also a built-in users already catch.

`FastcbError` is the base of every error fastcb raises on purpose; each subclass is also the
built-in exception it refines (`ValueError`, `KeyError`, `OSError`), so `except ValueError`
keeps working.
"""

__all__ = ["FastcbError", "ArgumentError", "ArgumentTypeError", "ScheduleError", "ShapeError",
           "EmptyAccumulatorError", "ReentrantCallError", "StateError", "CheckpointError", "CheckpointWriteError",
           "UnknownStateKeyError", "RankStalledError", "FastcbWarning", "NotSavedWarning"]


class FastcbError(Exception):
    """Base class of the errors fastcb raises on purpose."""


class ArgumentError(FastcbError, ValueError):
    """An argument outside its domain (not finite, negative, out of range, ...); the message
    starts with the argument's name.

    >>> from fastcb import annealing_cos
    >>> annealing_cos(1.0, 0.0, float("nan"))
    Traceback (most recent call last):
    ...
    fastcb.errors.ArgumentError: pct: expected a finite number, got NaN
    """


class ArgumentTypeError(FastcbError, TypeError):
    """An argument of a type that can't be used; the message names the argument and the type.

    >>> from fastcb import SmoothenValue
    >>> SmoothenValue("0.9")
    Traceback (most recent call last):
    ...
    fastcb.errors.ArgumentTypeError: beta: expected a real number, got str
    """


class ScheduleError(ArgumentError):
    """A schedule that can't be built (or evaluated) from its arguments: an unknown shape,
    edges that don't increase, fractions outside their range, ...

    >>> from fastcb.schedules import Schedule
    >>> Schedule.one_cycle(1.0, pct_start=1.5)
    Traceback (most recent call last):
    ...
    fastcb.errors.ScheduleError: pct_start: expected a number in (0, 1), got 1.5
    """


class ShapeError(ArgumentError):
    """Array arguments whose shapes don't fit together (they can't be broadcast, or a pair
    differs).

    >>> from fastcb import WeightedMean
    >>> WeightedMean().extend([1.0, 2.0], weights=[1.0])
    Traceback (most recent call last):
    ...
    fastcb.errors.ShapeError: weights: shape [1] does not match the shape [2] of values
    """


class EmptyAccumulatorError(FastcbError, ValueError):
    """A mean (or similar) asked of an accumulator that holds nothing, or only zero weight.

    >>> from fastcb import WeightedMean
    >>> WeightedMean().mean
    Traceback (most recent call last):
    ...
    fastcb.errors.EmptyAccumulatorError: the mean of an empty WeightedMean is undefined
    """


class ReentrantCallError(FastcbError, RuntimeError):
    """A compiled object used again from inside one of its own calls on the same thread (a
    `Stepper`'s `func` stepping that stepper): refused instead of a deadlock."""


class StateError(FastcbError, ValueError):
    """A state dict that doesn't fit the object it is loaded into (the object was left unchanged)."""


class CheckpointError(FastcbError, ValueError):
    """A checkpoint that can't be read or doesn't fit the learner; the message says what and where
    (nothing was changed)."""


class CheckpointWriteError(FastcbError, OSError):
    """Writing a checkpoint failed (disk full, permissions, ...); the previous file at the target is intact."""


class UnknownStateKeyError(FastcbError, KeyError):
    """A hook returned a dict with a key that is not in `STATE_KEYS`."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class FastcbWarning(UserWarning):
    """Base class of fastcb's warnings."""


class NotSavedWarning(FastcbWarning):
    """A log row or a checkpoint could not be written; training went on (said once per cause)."""


class RankStalledError(FastcbError, RuntimeError):
    """A rank of a multi-rank fit stopped making progress (`fastcb.watchdog`); the message names it,
    says where it stopped and shows its main thread's stack."""
