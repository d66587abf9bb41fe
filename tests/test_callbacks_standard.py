"""Recorder (records, plots), trackers, CSVLogger, NaN stop, gradient clipping, mixed precision, progress bars."""

import contextlib
import io

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from loop_helpers import Score, tiny_learner

from fastcb import Callback, accuracy
from fastcb.callbacks import (
    CSVLogger,
    EarlyStoppingCallback,
    GradientClipping,
    MixedPrecision,
    ReduceLROnPlateauCallback,
    SaveModelCallback,
    StopAfterNBatches,
    TerminateOnNaNCallback,
)
from fastcb.progress import QuietMasterBar


def test_recorder_records_per_batch_and_per_epoch():
    learn = tiny_learner(n_train=24, n_valid=16, bs=8, metrics=[accuracy, Score([0.1, 0.2])])
    learn.fit(2, 1e-2)
    rec = learn.recorder
    assert rec.names == ["epoch", "train_loss", "valid_loss", "accuracy", "score", "time"]
    assert len(rec.lrs) == len(rec.moms) == len(rec.losses) == 6 and rec.nb_batches == [3, 3]
    assert rec.lrs == [1e-2] * 6 and rec.moms == [0.9] * 6
    assert len(rec.val_losses) == 2 and [m[1] for m in rec.metrics] == [0.1, 0.2]
    assert learn.recorder is rec and rec.learn is learn


def test_recorder_writes_the_table(capsys):
    learn = tiny_learner(n_train=16, n_valid=8, metrics=[accuracy], silent=False)
    with contextlib.redirect_stdout(io.StringIO()) as out:
        learn.fit(1, 1e-2)
    text = out.getvalue()
    assert "train_loss" in text and "accuracy" in text
    row = [line for line in text.splitlines() if line.strip().startswith("0 ")]
    assert row and f"{float(learn.recorder.losses[-1]):.6f}" in row[-1]


def test_quiet_learner_keeps_the_table_in_the_quiet_bar():
    lines = []

    class Grab(Callback):
        def on_train_end(self, pbar, **kw):
            lines.extend(pbar.lines)

    learn = tiny_learner(n_train=16, n_valid=8)
    learn.callback_fns[0].keywords["silent"] = False  # the Recorder writes, the quiet bar keeps the lines
    learn.fit(1, 1e-2, callbacks=[Grab()])
    assert lines[0][:3] == ["epoch", "train_loss", "valid_loss"] and lines[1][0] == "0"


def test_plots_save_to_a_file_without_display_or_return_the_figure(tmp_path):
    learn = tiny_learner(tmp_path, n_train=80, n_valid=16, metrics=[accuracy])
    learn.fit(2, 1e-2)
    rec = learn.recorder
    rec.silent = True
    assert rec.plot_lr(show_moms=True) is None and (tmp_path / "plot_lr.png").is_file()
    rec.plot_losses()
    rec.plot_metrics()
    rec.plot(skip_start=1, skip_end=1, suggestion=True)
    for name in ("plot_losses", "plot_metrics", "plot"):
        assert (tmp_path / f"{name}.png").stat().st_size > 0
    assert rec.min_grad_lr == pytest.approx(1e-2)
    fig = rec.plot_lr(return_fig=True)
    assert list(fig.axes[0].lines[0].get_ydata()) == pytest.approx(rec.lrs)
    plt.close("all")
    learn.fit(1, 1e-2)
    learn.metrics = []
    learn.fit(1, 1e-2)
    with pytest.raises(ValueError, match="no metrics"):
        learn.recorder.plot_metrics()


def test_early_stopping_waits_for_patience():
    learn = tiny_learner(n_train=8, n_valid=8, metrics=[Score([0.5, 0.6, 0.55, 0.58, 0.9, 1.0])])
    learn.fit(6, 1e-3, callbacks=[EarlyStoppingCallback(learn, monitor="score", mode="max", patience=1)])
    assert len(learn.recorder.nb_batches) == 4  # epochs 2 and 3 did not beat 0.6
    learn = tiny_learner(n_train=8, n_valid=8, metrics=[Score([0.5, 0.4, 0.3])])
    learn.fit(3, 1e-3, callbacks=[EarlyStoppingCallback(learn, monitor="score", min_delta=0.05, patience=0)])
    assert len(learn.recorder.nb_batches) == 2  # 'auto' maximises a non-loss name: 0.4 is no improvement
    with pytest.raises(ValueError, match="mode"):
        EarlyStoppingCallback(learn, mode="best")
    bad = tiny_learner(n_train=8, n_valid=8)
    with pytest.raises(ValueError, match="monitor"):
        bad.fit(1, 1e-3, callbacks=[EarlyStoppingCallback(bad, monitor="acuracy")])


def test_save_model_keeps_and_reloads_the_best(tmp_path):
    learn = tiny_learner(tmp_path, n_train=8, n_valid=8, metrics=[Score([0.1, 0.9, 0.3])])
    snapshots = []

    class Snap(Callback):
        _order = 10

        def on_epoch_end(self, **kw):
            snapshots.append(learn.model.weight.detach().clone())

    learn.fit(3, 1e-1, callbacks=[Snap(), SaveModelCallback(learn, monitor="score", mode="max", name="best")])
    assert (tmp_path / "models" / "best.pth").is_file()
    assert torch.equal(learn.model.weight, snapshots[1])
    learn.fit(2, 1e-2, callbacks=[SaveModelCallback(learn, every="epoch", name="ep")])
    assert {p.name for p in (tmp_path / "models").iterdir()} >= {"ep_0.pth", "ep_1.pth"}
    with pytest.raises(ValueError, match="every"):
        SaveModelCallback(learn, every="batch")


