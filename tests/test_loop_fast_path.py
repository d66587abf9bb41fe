"""`fit`'s fused training batch (`loop.train_batch`) against the event-by-event path it replaces
(`on_batch_begin`, `loss_batch`, `on_batch_end`), and the per-fit caches behind it."""


import loop_helpers
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from loop_helpers import tiny_data

from fastcb import Callback, CallbackHandler, OptimWrapper
from fastcb import callback as callback_mod
from fastcb.loop import loss_batch, train_batch
from fastcb.optim import _lr_needs_value

_BATCH_EVENTS = ("batch_begin", "loss_begin", "backward_begin", "backward_end", "step_end", "batch_end")


class Meddler(loop_helpers.Meddler):
    """Logs the state each batch hook sees and, at random, returns what fastai v1 lets it return."""

    def seen(self, ev, kw):
        return (ev, kw["iteration"], kw["num_batch"], kw["train"], kw["skip_bwd"], kw["skip_step"], kw["skip_zero"],
                _val(kw["last_loss"]), _val(kw["last_output"]))

    def reply(self, ev, kw, r):
        if r < 0.5:
            return None
        if ev == "batch_begin":
            return (kw["last_input"] * 0.5, kw["last_target"])
        if ev == "loss_begin":
            return kw["last_output"] * 2.0
        if ev == "backward_begin":
            return kw["last_loss"] * 0.5 if r < 0.8 else {"skip_bwd": True}
        if ev in ("backward_end", "step_end"):
            return True
        return {"stop_epoch": r > 0.95}


def _batch(model, opt, handler, xb, yb, fused):
    """One training batch: fused (`train_batch`) or event by event (the path it replaces)."""
    if fused:
        return train_batch(model, xb, yb, F.cross_entropy, opt, handler)
    xb, yb = handler.on_batch_begin(xb, yb)
    return handler.on_batch_end(loss_batch(model, xb, yb, F.cross_entropy, opt, handler))


def _val(v):
    return None if v is None else v.detach().sum().item() if isinstance(v, torch.Tensor) else v


def _run(events, seed, fused):
    torch.manual_seed(0)
    model = torch.nn.Linear(10, 2)
    opt = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9))
    log = []
    handler = CallbackHandler([Meddler(events, seed, log)])
    handler.on_train_begin(1, None, None)
    handler.on_epoch_begin()
    out = []
    for xb, yb in tiny_data(n_train=40, bs=8).train_dl:
        stop = _batch(model, opt, handler, xb, yb, fused)
        out.append((stop, _val(handler.state_dict["last_loss"])))
        if stop:
            break
    handler.on_epoch_end(None)
    state = {k: v for k, v in handler.state_dict.items() if k in ("iteration", "num_batch", "smooth_losses")}
    return log, out, state, [p.detach().clone() for p in model.parameters()]


@settings(max_examples=40, deadline=None)
@given(st.sets(st.sampled_from(_BATCH_EVENTS)), st.integers(0, 10**6))
def test_the_fused_batch_is_the_event_by_event_path(events, seed):
    ref, got = _run(sorted(events), seed, fused=False), _run(sorted(events), seed, fused=True)
    assert got[0] == ref[0]  # every event, in order, seeing the same state
    assert got[1] == ref[1] and got[2] == ref[2]
    for a, b in zip(got[3], ref[3]):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_the_fused_batch_skips_events_nobody_defines(monkeypatch):
    called = []
    monkeypatch.setattr(CallbackHandler, "_run", lambda self, ev, calls, kw=None: called.append(ev))
    model = torch.nn.Linear(10, 2)
    opt = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1))

    class OnlyBatchEnd(Callback):
        def on_batch_end(self, **kwargs):
            pass

    handler = CallbackHandler([OnlyBatchEnd()])
    xb, yb = torch.randn(4, 10), torch.tensor([0, 1, 0, 1])
    train_batch(model, xb, yb, F.cross_entropy, opt, handler)
    assert called == ["batch_end"]


