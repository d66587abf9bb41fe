"""A checkpoint is data with a schema: every malformed file is one `CheckpointError` saying what and
where, and a refused load or resume changes nothing (model, optimizer, callbacks, handler, random states)."""

import copy
import random

import numpy as np
import pytest
import torch
from loop_helpers import StopAfter, tiny_learner

from fastcb import (
    Callback,
    EarlyStoppingCallback,
    OneCycleScheduler,
    ReduceLROnPlateauCallback,
    SaveModelCallback,
    checkpoint,
)
from fastcb.callbacks.recorder import RecordedFloat
from fastcb.errors import CheckpointError, StateError


def _trackers(learn, patience=1):
    return [EarlyStoppingCallback(learn, patience=patience, min_delta=0.5),
            ReduceLROnPlateauCallback(learn, patience=0, factor=0.5)]


@pytest.fixture
def saved(tmp_path):
    """A genuine checkpoint after epoch 1 of a one-cycle run with trackers, and its raw content."""
    learn = tiny_learner(tmp_path, n_train=24, n_valid=8)
    learn.fit_one_cycle(4, 1e-2, callbacks=[*_trackers(learn), SaveModelCallback(learn, every="epoch", name="ck"),
                                            StopAfter(1)])
    path = tmp_path / "models" / "ck_1.pth"
    return path, torch.load(path, weights_only=True)


def _snapshot(learn):
    return {"model": copy.deepcopy(learn.model.state_dict()), "opt": copy.deepcopy(learn.opt.state_dict()),
            "resume": learn.__dict__.get("_resume")}


def _assert_unchanged(learn, snap):
    for k, v in snap["model"].items():
        assert torch.equal(learn.model.state_dict()[k], v), k
    now = learn.opt.state_dict()
    assert now["fastcb"] == snap["opt"]["fastcb"] and now["param_groups"] == snap["opt"]["param_groups"]
    assert all(torch.equal(now["state"][i][k], v) for i, st in snap["opt"]["state"].items() for k, v in st.items())
    assert learn.__dict__.get("_resume") is snap["resume"]


def _deep(n):
    v = 0
    for _ in range(n):
        v = [v]
    return v


def _set(path, value):
    """A change to the raw checkpoint: set (or with `...` delete) the item at `path`."""
    def change(ck):
        *head, last = path
        for k in head:
            ck = ck[k]
        if value is ...:
            del ck[last]
        else:
            ck[last] = value(ck[last]) if callable(value) and not isinstance(value, type) else value
    return change


