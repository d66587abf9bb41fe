"""Files: the best model reloaded is the one this run wrote; writes are durable; a failed write warns
and training goes on; the CSV log continues when a run resumes."""

import errno
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from loop_helpers import Score, tiny_learner

from fastcb import Callback, CSVLogger, SaveModelCallback, checkpoint
from fastcb.errors import CheckpointWriteError, NotSavedWarning


def _weights(learn):
    return learn.model.weight.detach().clone()


def test_a_stale_best_model_never_replaces_the_trained_weights(tmp_path):
    old = tiny_learner(tmp_path, n_train=8, n_valid=8, seed=1)
    old.fit(1, 1e-1)
    old.save("bestmodel")  # left by an earlier run
    learn = tiny_learner(tmp_path, n_train=8, n_valid=8, metrics=[Score([math.nan, math.nan])])
    learn.fit(2, 1e-1, callbacks=[SaveModelCallback(learn, monitor="score", mode="max")])  # nan: never better
    trained = _weights(learn)
    assert not torch.equal(trained, old.model.weight), "the stale file was not loaded"
    assert torch.equal(trained, learn.model.weight)


def test_the_best_model_this_run_wrote_is_reloaded_unless_replaced(tmp_path):
    learn = tiny_learner(tmp_path, n_train=8, n_valid=8, metrics=[Score([0.9, 0.1, 0.2])])
    snaps = []

    class Snap(Callback):
        _order = 10

        def on_epoch_end(self, **kw):
            snaps.append(_weights(learn))

    learn.fit(3, 1e-1, callbacks=[Snap(), SaveModelCallback(learn, monitor="score", mode="max")])
    assert torch.equal(learn.model.weight, snaps[0])

    class Replace(Callback):
        _order = 60  # after SaveModelCallback: someone else writes the file

        def on_epoch_end(self, epoch, **kw):
            if epoch == 1:
                other = tiny_learner(tmp_path, n_train=8, n_valid=8, seed=7)
                other.save("bestmodel")

    learn = tiny_learner(tmp_path, n_train=8, n_valid=8, metrics=[Score([0.9, 0.1, 0.2])])
    with pytest.warns(NotSavedWarning, match="changed since this run wrote it"):
        learn.fit(2, 1e-1, callbacks=[SaveModelCallback(learn, monitor="score", mode="max"), Replace()])
    assert not torch.equal(learn.model.weight, tiny_learner(seed=7).model.weight)


def _failing_save(monkeypatch, fail_epochs, exc):
    real, calls = checkpoint.torch.save, []

    def save(obj, f, *args, **kwargs):
        calls.append(1)
        if len(calls) - 1 in fail_epochs:
            f.write(b"partial")
            raise exc
        return real(obj, f, *args, **kwargs)

    monkeypatch.setattr(checkpoint.torch, "save", save)


@pytest.mark.parametrize("exc", [OSError(errno.ENOSPC, "No space left on device"),
                                 RuntimeError("PytorchStreamWriter failed writing file data/0: file write failed")])
def test_a_failed_checkpoint_write_warns_once_and_training_goes_on(tmp_path, monkeypatch, exc):
    learn = tiny_learner(tmp_path, n_train=8, n_valid=8)
    _failing_save(monkeypatch, {1, 2}, exc)
    with pytest.warns(NotSavedWarning) as record:
        learn.fit(4, 1e-2, callbacks=[SaveModelCallback(learn, every="epoch", name="ck")])
    messages = [str(w.message) for w in record]
    assert len(messages) == 2, "one warning per cause, then one at train end"
    assert "epoch 1 was not saved" in messages[0] and "epochs [1, 2] were not saved" in messages[1]
    assert len(learn.recorder.nb_batches) == 4, "training went on"
    folder = tmp_path / "models"
    assert sorted(p.name for p in folder.iterdir()) == ["ck_0.pth", "ck_3.pth"], "no temporary file left"
    torch.load(folder / "ck_3.pth", weights_only=True)


