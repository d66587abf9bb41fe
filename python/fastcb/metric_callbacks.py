"""fastai v1's metrics that need the whole epoch (confusion-matrix scores, regression scores, AUROC...):
`Callback`s passed in `metrics=[...]`, fed each validation batch, reporting at `on_epoch_end`.
Also the plain functions `foreground_acc`, `roc_curve`, `auc_roc_score`."""

import warnings
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from .callback import Callback, add_metrics
from .metrics import _flatten_check, exp_rmspe, explained_variance, r2_score, root_mean_squared_error

__all__ = ["foreground_acc", "roc_curve", "auc_roc_score", "ConfusionMatrix", "CMScores", "Precision", "Recall",
           "FBeta", "KappaScore", "MatthewsCorreff", "RegMetrics", "R2Score", "ExplainedVariance", "RMSE",
           "ExpRMSPE", "Perplexity", "AUROC", "MultiLabelFbeta"]


def foreground_acc(input: Tensor, target: Tensor, void_code: int) -> Tensor:
    """Accuracy over the pixels whose target is not `void_code` (segmentation: `input` is `(n, classes, ...)`)."""
    target = target.squeeze(1)
    mask = target != void_code
    return (input.argmax(dim=1)[mask] == target[mask]).float().mean()


def roc_curve(input: Tensor, targ: Tensor) -> tuple[Tensor, Tensor]:
    """`(fpr, tpr)` of the binary scores `input` against `targ` (1 is positive), one point per distinct score."""
    input, targ = _flatten_check(input, targ)
    targ = targ == 1
    order = torch.flip(input.argsort(-1), [-1])
    input, targ = input[order], targ[order]
    distinct = torch.nonzero(input[1:] - input[:-1]).transpose(0, 1)[0]
    thresholds = torch.cat((distinct, torch.tensor([len(targ) - 1], device=targ.device)))
    tps = torch.cumsum(targ * 1, dim=-1)[thresholds]
    fps = 1 + thresholds - tps
    if tps[0] != 0 or fps[0] != 0:
        zero = fps.new_zeros(1)
        fps, tps = torch.cat((zero, fps)), torch.cat((zero, tps))
    return fps.float() / fps[-1], tps.float() / tps[-1]


def auc_roc_score(input: Tensor, targ: Tensor) -> Tensor:
    """The area under `roc_curve(input, targ)` by the trapezoid rule (binary classification)."""
    fpr, tpr = roc_curve(input, targ)
    return ((fpr[1:] - fpr[:-1]) * (tpr[1:] + tpr[:-1]) / 2.0).sum(-1)


class ConfusionMatrix(Callback):
    """The epoch's confusion matrix `cm` (rows: targets, columns: argmax predictions), kept in `metric`."""

    def on_train_begin(self, **kwargs: Any) -> None:
        """The number of classes is read from the first output."""
        self.n_classes = 0

    def on_epoch_begin(self, **kwargs: Any) -> None:
        """Start a new matrix."""
        self.cm: Any = None  # a Tensor from the first batch on

    def on_batch_end(self, last_output: Any, last_target: Any, **kwargs: Any) -> None:
        """Count this batch's (target, prediction) pairs."""
        preds = last_output.argmax(-1).view(-1).cpu()
        targs = last_target.view(-1).cpu().long()
        if self.n_classes == 0:
            self.n_classes = last_output.shape[-1]
        if self.cm is None:
            self.cm = torch.zeros((self.n_classes, self.n_classes))
        self.cm.index_put_((targs, preds), torch.ones(len(targs)), accumulate=True)

    def on_epoch_end(self, **kwargs: Any) -> None:
        """Keep the matrix in `metric`."""
        self.metric = self.cm


