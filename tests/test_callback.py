"""Callback and CallbackHandler: events, kwargs, return-value rules, flags, ordering, exceptions."""

import inspect
import math
from dataclasses import dataclass

import pytest
import torch
from loop_helpers import tiny_learner

from fastcb import (
    EVENTS,
    STATE_KEYS,
    AverageMetric,
    Callback,
    CallbackHandler,
    Learner,
    LearnerCallback,
    UnknownStateKeyError,
    accuracy,
)
from fastcb.callbacks import Recorder

SEED_KWARGS = {"n_epochs", "epoch", "iteration", "num_batch", "last_input", "last_target", "last_output",
               "last_loss", "smooth_loss", "last_metrics", "pbar", "train"}


class Log(Callback):
    """Records every event with a copy of its kwargs."""

    def __init__(self, order=0, tag="log"):
        self._order, self.tag, self.events = order, tag, []

    def _log(self, name, kwargs):
        self.events.append((name, dict(kwargs)))


for _ev in EVENTS:
    setattr(Log, "on_" + _ev, (lambda ev: lambda self, **kw: self._log(ev, kw))(_ev))


def expected_events(epochs, n_train, n_valid):
    seq = ["train_begin"]
    train_step = ["batch_begin", "loss_begin", "backward_begin", "backward_end", "step_end", "batch_end"]
    for _ in range(epochs):
        seq += ["epoch_begin"] + train_step * n_train + ["batch_begin", "loss_begin", "batch_end"] * n_valid
        seq += ["epoch_end"]
    return seq + ["train_end"]


def test_events_tuple_is_exactly_the_base_class_hooks():
    hooks = [n[3:] for n, _ in inspect.getmembers(Callback, inspect.isfunction) if n.startswith("on_")]
    assert sorted(hooks) == sorted(EVENTS)
    assert EVENTS[0] == "train_begin" and EVENTS[-1] == "train_end" and len(EVENTS) == 10


def test_event_order_and_counts_over_a_fit():
    learn = tiny_learner(n_train=24, n_valid=16, bs=8)
    log = Log()
    learn.fit(2, 1e-2, callbacks=[log])
    assert [e for e, _ in log.events] == expected_events(2, 3, 2)


def test_every_event_gets_the_seed_kwargs_and_extras():
    learn = tiny_learner(n_train=16, n_valid=8, bs=8)
    log = Log()
    learn.fit(1, 1e-2, callbacks=[log])
    for name, kw in log.events:
        assert SEED_KWARGS <= set(kw), name
    first, last = log.events[0][1], log.events[-1][1]
    assert first["metrics_names"] == [] and first["n_epochs"] == 1
    assert last["exception"] is False


def test_counters_and_train_flag_per_batch():
    learn = tiny_learner(n_train=24, n_valid=16, bs=8)
    log = Log()
    learn.fit(2, 1e-2, callbacks=[log])
    ends = [kw for e, kw in log.events if e == "batch_end"]
    train_ends = [kw for kw in ends if kw["train"]]
    assert [kw["iteration"] for kw in train_ends] == list(range(6))
    assert [kw["num_batch"] for kw in train_ends] == [0, 1, 2, 0, 1, 2]
    assert [kw["epoch"] for kw in train_ends] == [0, 0, 0, 1, 1, 1]
    valid_ends = [kw for kw in ends if not kw["train"]]
    assert len(valid_ends) == 4 and all(kw["num_batch"] == 3 for kw in valid_ends)
    epoch_ends = [kw for e, kw in log.events if e == "epoch_end"]
    assert [kw["epoch"] for kw in epoch_ends] == [0, 1]
    assert all(len(kw["last_metrics"]) == 1 for kw in epoch_ends)