def test_reduce_lr_on_plateau():
    learn = tiny_learner(n_train=8, n_valid=8, metrics=[Score([1.0, 2.0, 3.0, 4.0])], opt_func=torch.optim.SGD)
    cb = ReduceLROnPlateauCallback(learn, monitor="score", mode="min", patience=1, factor=0.5, min_lr=1e-4)
    learn.fit(4, 0.1, callbacks=[cb])
    # best stays 1.0: waits at epochs 1, 2 (> patience at 2: halve), then 3 (wait 1)
    assert learn.opt.lr == pytest.approx(0.05) and cb.wait == 1
    with pytest.raises(ValueError, match="factor"):
        ReduceLROnPlateauCallback(learn, factor=2)


def test_terminate_on_nan_stops_and_skips_validation():
    learn = tiny_learner(n_train=32, n_valid=8, loss_func=lambda out, y: out.sum() * float("nan"))
    learn.fit(3, 1e-3, callbacks=[TerminateOnNaNCallback()])
    assert learn.recorder.nb_batches == [1] and learn.recorder.val_losses == [None]


def test_csv_logger_writes_one_row_per_epoch(tmp_path):
    learn = tiny_learner(tmp_path, n_train=16, n_valid=8, metrics=[accuracy])
    logger = CSVLogger(learn, filename="hist")
    learn.fit(2, 1e-2, callbacks=[logger])
    rows = logger.read_logged_file()
    rows = rows.to_dict("records") if hasattr(rows, "to_dict") else rows
    assert [r["epoch"] for r in rows] == ["0", "1"] or [r["epoch"] for r in rows] == [0, 1]
    assert float(rows[1]["valid_loss"]) == pytest.approx(float(learn.recorder.val_losses[1]), abs=1e-6)
    assert set(rows[0]) == {"epoch", "train_loss", "valid_loss", "accuracy", "time"}
    learn.fit(1, 1e-2, callbacks=[CSVLogger(learn, filename="hist", append=True)])
    assert len((tmp_path / "hist.csv").read_text().splitlines()) == 4


def test_gradient_clipping_bounds_the_norm():
    norms = []

    class Norm(Callback):
        _order = 5

        def on_backward_end(self, **kw):
            norms.append(float(torch.nn.utils.get_total_norm([p.grad for p in learn.model.parameters()])))

    learn = tiny_learner(n_train=16, n_valid=0, callback_fns=[lambda l: GradientClipping(l, clip=1e-3)])
    learn.fit(1, 1e-3, callbacks=[Norm()])
    assert len(norms) == 2 and max(norms) <= 1e-3 * 1.0001
    with pytest.raises(ValueError, match="clip"):
        GradientClipping(learn, clip=-1)


def test_stop_after_n_batches():
    learn = tiny_learner(n_train=48, n_valid=8)
    learn.fit(3, 1e-3, callbacks=[StopAfterNBatches(2)])
    assert learn.recorder.nb_batches == [2] and learn.recorder.val_losses == [None]


def test_mixed_precision_on_cpu_trains_and_scales():
    learn = tiny_learner(n_train=32, n_valid=8, metrics=[accuracy])
    mp = MixedPrecision(learn, loss_scale=2.0**8)
    seen = []

    class Look(Callback):
        _order = 1000

        def on_loss_begin(self, last_output, **kw):
            seen.append(last_output.dtype)

        def on_backward_begin(self, last_loss, smooth_loss, **kw):
            seen.append(float(last_loss.detach() / smooth_loss.detach()) if len(seen) < 3 else None)

    before = learn.model.weight.detach().clone()
    learn.fit(1, 1e-2, callbacks=[mp, Look()])
    assert seen[0] == torch.float32 and seen[1] == pytest.approx(2.0**8, rel=1e-2)
    assert not torch.equal(before, learn.model.weight)
    assert learn.recorder.metrics and 0 <= learn.recorder.metrics[0][0] <= 1
    static = tiny_learner(n_train=16, n_valid=0)
    static.fit(1, 1e-2, callbacks=[MixedPrecision(static, dynamic=False, clip=1.0)])
    assert all(torch.isfinite(p).all() for p in static.model.parameters())


def test_progress_bars_quiet_and_fastprogress():
    learn = tiny_learner(n_train=16, n_valid=8, silent=True)
    bars = []

    class Bar(Callback):
        def on_train_begin(self, pbar, **kw):
            bars.append(pbar)

    learn.fit(1, 1e-3, callbacks=[Bar()])
    assert isinstance(bars[-1], QuietMasterBar)
    loud = tiny_learner(n_train=16, n_valid=8, silent=False)
    with contextlib.redirect_stdout(io.StringIO()):
        loud.fit(1, 1e-3, callbacks=[Bar()])
    assert type(bars[-1]).__module__.startswith("fastprogress")
    assert np.isfinite(float(loud.recorder.val_losses[0]))
