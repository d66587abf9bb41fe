"""Checkpoints already on disk keep loading: `tests/data/checkpoint_v2.pth` was written by fastcb
before checkpointing became a loop over each part's declared state (main at 9bb9cd1, by
`write_fixture` below: `PYTHONPATH=python python tests/test_checkpoint_compat.py`). It loads,
resumes and continues the run; a checkpoint written now reads back with the same layout."""

import dataclasses
import shutil
import sys
from pathlib import Path

import numpy as np
import torch
from loop_helpers import StopAfter
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from fastcb import Callback, DataBunch, EarlyStoppingCallback, Learner, SaveModelCallback, checkpoint

FIXTURE = Path(__file__).parent / "data" / "checkpoint_v2.pth"
EPOCHS = 3


class NumpyState(Callback):
    """Declared state that holds NumPy values (a float32 scalar and an int64 array)."""

    state_attrs = ("scale", "counts")

    def on_train_begin(self, **kwargs):
        self.scale, self.counts = np.float32(1.0), np.zeros(3, dtype=np.int64)

    def on_epoch_end(self, epoch, **kwargs):
        self.scale = np.float32(self.scale * 1.5)
        self.counts[epoch % 3] += 1



class SeenRng(Callback):
    """The torch random state when each epoch begins."""

    _order = 100

    def __init__(self):
        self.states = {}

    def on_epoch_begin(self, epoch, **kwargs):
        self.states[epoch] = torch.get_rng_state()


def learner(path, seed=0):
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(50, 4, generator=g)
    y = (x[:, 0] > 0).long()
    data = DataBunch(DataLoader(TensorDataset(x[:40], y[:40]), batch_size=8, shuffle=True),
                     DataLoader(TensorDataset(x[40:], y[40:]), batch_size=8), device="cpu", path=path)
    return Learner(data, nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2)),
                   loss_func=nn.functional.cross_entropy, silent=True)


def run(learn, start_epoch=None, extra=()):
    cbs = [NumpyState(), EarlyStoppingCallback(learn, patience=5),
           SaveModelCallback(learn, every="epoch", name="ck"), *extra]
    learn.fit_one_cycle(EPOCHS, 1e-2, callbacks=cbs, start_epoch=start_epoch)
    return cbs


def write_fixture():
    """Write `FIXTURE`: a run of `EPOCHS` stopped after epoch 1, its checkpoint `ck_1`."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        run(learner(Path(tmp)), extra=[StopAfter(1)])
        FIXTURE.parent.mkdir(exist_ok=True)
        shutil.copy(Path(tmp) / "models" / "ck_1.pth", FIXTURE)


def _layout(v):
    """The shape of a checkpoint's data: dict keys and container kinds, leaves as their type names."""
    if isinstance(v, dict):
        return {k: _layout(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return (type(v).__name__, [_layout(x) for x in v[:3]])
    return type(v).__name__


def test_a_checkpoint_written_before_loads_and_resumes(tmp_path):
    raw = torch.load(FIXTURE, weights_only=True)
    assert raw["format"] == "fastcb.checkpoint/2" and raw["epoch"] == 1
    (tmp_path / "models").mkdir()
    shutil.copy(FIXTURE, tmp_path / "models" / "ck_1.pth")
    learn = learner(tmp_path, seed=7)
    learn.load("ck_1")
    for k, v in learn.model.state_dict().items():
        assert torch.equal(v, raw["model"][k]), k
    seen = SeenRng()
    numpy_state, early, _, _ = run(learn, start_epoch=2, extra=[seen])
    rec = learn.recorder
    assert rec.nb_batches == [5] * EPOCHS
    saved = raw["callbacks"]["Recorder"]
    assert [float(v) for v in rec.losses[:10]] == saved["losses"]
    assert [float(v) for v in rec.val_losses[:2]] == saved["val_losses"]
    # the schedule continued where it was: its lrs are those of an uninterrupted run
    full = learner(tmp_path / "full")
    run(full)
    assert rec.lrs == full.recorder.lrs and rec.moms == full.recorder.moms
    # NumPy state came back as NumPy values, then went on
    assert type(numpy_state.scale) is np.float32 and numpy_state.scale == np.float32(1.5**3)
    assert numpy_state.counts.dtype == np.int64 and numpy_state.counts.tolist() == [1, 1, 1]
    assert early.best <= saved_best(raw) and isinstance(early.wait, int)
    # the random states are the saved ones when epoch 2 begins
    assert torch.equal(seen.states[2], raw["rng"][0]["torch"])


def saved_best(raw):
    return raw["callbacks"]["EarlyStoppingCallback"]["best"]


def test_a_checkpoint_written_now_reads_as_one_written_before(tmp_path):
    run(learner(tmp_path), extra=[StopAfter(1)])
    now = checkpoint.read_checkpoint(tmp_path / "models" / "ck_1.pth")
    before = checkpoint.read_checkpoint(FIXTURE)
    assert _layout(dataclasses.asdict(now)) == _layout(dataclasses.asdict(before))
    # the one change in the file: the handler's part is per rank, like the random states
    raw = torch.load(tmp_path / "models" / "ck_1.pth", weights_only=True)
    assert isinstance(raw["handler"], list) and raw["handler"][0] == checkpoint.encode(now.handler[0])
    assert isinstance(torch.load(FIXTURE, weights_only=True)["handler"], dict)


if __name__ == "__main__":
    sys.exit(write_fixture())