def test_the_recorder_reads_what_the_optimizer_says_with_or_without_the_shortcut():
    from fastcb import Learner

    class MyWrapper(OptimWrapper):  # not exactly OptimWrapper: the Recorder reads its properties
        pass

    records = []
    for cls in (OptimWrapper, MyWrapper):
        torch.manual_seed(0)
        learn = Learner(tiny_data(), torch.nn.Linear(10, 2), loss_func=F.cross_entropy, silent=True)
        learn.opt = cls(torch.optim.Adam(learn.model.parameters(), lr=1e-3, betas=(0.9, 0.99)))
        learn.fit_one_cycle(1, 1e-2)
        rec = learn.recorder
        assert len(rec.lrs) == len(rec.moms) == len(learn.data.train_dl)
        assert rec.lrs[0] == pytest.approx(1e-2 / 25) and rec.moms[0] == pytest.approx(0.95)
        records.append((rec.lrs, rec.moms))
    assert records[0] == records[1]


def test_hook_signatures_are_read_once_per_function(monkeypatch):
    class A(Callback):
        def on_batch_end(self, train, last_loss):
            pass

    calls = []
    real = callback_mod.inspect.signature
    monkeypatch.setattr(callback_mod.inspect, "signature", lambda f: calls.append(f) or real(f))
    assert callback_mod.wanted_state(A().on_batch_end) == ("train", "last_loss")
    assert callback_mod.wanted_state(A().on_batch_end) == ("train", "last_loss")
    assert len(calls) == 1
    A.on_batch_end = lambda self, **kwargs: None  # a new function: read anew
    assert callback_mod.wanted_state(A().on_batch_end) is None


def test_whether_an_optimizer_needs_an_lr_is_asked_once_per_factory(monkeypatch):
    from functools import partial

    from fastcb import optim as optim_mod

    calls = []
    real = optim_mod.inspect.signature
    monkeypatch.setattr(optim_mod.inspect, "signature", lambda f: calls.append(f) or real(f))
    needs = partial(lambda params, lr, momentum=0.0: None, momentum=0.9)
    adam = partial(torch.optim.Adam, betas=(0.9, 0.99))
    assert [_lr_needs_value(f) for f in (needs, needs, adam, adam)] == [True, True, False, False]
    assert calls == [needs, adam]
    assert _lr_needs_value(object()) is False  # no signature: no lr to give


@pytest.mark.parametrize("opt_cls, kwargs", [(torch.optim.SGD, {"momentum": 0.9}), (torch.optim.Adam, {}),
                                             (torch.optim.RMSprop, {}), (torch.optim.Adagrad, {})])
@pytest.mark.parametrize("bn_wd", [True, False])
def test_lr_mom_is_what_the_properties_read(opt_cls, kwargs, bn_wd):
    from functools import partial

    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.BatchNorm1d(4), torch.nn.Linear(4, 2))
    opt = OptimWrapper.create(partial(opt_cls, **kwargs), [0.01, 0.02], [model[:2], model[2:]], bn_wd=bn_wd)
    assert opt.lr_mom() == (opt.lr, opt.mom)
    opt.lr, opt.mom = 0.5, 0.8
    assert opt.lr_mom() == (opt.lr, opt.mom) == (0.5, 0.8 if opt.mom is not None else None)
    for g in opt.opt.param_groups:  # written behind the wrapper's back (a torch scheduler does)
        g["lr"] = 0.25
    assert opt.lr_mom() == (opt.lr, opt.mom) and opt.lr == 0.25
    opt.opt.param_groups[-1 if bn_wd else -2]["lr"] = torch.tensor(0.125)  # a tensor: the host copy
    assert opt.lr_mom() == (opt.lr, opt.mom)


