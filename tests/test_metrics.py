"""AverageMetric (weighted, exact, once per epoch) and the metric functions, against plain Python."""

import functools
import math

import numpy as np
import pytest
import torch

from fastcb import AverageMetric, CallbackHandler
from fastcb import metrics as M


def run_epoch(metric, batches):
    h = CallbackHandler(metrics=[metric])
    h.on_train_begin(1, None, [metric])
    h.on_epoch_begin()
    for out, targ in batches:
        h.on_batch_begin(out, targ, train=False)
        h.on_loss_begin(out)
        h.on_batch_end(torch.zeros(()))
    h.on_epoch_end(torch.tensor(0.0))
    return h.state_dict["last_metrics"], h.metrics[0]


def test_average_metric_is_the_batch_size_weighted_mean():
    g = torch.Generator().manual_seed(0)
    sizes = [8, 8, 3]
    batches = [(torch.randn(n, 4, generator=g), torch.randint(0, 4, (n,), generator=g)) for n in sizes]
    last, met = run_epoch(M.accuracy, batches)
    correct = sum(int((o.argmax(1) == t).sum()) for o, t in batches)
    assert last[1] == pytest.approx(correct / sum(sizes), rel=1e-7)  # per-batch values are float32
    assert met.metric == last[1] and met.count == 19 and met.name == "accuracy"


def test_multiple_targets_and_partial_names():
    def two(out, y1, y2):
        return (y1 + y2).float().mean()

    met = AverageMetric(functools.partial(functools.partial(two), y2=None))
    assert met.name == "two"
    batches = [(torch.zeros(2), [torch.tensor([1, 2]), torch.tensor([3, 4])]),
               (torch.zeros(1), [torch.tensor([5]), torch.tensor([6])])]
    last, _ = run_epoch(AverageMetric(two), batches)
    assert last[1] == pytest.approx((2 * 5.0 + 1 * 11.0) / 3, abs=0)


def test_reduction_is_exact_over_many_batches():
    values = [1e16, 1.0, -1e16] + [0.1] * 997
    batches = [(torch.tensor(v, dtype=torch.float64), torch.zeros(1)) for v in values]
    last, _ = run_epoch(lambda out, targ: out, batches)
    assert last[1] == math.fsum(values) / len(values)


def test_python_number_results_and_bad_results():
    last, _ = run_epoch(lambda out, targ: 0.5, [(torch.zeros(2), torch.zeros(2))] * 3)
    assert last[1] == 0.5
    with pytest.raises(ValueError, match="one number per batch"):
        run_epoch(lambda out, targ: out, [(torch.zeros(2), torch.zeros(2)), (torch.zeros(3), torch.zeros(3))])
    with pytest.raises(TypeError, match="func"):
        AverageMetric(3)


def test_metric_functions_against_plain_python():
    out = torch.tensor([[0.1, 0.9, 0.0], [0.8, 0.1, 0.1], [0.2, 0.3, 0.5], [0.3, 0.4, 0.3]])
    targ = torch.tensor([1, 2, 2, 0])
    assert float(M.accuracy(out, targ)) == 0.5
    assert float(M.error_rate(out, targ)) == 0.5
    # top-2: row0 {1,0}->hit, row1 {0,1 or 2}, row2 {2,1}->hit, row3 {1,0}->hit
    top2 = [set(np.argsort(-r.numpy())[:2]) for r in out]
    assert float(M.top_k_accuracy(out, targ, k=2)) == sum(int(t) in s for s, t in zip(top2, targ)) / 4
    p, t = torch.tensor([1.0, 2.0, 4.0]), torch.tensor([1.5, 2.0, 3.0])
    assert float(M.mean_squared_error(p, t)) == pytest.approx((0.25 + 0 + 1) / 3)
    assert float(M.mean_absolute_error(p, t)) == pytest.approx((0.5 + 0 + 1) / 3)
    assert float(M.rmse(p, t)) == pytest.approx(math.sqrt((0.25 + 0 + 1) / 3))
    assert float(M.msle(p, t)) == pytest.approx(np.mean((np.log1p([1, 2, 4]) - np.log1p([1.5, 2, 3])) ** 2))
    assert float(M.r2_score(p, t)) == pytest.approx(1 - 1.25 / sum((x - 13 / 6) ** 2 for x in [1.5, 2, 3]), rel=1e-5)
    with pytest.raises(ValueError, match="same number of elements"):
        M.mse(p, t[:2])


def test_fbeta_against_plain_python():
    y_pred = torch.tensor([[2.0, -2.0, 2.0], [-2.0, 2.0, -2.0]])
    y_true = torch.tensor([[1, 0, 0], [0, 1, 1]])
    beta2 = 4
    scores = []
    for pr, tr in zip((y_pred.sigmoid() > 0.2).int().tolist(), y_true.tolist()):
        tp = sum(a * b for a, b in zip(pr, tr))
        prec, rec = tp / (sum(pr) + 1e-9), tp / (sum(tr) + 1e-9)
        scores.append(prec * rec / (prec * beta2 + rec + 1e-9) * (1 + beta2))
    assert float(M.fbeta(y_pred, y_true)) == pytest.approx(sum(scores) / 2, rel=1e-5)
