"""`GeneralScheduler` and `TrainingPhase`: any hyper-parameter on any sequence of annealed phases."""

from functools import partial

from ..anneal import Stepper
from ..callback import uses_state
from ..learner import LearnerCallback

__all__ = ["GeneralScheduler", "TrainingPhase"]


class TrainingPhase:
    """A phase of `length` iterations, with one schedule per hyper-parameter (`schedule_hp`)."""

    def __init__(self, length):
        if isinstance(length, bool) or not isinstance(length, int) or length < 1:
            raise ValueError(f"length: expected a positive int, got {length!r}")
        self.length, self.scheds = length, {}

    def schedule_hp(self, name, vals, anneal=None):
        """Schedule hyper-parameter `name` over `vals` (a value or a (start, end) pair) with `anneal`."""
        self.scheds[name] = Stepper(vals, self.length, anneal)
        return self

    def __repr__(self):
        return f"TrainingPhase(length={self.length}, hps={sorted(self.scheds)})"


class GeneralScheduler(LearnerCallback):
    """Run the `phases` one after the other, stepping every scheduled hyper-parameter per training batch."""

    def __init__(self, learn, phases, start_epoch=None):
        super().__init__(learn)
        phases = list(phases)
        if not phases or not all(isinstance(p, TrainingPhase) and p.scheds for p in phases):
            raise ValueError("phases: expected a non-empty list of TrainingPhase with at least one schedule each")
        self.phases, self.start_epoch = phases, start_epoch

    def on_train_begin(self, epoch, **kwargs):
        """Restart the schedules and set the first phase's starting values."""
        for phase in self.phases:
            for sched in phase.scheds.values():
                sched.restart()
        return self.start_schedules([p.scheds for p in self.phases], epoch)

    def start_schedules(self, scheds, epoch):
        """Run `scheds` (per phase, hyper-parameter name -> `Stepper`) from their start values."""
        res = {"epoch": self.start_epoch} if self.start_epoch is not None else None
        self.start_epoch = epoch if self.start_epoch is None else self.start_epoch
        self.opt = self.learn.opt
        self.scheds = scheds
        # Per phase, (setter, stepper) pairs: the per-batch work is one call each.
        self._setters = [[(self._setter(k), v) for k, v in phase.items()] for phase in scheds]
        for k, v in scheds[0].items():
            self.opt.set_stat(k, v.start)
        self.idx_s = 0
        return res

    def _setter(self, name):
        if name in ("lr", "mom", "beta", "wd"):
            return partial(setattr, self.opt, name)
        return partial(self.opt.set_stat, name)

    def jump_to_epoch(self, epoch):
        """Advance the schedules as if `epoch` epochs had been trained."""
        for _ in range(len(self.learn.data.train_dl) * epoch):
            self.on_batch_end(True)

    @uses_state("train")
    def on_batch_end(self, train, **kwargs):
        """Step every schedule of the current phase; move on when it is done; stop after the last."""
        if train:
            if self.idx_s >= len(self.scheds):
                return {"stop_training": True, "stop_epoch": True}
            setters = self._setters[self.idx_s]
            for set_value, sched in setters:
                set_value(sched.step())
            if setters[0][1].is_done:
                self.idx_s += 1