@pytest.mark.parametrize("values", [
    [torch.tensor(1.5), torch.tensor(2.0)],
    [torch.tensor([1.5]), torch.tensor([[2.0]])],  # one number each, shapes differ
    [torch.tensor(1.5), 2, 3.25, torch.tensor([4.0], dtype=torch.float16)],
    [torch.tensor([1.0], requires_grad=True) * 2, torch.tensor([3.0], requires_grad=True) * 1],
    [],
])
def test_host_floats_stacks_once_and_reads_the_same(values):
    from fastcb._utils import host_floats

    want = [float(v.detach()) if isinstance(v, torch.Tensor) else float(v) for v in values]
    got = host_floats(values)
    assert got.dtype == "float64" and got.tolist() == want


def test_host_floats_still_names_a_tensor_of_several_numbers():
    from fastcb._utils import host_floats

    with pytest.raises(ValueError, match="losses: expected one number each"):
        host_floats([torch.ones(2), torch.ones(2)], "losses")


@pytest.mark.parametrize("opt_cls, kwargs", [(torch.optim.SGD, {"momentum": 0.9}), (torch.optim.Adam, {}),
                                             (torch.optim.RMSprop, {"momentum": 0.5}), (torch.optim.Adagrad, {})])
@pytest.mark.parametrize("bn_wd", [True, False])
@pytest.mark.parametrize("tensor_group", [None, 0, -1])
def test_set_lr_mom_writes_what_the_two_setters_write(opt_cls, kwargs, bn_wd, tensor_group):
    from functools import partial

    def build():
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.BatchNorm1d(4), torch.nn.Linear(4, 2))
        opt = OptimWrapper.create(partial(opt_cls, **kwargs), [0.01, 0.02], [model[:2], model[2:]], bn_wd=bn_wd)
        if tensor_group is not None:  # a group holding a tensor lr: the general path, in place
            opt.opt.param_groups[tensor_group]["lr"] = torch.tensor(0.5)
        return opt

    fused, apart = build(), build()
    for lr, mom in [(0.1, 0.9), (0.2, 0.85), (3e-4, 0.95)]:
        fused.set_lr_mom(lr, mom)
        apart.lr, apart.mom = lr, mom
        for a, b in zip(fused.opt.param_groups, apart.opt.param_groups):
            assert {k: v for k, v in a.items() if k != "params"} == {k: v for k, v in b.items() if k != "params"}
        assert fused.state_dict()["fastcb"] == apart.state_dict()["fastcb"]  # the host copies, read back
        assert fused.lr_mom() == apart.lr_mom() == (fused.lr, fused.mom)
    if fused.beta is not None:  # a pair written after the fast path keeps the momentum it wrote
        fused.beta = apart.beta = 0.97
        for a, b in zip(fused.opt.param_groups, apart.opt.param_groups):
            assert {k: v for k, v in a.items() if k != "params"} == {k: v for k, v in b.items() if k != "params"}
    if tensor_group is not None:
        lr = fused.opt.param_groups[tensor_group]["lr"]
        assert isinstance(lr, torch.Tensor) and lr.item() == pytest.approx(3e-4)


def test_one_cycle_on_an_optimizer_wrapper_subclass_goes_through_its_setters():
    from fastcb import Learner

    seen = []

    class Spy(OptimWrapper):
        @OptimWrapper.lr.setter
        def lr(self, val):
            seen.append(val)
            OptimWrapper.lr.fset(self, val)

    learn = Learner(tiny_data(), torch.nn.Linear(10, 2), loss_func=F.cross_entropy, silent=True)
    learn.opt = Spy(torch.optim.Adam(learn.model.parameters(), lr=1e-3))
    learn.fit_one_cycle(1, 1e-2)
    assert len(seen) >= len(learn.data.train_dl)  # every batch's write reached the subclass's setter