MALFORMED = {
    "missing model": (_set(["model"], ...), r"missing \['model'\]"),
    "missing opt": (_set(["opt"], ...), r"missing \['opt'\]"),
    "opt is None": (_set(["opt"], None), r"opt: missing"),
    "opt without true_wd": (_set(["opt", "fastcb", "true_wd"], ...), r"opt: .*missing \['true_wd'\]"),
    "opt with 3 lrs for 1 group": (_set(["opt", "fastcb", "lr"], [1e-3] * 3), r"opt: .*'lr'.*expected 1 values"),
    "opt with lr nan": (_set(["opt", "fastcb", "lr"], [float("nan")]), r"opt: .*'lr'.*finite"),
    "opt state of another shape": (_set(["opt", "state", 0, "exp_avg"], torch.zeros(3, 3)), r"opt: .*shape \(3, 3\)"),
    "opt groups not a list": (_set(["opt", "param_groups"], {"a": 1}), r"opt: expected an optimizer state dict"),
    "model weight of another shape": (_set(["model", "weight"], torch.zeros(3, 10)), r"model: .*shapes: weight"),
    "model weight not a tensor": (_set(["model", "weight"], [1.0]), r"model: expected the model's state dict"),
    "model of complex dtype": (_set(["model", "weight"], lambda w: w.to(torch.complex64)), r"model: .*dtypes"),
    "deep nesting": (_set(["callbacks", "Recorder", "lrs"], _deep(100)), r"nested deeper than 64"),
    "epoch a string": (_set(["epoch"], "1"), r"epoch: expected an int"),
    "epoch a bool": (_set(["epoch"], True), r"epoch: expected an int"),
    "epoch below -1": (_set(["epoch"], -7), r"epoch: expected an int >= -1"),
    "rng empty": (_set(["rng"], []), r"rng: expected a list"),
    "rng junk": (_set(["rng", 0], {"torch": 1}), r"rng\[0\]: expected the keys"),
    "rng torch state of floats": (_set(["rng", 0, "torch"], torch.zeros(5056)), r"rng\[0\]\['torch'\]"),
    "rng torch state too short": (_set(["rng", 0, "torch"], torch.zeros(7, dtype=torch.uint8)),
                                  r"rng\[0\]: not a valid random state"),
    "rng numpy junk": (_set(["rng", 0, "numpy"], ("MT19937", 1, 2)), r"rng\[0\]\['numpy'\]"),
    "rng python junk": (_set(["rng", 0, "python"], (3, (1.5,), None)), r"rng\[0\]\['python'\]"),
    "a 2 GB dtype in 60 bytes": (_set(["callbacks", "Recorder", "lrs"],
                                      {"__np__": ["x"], "dtype": "<U500000000", "shape": [1]}),
                                 r"callbacks\['Recorder'\]\['lrs'\]: NumPy dtype '<U500000000'"),
    "object dtype": (_set(["callbacks", "Recorder", "lrs"], {"__np__": [1], "dtype": "|O"}), r"only numeric"),
    "numpy shape mismatch": (_set(["callbacks", "Recorder", "lrs"], {"__np__": [1, 2], "dtype": "<f8", "shape": [3]}),
                             r"2 values for shape \(3,\)"),
    "malformed scalars": (_set(["callbacks", "Recorder", "losses"], {"__scalars__": 1, "tuple": "no"}),
                          r"malformed list of scalars"),
    "unknown part": (_set(["extra"], 1), r"unknown \['extra'\]"),
    "unknown format": (_set(["format"], "fastcb.checkpoint/99"), r"format: 'fastcb.checkpoint/99'"),
    "callbacks a list": (_set(["callbacks"], [1]), r"callbacks: expected a dict"),
    "handler a list": (_set(["handler"], [1]), r"handler: expected a dict"),
    "a huge int": (_set(["callbacks", "Recorder", "nb_batches"], [2**80]), r"out of range"),
    "a tuple key": (_set(["callbacks", "Recorder", (1, 2)], 1), r"keys are str or int"),
}


@pytest.mark.parametrize("name", list(MALFORMED))
def test_a_malformed_checkpoint_is_one_error_and_changes_nothing(saved, tmp_path, name):
    path, raw = saved
    change, where = MALFORMED[name]
    bad = copy.deepcopy(raw)
    change(bad)
    torch.save(bad, tmp_path / "models" / "bad.pth")
    learn = tiny_learner(tmp_path, n_train=24, n_valid=8, seed=3)
    learn.fit(1, 1e-3)
    learn.load("ck_1")  # a pending resume: a failed load must keep it too
    snap = _snapshot(learn)
    with pytest.raises(CheckpointError, match=where):
        learn.load("bad")
    _assert_unchanged(learn, snap)


def test_a_fresh_learner_keeps_no_optimizer_after_a_refused_load(saved, tmp_path):
    path, raw = saved
    bad = copy.deepcopy(raw)
    bad["opt"]["fastcb"]["lr"] = [float("nan")]
    torch.save(bad, tmp_path / "models" / "bad.pth")
    learn = tiny_learner(tmp_path, n_train=24, n_valid=8, seed=3)
    weight = learn.model.weight.detach().clone()
    with pytest.raises(CheckpointError):
        learn.load("bad")
    assert getattr(learn, "opt", None) is None and torch.equal(learn.model.weight, weight)


def _resumed(tmp_path, file, patience=5, **kwargs):
    learn = tiny_learner(tmp_path, n_train=24, n_valid=8, seed=9)
    learn.load(file)
    cbs = _trackers(learn, patience=patience)
    learn.fit_one_cycle(4, 1e-2, callbacks=cbs, start_epoch=2, **kwargs)
    return learn, cbs