def test_a_failed_overwrite_leaves_the_last_good_file(tmp_path, monkeypatch):
    learn = tiny_learner(tmp_path, n_train=8, n_valid=8)
    path = learn.save("ck", return_path=True)
    good = path.read_bytes()
    _failing_save(monkeypatch, {0}, OSError(errno.EIO, "I/O error"))
    with pytest.raises(CheckpointWriteError, match="I/O error") as info:
        learn.save("ck")
    assert isinstance(info.value, OSError) and info.value.errno == errno.EIO
    assert path.read_bytes() == good and os.listdir(path.parent) == ["ck.pth"]


def test_writes_are_synced_and_leftovers_of_a_killed_save_are_swept(tmp_path, monkeypatch):
    learn = tiny_learner(tmp_path)
    folder = tmp_path / "models"
    folder.mkdir()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    leftover = checkpoint._temp_name(folder / "ck.pth").name.rsplit("-", 1)[0] + f"-{int(dead.stdout)}.tmp"
    (folder / leftover).write_bytes(b"x" * 1000)
    alive = folder / (leftover.rsplit("-", 1)[0] + f"-{os.getppid()}.tmp")  # a save still running elsewhere
    alive.write_bytes(b"y")
    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(checkpoint.os, "fsync", lambda fd: (synced.append(Path(f"/proc/self/fd/{fd}").resolve()),
                                                            real_fsync(fd)))
    learn.save("ck")
    assert sorted(p.name for p in folder.iterdir()) == sorted(["ck.pth", alive.name])
    assert folder.resolve() in synced, "the folder is synced after the rename"
    assert len(synced) == 2, "the file before the rename, then the folder"


def test_csv_logger_on_a_full_disk_warns_and_training_goes_on(tmp_path):
    if not os.path.exists("/dev/full"):
        pytest.skip("needs /dev/full")
    learn = tiny_learner(tmp_path, n_train=16, n_valid=8)
    logger = CSVLogger(learn)
    logger.path = Path("/dev/full")
    with pytest.warns(NotSavedWarning) as record:
        learn.fit(3, 1e-2, callbacks=[logger])
    messages = [str(w.message) for w in record]
    assert len(messages) == 2 and "epoch 0 was not logged" in messages[0]
    assert "epochs [0, 1, 2] are not in" in messages[1]
    assert len(learn.recorder.nb_batches) == 3


def test_csv_logger_appends_when_a_run_resumes(tmp_path):
    learn = tiny_learner(tmp_path, n_train=16, n_valid=8)

    class Stop(Callback):
        _order = 100

        def on_epoch_end(self, epoch, **kw):
            return {"stop_training": epoch == 1}

    learn.fit(4, 1e-2, callbacks=[CSVLogger(learn), SaveModelCallback(learn, every="epoch", name="ck"), Stop()])
    resumed = tiny_learner(tmp_path, n_train=16, n_valid=8, seed=3)
    resumed.fit(4, 1e-2, start_epoch=2, callbacks=[CSVLogger(resumed), SaveModelCallback(resumed, every="epoch",
                                                                                         name="ck")])
    lines = (tmp_path / "history.csv").read_text().splitlines()
    assert lines[0].startswith("epoch,train_loss") and [ln.split(",")[0] for ln in lines[1:]] == ["0", "1", "2", "3"]
    learn.fit(1, 1e-2, callbacks=[CSVLogger(learn)])  # a new run overwrites, as before
    assert len((tmp_path / "history.csv").read_text().splitlines()) == 2


def test_save_model_train_end_after_a_failed_train_begin_reports_the_error_only(tmp_path):
    learn = tiny_learner(tmp_path, n_train=8, n_valid=8)

    class Fails(Callback):
        _order = -100

        def on_train_begin(self, **kwargs):
            raise RuntimeError("setup failed")

    with pytest.raises(RuntimeError, match="setup failed"):
        learn.fit(1, 1e-2, callbacks=[Fails(), SaveModelCallback(learn), CSVLogger(learn)])
    assert not (tmp_path / "models").exists() and not (tmp_path / "history.csv").exists()
