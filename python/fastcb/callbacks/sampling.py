"""`OverSamplingCallback` / `UnderSamplingCallback`: draw the training set class-balanced for the fit."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch.utils.data import WeightedRandomSampler

from ..learner_callback import LearnerCallback

if TYPE_CHECKING:
    from ..data import DataBunch
    from ..learner import Learner

__all__ = ["OverSamplingCallback", "UnderSamplingCallback", "train_labels"]


def train_labels(data: DataBunch) -> np.ndarray:
    """The integer class label of every training item: fastai item lists' `y.items`, a `TensorDataset`'s
    last tensor, a dataset's `targets`, else the second field of each item."""
    ds = data.train_ds
    if hasattr(getattr(ds, "y", None), "items"):
        labels = ds.y.items
    elif isinstance(ds, torch.utils.data.TensorDataset):
        labels = ds.tensors[-1]
    elif hasattr(ds, "targets"):
        labels = ds.targets
    else:
        labels = [ds[i][1] for i in range(len(ds))]
    labels = np.asarray(labels.cpu() if isinstance(labels, torch.Tensor) else labels)
    if not np.issubdtype(labels.dtype, np.integer):
        raise TypeError(f"train_ds: can only resample integer class labels, got {labels.dtype}")
    return labels


class _Resampling(LearnerCallback):
    """Replace the training loader, for the fit, by one drawing `n_samples()` items with `weights`
    (default: the inverse of each item's class frequency) with replacement."""

    def __init__(self, learn: Learner, weights: torch.Tensor | Sequence[float] | None = None) -> None:
        super().__init__(learn)
        self.weights = weights

    if TYPE_CHECKING:
        def n_samples(self) -> int: ...  # each subclass's

    def on_train_begin(self, **kwargs: Any) -> None:
        """Swap in the weighted sampler."""
        self.old_dl = self.learn.data.train_dl
        self.labels = train_labels(self.learn.data)
        _, inverse, self.label_counts = np.unique(self.labels, return_inverse=True, return_counts=True)
        if self.weights is None:
            self.weights = torch.DoubleTensor((1 / self.label_counts)[inverse])
        # torch takes a tensor of weights (its stub says Sequence[float])
        sampler = WeightedRandomSampler(self.weights, self.n_samples())  # type: ignore[arg-type]
        self.learn.data.train_dl = self.old_dl.new(shuffle=False, sampler=sampler)

    def on_train_end(self, **kwargs: Any) -> None:
        """Give the original training loader back."""
        self.learn.data.train_dl = self.old_dl

    def _n_classes(self) -> int:
        return getattr(self.learn.data, "c", None) or len(self.label_counts)


class OverSamplingCallback(_Resampling):
    """Oversample: an epoch draws `n_classes * largest class count` items, classes equally likely."""

    def n_samples(self) -> int:
        """The number of items an epoch draws."""
        self.total_len_oversample = int(self._n_classes() * np.max(self.label_counts))
        return self.total_len_oversample


class UnderSamplingCallback(_Resampling):
    """Undersample: an epoch draws `n_classes * smallest class count` items, classes equally likely."""

    def n_samples(self) -> int:
        """The number of items an epoch draws."""
        self.total_len_undersample = int(self._n_classes() * np.min(self.label_counts))
        return self.total_len_undersample