def test_resume_restores_state_and_keeps_the_users_configuration(saved, tmp_path):
    path, raw = saved
    learn, (early, plateau) = _resumed(tmp_path, "ck_1", patience=5)
    assert early.patience == 5 and early.min_delta == -0.5 and plateau.factor == 0.5, "the user's configuration"
    assert early.operator is np.less and early.monitor == "valid_loss" and early.mode == "auto"
    assert len(learn.recorder.nb_batches) == 4, "the history of epochs 0-1 was restored, 2-3 added"
    stored = raw["callbacks"]
    assert set(stored["EarlyStoppingCallback"]) == {"best", "wait"}, "configuration is not stored"
    assert "name" not in stored["SaveModelCallback"] and "every" not in stored["SaveModelCallback"]


@pytest.mark.parametrize("key, value", [("name", "/tmp/injected"), ("patience", 1), ("monitor", "train_loss"),
                                        ("operator", 1), ("learn", None)])
def test_resume_refuses_configuration_and_unknown_keys_and_changes_nothing(saved, tmp_path, key, value):
    path, raw = saved
    bad = copy.deepcopy(raw)
    bad["callbacks"]["EarlyStoppingCallback"][key] = value
    torch.save(bad, tmp_path / "models" / "bad.pth")
    torch.manual_seed(123)
    rng_before = torch.get_rng_state()
    learn = tiny_learner(tmp_path, n_train=24, n_valid=8, seed=9)
    learn.load("bad")  # model and optimizer fit: loaded; the callbacks' part is checked when the fit resumes
    snap = _snapshot(learn)
    early = EarlyStoppingCallback(learn, patience=5)
    sched = OneCycleScheduler(learn, 1e-2)
    rng_before = torch.get_rng_state()
    with pytest.raises(CheckpointError, match=rf"callbacks\['EarlyStoppingCallback'\]: .*\['{key}'\] are not state"):
        learn.fit(4, 1e-2, callbacks=[early, sched], start_epoch=2)
    assert early.patience == 5 and early.wait == 0 and early.best == float("inf") and not hasattr(early, "name")
    assert [s.n for p in sched.scheds for s in p.values()] == [0, 0, 0, 0], "no schedule replayed or restored"
    assert learn.recorder.nb_batches == [] and learn.cb_handler.state_dict["iteration"] == 0
    assert torch.equal(torch.get_rng_state(), rng_before), "random states untouched"
    snap["resume"] = None  # the fit consumed the pending resume
    snap["opt"] = learn.opt.state_dict()  # the fit set its lr before resuming: not from the file
    _assert_unchanged(learn, snap)
    assert not list(tmp_path.glob("injected*")) and not list(__import__("pathlib").Path("/tmp").glob("injected_*"))


@pytest.mark.parametrize("key, value, where", [
    ("wait", -1, r"'wait'.*>= 0"), ("wait", 1.5, r"'wait'.*an int"), ("best", float("nan"), r"'best'.*number"),
    ("best", "low", r"'best'.*number"),
])
def test_resume_refuses_invalid_state_values(saved, tmp_path, key, value, where):
    path, raw = saved
    bad = copy.deepcopy(raw)
    bad["callbacks"]["EarlyStoppingCallback"][key] = value
    torch.save(bad, tmp_path / "models" / "bad.pth")
    with pytest.raises(CheckpointError, match=where):
        _resumed(tmp_path, "bad")