def test_train_only_hooks_are_not_called_on_validation_batches():
    from fastcb.callback import train_only, uses_state

    calls = []

    class Marked(Callback):
        @train_only
        @uses_state("train")
        def on_batch_begin(self, train, **kwargs):
            calls.append(("marked begin", train))

        @train_only
        def on_batch_end(self, **kwargs):
            calls.append(("marked end", kwargs["train"]))

    class Override(Marked):  # its own hook, unmarked: called on every batch, as before
        def on_batch_end(self, **kwargs):
            calls.append(("override end", kwargs["train"]))

    class Metric(Callback):
        def on_batch_end(self, train, **kwargs):
            calls.append(("metric end", train))

    handler = CallbackHandler([Marked(), Override()], [Metric()])
    handler.on_train_begin(1, None, [])
    handler.on_epoch_begin()
    for train in (True, False):
        handler.on_batch_begin(torch.ones(1), torch.ones(1), train=train)
        handler.on_batch_end(torch.tensor(0.5))
    assert calls == [("marked begin", True), ("marked begin", True), ("marked end", True), ("override end", True),
                     ("metric end", False), ("override end", False)]


class _Counting(torch.optim.SGD):
    """SGD counting its own `step` and `zero_grad` calls."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.calls = []

    def step(self, closure=None):
        self.calls.append("step")
        return super().step(closure)

    def zero_grad(self, set_to_none=True):
        self.calls.append("zero_grad")
        super().zero_grad(set_to_none)


class _Changer(Callback):
    """At batch `at`, runs `change(opt)` (at batch end: the next batch steps with the change)."""

    def __init__(self, opt, at, change):
        self.opt, self.at, self.change = opt, at, change

    def on_batch_end(self, num_batch, **kwargs):
        if num_batch == self.at:
            self.change(self.opt)


def _train(change, cls=OptimWrapper, wd=0.0, true_wd=True, batches=6):
    """Train a Linear with `train_batch` (`change` applied after batch 2), and the same through the
    wrapper's own methods (`OptimWrapper.step`/`zero_grad`, reached by a subclass): the weights."""
    torch.manual_seed(0)
    model = torch.nn.Linear(10, 2)
    opt = cls(_Counting(model.parameters(), lr=0.1, momentum=0.9), wd=wd, true_wd=true_wd)
    handler = CallbackHandler([_Changer(opt, 2, change)])
    handler.on_train_begin(1, None, None)
    handler.on_epoch_begin()
    g = torch.Generator().manual_seed(1)
    for _ in range(batches):
        train_batch(model, torch.randn(8, 10, generator=g), torch.randint(0, 2, (8,), generator=g),
                    F.cross_entropy, opt, handler)
    return [p.detach().clone() for p in model.parameters()], opt


class _Sub(OptimWrapper):
    """A subclass that changes nothing: `train_batch` goes through the wrapper's methods."""


def _set_wd(opt):
    opt.wd = 0.1


def _set_true_wd(opt):
    opt.true_wd = False
    opt.wd = 0.1


def _replace_inner(opt):
    opt.opt = _Counting([p for g in opt.opt.param_groups for p in g["params"]], lr=0.05, momentum=0.5)


@pytest.mark.parametrize("change", [lambda opt: None, _set_wd, _set_true_wd, _replace_inner],
                         ids=["none", "wd mid-run", "true_wd mid-run", "opt replaced"])
@pytest.mark.parametrize("wd, true_wd", [(0.0, True), (0.1, True), (0.1, False), (0.0, False)])
def test_train_batch_steps_as_the_wrapper_would_with_or_without_its_frames(change, wd, true_wd):
    got, opt = _train(change, OptimWrapper, wd, true_wd)
    want, ref = _train(change, _Sub, wd, true_wd)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert opt.opt.calls == ref.opt.calls and opt.opt.calls[-2:] == ["step", "zero_grad"]


def test_train_batch_honours_a_wrapper_subclass_and_methods_set_on_the_instance():
    seen = []

    class Spy(OptimWrapper):
        def step(self, *args, **kwargs):
            seen.append("step")
            return super().step(*args, **kwargs)

        def zero_grad(self, *args, **kwargs):
            seen.append("zero_grad")
            super().zero_grad(*args, **kwargs)

    _train(lambda opt: None, Spy, batches=2)
    assert seen == ["step", "zero_grad"] * 2

    def patch(opt):
        opt.step = lambda: seen.append("own step")
        opt.zero_grad = lambda: seen.append("own zero_grad")

    seen.clear()
    _, opt = _train(patch, OptimWrapper, batches=5)  # patched after batch 2: batches 3 and 4 use them
    assert seen == ["own step", "own zero_grad"] * 2 and opt.opt.calls == ["step", "zero_grad"] * 3


