"""fastai v2's `ParamScheduler`: hyper-parameters as schedules of the fraction of training
done, `pct_train = train_iter / (n_epochs * batches per epoch)` (`Learner.fit_sgdr` and
`Learner.fit_flat_cos`, in `fastcb.fit_v2`, are built on it)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from ..callback import check_state_number, train_only, uses_state
from ..errors import StateError
from ..learner_callback import LearnerCallback

if TYPE_CHECKING:
    from ..learner import Learner

__all__ = ["ParamScheduler"]

#: fastai v2's hyper-parameter names that fastcb's OptimWrapper spells differently.
_V1_NAME = {"sqr_mom": "beta"}


class ParamScheduler(LearnerCallback):
    """Set each hyper-parameter of `scheds` (name -> schedule of the fraction of training
    done, e.g. a `fastcb.schedules` schedule) before every training batch, and record the
    values (the last group's) in `hps`, handed to the Recorder (`learn.recorder.hps`) at the
    end. fastai v2's names (`lr`, `mom`, `sqr_mom`, `wd`, or any optimizer key)."""

    def __init__(self, learn: Learner, scheds: Mapping[str, Callable[[float], Any]]) -> None:
        super().__init__(learn)
        if not isinstance(scheds, dict) or not scheds:
            raise TypeError(f"scheds: expected a non-empty dict of name -> schedule, got {type(scheds).__name__}")
        for name, sched in scheds.items():
            if not callable(sched):
                raise TypeError(f"scheds: the schedule for {name!r} is not callable ({type(sched).__name__})")
        self.scheds = dict(scheds)
        self.hps: dict[str, list[Any]] = {p: [] for p in self.scheds}
        self.train_iter, self.n_iter = 0, 1

    def on_train_begin(self, n_epochs: int, **kwargs: Any) -> None:
        """Start recording; the run has `n_epochs` epochs of the training loader's batches."""
        self.opt = self.learn.opt
        self.hps = {p: [] for p in self.scheds}
        self.n_iter = max(1, len(self.learn.data.train_dl) * n_epochs)
        self.train_iter = 0
        self._setters = [(p, _V1_NAME.get(p, p), f) for p, f in self.scheds.items()]

    #: The position in training and the values recorded so far; `scheds` is configuration.
    state_attrs = ("train_iter", "hps")

    def check_state_value(self, key: str, value: Any) -> None:
        """`train_iter` is a count; `hps` one list of recorded values per scheduled name."""
        if key == "train_iter":
            check_state_number(key, value, integer=True, minimum=0)
        elif key == "hps":
            if not isinstance(value, dict) or set(value) != set(self.scheds) or \
                    not all(isinstance(v, list) for v in value.values()):
                raise StateError(f"state['hps']: expected a list of values for each of {sorted(self.scheds)}")

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from `state` (checked first; the lists are copied)."""
        self.check_state_dict(state)
        if "hps" in state:
            state = {**state, "hps": {k: list(v) for k, v in state["hps"].items()}}
        vars(self).update(state)

    def jump_to_epoch(self, epoch: int) -> None:
        """Continue as if `epoch` epochs had been trained."""
        self.train_iter = len(self.learn.data.train_dl) * epoch

    @train_only
    @uses_state("train")
    def on_batch_begin(self, train: bool, **kwargs: Any) -> None:
        """Set every scheduled hyper-parameter at the current fraction of training."""
        if train:
            pct = self.train_iter / self.n_iter
            for _, name, f in self._setters:
                v = f(pct)
                self.opt.set_stat(name, v if isinstance(v, np.ndarray) else float(v))

    @train_only
    @uses_state("train")
    def on_batch_end(self, train: bool, **kwargs: Any) -> None:
        """Record the values this batch used."""
        if train:
            for p, name, _ in self._setters:
                self.hps[p].append(self.opt.get_stat(name))
            self.train_iter += 1

    def on_train_end(self, **kwargs: Any) -> None:
        """Hand the recorded values to the Recorder."""
        recorder = getattr(self.learn, "recorder", None)
        if recorder is not None:
            recorder.hps = self.hps
