"""fastai v1 edge behaviours: `dice`'s tie rule, the line an interrupted bar leaves, the
unfinished `MultiLabelClassificationInterpretation`, and the types the Recorder holds."""

import contextlib
import io

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from loop_helpers import tiny_learner

import fastcb
from fastcb import MultiLabelClassificationInterpretation, StopAfterNBatches, accuracy, dice


def _dice_reference(pred, targ, iou=False, eps=1e-8):
    """Plain Python: per item, class = the last index of the largest score; dice (or IoU) of the
    foreground; 1 when prediction and target are both empty; the mean over items."""
    n, c = pred.shape[0], pred.shape[1]
    scores = pred.reshape(n, c, -1).tolist()
    targs = targ.reshape(n, -1).tolist()
    res = []
    for item, t in zip(scores, targs):
        cls = []
        for px in range(len(t)):
            col = [item[k][px] for k in range(c)]
            best = max(col)
            cls.append(max(k for k in range(c) if col[k] == best))
        inter = sum(a * b for a, b in zip(cls, t))
        union = sum(cls) + sum(t)
        if union == 0:
            res.append(1.0)
        else:
            res.append(inter / (union - inter + eps) if iou else 2.0 * inter / union)
    return sum(res) / len(res)


def test_dice_ties_go_to_the_foreground():
    # equal scores everywhere: every pixel is predicted foreground
    zeros = torch.zeros(5, 2, 5)
    assert dice(zeros, torch.eye(5).long()).item() == pytest.approx(1 / 3)  # per item 2*1/(5+1)
    assert dice(zeros, torch.zeros(5, 5).long()).item() == 0.0  # the prediction isn't empty
    assert dice(zeros, torch.zeros(5, 5).long(), iou=True).item() == 0.0
    # a strict maximum is still the argmax: 1 item, 2 classes, 2 pixels; predicted [0, 1]
    scores = torch.tensor([[[2.0, 1.0], [1.0, 1.0]]])
    assert dice(scores, torch.tensor([[1, 0]])).item() == 0.0
    assert dice(scores, torch.tensor([[0, 1]])).item() == 1.0
    assert dice(scores, torch.tensor([[1, 1]])).item() == pytest.approx(2 / 3)
    assert dice(scores.flip(1), torch.tensor([[0, 0]])).item() == 0.0  # flipped: predicted [1, 1]


@given(st.integers(1, 4), st.integers(2, 3), st.integers(1, 6), st.booleans(), st.integers(0, 2**31 - 1))
def test_dice_matches_the_reference(n, c, px, iou, seed):
    g = torch.Generator().manual_seed(seed)
    pred = torch.randint(0, 3, (n, c, px), generator=g).float()  # few values: many ties
    targ = torch.randint(0, 2, (n, px), generator=g)
    assert dice(pred, targ, iou=iou).item() == pytest.approx(_dice_reference(pred, targ, iou), abs=1e-6)


def _fit_output(learn, epochs):
    import fastprogress.fastprogress as fp

    buf = io.StringIO()
    buf.isatty = lambda: True  # fastprogress draws its console bars only on a terminal
    with contextlib.redirect_stdout(buf):
        old = fp.stdout
        fp.stdout = buf
        try:
            learn.fit(epochs)
        finally:
            fp.stdout = old
    return buf.getvalue()


def test_a_bar_stopped_mid_epoch_ends_its_line():
    pytest.importorskip("fastprogress")
    learn = tiny_learner(n_train=40, bs=4, silent=False, callbacks=[StopAfterNBatches(2)])
    out = _fit_output(learn, 3)
    lines = [line.split("\r")[-1] for line in out.split("\n")]  # what a terminal shows
    assert lines[0].split() == ["epoch", "train_loss", "valid_loss", "time"]
    assert lines[1].startswith("Epoch 1/3") and "/10 " in lines[1]  # the bar stays, where it stopped
    assert lines[2].split()[0] == "0"  # the epoch's row starts its own line
    assert "\n1" not in out
    assert len(learn.recorder.losses) == 2


def test_a_finished_bar_adds_no_line():
    pytest.importorskip("fastprogress")
    out = _fit_output(tiny_learner(n_train=16, n_valid=8, bs=4, silent=False), 1)
    rows = [line.split("\r")[-1] for line in out.split("\n") if line]
    assert [r.split()[0] for r in rows] == ["epoch", "0"]


def test_multilabel_interpretation_is_fastais_placeholder():
    learn = tiny_learner()
    preds, y, losses = learn.get_preds(with_loss=True)
    with pytest.raises(NotImplementedError, match="MultiLabelClassificationInterpretation"):
        MultiLabelClassificationInterpretation(learn, preds, y, losses, sigmoid=False, thresh=0.5)
    with pytest.raises(NotImplementedError):
        MultiLabelClassificationInterpretation.from_learner(learn)
    assert issubclass(MultiLabelClassificationInterpretation, fastcb.Interpretation)


def test_the_recorder_holds_floats_that_fastai_code_can_read(tmp_path):
    # one float64 per record; fastai code reads its Recorder's 0-dim tensors with to_np(loss).item()
    # (to_np is x.data.cpu().numpy()), loss.cpu().numpy(), metric.item(): those calls still work
    from fastcb.callbacks.recorder import RecordedFloat

    learn = tiny_learner(tmp_path, metrics=[accuracy])
    learn.fit(2, 1e-2)
    rec = learn.recorder
    records = rec.losses + rec.val_losses + [m for ms in rec.metrics for m in ms]
    assert rec.losses and len(rec.val_losses) == 2 and len(rec.metrics) == 2
    assert all(type(v) is RecordedFloat and isinstance(v, float) and isinstance(v, np.float64) for v in records)
    assert [v.data.cpu().numpy().item() for v in records] == [float(v) for v in records]
    assert [v.cpu().numpy() for v in records] == records and all(type(v.numpy()) is np.float64 for v in records)
    assert all(type(v.item()) is float and v.detach() is v for v in records)
    assert np.asarray(rec.losses).dtype == np.asarray(rec.val_losses).dtype == np.float64
    assert torch.tensor(rec.losses, dtype=torch.float64).tolist() == [float(v) for v in rec.losses]
    # and the checkpoint keeps plain numbers
    state = rec.state_dict()
    assert all(type(v) is float for v in state["losses"] + state["val_losses"])
    assert all(type(m) is float for ms in state["metrics"] for m in ms)
    fresh = type(rec)(learn)
    fresh.load_state_dict(state)
    assert all(type(v) is RecordedFloat for v in fresh.losses + fresh.val_losses)
    assert all(type(m) is RecordedFloat for ms in fresh.metrics for m in ms)
    assert fresh.losses == rec.losses and fresh.val_losses == rec.val_losses and fresh.metrics == rec.metrics