class CMScores(ConfusionMatrix):
    """Precision/recall from the confusion matrix, averaged per `average`: 'binary' (class `pos_label`),
    'micro', 'macro', 'weighted', or None (one score per class)."""

    def __init__(self, average: str | None = "binary", pos_label: int = 1, eps: float = 1e-9) -> None:
        if average not in ("binary", "micro", "macro", "weighted", None):
            raise ValueError(f"average: expected 'binary', 'micro', 'macro', 'weighted' or None, got {average!r}")
        self.average, self.pos_label, self.eps = average, pos_label, eps

    def _recall(self) -> Tensor:
        rec = torch.diag(self.cm) / self.cm.sum(dim=1)
        if self.average is None:
            return rec
        weights = self._weights(avg="weighted" if self.average == "micro" else self.average)
        return (rec * weights).sum()

    def _precision(self) -> Tensor:
        prec = torch.diag(self.cm) / self.cm.sum(dim=0)
        if self.average is None:
            return prec
        return (prec * self._weights(avg=self.average)).sum()

    def _weights(self, avg: str | None) -> Tensor:
        if self.n_classes != 2 and avg == "binary":
            avg = self.average = "macro"
            warnings.warn("average=`binary` was selected for a non binary case. Value for average has now been set "
                          "to `macro` instead.")
        if avg == "binary":
            if self.pos_label not in (0, 1):
                self.pos_label = 1
                warnings.warn("Invalid value for pos_label. It has now been set to 1.")
            return torch.tensor([0.0, 1.0]) if self.pos_label == 1 else torch.tensor([1.0, 0.0])
        if avg == "micro":
            return self.cm.sum(dim=0) / self.cm.sum()
        if avg == "macro":
            return torch.ones((self.n_classes,)) / self.n_classes
        return self.cm.sum(dim=1) / self.cm.sum()


class Recall(CMScores):
    """Recall over the epoch."""

    def on_epoch_end(self, last_metrics: list[Any] | None, **kwargs: Any) -> dict[str, list[Any]]:
        """Append the recall."""
        return add_metrics(last_metrics, self._recall())


class Precision(CMScores):
    """Precision over the epoch."""

    def on_epoch_end(self, last_metrics: list[Any] | None, **kwargs: Any) -> dict[str, list[Any]]:
        """Append the precision."""
        return add_metrics(last_metrics, self._precision())


class FBeta(CMScores):
    """F-beta score over the epoch (`beta`=2 by default), per class then averaged as `average`."""

    def __init__(self, average: str | None = "binary", pos_label: int = 1, eps: float = 1e-9, beta: float = 2) -> None:
        super().__init__(average, pos_label, eps)
        self.beta = beta

    def on_train_begin(self, **kwargs: Any) -> None:
        """Per-class scores are computed, then averaged with `average`'s weights."""
        self.n_classes = 0
        self.beta2 = self.beta**2
        self.avg = self.average
        if self.average != "micro":
            self.average = None

    def on_epoch_end(self, last_metrics: list[Any] | None, **kwargs: Any) -> dict[str, list[Any]]:
        """Append the F-beta score (0 where precision and recall are both 0)."""
        prec, rec = self._precision(), self._recall()
        metric = (1 + self.beta2) * prec * rec / (prec * self.beta2 + rec + self.eps)
        metric[metric != metric] = 0
        if self.avg:
            metric = (self._weights(avg=self.avg) * metric).sum()
        return add_metrics(last_metrics, metric)

    def on_train_end(self, **kwargs: Any) -> None:
        """Give `average` back."""
        self.average = self.avg