def test_last_values_are_the_batch_output_and_loss():
    learn = tiny_learner(n_train=8, n_valid=0, bs=8)
    log = Log()
    learn.fit(1, 1e-2, callbacks=[log])
    kw = dict(log.events)["backward_begin"]
    xb, yb = kw["last_input"], kw["last_target"]
    assert xb.shape == (8, 10) and yb.shape == (8,)
    assert kw["last_output"].shape == (8, 2)
    assert torch.allclose(kw["last_loss"].detach(), torch.nn.functional.cross_entropy(kw["last_output"], yb))
    assert torch.allclose(kw["smooth_loss"], kw["last_loss"].detach())  # first value: debiased EMA == value


def test_callbacks_sorted_by_order_and_recorder_first():
    calls = []

    class A(Callback):
        def __init__(self, order, name):
            self._order, self.name = order, name

        def on_batch_begin(self, **kwargs):
            calls.append(self.name)

    h = CallbackHandler([A(5, "c"), A(-3, "a"), A(0, "b")])
    assert [c.name for c in h.callbacks] == ["a", "b", "c"]
    h.on_train_begin(1, None, [])
    h.on_batch_begin(torch.zeros(1), torch.zeros(1))
    assert calls == ["a", "b", "c"]
    assert Recorder._order == -10
    learn = tiny_learner()
    learn.fit(1, 1e-3, callbacks=[Log(order=-5)])
    # Recorder (-10) ran before the -5 callback: it was handed the first position.


def test_only_overriding_callbacks_are_called(monkeypatch):
    counts = {"base": 0}

    def counting(self, **kwargs):
        counts["base"] += 1

    monkeypatch.setattr(Callback, "on_loss_begin", counting)

    class OnlyBatchEnd(Callback):
        seen = 0

        def on_batch_end(self, **kwargs):
            OnlyBatchEnd.seen += 1

    h = CallbackHandler([OnlyBatchEnd()])
    assert h._calls["loss_begin"] == ((), ())
    h.on_train_begin(1, None, [])
    h.on_batch_begin(torch.zeros(1), torch.zeros(1))
    h.on_loss_begin(torch.zeros(1))
    h.on_batch_end(torch.zeros(()))
    assert counts["base"] == 0 and OnlyBatchEnd.seen == 1


def test_instance_level_hook_and_duck_typed_callback_are_called():
    seen = []

    class Duck:
        def on_batch_end(self, **kwargs):
            seen.append("duck")

    cb = Callback()
    cb.on_batch_end = lambda **kw: seen.append("instance")
    h = CallbackHandler([cb, Duck()])
    h.on_train_begin(1, None, [])
    h.on_batch_begin(1, 2)
    h.on_batch_end(torch.zeros(()))
    assert sorted(seen) == ["duck", "instance"]


# -- return-value rules ----------------------------------------------------------------------
class Returns(Callback):
    def __init__(self, **hooks):
        for name, fn in hooks.items():
            setattr(self, "on_" + name, fn)


def _handler(*cbs):
    h = CallbackHandler(list(cbs))
    h.on_train_begin(1, None, [])
    h.on_epoch_begin()
    return h


def test_batch_begin_may_return_a_pair_or_a_dict():
    h = _handler(Returns(batch_begin=lambda last_input, last_target, **kw: (last_input + 1, last_target * 2)))
    assert h.on_batch_begin(torch.tensor(1.0), torch.tensor(3.0)) == (2.0, 6.0)
    h = _handler(Returns(batch_begin=lambda last_input, **kw: {"last_input": last_input * 10}))
    xb, yb = h.on_batch_begin(torch.tensor(1.0), torch.tensor(3.0))
    assert xb == 10.0 and yb == 3.0
    h = _handler(Returns(batch_begin=lambda **kw: 5))
    with pytest.raises(TypeError, match="on_batch_begin"):
        h.on_batch_begin(1, 2)


def test_new_inputs_reach_the_model():
    learn = tiny_learner(n_train=8, n_valid=0, bs=8, model=torch.nn.Linear(10, 2))
    got = []
    learn.model.register_forward_hook(lambda m, inp, out: got.append(inp[0]))
    learn.fit(1, 1e-3, callbacks=[Returns(batch_begin=lambda last_input, last_target, **kw: (last_input * 0, last_target))])
    assert torch.count_nonzero(got[0]) == 0