@pytest.mark.parametrize("change, where", [
    (_set(["callbacks", "OneCycleScheduler", "n"], [[1, 1]]), r"OneCycleScheduler.*step counts per phase"),
    (_set(["callbacks", "OneCycleScheduler", "n"], [[999, 999], [0, 0]]), r"past this phase's"),
    (_set(["callbacks", "OneCycleScheduler", "idx_s"], 7), r"past the 2 phases"),
    (_set(["callbacks", "Recorder", "nb_batches"], [-1]), r"Recorder.*nb_batches\[0\]"),
    (_set(["callbacks", "Recorder", "lrs"], ["x"]), r"Recorder.*lrs\[0\]"),
    (_set(["handler", 0, "iteration"], -3), r"handler: .*iteration"),
    (_set(["handler", 0, "live", "beta"], 0.5), r"handler: .*beta=0.5"),
    (_set(["handler", 0, "history", "mov_avg"], float("inf")), r"handler: .*finite"),
    (_set(["handler", 0, "history_nan"], "no"), r"handler: .*history_nan"),
])
def test_a_refused_resume_restores_nothing(saved, tmp_path, change, where):
    path, raw = saved
    bad = copy.deepcopy(raw)
    change(bad)
    torch.save(bad, tmp_path / "models" / "bad.pth")
    random.seed(5)
    py_before = random.getstate()
    with pytest.raises(CheckpointError, match=where):
        learn, _ = _resumed(tmp_path, "bad")
    assert random.getstate() == py_before


def test_resume_is_applied_once_without_replaying_the_schedules(saved, tmp_path, monkeypatch):
    jumps = []
    monkeypatch.setattr(OneCycleScheduler, "jump_to_epoch", lambda self, epoch: jumps.append(epoch))
    learn, _ = _resumed(tmp_path, "ck_1")
    assert jumps == [], "restored from the checkpoint: no replay"
    learn = tiny_learner(tmp_path, n_train=24, n_valid=8, seed=9)
    learn.fit_one_cycle(4, 1e-2, start_epoch=2)  # nothing loaded: fastai's jump
    assert jumps == [2]


def test_callback_load_state_dict_checks_first():
    learn = tiny_learner()
    early = EarlyStoppingCallback(learn, patience=3)
    early.on_train_begin()
    with pytest.raises(StateError, match=r"\['patience'\] are not state"):
        early.load_state_dict({"wait": 2, "patience": 0})
    assert early.wait == 0 and early.patience == 3
    early.load_state_dict({"wait": 2, "best": 0.5})
    assert (early.wait, early.best) == (2, 0.5) and early.state_dict() == {"best": 0.5, "wait": 2}
    assert Callback().state_dict() == {}
    with pytest.raises(StateError):
        Callback().load_state_dict({"x": 1})


def test_handler_training_state_is_built_then_swapped():
    from fastcb import CallbackHandler

    h = CallbackHandler()
    h.loss_history.add_value(2.0)
    state = h.training_state.state_dict()
    other = CallbackHandler()
    old = other.loss_history
    with pytest.raises(StateError, match="n"):
        other.training_state.load_state_dict({**state, "history": {**state["history"], "n": -1}})
    assert other.loss_history is old and other.loss_history.n == 0
    other.training_state.load_state_dict(state)
    assert other.loss_history.smooth == h.loss_history.smooth


def test_mixed_precision_declares_its_loss_scale_as_state():
    from fastcb import MixedPrecision

    learn = tiny_learner()
    mp = MixedPrecision(learn, loss_scale=2.0**10, max_noskip=7)
    learn.fit(1, 1e-3, callbacks=[mp])
    state = mp.state_dict()
    assert set(state) == {"scale", "growth_tracker"}
    other = MixedPrecision(learn, max_noskip=3)
    other.on_train_begin()
    with pytest.raises(StateError, match="scale"):
        other.load_state_dict({"scale": float("inf"), "growth_tracker": 1})
    assert other.state_dict() == {"scale": 2.0**16, "growth_tracker": 0}
    other.load_state_dict(state)
    assert other.state_dict() == state and other.scaler.get_growth_interval() == 3, "configuration kept"


def test_an_older_checkpoint_loads_its_weights_but_does_not_resume(saved, tmp_path):
    path, raw = saved
    old = {**copy.deepcopy(raw), "format": "fastcb.checkpoint/1", "callbacks": {"EarlyStoppingCallback": {"x": 1}}}
    torch.save(old, tmp_path / "models" / "old.pth")
    learn = tiny_learner(tmp_path, n_train=24, n_valid=8, seed=9)
    learn.load("old")
    assert torch.equal(learn.model.weight, raw["model"]["weight"]) and learn.__dict__.get("_resume") is None
    read = checkpoint.read_checkpoint(tmp_path / "models" / "old.pth")
    assert read.opt is not None and not read.resumable