class KappaScore(ConfusionMatrix):
    """Cohen's kappa over the epoch, unweighted or with `weights` 'linear' or 'quadratic'."""

    def __init__(self, weights: str | None = None) -> None:
        if weights not in (None, "linear", "quadratic"):
            raise ValueError(f'weights: expected None, "linear" or "quadratic", got {weights!r}')
        self.weights = weights

    def on_epoch_end(self, last_metrics: list[Any] | None, **kwargs: Any) -> dict[str, list[Any]]:
        """Append kappa."""
        sum0, sum1 = self.cm.sum(dim=0), self.cm.sum(dim=1)
        expected = torch.einsum("i,j->ij", sum0, sum1) / sum0.sum()
        n = self.n_classes
        if self.weights is None:
            w = torch.ones((n, n))
            w[torch.arange(n), torch.arange(n)] = 0
        else:
            w = torch.zeros((n, n)) + torch.arange(n, dtype=torch.float)
            w = torch.abs(w - w.t()) if self.weights == "linear" else (w - w.t()) ** 2
        k = torch.sum(w * self.cm) / torch.sum(w * expected)
        return add_metrics(last_metrics, 1 - k)


class MatthewsCorreff(ConfusionMatrix):
    """Matthews correlation coefficient over the epoch (multi-class)."""

    def on_epoch_end(self, last_metrics: list[Any] | None, **kwargs: Any) -> dict[str, list[Any]]:
        """Append the coefficient."""
        t_sum, p_sum = self.cm.sum(dim=1), self.cm.sum(dim=0)
        n_correct, n = torch.trace(self.cm), p_sum.sum()
        cov_ytyp = n_correct * n - torch.dot(t_sum, p_sum)
        cov_ypyp = n**2 - torch.dot(p_sum, p_sum)
        cov_ytyt = n**2 - torch.dot(t_sum, t_sum)
        return add_metrics(last_metrics, cov_ytyp / torch.sqrt(cov_ytyt * cov_ypyp))


class RegMetrics(Callback):
    """Keep the epoch's predictions and targets (on the CPU) for a regression score at `on_epoch_end`."""

    def on_epoch_begin(self, **kwargs: Any) -> None:
        """Start empty."""
        self.targs, self.preds = torch.tensor([]), torch.tensor([])

    def on_batch_end(self, last_output: Any, last_target: Any, **kwargs: Any) -> None:
        """Keep this batch."""
        _flatten_check(last_output, last_target)
        self.preds = torch.cat((self.preds, last_output.detach().float().cpu()))
        self.targs = torch.cat((self.targs, last_target.detach().float().cpu()))


class R2Score(RegMetrics):
    """R² over the epoch."""

    def on_epoch_end(self, last_metrics: list[Any] | None, **kwargs: Any) -> dict[str, list[Any]]:
        """Append R²."""
        return add_metrics(last_metrics, r2_score(self.preds, self.targs))


class ExplainedVariance(RegMetrics):
    """Explained variance over the epoch."""

    def on_epoch_end(self, last_metrics: list[Any] | None, **kwargs: Any) -> dict[str, list[Any]]:
        """Append the explained variance."""
        return add_metrics(last_metrics, explained_variance(self.preds, self.targs))


class RMSE(RegMetrics):
    """Root mean squared error over the epoch (not the mean of per-batch RMSEs)."""

    def on_epoch_end(self, last_metrics: list[Any] | None, **kwargs: Any) -> dict[str, list[Any]]:
        """Append the RMSE."""
        return add_metrics(last_metrics, root_mean_squared_error(self.preds, self.targs))


class ExpRMSPE(RegMetrics):
    """Root mean squared percentage error of the exponentials, over the epoch."""

    def on_epoch_end(self, last_metrics: list[Any] | None, **kwargs: Any) -> dict[str, list[Any]]:
        """Append the error."""
        return add_metrics(last_metrics, exp_rmspe(self.preds, self.targs))


