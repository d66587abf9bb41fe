"""Exact resume: a run stopped after epoch k and resumed from its checkpoint ends bit for bit like the
uninterrupted run (CPU); bad checkpoints are refused before anything is changed."""

import io
import random

import numpy as np
import pytest
import torch
from loop_helpers import Score, StopAfter
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from fastcb import (
    Callback,
    DataBunch,
    EarlyStoppingCallback,
    Learner,
    ReduceLROnPlateauCallback,
    SaveModelCallback,
    accuracy,
    checkpoint,
)
from fastcb.checkpoint import CheckpointError

EPOCHS, STOP = 4, 1  # runs of 4 epochs; the interrupted one stops after epoch 1 and resumes at 2


def data(path, generator=None):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(52, 10, generator=g)
    y = (x[:, 0] - x[:, 1] > 0).long()
    train = DataLoader(TensorDataset(x[:40], y[:40]), batch_size=8, shuffle=True, generator=generator)
    valid = DataLoader(TensorDataset(x[40:], y[40:]), batch_size=8)
    return DataBunch(train, valid, device="cpu", path=path)


def learner(path, seed=0, generator=None, **kwargs):
    """A fresh process: seeds set, model built (dropout: the torch RNG matters in every step)."""
    torch.manual_seed(seed)
    np.random.seed(seed + 1)
    random.seed(seed + 2)
    model = nn.Sequential(nn.Linear(10, 16), nn.Dropout(0.3), nn.ReLU(), nn.Linear(16, 2))
    kwargs.setdefault("metrics", [accuracy])
    kwargs.setdefault("loss_func", nn.functional.cross_entropy)
    return Learner(data(path, generator), model, silent=True, **kwargs)


class Jitter(Callback):
    """Input noise from Python's and NumPy's generators: their states matter too."""

    def on_batch_begin(self, last_input, train, **kwargs):
        if train:
            return {"last_input": last_input * (1 + 0.05 * random.random()) + 0.05 * float(np.random.rand())}



def assert_same_run(a, b):
    ra, rb = a.recorder, b.recorder
    assert ra.nb_batches == rb.nb_batches == [5] * EPOCHS
    assert len(ra.losses) == len(rb.losses) == 5 * EPOCHS
    assert ra.losses == rb.losses  # floats, bit for bit
    assert ra.lrs == rb.lrs and ra.moms == rb.moms
    assert ra.val_losses == rb.val_losses and ra.metrics == rb.metrics
    for (k, v), w in zip(a.model.state_dict().items(), b.model.state_dict().values()):
        assert torch.equal(v, w), k
    sa, sb = a.opt.opt.state_dict()["state"], b.opt.opt.state_dict()["state"]
    assert all(torch.equal(sa[i][k], sb[i][k]) for i in sa for k in sa[i])


def one_cycle(learn, start_epoch=None, extra=()):
    cbs = [Jitter(), SaveModelCallback(learn, every="epoch", name="ck"), *extra]
    learn.fit_one_cycle(EPOCHS, 1e-2, callbacks=cbs, start_epoch=start_epoch)
    return learn


@pytest.mark.parametrize("loader_generator", [False, True], ids=["global-rng", "loader-generator"])
def test_stopped_and_resumed_one_cycle_run_equals_the_uninterrupted_one(tmp_path, loader_generator):
    gen = (lambda: torch.Generator().manual_seed(11)) if loader_generator else (lambda: None)
    full = one_cycle(learner(tmp_path / "full", generator=gen()))
    stopped = one_cycle(learner(tmp_path / "part", generator=gen()), extra=[StopAfter(STOP)])
    assert len(stopped.recorder.nb_batches) == STOP + 1
    # a new process: other seeds, other initial weights; SaveModelCallback loads ck_1 when jumping to epoch 2
    resumed = one_cycle(learner(tmp_path / "part", seed=5, generator=gen()), start_epoch=STOP + 1)
    assert_same_run(full, resumed)


def test_without_the_random_states_the_resumed_run_differs(tmp_path, monkeypatch):
    full = one_cycle(learner(tmp_path / "full"))
    one_cycle(learner(tmp_path / "part"), extra=[StopAfter(STOP)])
    monkeypatch.setattr(checkpoint, "set_rng_state", lambda state, learn=None: None)
    resumed = one_cycle(learner(tmp_path / "part", seed=5), start_epoch=STOP + 1)
    assert not torch.equal(full.model[0].weight, resumed.model[0].weight)