def test_train_batch_honours_wrapper_methods_patched_on_the_class(monkeypatch):
    seen = []
    step, zero_grad = OptimWrapper.step, OptimWrapper.zero_grad

    def patched_step(self, *args, **kwargs):
        seen.append("step")
        return step(self, *args, **kwargs)

    def patched_zero_grad(self, *args, **kwargs):
        seen.append("zero_grad")
        zero_grad(self, *args, **kwargs)

    monkeypatch.setattr(OptimWrapper, "step", patched_step)
    _train(lambda opt: None, OptimWrapper, batches=2)
    assert seen == ["step"] * 2
    seen.clear()
    monkeypatch.setattr(OptimWrapper, "zero_grad", patched_zero_grad)
    _, opt = _train(lambda opt: None, OptimWrapper, batches=2)
    assert seen == ["step", "zero_grad"] * 2 and opt.opt.calls == ["step", "zero_grad"] * 2


def _one_hook_log(fused, rule):
    """A callback whose batch hooks each take one state value (`uses_state`), returning what
    `rule(event, i)` says; the log of what they saw, the states after each batch, the weights."""
    from fastcb.callback import uses_state

    log = []

    class One(Callback):
        @uses_state("iteration")
        def on_batch_begin(self, iteration, **kwargs):
            log.append(("begin", iteration))
            return rule("batch_begin", iteration)

        @uses_state("last_loss")
        def on_batch_end(self, last_loss, **kwargs):
            log.append(("end", _val(last_loss)))
            return rule("batch_end", len(log))

    torch.manual_seed(0)
    model = torch.nn.Linear(10, 2)
    opt = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1))
    handler = CallbackHandler([One()])
    assert handler.train_one[0] is not None and handler.train_one[5] is not None
    handler.on_train_begin(1, None, None)
    handler.on_epoch_begin()
    out = []
    for xb, yb in tiny_data(n_train=40, bs=8).train_dl:
        stop = _batch(model, opt, handler, xb, yb, fused)
        out.append((stop, handler.state_dict["iteration"], _val(handler.state_dict["last_input"])))
    return log, out, [p.detach().clone() for p in model.parameters()]


@pytest.mark.parametrize("rule", [
    lambda ev, i: None,
    lambda ev, i: {"stop_epoch": i % 3 == 0} if ev == "batch_end" else None,
    lambda ev, i: True if ev == "batch_end" and i == 4 else None,  # the seed's value: stop the epoch
    lambda ev, i: {"skip_step": True} if ev == "batch_begin" and i % 2 else None,
], ids=["none", "dict", "value", "skip"])
def test_one_hook_of_one_state_value_is_dispatched_as_run_would(rule):
    ref, got = _one_hook_log(False, rule), _one_hook_log(True, rule)
    assert got[0] == ref[0] and got[1] == ref[1]
    for a, b in zip(got[2], ref[2]):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_one_hook_of_one_state_value_is_called_without_run(monkeypatch):
    from fastcb.callback import uses_state

    called, seen = [], []
    monkeypatch.setattr(CallbackHandler, "_run", lambda self, ev, calls, kw=None: called.append(ev))

    class One(Callback):
        @uses_state("train")
        def on_batch_begin(self, train, **kwargs):
            seen.append(("begin", train))

        @uses_state("train")
        def on_batch_end(self, train, **kwargs):
            seen.append(("end", train))

    class Whole(Callback):  # the whole state as keywords: through `_run`
        def on_batch_end(self, **kwargs):
            pass

    model = torch.nn.Linear(10, 2)
    opt = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1))
    xb, yb = torch.randn(4, 10), torch.tensor([0, 1, 0, 1])
    train_batch(model, xb, yb, F.cross_entropy, opt, CallbackHandler([One()]))
    assert called == [] and seen == [("begin", True), ("end", True)]
    handler = CallbackHandler([One(), Whole()])
    assert handler.train_one[0] is not None and handler.train_one[5] is None
    train_batch(model, xb, yb, F.cross_entropy, opt, handler)
    assert called == ["batch_end"] and seen[2:] == [("begin", True)]


