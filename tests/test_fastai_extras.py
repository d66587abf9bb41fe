"""fastai v1's metric callbacks, mixup, hooks and interpretation, against plain-Python references."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from loop_helpers import tiny_learner
from torch import nn

import fastcb
from fastcb import (
    AUROC,
    RMSE,
    ActivationStats,
    ClassificationInterpretation,
    ConfusionMatrix,
    FBeta,
    KappaScore,
    MatthewsCorreff,
    MixUpLoss,
    MultiLabelFbeta,
    Precision,
    R2Score,
    Recall,
    auc_roc_score,
    foreground_acc,
    hook_output,
    hook_outputs,
    model_sizes,
    num_features_model,
    roc_curve,
)


def _feed(metric, batches, n_classes=None):
    """Run `metric` through one validation epoch of `(output, target)` batches; its appended value."""
    metric.on_train_begin(n_epochs=1, epoch=0, metrics_names=[], pbar=None)
    metric.on_epoch_begin()
    for out, targ in batches:
        metric.on_batch_end(last_output=out, last_target=targ, train=False)
    return metric.on_epoch_end(last_metrics=[0.5])["last_metrics"][1:]


def _cm(preds, targs, n):
    cm = np.zeros((n, n))
    for t, p in zip(targs, preds):
        cm[t, p] += 1
    return cm


def _batches(n=40, c=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    out, targ = torch.randn(n, c, generator=g), torch.randint(0, c, (n,), generator=g)
    return [(out[i:i + 8], targ[i:i + 8]) for i in range(0, n, 8)], out, targ


def test_confusion_matrix_scores_match_the_definitions():
    batches, out, targ = _batches()
    cm = _cm(out.argmax(1).tolist(), targ.tolist(), 3)
    m = ConfusionMatrix()
    m.on_train_begin()
    m.on_epoch_begin()
    for o, t in batches:
        m.on_batch_end(last_output=o, last_target=t, train=False)
    m.on_epoch_end()
    np.testing.assert_array_equal(m.metric.numpy(), cm)
    rec, prec = np.diag(cm) / cm.sum(1), np.diag(cm) / cm.sum(0)
    with pytest.warns(UserWarning, match="macro"):
        (r,) = _feed(Recall(), batches)
    np.testing.assert_allclose(float(r), rec.mean(), rtol=1e-6)
    (p,) = _feed(Precision(average="weighted"), batches)
    np.testing.assert_allclose(float(p), (prec * cm.sum(1) / cm.sum()).sum(), rtol=1e-6)
    (f,) = _feed(FBeta(average="macro", beta=1), batches)
    np.testing.assert_allclose(float(f), np.mean(2 * prec * rec / (prec + rec)), rtol=1e-6)
    (k,) = _feed(KappaScore(), batches)
    n = cm.sum()
    po, pe = np.trace(cm) / n, (cm.sum(0) * cm.sum(1)).sum() / n**2
    np.testing.assert_allclose(float(k), (po - pe) / (1 - pe), rtol=1e-5)
    (mcc,) = _feed(MatthewsCorreff(), batches)
    t, p = cm.sum(1), cm.sum(0)
    ref = (np.trace(cm) * n - t @ p) / np.sqrt((n**2 - t @ t) * (n**2 - p @ p))
    np.testing.assert_allclose(float(mcc), ref, rtol=1e-5)
    with pytest.raises(ValueError, match="weights"):
        KappaScore(weights="cubic")


def test_regression_and_roc_metrics():
    g = torch.Generator().manual_seed(1)
    pred, targ = torch.randn(30, generator=g), torch.randn(30, generator=g)
    batches = [(pred[i:i + 7], targ[i:i + 7]) for i in range(0, 30, 7)]
    (rmse,) = _feed(RMSE(), batches)
    np.testing.assert_allclose(float(rmse), np.sqrt(((pred - targ) ** 2).mean().item()), rtol=1e-6)
    (r2,) = _feed(R2Score(), batches)
    np.testing.assert_allclose(float(r2), 1 - ((targ - pred) ** 2).sum() / ((targ - targ.mean()) ** 2).sum(), rtol=1e-5)
    scores, labels = torch.tensor([0.9, 0.8, 0.7, 0.6, 0.4, 0.3]), torch.tensor([1, 1, 0, 1, 0, 0])
    fpr, tpr = roc_curve(scores, labels)
    np.testing.assert_allclose(fpr, [0, 0, 0, 1 / 3, 1 / 3, 2 / 3, 1], rtol=1e-6)
    np.testing.assert_allclose(tpr, [0, 1 / 3, 2 / 3, 2 / 3, 1, 1, 1], rtol=1e-6)
    np.testing.assert_allclose(float(auc_roc_score(scores, labels)), 8 / 9, rtol=1e-6)  # 8 of 9 pairs ordered
    logits = torch.stack([torch.zeros(6), torch.logit(scores)], 1)
    (auc,) = _feed(AUROC(), [(logits[:3], labels[:3]), (logits[3:], labels[3:])])
    np.testing.assert_allclose(float(auc), 8 / 9, rtol=1e-5)


def test_multilabel_fbeta_and_foreground_acc():
    out = torch.tensor([[5.0, -5.0, 5.0], [5.0, 5.0, -5.0]])
    targ = torch.tensor([[1, 0, 0], [1, 1, 1]])
    (f,) = _feed(MultiLabelFbeta(beta=1), [(out, targ)])
    tp, npred, ntarg = 3, 4, 4
    np.testing.assert_allclose(float(f), 2 * (tp / npred) * (tp / ntarg) / (tp / npred + tp / ntarg), rtol=1e-6)
    inp = torch.zeros(1, 3, 2, 2)
    inp[0, 1] = 1.0  # predicts class 1 everywhere
    t = torch.tensor([[[[0, 1], [1, 2]]]])
    assert foreground_acc(inp, t, void_code=0).item() == pytest.approx(2 / 3)


def test_metric_callbacks_in_a_fit_add_columns():
    learn = tiny_learner(metrics=[Precision(), FBeta(), MatthewsCorreff()])
    learn.fit(1)
    assert learn.recorder.names[3:6] == ["precision", "f_beta", "matthews_correff"]
    assert len(learn.recorder.metrics[-1]) == 3


def test_mixup_loss_weighs_both_targets_and_restores_the_loss():
    out = torch.randn(4, 3)
    y1, y2, lam = torch.tensor([0, 1, 2, 0]), torch.tensor([1, 1, 0, 2]), torch.tensor([0.7, 0.6, 0.9, 0.5])
    crit = nn.CrossEntropyLoss()
    mix = MixUpLoss(crit)
    loss = mix(out, torch.stack([y1.float(), y2.float(), lam], 1))
    mix.get_old()
    ref = (F.cross_entropy(out, y1, reduction="none") * lam + F.cross_entropy(out, y2, reduction="none") * (1 - lam))
    torch.testing.assert_close(loss, ref.mean())
    assert MixUpLoss(crit).get_old() is crit and crit.reduction == "mean"
    learn = tiny_learner(loss_func=crit).mixup(alpha=0.4)
    learn.fit(1)
    assert learn.loss_func is crit and crit.reduction == "mean" and learn.recorder.losses


def test_hooks_store_outputs_and_activation_stats():
    model = nn.Sequential(nn.Linear(10, 5), nn.ReLU(), nn.Linear(5, 2))
    x = torch.randn(3, 10)
    with hook_output(model[0]) as h:
        model(x)
    torch.testing.assert_close(h.stored, model[0](x))
    with hook_outputs([model[0], model[2]]) as hs:
        y = model(x)
    torch.testing.assert_close(hs.stored[1], y)
    assert not model[0]._forward_hooks
    conv = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 6, 3, stride=2))
    assert [tuple(s) for s in model_sizes(conv, (16, 16))] == [(1, 4, 14, 14), (1, 4, 14, 14), (1, 6, 6, 6)]
    assert num_features_model(conv) == 6
    learn = tiny_learner(model=nn.Sequential(nn.Linear(10, 5), nn.ReLU(), nn.Linear(5, 2)), callback_fns=ActivationStats)
    learn.fit(1)
    n_batches = len(learn.data.train_dl)
    assert learn.activation_stats.stats.shape == (2, 2, n_batches)


def test_classification_interpretation():
    learn = tiny_learner()
    learn.fit(1)
    interp = learn.interpret()
    assert isinstance(interp, ClassificationInterpretation)
    preds, y, losses = learn.get_preds(with_loss=True)
    cm = _cm(preds.argmax(1).tolist(), y.tolist(), 2)
    np.testing.assert_array_equal(interp.confusion_matrix(), cm)
    np.testing.assert_array_equal(interp.confusion_matrix(slice_size=None), cm)
    vals, idx = interp.top_losses(3)
    torch.testing.assert_close(vals, losses.sort(descending=True).values[:3])
    mc = interp.most_confused()
    assert sum(c for *_, c in mc) == cm.sum() - np.trace(cm)
    assert interp.plot_confusion_matrix(return_fig=True) is not None
    assert fastcb.Interpretation.from_learner(learn).losses.shape == losses.shape
