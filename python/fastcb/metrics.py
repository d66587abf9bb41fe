"""Metric functions `f(output, target)` returning a 0-dim tensor (wrapped in `AverageMetric` by the loop)."""

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["accuracy", "error_rate", "top_k_accuracy", "accuracy_thresh", "fbeta", "dice", "mean_squared_error",
           "mse", "mean_absolute_error", "mae", "root_mean_squared_error", "rmse", "mean_squared_logarithmic_error",
           "msle", "exp_rmspe", "explained_variance", "r2_score", "SizeMismatchError"]


class SizeMismatchError(ValueError, AssertionError):
    """Output and target sizes differ (an `AssertionError` too, as fastai's `assert` raised)."""


def _flatten_check(out: Tensor, targ: Tensor) -> tuple[Tensor, Tensor]:
    out, targ = out.contiguous().view(-1), targ.contiguous().view(-1)
    if len(out) != len(targ):
        raise SizeMismatchError(f"Expected output and target to have the same number of elements but got {len(out)} "
                         f"and {len(targ)}.")
    return out, targ


def accuracy(input: Tensor, targs: Tensor) -> Tensor:
    """Fraction of rows whose argmax (last dim) equals the target."""
    n = targs.shape[0]
    return (input.argmax(dim=-1).view(n, -1) == targs.view(n, -1)).float().mean()


def error_rate(input: Tensor, targs: Tensor) -> Tensor:
    """1 - `accuracy`."""
    return 1 - accuracy(input, targs)


def top_k_accuracy(input: Tensor, targs: Tensor, k: int = 5) -> Tensor:
    """Fraction of rows whose target is among the `k` highest scores."""
    top = input.topk(k=k, dim=-1)[1]
    return (top == targs.unsqueeze(dim=-1).expand_as(top)).max(dim=-1)[0].float().mean()


def accuracy_thresh(y_pred: Tensor, y_true: Tensor, thresh: float = 0.5, sigmoid: bool = True) -> Tensor:
    """Multi-label accuracy: predictions above `thresh` (after a sigmoid if `sigmoid`) against `y_true`."""
    if sigmoid:
        y_pred = y_pred.sigmoid()
    return ((y_pred > thresh).byte() == y_true.byte()).float().mean()


def fbeta(y_pred: Tensor, y_true: Tensor, thresh: float = 0.2, beta: float = 2, eps: float = 1e-9,
          sigmoid: bool = True) -> Tensor:
    """Mean over rows of the F-beta score of multi-label predictions thresholded at `thresh`."""
    beta2 = beta**2
    if sigmoid:
        y_pred = y_pred.sigmoid()
    y_pred = (y_pred > thresh).float()
    y_true = y_true.float()
    tp = (y_pred * y_true).sum(dim=1)
    prec = tp / (y_pred.sum(dim=1) + eps)
    rec = tp / (y_true.sum(dim=1) + eps)
    return ((prec * rec) / (prec * beta2 + rec + eps) * (1 + beta2)).mean()


def dice(input: Tensor, targs: Tensor, iou: bool = False, eps: float = 1e-8) -> Tensor:
    """Dice coefficient (or IoU if `iou`) for binary segmentation, per item then averaged; 1 where
    both are empty.

    The predicted class of a pixel is the argmax over `dim=1` with ties going to the *higher* class
    (a pixel whose foreground score equals its background score counts as foreground). That is
    what fastai v1 computed on the torch it was written for (before 1.7, `argmax` returned the last
    maximum) and what its tests expect; today's `argmax` returns the first maximum.
    """
    n = targs.shape[0]
    input = _argmax_ties_high(input, 1).view(n, -1)
    targs = targs.view(n, -1)
    intersect = (input * targs).sum(dim=1).float()
    union = (input + targs).sum(dim=1).float()
    res = 2.0 * intersect / union if not iou else intersect / (union - intersect + eps)
    return torch.where(union == 0, torch.ones_like(res), res).mean()


def _argmax_ties_high(x: Tensor, dim: int) -> Tensor:
    """`x.argmax(dim)`, but the last index among equal maxima (one flipped copy, no host read)."""
    return (x.shape[dim] - 1) - x.flip(dim).argmax(dim=dim)


def mean_squared_error(pred: Tensor, targ: Tensor) -> Tensor:
    """Mean squared error."""
    pred, targ = _flatten_check(pred, targ)
    return F.mse_loss(pred, targ)


def mean_absolute_error(pred: Tensor, targ: Tensor) -> Tensor:
    """Mean absolute error."""
    pred, targ = _flatten_check(pred, targ)
    return torch.abs(targ - pred).mean()


def root_mean_squared_error(pred: Tensor, targ: Tensor) -> Tensor:
    """Square root of the mean squared error (of each batch)."""
    pred, targ = _flatten_check(pred, targ)
    return torch.sqrt(F.mse_loss(pred, targ))


def mean_squared_logarithmic_error(pred: Tensor, targ: Tensor) -> Tensor:
    """Mean squared error of `log(1 + x)`."""
    pred, targ = _flatten_check(pred, targ)
    return F.mse_loss(torch.log1p(pred), torch.log1p(targ))


def exp_rmspe(pred: Tensor, targ: Tensor) -> Tensor:
    """Root mean squared percentage error of `exp(pred)` against `exp(targ)`."""
    pred, targ = _flatten_check(pred, targ)
    pred, targ = torch.exp(pred), torch.exp(targ)
    return torch.sqrt((((targ - pred) / targ) ** 2).mean())


def explained_variance(pred: Tensor, targ: Tensor) -> Tensor:
    """1 - Var(targ - pred) / Var(targ)."""
    pred, targ = _flatten_check(pred, targ)
    return 1 - torch.var(targ - pred) / torch.var(targ)


def r2_score(pred: Tensor, targ: Tensor) -> Tensor:
    """Coefficient of determination."""
    pred, targ = _flatten_check(pred, targ)
    return 1 - torch.sum((targ - pred) ** 2) / torch.sum((targ - targ.mean()) ** 2)


mse, mae, rmse, msle = mean_squared_error, mean_absolute_error, root_mean_squared_error, mean_squared_logarithmic_error