def test_a_bad_return_of_a_directly_called_hook_names_it():
    from fastcb.callback import uses_state

    class Bad(Callback):
        @uses_state("train")
        def on_batch_end(self, train, **kwargs):
            return {"nope": 1}

    model = torch.nn.Linear(10, 2)
    opt = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1))
    with pytest.raises(callback_mod.UnknownStateKeyError, match="Bad.on_batch_end returned 'nope'"):
        train_batch(model, torch.randn(4, 10), torch.tensor([0, 1, 0, 1]), F.cross_entropy, opt,
                    CallbackHandler([Bad()]))


def _fit_records(opt_factory, compiled, n_epochs=2, moms=(0.95, 0.85), **fit_kwargs):
    """`fit_one_cycle` with the Recorder's and the scheduler's hooks called compiled (as `fit`
    does) or as their Python methods (subclasses whose hooks only call the parent's, so the
    handler finds no compiled equal): what the run recorded and where it ended."""
    from functools import partial

    from fastcb import Learner
    from fastcb.callback import uses_state
    from fastcb.callbacks.one_cycle import OneCycleScheduler
    from fastcb.callbacks.recorder import Recorder

    class PyRecorder(Recorder):
        @uses_state("train")
        def on_batch_begin(self, train, **kwargs):
            return super().on_batch_begin(train, **kwargs)

    class PyOneCycle(OneCycleScheduler):
        @uses_state("train")
        def on_batch_end(self, train, **kwargs):
            return super().on_batch_end(train, **kwargs)

    torch.manual_seed(0)
    learn = Learner(tiny_data(n_train=56), torch.nn.Linear(10, 2), loss_func=F.cross_entropy, silent=True)
    if not compiled:
        learn.callback_fns = [partial(PyRecorder, **f.keywords) if getattr(f, "func", None) is Recorder else f
                              for f in learn.callback_fns]
    learn.opt = opt_factory(learn.model)
    sched = (OneCycleScheduler if compiled else PyOneCycle)(learn, 1e-2, moms=moms, **fit_kwargs)
    learn.fit(n_epochs, callbacks=[sched])
    handler = learn.cb_handler
    rec_hook, sched_hook = handler.train_one[0][0], handler.train_one[5][0]
    assert (getattr(rec_hook, "func", None) is not None) == compiled  # a partial of the compiled function
    assert (getattr(sched_hook, "func", None) is not None) == compiled
    params = [p.detach().clone() for p in learn.model.parameters()]
    groups = [{k: v for k, v in g.items() if k != "params"} for g in learn.opt.opt.param_groups]
    rec = next(cb for cb in handler.callbacks if isinstance(cb, Recorder))
    return rec.lrs, rec.moms, sched.state_dict(), groups, params


_OPTS = {
    "adam": lambda m: OptimWrapper(torch.optim.Adam(m.parameters(), lr=1e-3, betas=(0.9, 0.99))),
    "sgd": lambda m: OptimWrapper(torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9)),
    "two groups": lambda m: OptimWrapper(torch.optim.SGD([{"params": [m.weight]}, {"params": [m.bias]}], lr=0.1,
                                                         momentum=0.9)),
    "tensor lr": lambda m: OptimWrapper(torch.optim.Adam(m.parameters(), lr=torch.tensor(1e-3), betas=(0.9, 0.99))),
    "no momentum": lambda m: OptimWrapper(torch.optim.Adagrad(m.parameters(), lr=0.1)),
    "a subclass": lambda m: _Sub(torch.optim.Adam(m.parameters(), lr=1e-3)),
}