def test_load_then_fit_from_start_epoch_restores_trackers_and_lr_changes(tmp_path):
    scores = [1.0, 2.0, 3.0, 0.5, 4.0]

    def run(learn, start_epoch=None, stop=None):
        cbs = [Jitter(), ReduceLROnPlateauCallback(learn, monitor="score", mode="min", patience=1, factor=0.5),
               EarlyStoppingCallback(learn, monitor="score", mode="min", patience=3)]
        if stop is not None:
            cbs.append(StopAfter(stop))
        learn.fit(EPOCHS, 1e-2, callbacks=cbs, start_epoch=start_epoch)
        return learn

    full = run(learner(tmp_path, metrics=[accuracy, Score(scores)]))
    # the uninterrupted run halves the lr after epoch 2 (waits at 1 and 2 > patience)
    assert full.recorder.lrs[-1] == pytest.approx(full.recorder.lrs[0] / 2)
    part = learner(tmp_path, metrics=[accuracy, Score(scores)])
    part.fit(EPOCHS, 1e-2, callbacks=[Jitter(), ReduceLROnPlateauCallback(part, monitor="score", mode="min",
                                                                          patience=1, factor=0.5),
                                      EarlyStoppingCallback(part, monitor="score", mode="min", patience=3),
                                      StopAfter(STOP)])
    part.save("after1", epoch=STOP)  # outside the fit: give the epoch explicitly
    resumed = learner(tmp_path, seed=9, metrics=[accuracy, Score(scores)])
    resumed.load("after1")
    run(resumed, start_epoch=STOP + 1)
    assert_same_run(full, resumed)


def test_the_checkpoint_is_plain_data_with_every_part(tmp_path):
    learn = one_cycle(learner(tmp_path), extra=[StopAfter(0)])
    ck = torch.load(tmp_path / "models" / "ck_0.pth", weights_only=True)
    assert ck["format"] == checkpoint.FORMAT and ck["epoch"] == 0
    # declared state only: callbacks without state (Jitter, StopAfter) are not stored
    assert set(ck["callbacks"]) == {"Recorder", "OneCycleScheduler", "SaveModelCallback"}
    assert ck["callbacks"]["OneCycleScheduler"] == {"idx_s": 0, "n": [[5, 5], [0, 0]]}  # lr and momentum, 5 steps
    assert set(ck["callbacks"]["SaveModelCallback"]) == {"best", "written"}
    losses = ck["callbacks"]["Recorder"]["losses"]
    assert len(losses) == 5 and all(type(v) is float for v in losses)
    assert ck["handler"][0]["iteration"] == 5 and ck["handler"][0]["history"]["n"] == 5 and len(ck["handler"]) == 1
    rng = ck["rng"][0]
    assert set(rng) >= {"torch", "numpy", "python", "loader"} and len(ck["rng"]) == 1
    assert learn.recorder.nb_batches == [5]
    read = checkpoint.read_checkpoint(tmp_path / "models" / "ck_0.pth")
    assert read.resumable and read.epoch == 0 and isinstance(read.rng[0]["numpy"][1], np.ndarray)


def test_resuming_at_the_wrong_epoch_is_a_clear_error(tmp_path):
    one_cycle(learner(tmp_path), extra=[StopAfter(STOP)])
    learn = learner(tmp_path, seed=3)
    learn.load("ck_1")
    with pytest.raises(CheckpointError, match="start_epoch=2"):
        learn.fit_one_cycle(EPOCHS, 1e-2, start_epoch=3)
    learn.load("ck_1")
    learn.fit(1, 1e-2)  # from epoch 0: a new run from the loaded weights, the rest is dropped
    assert learn.recorder.nb_batches == [5]
    with pytest.raises(ValueError, match="start_epoch"):
        learn.fit(2, 1e-2, start_epoch=3)


def _snapshot(learn):
    return ([p.detach().clone() for p in learn.model.state_dict().values()],
            {k: v for k, v in learn.opt.opt.state_dict()["state"].items()}, list(learn.opt._lr))


def _unchanged(learn, snap):
    weights, state, lrs = snap
    assert all(torch.equal(a, b) for a, b in zip(weights, learn.model.state_dict().values()))
    now = learn.opt.opt.state_dict()["state"]
    assert set(now) == set(state) and all(torch.equal(now[i][k], state[i][k]) for i in state for k in state[i])
    assert learn.opt._lr == lrs


