"""The compiled classes that hold Python objects take part in garbage collection: a cycle
through any of them is collected (a callback passing its own method as `anneal` does not
leak itself and all it holds)."""

import gc
import weakref

import torch

from fastcb import SmoothenValue, Stepper


class Holder:
    """A callback-like object whose stepper calls back its own bound method."""

    def __init__(self, start=1.0):
        self.sched = Stepper((start, 0.0), 10, self.anneal)

    def anneal(self, start, end, pct):
        return start + pct * (end - start)


def collected(make):
    """Whether the object `make()` returns is freed once unreachable (after gc.collect)."""
    refs = [weakref.ref(make()) for _ in range(50)]
    gc.collect()
    return sum(r() is not None for r in refs)


def test_stepper_with_a_bound_method_is_collected():
    assert collected(Holder) == 0


def test_stepper_whose_values_point_back_is_collected():
    def make():
        h = Holder(torch.tensor(1.0))
        h.sched.start.owner = h  # tensors take attributes: start -> h -> sched -> start
        h.sched.step()
        return h

    assert collected(make) == 0


def test_smoothen_value_on_tensors_is_collected():
    def make():
        h = Holder()
        h.smoother = SmoothenValue(0.9)
        h.smoother.add_value(torch.tensor(2.0))
        h.smoother.smooth.owner = h  # the kept tensor -> h -> smoother -> the kept tensor
        return h

    assert collected(make) == 0


def test_collection_leaves_live_objects_working():
    h = Holder()
    h.self = h
    gc.collect()
    assert h.sched.step() == 0.9
