"""What a fit costs before its first batch: the shortcuts taken there give what the general
code gives (`DataLoader`'s recorded arguments against `inspect.Signature.bind`)."""

import inspect

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch.utils.data import DataLoader, TensorDataset

from fastcb import data as data_mod

DS = TensorDataset(torch.arange(10.0))
PARAMS = list(data_mod._dl_sig.parameters)[2:]


def by_bind(args, kwargs):
    """What `Signature.bind` and `apply_defaults` record (the reference)."""
    bound = data_mod._dl_sig.bind(None, DS, *args, **kwargs)
    bound.apply_defaults()
    return {k: v for k, v in bound.arguments.items() if k not in ("self", "dataset")}


def outcome(f, args, kwargs):
    try:
        out = f(args, kwargs)
    except TypeError:
        return TypeError
    return list(out.items())  # the order too


@given(st.integers(0, len(PARAMS) + 2), st.lists(st.sampled_from(PARAMS + ["batchsize", "self_"]), unique=True))
def test_recorded_arguments_are_what_bind_records(n_args, names):
    args = tuple(object() for _ in range(n_args))
    kwargs = {name: object() for name in names}
    got = outcome(lambda a, k: data_mod._dl_arguments(None, DS, a, k), args, kwargs)
    assert got == outcome(by_bind, args, kwargs)


def test_the_shortcut_is_taken_for_torchs_signature():
    assert data_mod._dl_bind is not None
    positional, defaults = data_mod._dl_bind
    assert positional[:2] == ("batch_size", "shuffle") and list(defaults) == PARAMS


def test_an_unusual_signature_is_left_to_bind():
    def init(self, dataset, batch_size=1, *args, shuffle=None, **kwargs):
        pass

    def required(self, dataset, batch_size, shuffle=None):
        pass

    assert data_mod._dl_binding(inspect.signature(init)) is None
    assert data_mod._dl_binding(inspect.signature(required)) is None


def test_a_loader_records_its_arguments_and_refuses_bad_ones():
    dl = DataLoader(DS, 4, True, drop_last=True)
    assert dl.init_kwargs == by_bind((4, True), {"drop_last": True})
    with pytest.raises(TypeError):
        DataLoader(DS, 4, batch_size=4)
    with pytest.raises(TypeError):
        DataLoader(DS, batchsize=4)


def test_a_handler_finds_the_hooks_overrides_finds():
    from fastcb import Callback
    from fastcb.callback import EVENTS, _own_hooks, overrides

    class Sub(Callback):
        def on_batch_end(self, **kwargs):
            pass

    class Duck:  # not a Callback: every hook it has is its own
        on_epoch_end = None  # not callable: no hook

        def on_batch_begin(self, **kwargs):
            pass

        def __getattr__(self, k):
            if k == "on_loss_begin":
                return lambda **kw: None
            raise AttributeError(k)

    inst = Sub()
    inst.on_step_end = lambda **kw: None  # an instance-level hook
    for obj in (Callback(), Sub(), inst, Duck()):
        hooks = _own_hooks(obj)
        assert list(hooks) == [ev for ev in EVENTS if overrides(obj, ev)]
        assert all(getattr(h, "__func__", h) is getattr(getattr(obj, "on_" + ev), "__func__", None) or
                   not hasattr(h, "__func__") for ev, h in hooks.items())
    assert list(_own_hooks(inst)) == ["step_end", "batch_end"] and list(_own_hooks(Duck())) == ["batch_begin",
                                                                                               "loss_begin"]