def test_param_scheduler_resumes_its_position(tmp_path):
    from fastcb import ParamScheduler
    from fastcb.schedules import SchedCos

    def run(learn, start_epoch=None, stop=None):
        ps = ParamScheduler(learn, {"lr": SchedCos(1e-2, 1e-4)})
        cbs = [ps, SaveModelCallback(learn, every="epoch", name="ps")] + ([StopAfter(stop)] if stop is not None else [])
        learn.fit(3, 1e-2, callbacks=cbs, start_epoch=start_epoch)
        return learn, ps

    full, _ = run(tiny_learner(tmp_path, n_train=24, n_valid=8))
    run(tiny_learner(tmp_path, n_train=24, n_valid=8), stop=0)
    resumed, ps = run(tiny_learner(tmp_path, n_train=24, n_valid=8, seed=4), start_epoch=1)
    assert resumed.recorder.lrs == full.recorder.lrs and ps.train_iter == 9 and len(ps.hps["lr"]) == 9
    with pytest.raises(StateError, match="hps"):
        ps.load_state_dict({"hps": {"mom": []}})
    assert ps.train_iter == 9


def test_sizes_are_bounded_before_decoding(saved, tmp_path, monkeypatch):
    path, raw = saved
    monkeypatch.setattr(checkpoint, "MAX_ITEMS", 50)
    with pytest.raises(CheckpointError, match="more than 50 values"):
        checkpoint.read_checkpoint(path)
    monkeypatch.setattr(checkpoint, "MAX_ITEMS", 50_000_000)
    monkeypatch.setattr(checkpoint, "MAX_STR", 40)
    bad = copy.deepcopy(raw)
    bad["callbacks"]["Recorder"]["note"] = "x" * 41
    torch.save(bad, tmp_path / "bad.pth")
    with pytest.raises(CheckpointError, match=r"callbacks'\]\['Recorder'\]\['note'\]: a string of 41"):
        checkpoint.read_checkpoint(tmp_path / "bad.pth")


def test_schedules_on_the_device_resume_their_step(tmp_path):
    """The schedule continues at the saved step (the weights are not compared: see the report on
    the decoupled weight decay of on-device runs)."""
    def run(learn, start_epoch=None, stop=None):
        cbs = [SaveModelCallback(learn, every="epoch", name="dev")] + ([StopAfter(stop)] if stop is not None else [])
        learn.fit_one_cycle(3, 1e-2, callbacks=cbs, start_epoch=start_epoch, on_device=True)
        return learn

    full = run(tiny_learner(tmp_path, n_train=24, n_valid=8))
    run(tiny_learner(tmp_path, n_train=24, n_valid=8), stop=0)
    ck = torch.load(tmp_path / "models" / "dev_0.pth", weights_only=True)
    assert ck["callbacks"]["OneCycleScheduler"] == {"steps": 3}
    resumed = run(tiny_learner(tmp_path, n_train=24, n_valid=8, seed=4), start_epoch=1)
    # the epochs run after the resume (the Recorder's lrs of an on-device run are settled at train end only,
    # so a mid-run checkpoint holds placeholders for the earlier ones)
    assert [float(v) for v in resumed.recorder.lrs[3:]] == pytest.approx(full.recorder.lrs[3:], rel=1e-6)


def test_recorder_losses_written_as_stacked_scalars_resume_as_floats(saved, tmp_path):
    # earlier versions wrote the Recorder's 0-d tensor losses as one stacked tensor
    path, raw = saved
    losses = raw["callbacks"]["Recorder"]["losses"]
    raw["callbacks"]["Recorder"]["losses"] = {"__scalars__": torch.tensor(losses, dtype=torch.float64), "tuple": False}
    torch.save(raw, tmp_path / "models" / "old.pth")
    learn, _ = _resumed(tmp_path, "old")
    assert [float(v) for v in learn.recorder.losses[:len(losses)]] == [float(v) for v in losses]
    assert all(type(v) is RecordedFloat for v in learn.recorder.losses)