def test_loss_begin_value_replaces_the_output():
    h = _handler(Returns(loss_begin=lambda last_output, **kw: last_output * 3))
    assert h.on_loss_begin(torch.tensor(2.0)) == 6.0
    h = _handler(Returns(loss_begin=lambda **kw: {"last_output": "x"}))
    assert h.on_loss_begin(torch.tensor(2.0)) == "x"


def test_backward_begin_value_replaces_the_loss_and_smoothing_sees_the_raw_one():
    h = _handler(Returns(backward_begin=lambda last_loss, **kw: last_loss * 0))
    loss, skip = h.on_backward_begin(torch.tensor(4.0))
    assert loss == 0.0 and skip is False
    assert h.state_dict["smooth_loss"] == 4.0
    h.on_epoch_end(None)
    assert h.state_dict["smooth_losses"] == [4.0]


def test_replaced_zero_loss_leaves_sgd_weights_unchanged():
    learn = tiny_learner(n_train=16, n_valid=0, opt_func=torch.optim.SGD, wd=0.0)
    before = [p.detach().clone() for p in learn.model.parameters()]
    learn.fit(1, 0.5, callbacks=[Returns(backward_begin=lambda last_loss, **kw: last_loss * 0)])
    assert all(torch.equal(a, b) for a, b in zip(before, learn.model.parameters()))


def test_truthy_returns_set_the_seed_flags():
    h = _handler(Returns(backward_end=lambda **kw: True, step_end=lambda **kw: True,
                         batch_end=lambda **kw: True, epoch_end=lambda **kw: True))
    h.on_batch_begin(1, 2)
    assert h.on_backward_end() is True and h.on_step_end() is True
    assert h.on_batch_end(torch.zeros(())) is True
    assert h.on_epoch_end(None) is True
    h = _handler(Returns(batch_end=lambda **kw: False, epoch_end=lambda **kw: 0))
    h.on_batch_begin(1, 2)
    assert h.on_batch_end(torch.zeros(())) is False and h.on_epoch_end(None) is False


def test_unknown_state_key_raises_a_clear_error():
    h = _handler(Returns(batch_end=lambda **kw: {"stop_epcoh": True}))
    h.on_batch_begin(1, 2)
    with pytest.raises(UnknownStateKeyError, match="stop_epcoh") as info:
        h.on_batch_end(torch.zeros(()))
    assert isinstance(info.value, KeyError) and "Returns.on_batch_end" in str(info.value)


def test_non_dict_return_from_an_event_without_value_rule_is_a_type_error():
    with pytest.raises(TypeError, match="on_train_begin may return None or a dict"):
        _handler(Returns(train_begin=lambda **kw: 3))


def test_dict_returns_update_any_state_key():
    h = _handler(Returns(epoch_begin=lambda **kw: {"skip_validate": True, "num_batch": 7}))
    h.on_epoch_begin()
    assert h.skip_validate is True and h.state_dict["num_batch"] == 7
    assert set(h.state_dict) == STATE_KEYS


# -- flags in the loop ------------------------------------------------------------------------
def _params(learn):
    return [p.detach().clone() for p in learn.model.parameters()]


def test_skip_bwd_leaves_gradients_empty_and_weights_unchanged():
    learn = tiny_learner(n_train=16, n_valid=0, opt_func=torch.optim.SGD, wd=0.0)
    before = _params(learn)
    grads = []
    learn.fit(1, 0.5, callbacks=[Returns(backward_begin=lambda **kw: {"skip_bwd": True},
                                         backward_end=lambda **kw: grads.append(learn.model.weight.grad))])
    assert grads == [None, None]
    assert all(torch.equal(a, b) for a, b in zip(before, learn.model.parameters()))