class Perplexity(Callback):
    """exp of the sequence-length-weighted mean cross-entropy (language models: targets `(bs, seq_len)`)."""

    def on_epoch_begin(self, **kwargs: Any) -> None:
        """Start the sums."""
        self.loss: Any = 0.0  # a Tensor from the first batch on
        self.len = 0

    def on_batch_end(self, last_output: Any, last_target: Any, **kwargs: Any) -> None:
        """Add this batch's flattened cross-entropy, weighted by its sequence length."""
        ce = F.cross_entropy(last_output.reshape(-1, last_output.shape[-1]), last_target.reshape(-1))
        self.loss += last_target.size(1) * ce
        self.len += last_target.size(1)

    def on_epoch_end(self, last_metrics: list[Any] | None, **kwargs: Any) -> dict[str, list[Any]]:
        """Append the perplexity."""
        return add_metrics(last_metrics, torch.exp(self.loss / self.len))


class AUROC(Callback):
    """Area under the ROC curve over the epoch, from the softmax probability of the last class."""

    def on_epoch_begin(self, **kwargs: Any) -> None:
        """Start empty."""
        self.targs, self.preds = torch.tensor([], dtype=torch.long), torch.tensor([])

    def on_batch_end(self, last_output: Any, last_target: Any, **kwargs: Any) -> None:
        """Keep this batch's scores and targets."""
        self.preds = torch.cat((self.preds, F.softmax(last_output.detach().float(), dim=1)[:, -1].cpu()))
        self.targs = torch.cat((self.targs, last_target.cpu().long()))

    def on_epoch_end(self, last_metrics: list[Any] | None, **kwargs: Any) -> dict[str, list[Any]]:
        """Append the AUC."""
        return add_metrics(last_metrics, auc_roc_score(self.preds, self.targs))


class MultiLabelFbeta(Callback):
    """F-beta for multi-label targets over the epoch, predictions above `thresh` (after a sigmoid if
    `sigmoid`), averaged 'micro', 'macro', 'weighted' or 'none' (per label)."""

    _order = -20

    def __init__(self, beta: float = 2, eps: float = 1e-15, thresh: float = 0.3, sigmoid: bool = True,
                 average: str = "micro") -> None:
        if average not in ("micro", "macro", "weighted", "none"):
            raise ValueError(f"average: expected one of micro, macro, weighted, none, got {average!r}")
        self.eps, self.thresh, self.sigmoid, self.average, self.beta = eps, thresh, sigmoid, average, beta

    def on_epoch_begin(self, **kwargs: Any) -> None:
        """Start the counts."""
        # Tensors (one count per label) from the first batch on
        self.tp: Any = 0
        self.total_pred: Any = 0
        self.total_targ: Any = 0

    def on_batch_end(self, last_output: Any, last_target: Any, **kwargs: Any) -> None:
        """Count true positives, predictions and targets per label."""
        pred = ((last_output.sigmoid() if self.sigmoid else last_output) > self.thresh).float()
        targ = last_target.float()
        self.tp += (pred * targ).sum(0)
        self.total_pred += pred.sum(0)
        self.total_targ += targ.sum(0)

    def fbeta_score(self, precision: Tensor, recall: Tensor) -> Tensor:
        """F-beta of `precision` and `recall`."""
        beta2 = self.beta**2
        return (1 + beta2) * (precision * recall) / ((beta2 * precision + recall) + self.eps)

    def on_epoch_end(self, last_metrics: list[Any] | None, **kwargs: Any) -> dict[str, list[Any]]:
        """Append the averaged score (a list per label with 'none')."""
        total_pred, total_targ = self.total_pred + self.eps, self.total_targ + self.eps
        res: Any  # a Tensor, or a list of them with 'none'
        if self.average == "micro":
            res = self.fbeta_score(self.tp.sum() / total_pred.sum(), self.tp.sum() / total_targ.sum())
        elif self.average == "macro":
            res = self.fbeta_score(self.tp / total_pred, self.tp / total_targ).mean()
        elif self.average == "weighted":
            scores = self.fbeta_score(self.tp / total_pred, self.tp / total_targ)
            res = (scores * total_targ).sum() / total_targ.sum()
        else:
            res = list(self.fbeta_score(self.tp / total_pred, self.tp / total_targ))
        return add_metrics(last_metrics, res)