def test_truncated_or_mismatched_checkpoints_are_refused_and_change_nothing(tmp_path):
    learn = learner(tmp_path)
    learn.fit(1, 1e-2)
    path = learn.save("good", return_path=True)
    raw = path.read_bytes()
    other = learner(tmp_path, seed=4)
    other.fit(1, 3e-2)
    snap = _snapshot(other)
    (tmp_path / "models" / "cut.pth").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(CheckpointError, match="cut.pth is not a complete checkpoint"):
        other.load("cut")
    (tmp_path / "models" / "junk.pth").write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="not a complete checkpoint"):
        other.load("junk")
    _unchanged(other, snap)

    wider = Learner(data(tmp_path), nn.Sequential(nn.Linear(10, 32), nn.Dropout(0.3), nn.ReLU(), nn.Linear(32, 2)),
                    loss_func=nn.functional.cross_entropy, silent=True)
    wider.fit(1, 1e-2)
    wider.save("wider")
    with pytest.raises(CheckpointError, match=r"model: .*shapes: 0.weight: \(32, 10\) in the checkpoint"):
        other.load("wider")
    deeper = Learner(data(tmp_path), nn.Sequential(nn.Linear(10, 16), nn.Dropout(0.3), nn.ReLU(), nn.Linear(16, 2),
                                                   nn.Linear(2, 2)), loss_func=nn.functional.cross_entropy, silent=True)
    deeper.fit(1, 1e-2)
    deeper.save("deeper")
    with pytest.raises(CheckpointError, match=r"missing keys \[\], unexpected keys \['4.bias', '4.weight'\]"):
        other.load("deeper")
    _unchanged(other, snap)

    # the model part fits, the optimizer part doesn't (an SGD with momentum over other param groups)
    split = learner(tmp_path, seed=4)
    split.split(lambda m: [m[:2], m[2:]])
    split.opt = None
    split.fit(1, 1e-2)
    split.save("two_groups")
    with pytest.raises(CheckpointError, match=r"opt: sd\['param_groups'\]: param groups of sizes \[2, 2\], this optimizer's \[4\]"):
        other.load("two_groups")
    _unchanged(other, snap)  # the model was not loaded either
    other.load("two_groups", with_opt=False)  # weights only: fine
    assert torch.equal(other.model[0].weight, split.model[0].weight)


def test_save_and_load_through_file_objects_and_the_old_format(tmp_path):
    learn = learner(tmp_path)
    learn.fit(1, 1e-2)
    buf = io.BytesIO()
    learn.save(buf)
    buf.seek(0)
    other = learner(tmp_path, seed=2)
    other.load(buf)
    assert torch.equal(other.model[0].weight, learn.model[0].weight) and other.opt._lr == learn.opt._lr
    old = io.BytesIO()  # fastcb's earlier {model, opt} files still load
    torch.save({"model": learn.model.state_dict(), "opt": learn.opt.state_dict()}, old)
    old.seek(0)
    third = learner(tmp_path, seed=3)
    third.load(old)
    assert torch.equal(third.model[0].weight, learn.model[0].weight)
    assert not (tmp_path / "models").exists()  # nothing written where no file was named


def test_plain_encoding_round_trips_numpy_values_and_refuses_objects():
    vals = [np.float32(1.5), np.float64(2.25), np.arange(6, dtype=np.int64).reshape(2, 3), np.zeros((0, 3)),
            (1, "a", None), [torch.tensor(1.0), torch.tensor(2.0)], {"k": np.array([0.1, 0.2])}]
    for v in vals:
        out = checkpoint.decode(checkpoint.encode(v))
        if isinstance(v, (np.ndarray, np.generic)):
            assert type(out) is type(v) and out.dtype == v.dtype and np.array_equal(out, v) and out.shape == v.shape
        elif isinstance(v, list):
            assert all(torch.equal(a, b) for a, b in zip(out, v))
        elif isinstance(v, dict):
            assert np.array_equal(out["k"], v["k"])
        else:
            assert out == v
    for bad, what in [(nn.Linear(1, 1), "Linear"), (lambda: 0, "function"), (np.array(["a"]), "dtype"),
                      ({(1, 2): 0}, "key")]:
        with pytest.raises(TypeError, match=what):
            checkpoint.encode(bad, "x")
