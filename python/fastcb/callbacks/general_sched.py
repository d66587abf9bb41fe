"""`GeneralScheduler` and `TrainingPhase`: any hyper-parameter on any sequence of annealed phases."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import partial
from typing import TYPE_CHECKING, Any

from .._core import scheduler_batch_end, step_lr_mom
from .._utils import check_number
from ..anneal import Stepper
from ..callback import check_state_number, compiled_as, train_only, uses_state
from ..errors import StateError
from ..learner_callback import LearnerCallback
from ..optim import OptimWrapper

if TYPE_CHECKING:
    from ..learner import Learner

__all__ = ["GeneralScheduler", "TrainingPhase"]


class TrainingPhase:
    """A phase of `length` iterations, with one schedule per hyper-parameter (`schedule_hp`)."""

    def __init__(self, length: int) -> None:
        check_number("length", length, integer=True, positive=True)
        self.length = length
        self.scheds: dict[str, Stepper] = {}

    def schedule_hp(self, name: str, vals: Any, anneal: Callable[[Any, Any, float], Any] | None = None,
                    ) -> TrainingPhase:
        """Schedule hyper-parameter `name` over `vals` (a value or a (start, end) pair) with `anneal`."""
        self.scheds[name] = Stepper(vals, self.length, anneal)
        return self

    def __repr__(self) -> str:
        return f"TrainingPhase(length={self.length}, hps={sorted(self.scheds)})"


class GeneralScheduler(LearnerCallback):
    """Run the `phases` one after the other, stepping every scheduled hyper-parameter per training batch.

    With `on_device=True` the schedules run on the device (`fastcb.callbacks.on_device`): no
    host write of hyper-parameters per batch (the annealing functions must be fastcb's)."""

    on_device, _run = False, None  # class defaults: subclasses may skip this __init__

    def __init__(self, learn: Learner, phases: Iterable[TrainingPhase], start_epoch: int | None = None,
                 on_device: bool = False) -> None:
        super().__init__(learn)
        phases = list(phases)
        if not phases or not all(isinstance(p, TrainingPhase) and p.scheds for p in phases):
            raise ValueError("phases: expected a non-empty list of TrainingPhase with at least one schedule each")
        self.phases, self.start_epoch, self.on_device = phases, start_epoch, bool(on_device)

    def on_train_begin(self, epoch: int, **kwargs: Any) -> dict[str, Any] | None:
        """Restart the schedules and set the first phase's starting values."""
        for phase in self.phases:
            for sched in phase.scheds.values():
                sched.restart()
        return self.start_schedules([p.scheds for p in self.phases], epoch)

    def start_schedules(self, scheds: list[dict[str, Stepper]], epoch: int) -> dict[str, Any] | None:
        """Run `scheds` (per phase, hyper-parameter name -> `Stepper`) from their start values."""
        res = {"epoch": self.start_epoch} if self.start_epoch is not None else None
        self.start_epoch = epoch if self.start_epoch is None else self.start_epoch
        self.opt = self.learn.opt
        self.scheds = scheds
        if self.on_device:
            from .on_device import DeviceRun, stepper_schedules

            scheds = [s for s in scheds if s and next(iter(s.values())).n_iter > 0]
            total = sum(next(iter(s.values())).n_iter for s in scheds)
            self._run = DeviceRun(self.learn, stepper_schedules(scheds, len(self.opt._groups()[0])), total)
            self._total = total
            return res
        self._run = None  # in the instance's dict: `on_batch_end` reads it there
        # Per phase, (setter, stepper) pairs: the per-batch work is one call each; a phase of lr and
        # mom on an OptimWrapper is one `(wrapper, its __dict__, lr stepper, mom stepper, first stepper)` step
        # and write (`step_lr_mom`, compiled, in the plain case).
        self._setters = [self._phase_setters(phase) for phase in scheds]
        for k, v in scheds[0].items():
            self.opt.set_stat(k, v.start)
        self.idx_s = 0
        return res

    def _phase_setters(self, phase: dict[str, Stepper]) -> Any:
        if set(phase) == {"lr", "mom"} and type(self.opt) is OptimWrapper:
            return self.opt, vars(self.opt), phase["lr"], phase["mom"], next(iter(phase.values()))
        return [(self._setter(k), v) for k, v in phase.items()]

    def _setter(self, name: str) -> Callable[[Any], None]:
        if name in ("lr", "mom", "beta", "wd"):
            return partial(setattr, self.opt, name)
        return partial(self.opt.set_stat, name)

    def state_dict(self) -> dict[str, Any]:
        """The schedules' position: the current phase and each Stepper's step count (empty before training)."""
        if self._run is not None:  # on the device: the run's step count
            return {"steps": self._run.steps}
        if getattr(self, "scheds", None) is None:
            return {}
        return {"idx_s": self.idx_s, "n": [[s.n for s in phase.values()] for phase in self.scheds]}

    def check_state_dict(self, state: Any) -> None:
        """`StateError` unless `state` is a position within these schedules (same phases, same lengths)."""
        if self._run is not None:
            if not isinstance(state, dict) or set(state) != {"steps"}:
                raise StateError(f"state: expected the key ['steps'] (schedules on the device), got {state!r:.80}")
            check_state_number("steps", state["steps"], integer=True, minimum=0)
            if state["steps"] > self._total:
                raise StateError(f"state['steps']: {state['steps']} steps, past the schedules' {self._total}")
            return
        if not isinstance(state, dict) or set(state) != {"idx_s", "n"}:
            raise StateError(f"state: expected the keys ['idx_s', 'n'], got {state!r:.80}")
        scheds = getattr(self, "scheds", None)
        if scheds is None:
            raise StateError("state: the schedules are built at train begin; restore them after it")
        check_state_number("idx_s", state["idx_s"], integer=True, minimum=0)
        if state["idx_s"] > len(scheds):
            raise StateError(f"state['idx_s']: {state['idx_s']} is past the {len(scheds)} phases")
        n = state["n"]
        if not isinstance(n, (list, tuple)) or len(n) != len(scheds) or any(
                not isinstance(ns, (list, tuple)) or len(ns) != len(phase) for ns, phase in zip(n, scheds)):
            raise StateError(f"state['n']: expected {[len(p) for p in scheds]} step counts per phase, got {n!r:.80}")
        for i, (ns, phase) in enumerate(zip(n, scheds)):
            for k, (v, s) in enumerate(zip(ns, phase.values())):
                check_state_number(f"n[{i}][{k}]", v, integer=True, minimum=0)
                if v > s.n_iter:
                    raise StateError(f"state['n'][{i}][{k}]: {v} steps, past this phase's {s.n_iter}")

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue the schedules from `state` (checked first; the schedules' values stay the user's)."""
        self.check_state_dict(state)
        if self._run is not None:
            self._run.jump(int(state["steps"]))
            return
        for ns, phase in zip(state["n"], self.scheds):
            for v, s in zip(ns, phase.values()):
                s.load_state_dict({**s.state_dict(), "n": int(v)})
        self.idx_s = int(state["idx_s"])  # the current values are the optimizer's (restored with it)

    def jump_to_epoch(self, epoch: int) -> None:
        """Advance the schedules as if `epoch` epochs had been trained."""
        if self._run is not None:
            return self._run.jump(len(self.learn.data.train_dl) * epoch)
        for _ in range(len(self.learn.data.train_dl) * epoch):
            self.on_batch_end(True)

    @train_only
    @uses_state("train")
    @compiled_as(lambda cb, hook: partial(scheduler_batch_end, cb, hook))
    def on_batch_end(self, train: bool, **kwargs: Any) -> dict[str, Any] | None:
        """Step every schedule of the current phase; move on when it is done; stop after the last."""
        if train:
            # Read from the instance dict: each `self.x` of a LearnerCallback passes through its
            # `__getattr__` slot (Python can't specialize it), and this runs every batch.
            d = self.__dict__
            run = d["_run"]
            if run is not None:
                if run.steps >= self._total:
                    return {"stop_training": True, "stop_epoch": True}
                run.step()
                return None
            idx_s, setters = d["idx_s"], d["_setters"]
            if idx_s >= len(setters):
                return {"stop_training": True, "stop_epoch": True}
            setters = setters[idx_s]
            if type(setters) is tuple:
                opt, opt_dict, lr, mom, first = setters
                # both steppers stepped and written in one compiled call (None: not the plain case,
                # nothing done); it answers lr's `is_done`
                done = step_lr_mom(lr, mom, opt_dict)
                if done is None:
                    opt.set_lr_mom(lr.step(), mom.step())
                    done = first.is_done
                elif first is not lr:
                    done = first.is_done
            else:
                for set_value, sched in setters:
                    set_value(sched.step())
                done = setters[0][1].is_done
            if done:
                self.idx_s += 1
        return None

    def get_state(self, minimal: bool = True) -> dict[str, Any]:
        """The attributes, less the device run (rebuilt when training starts)."""
        state = super().get_state(minimal)
        state.pop("_run", None)
        return state

    def on_train_end(self, **kwargs: Any) -> None:
        """On the device: read the final values back once and fill the Recorder's lrs and moms."""
        if self._run is not None:
            self._run.finish(getattr(self.learn, "recorder", None))
            self._run = None
