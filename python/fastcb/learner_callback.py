"""`LearnerCallback`: a `Callback` bound to a `Learner` (the base of the standard callbacks)."""

import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ._utils import camel2snake
from .callback import Callback

if TYPE_CHECKING:
    from .learner import Learner

__all__ = ["LearnerCallback"]


class _WeakLearner:
    """Descriptor holding the learner weakly (and giving dataclass subclasses a `learn` field)."""

    def __get__(self, obj: object, objtype: type | None = None) -> "Learner":
        if obj is None:
            raise AttributeError("learn")  # no default value for the dataclass field
        ref = obj.__dict__.get("_learn")
        if ref is None:
            raise AttributeError("learn")
        learn = ref()
        if learn is None:
            raise ReferenceError(f"the Learner of this {type(obj).__name__} no longer exists")
        return learn

    def __set__(self, obj: object, value: "Learner") -> None:
        obj.__dict__["_learn"] = weakref.ref(value)


@dataclass(eq=False, repr=False)
class LearnerCallback(Callback):
    """A `Callback` bound (weakly) to a `Learner`, reachable as `learn.<snake_case_class_name>`."""

    learn: "Learner" = _WeakLearner()  # type: ignore[assignment]  # a descriptor giving a Learner

    def __post_init__(self) -> None:
        self.exclude: list[str] = ["_learn"]
        self.not_min: list[str] = []
        setattr(self.learn, self.cb_name, self)

    def __getattr__(self, k: str) -> Any:
        if k in ("learn", "_learn") or k.startswith("__"):
            raise AttributeError(k)
        return getattr(self.learn, k)

    def __setstate__(self, data: dict[str, Any]) -> None:
        self.__dict__.update(data)

    @property
    def cb_name(self) -> str:
        """This callback's attribute name on the learner."""
        return camel2snake(type(self).__name__)