def test_skip_step_keeps_weights_and_skip_zero_accumulates_gradients():
    learn = tiny_learner(n_train=16, n_valid=0, opt_func=torch.optim.SGD, wd=0.0)
    before = _params(learn)
    grads = []
    learn.fit(1, 0.5, callbacks=[Returns(backward_end=lambda **kw: {"skip_step": True},
                                         step_end=lambda **kw: {"skip_zero": True},
                                         batch_begin=lambda **kw: grads.append(
                                             None if learn.model.weight.grad is None
                                             else learn.model.weight.grad.clone()))])
    assert all(torch.equal(a, b) for a, b in zip(before, learn.model.parameters()))
    assert grads[0] is None and grads[1] is not None  # not zeroed after the first batch


def test_skip_step_alone_zeroes_gradients():
    learn = tiny_learner(n_train=16, n_valid=0, opt_func=torch.optim.SGD, wd=0.0)
    grads = []
    learn.fit(1, 0.5, callbacks=[Returns(backward_end=lambda **kw: True,
                                         batch_begin=lambda **kw: grads.append(learn.model.weight.grad))])
    assert grads == [None, None]


def test_stop_epoch_and_stop_training():
    learn = tiny_learner(n_train=32, n_valid=8, bs=8)
    log = Log()
    learn.fit(3, 1e-3, callbacks=[log, Returns(batch_end=lambda train, **kw: {"stop_epoch": True} if train else None)])
    names = [e for e, _ in log.events]
    assert names.count("epoch_end") == 3
    assert sum(1 for e, kw in log.events if e == "batch_end" and kw["train"]) == 3  # one batch per epoch
    log = Log()
    learn.fit(3, 1e-3, callbacks=[log, Returns(epoch_end=lambda **kw: {"stop_training": True})])
    assert [e for e, _ in log.events].count("epoch_end") == 1


def test_skip_validate_skips_validation_and_metrics():
    learn = tiny_learner(n_train=16, n_valid=16, bs=8, metrics=[accuracy])
    log = Log()
    learn.fit(1, 1e-3, callbacks=[log, Returns(train_begin=lambda **kw: {"skip_validate": True})])
    assert not any(e == "batch_begin" and not kw["train"] for e, kw in log.events)
    assert dict(log.events)["epoch_end"]["last_metrics"] == [None]
    assert learn.recorder.metrics == [] and learn.recorder.val_losses == [None]


# -- exceptions ------------------------------------------------------------------------------
class Boom(Exception):
    pass


def test_exception_reaches_on_train_end_and_propagates():
    learn = tiny_learner()
    log = Log()

    def explode(iteration, **kw):
        if iteration == 1:
            raise Boom("at 1")

    with pytest.raises(Boom, match="at 1"):
        learn.fit(1, 1e-3, callbacks=[log, Returns(batch_end=explode)])
    name, kw = log.events[-1]
    assert name == "train_end" and isinstance(kw["exception"], Boom)


def test_keyboard_interrupt_also_reaches_on_train_end():
    learn = tiny_learner()
    log = Log()

    def interrupt(**kw):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        learn.fit(1, 1e-3, callbacks=[log, Returns(step_end=interrupt)])
    assert isinstance(log.events[-1][1]["exception"], KeyboardInterrupt)


# -- state, resume, repr ---------------------------------------------------------------------
def test_train_begin_epoch_jump_calls_jump_to_epoch():
    jumped = []

    class Jump(Callback):
        def jump_to_epoch(self, epoch):
            jumped.append(epoch)

    learn = tiny_learner(n_train=16, n_valid=0)
    log = Log()
    learn.fit(3, 1e-3, callbacks=[log, Jump(), Returns(train_begin=lambda **kw: {"epoch": 2})])
    assert jumped == [2]
    assert [kw["epoch"] for e, kw in log.events if e == "epoch_begin"] == [2]


def test_get_state_and_repr():
    class WithArgs(Callback):
        def __init__(self, a, b=2):
            self.a, self.b, self.cache = a, b, [1]
            self.exclude, self.not_min = ["cache"], ["b"]

    cb = WithArgs(1)
    assert cb.get_state() == {"a": 1}
    assert cb.get_state(minimal=False) == {"a": 1, "b": 2}
    assert repr(WithArgs(1, b="x")) == "WithArgs(a=1, b='x')"
    assert repr(Callback()) == "Callback()"