@pytest.mark.parametrize("opt", sorted(_OPTS))
def test_the_compiled_recorder_and_scheduler_hooks_are_their_python_methods(opt):
    got, want = _fit_records(_OPTS[opt], True), _fit_records(_OPTS[opt], False)
    assert len(got[0]) == 14 and got[0] == want[0] and got[1] == want[1]  # every batch's lr and mom, the same
    assert all(type(x) is type(y) for x, y in zip(got[0] + got[1], want[0] + want[1]))
    assert got[2] == want[2]  # the schedules' position: phases and step counts
    assert str(got[3]) == str(want[3])
    for a, b in zip(got[4], want[4]):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_the_compiled_scheduler_hook_ends_the_run_as_the_method_does():
    # tot_epochs=1 on a 2-epoch fit: the schedule runs out after the first epoch's batches
    got, want = _fit_records(_OPTS["adam"], True, tot_epochs=1), _fit_records(_OPTS["adam"], False, tot_epochs=1)
    assert got[0] == want[0] and 7 < len(got[0]) < 14 and got[2] == want[2]  # stopped in the second epoch


def test_compiled_hooks_fall_back_to_the_method_outside_their_plain_case():
    from functools import partial

    from fastcb._core import recorder_batch_begin, scheduler_batch_end

    calls = []

    def hook(train):
        calls.append(train)
        return "hook's"

    class Bare:
        pass

    cb = Bare()
    for train in (False, 1, None):  # only `True` itself is a training batch to them
        assert recorder_batch_begin(cb, hook, OptimWrapper, train) == "hook's"
        assert scheduler_batch_end(cb, hook, train) == "hook's"
    assert recorder_batch_begin(cb, hook, OptimWrapper, True) == "hook's"  # no opt, lrs, moms
    assert scheduler_batch_end(cb, hook, True) == "hook's"  # no _run, idx_s, _setters
    cb.opt, cb.lrs, cb.moms = object(), [], []
    assert recorder_batch_begin(cb, hook, OptimWrapper, True) == "hook's" and cb.lrs == []
    cb._run, cb.idx_s, cb._setters = None, 0, [("not", "a", "phase")]
    assert scheduler_batch_end(cb, hook, True) == "hook's"
    assert calls == [False, False, 1, 1, None, None, True, True, True, True]
    assert partial(recorder_batch_begin, cb, hook, OptimWrapper)(False) == "hook's"


def test_a_hook_marked_compiled_is_called_compiled_only_when_it_is_the_only_one():
    from fastcb import Learner
    from fastcb.callbacks.recorder import Recorder

    class Other(Callback):
        def on_batch_begin(self, **kwargs):
            pass

    learn = Learner(tiny_data(), torch.nn.Linear(10, 2), loss_func=F.cross_entropy, silent=True)
    rec = Recorder(learn)
    assert CallbackHandler([rec]).train_one[0][0].func.__name__ == "recorder_batch_begin"
    handler = CallbackHandler([rec, Other()])
    assert handler.train_one[0] is None and handler.train_calls[0][0][0] == rec.on_batch_begin


def test_train_batch_unpacks_lists_and_tuples_only():
    class Sub(torch.Tensor):  # a tensor subclass: passed as it is, like a tensor
        pass

    class Two(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(10, 2)

        def forward(self, a, b=None):
            return self.lin(a if b is None else a + b)

    seen = []

    def loss_func(out, y, w=None):
        seen.append((type(y).__name__, w is not None))
        return F.cross_entropy(out, y) * (1.0 if w is None else w)

    model = Two()
    opt = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1))
    handler = CallbackHandler([])
    x, y = torch.randn(4, 10), torch.tensor([0, 1, 0, 1])
    for xb, yb in [(x, y), ([x, x], (y, torch.tensor(2.0))), (x.as_subclass(Sub), y.as_subclass(Sub))]:
        train_batch(model, xb, yb, loss_func, opt, handler)
    assert seen == [("Tensor", False), ("Tensor", True), ("Sub", False)]
