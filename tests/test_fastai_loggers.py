"""fastai v1's sampling, accumulation, epoch-tracking, TensorBoard and MLflow callbacks."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from loop_helpers import tiny_learner
from torch.utils.data import DataLoader, TensorDataset

from fastcb import (
    AccumulateScheduler,
    Callback,
    DataBunch,
    LearnerTensorboardWriter,
    MLFlowTracker,
    OverSamplingCallback,
    TrackEpochCallback,
    UnderSamplingCallback,
    accuracy,
)


def _imbalanced():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(40, 10, generator=g)
    y = torch.tensor([0] * 30 + [1] * 10)
    data = DataBunch(DataLoader(TensorDataset(x, y), batch_size=5, shuffle=True), DataLoader(TensorDataset(x, y), 8),
                     device="cpu")
    return tiny_learner(), data


class Seen(Callback):
    """Keeps the training targets."""

    def __init__(self):
        self.seen = []

    def on_batch_begin(self, last_target, train, **kwargs):
        if train:
            self.seen += last_target.tolist()


@pytest.mark.parametrize("cls, n", [(OverSamplingCallback, 60), (UnderSamplingCallback, 20)])
def test_resampling_draws_balanced_epochs_and_restores_the_loader(cls, n):
    learn, data = _imbalanced()
    learn.data = data
    original = data.train_dl
    seen = Seen()
    torch.manual_seed(0)
    learn.fit(3, callbacks=[cls(learn), seen])
    assert len(seen.seen) == 3 * n and learn.data.train_dl is original
    frac = np.mean(seen.seen)
    assert 0.3 < frac < 0.7  # about balanced; the data is 25% ones


def test_accumulate_scheduler_steps_on_the_mean_gradient_of_n_batches():
    learn = tiny_learner(n_train=16, n_valid=0, bs=4, loss_func=torch.nn.CrossEntropyLoss(reduction="sum"))
    ref = tiny_learner(n_train=16, n_valid=0, bs=8, loss_func=torch.nn.CrossEntropyLoss(reduction="mean"))
    ref.model.load_state_dict(learn.model.state_dict())
    learn.fit(1, 0.1, callbacks=[AccumulateScheduler(learn, n_step=2)])
    ref.fit(1, 0.1)
    torch.testing.assert_close(learn.model.weight, ref.model.weight)
    with pytest.raises(ValueError, match="n_step"):
        AccumulateScheduler(learn, n_step=0)


def test_track_epoch_continues_after_the_recorded_epoch(tmp_path):
    learn = tiny_learner(tmp_path)
    learn.fit(2, callbacks=[TrackEpochCallback(learn)])
    assert (tmp_path / "models" / "epoch").read_text() == "1"
    cb = TrackEpochCallback(learn)
    assert cb.start_epoch == 2
    learn.fit(3, callbacks=[cb])
    assert len(learn.recorder.nb_batches) == 1 and (tmp_path / "models" / "epoch").read_text() == "2"
    cb.restart()
    assert TrackEpochCallback(learn).start_epoch == 0 and TrackEpochCallback(learn, epoch_offset=5).start_epoch == 5


def test_tensorboard_writer_writes_readable_events(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    learn = tiny_learner(metrics=[accuracy])
    learn.fit(2, callbacks=[LearnerTensorboardWriter(learn, tmp_path, "run", loss_iters=2, hist_iters=3,
                                                     stats_iters=4)])
    acc = EventAccumulator(str(tmp_path / "run"), size_guidance={"scalars": 0, "histograms": 0})
    acc.Reload()
    tags = acc.Tags()
    n = len(learn.data.train_dl) * 2
    train = acc.Scalars("/metrics/train_loss")
    assert [e.step for e in train] == [i for i in range(1, n) if i % 2 == 0]
    valid = acc.Scalars("/metrics/valid_loss")
    np.testing.assert_allclose([e.value for e in valid], [float(v) for v in learn.recorder.val_losses], rtol=1e-6)
    accs = acc.Scalars("/metrics/accuracy")
    np.testing.assert_allclose([e.value for e in accs], [float(m[0]) for m in learn.recorder.metrics], rtol=1e-6)
    assert "model/weights/weight" in tags["histograms"]
    assert "model_stats/gradients/avg_norm" in tags["scalars"]


def test_mlflow_tracker_logs_to_a_local_store(tmp_path, monkeypatch):
    mlflow = pytest.importorskip("mlflow")
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # mlflow >= 3.x: the file store is in maintenance
    note = tmp_path / "notes.txt"
    note.write_text("run notes")
    uri = (tmp_path / "store").as_uri()
    learn = tiny_learner(metrics=[accuracy])
    learn.fit(2, callbacks=[MLFlowTracker(learn, "exp", {"bs": 8, "arch": "linear"}, nb_path=note, uri=uri)])
    client = mlflow.tracking.MlflowClient(uri)
    exp = client.get_experiment_by_name("exp")
    (run,) = client.search_runs([exp.experiment_id])
    assert run.data.params == {"bs": "8", "arch": "linear"} and run.info.status == "FINISHED"
    hist = client.get_metric_history(run.info.run_id, "valid_loss")
    assert [m.step for m in hist] == [0, 1]
    np.testing.assert_allclose([m.value for m in hist], [float(v) for v in learn.recorder.val_losses], rtol=1e-6)
    assert [a.path for a in client.list_artifacts(run.info.run_id)] == ["notes.txt"]
    assert F is not None