def test_handler_signature_defaults_and_bad_input():
    sig = inspect.signature(CallbackHandler)
    assert [(p.name, p.default) for p in sig.parameters.values()] == [("callbacks", None), ("metrics", None),
                                                                       ("beta", 0.98)]
    h = CallbackHandler(metrics=[accuracy])
    assert isinstance(h.metrics[0], AverageMetric) and h.metrics[0].name == "accuracy"
    with pytest.raises(TypeError, match="callbacks"):
        CallbackHandler(callbacks=Callback())
    with pytest.raises(TypeError, match="metrics"):
        CallbackHandler(metrics=[3])
    with pytest.raises(ValueError, match="beta"):
        CallbackHandler(beta=1.0)
    with pytest.raises(ValueError, match="cb_name"):
        h("batch_start")


def _plain_smoothing(beta, losses):
    avg, out = 0.0, []
    for i, v in enumerate(losses, 1):
        avg = beta * avg + (1 - beta) * v
        out.append(avg / (1 - beta**i))
    return out


def test_handler_smooths_live_for_hooks_that_read_the_smoothed_loss():
    beta, losses = 0.9, [3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0]
    seen = []

    class Reader(Callback):
        def on_backward_begin(self, smooth_loss, **kwargs):
            seen.append(float(smooth_loss))

    h = CallbackHandler([Reader()], beta=beta)
    h.on_train_begin(1, None, [])
    for v in losses:
        h.on_backward_begin(torch.tensor(v, dtype=torch.float64))
    assert seen == pytest.approx(_plain_smoothing(beta, losses), rel=1e-12)


def test_without_live_readers_the_epoch_losses_are_smoothed_once_at_its_end_exactly():
    beta, losses = 0.9, [3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0]
    h = CallbackHandler(beta=beta)
    h.on_train_begin(1, None, [])
    for v in losses[:4]:
        h.on_backward_begin(torch.tensor(v, dtype=torch.float32))
    assert h.state_dict["smooth_loss"] is None and not h._live_smoothing, "nothing read it: nothing computed"
    h.on_epoch_end(None)
    assert h.state_dict["smooth_losses"] == _plain_smoothing(beta, losses[:4]), "fastai's float64 formula, bit for bit"
    for v in losses[4:]:
        h.on_backward_begin(torch.tensor(v))
    h.on_epoch_end(None)
    assert h.state_dict["smooth_losses"] == _plain_smoothing(beta, losses)[4:], "the average runs on across epochs"
    assert h.state_dict["smooth_loss"] == _plain_smoothing(beta, losses)[-1]
    h.on_backward_begin(torch.tensor(float("nan")))
    h.on_backward_begin(torch.tensor(1.0))
    h.on_train_end(False)
    assert all(math.isnan(v) for v in h.state_dict["smooth_losses"]), "NaN from the first non-finite loss on"


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_a_non_finite_loss_mid_epoch_ends_the_smoothed_history_there(bad):
    beta, losses = 0.9, [3.0, 1.0, 4.0, bad, 5.0, 9.0]
    h = CallbackHandler(beta=beta)
    h.on_train_begin(1, None, [])
    for v in losses:
        h.on_backward_begin(torch.tensor(v, dtype=torch.float64))
    h.on_epoch_end(None)
    got = h.state_dict["smooth_losses"]
    assert got[:3] == _plain_smoothing(beta, losses[:3]) and all(math.isnan(v) for v in got[3:])
    h.on_backward_begin(torch.tensor(1.0))
    h.on_epoch_end(None)
    assert math.isnan(h.state_dict["smooth_losses"][0]) and math.isnan(h.state_dict["smooth_loss"])


def test_call_runs_metrics_only_when_asked():
    seen = []

    class Met(Callback):
        def on_epoch_begin(self, **kw):
            seen.append("met")

    class Cb(Callback):
        def on_epoch_begin(self, **kw):
            seen.append("cb")

    h = CallbackHandler([Cb()], [Met()])
    h("epoch_begin")
    h("epoch_begin", call_mets=False)
    assert seen == ["met", "cb", "cb"]


def test_dataset_callback_joins_through_set_dl():
    class DS(torch.utils.data.Dataset, Callback):
        def __init__(self):
            self.batches = 0

        def __len__(self):
            return 4

        def __getitem__(self, i):
            return torch.zeros(10), 0

        def on_batch_begin(self, **kw):
            self.batches += 1

    ds = DS()
    learn = tiny_learner(n_valid=0)
    learn.data.train_dl.dl = torch.utils.data.DataLoader(ds, batch_size=2)
    learn.fit(1, 1e-3)
    assert ds.batches == 2


# -- fastai v1 user callbacks, unchanged -----------------------------------------------------
def test_seed_style_dataclass_callbacks_run_unchanged():
    @dataclass
    class MyCallback(Callback):
        learn: Learner

        def on_epoch_end(self, **kwargs):
            self.learn.seen = getattr(self.learn, "seen", 0) + 1

    @dataclass
    class GradClip(LearnerCallback):
        clip: float

        def on_backward_end(self, **kwargs):
            if self.clip:
                torch.nn.utils.clip_grad_norm_(self.learn.model.parameters(), self.clip)
                self.learn.norms.append(float(torch.nn.utils.get_total_norm(
                    [p.grad for p in self.learn.model.parameters()])))

    learn = tiny_learner(callback_fns=[MyCallback])
    learn.norms = []
    gc = GradClip(learn, 1e-4)
    assert learn.grad_clip is gc and gc.learn is learn
    learn.fit(2, 1e-3, callbacks=[gc])
    assert learn.seen == 2
    assert learn.norms and max(learn.norms) <= 1e-4 * 1.0001


def test_hooks_that_name_their_arguments_get_just_those():
    seen = {}

    class Named(Callback):
        def on_batch_begin(self, train, last_input):
            seen["batch_begin"] = (train, last_input)

        def on_train_end(self, exception, epoch):
            seen["train_end"] = (exception, epoch)

    class Everything(Callback):
        def on_batch_begin(self, **kwargs):
            seen["all"] = set(kwargs)

    h = CallbackHandler([Named(), Everything()])
    h.on_train_begin(1, None, [])
    xb = torch.ones(2)
    h.on_batch_begin(xb, torch.zeros(2), train=False)
    assert seen["batch_begin"][0] is False and seen["batch_begin"][1] is xb
    assert "last_input" in seen["all"] and "smooth_loss" in seen["all"] and "train" in seen["all"]
    err = RuntimeError("boom")
    h.on_train_end(err)
    assert seen["train_end"] == (err, 0)


def test_a_hook_naming_an_unknown_argument_fails_like_fastai():
    class Odd(Callback):
        def on_batch_begin(self, not_a_key):
            pass

    h = CallbackHandler([Odd()])
    h.on_train_begin(1, None, [])
    with pytest.raises(TypeError, match="unexpected keyword argument"):
        h.on_batch_begin(torch.zeros(1), torch.zeros(1))


def test_uses_state_passes_only_the_declared_keys_and_keeps_direct_calls_working():
    from fastcb import uses_state

    got = []

    class Declared(Callback):
        @uses_state("train", "num_batch")
        def on_batch_end(self, train, num_batch, **kwargs):
            got.append((train, num_batch, kwargs))

    class Sub(Declared):
        def on_batch_end(self, **kwargs):  # a fastai-style override calling up
            super().on_batch_end(**kwargs)

    h = CallbackHandler([Declared(), Sub()])
    h.on_train_begin(1, None, [])
    h.on_batch_begin(torch.zeros(1), torch.zeros(1))
    h.on_batch_end(torch.zeros(()))
    assert got[0] == (True, 0, {})
    assert got[1][:2] == (True, 0) and "last_input" in got[1][2], "the override received the whole state"
    with pytest.raises(ValueError, match="not state keys"):
        uses_state("nope")
