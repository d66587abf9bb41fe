"""`Interpretation`, `ClassificationInterpretation` (and fastai's unfinished
`MultiLabelClassificationInterpretation`): a model's predictions, targets and per-item losses
on a dataset, with the largest losses and the confusion matrix (fastai v1's `fastai.train` classes)."""

from __future__ import annotations

import itertools
from operator import itemgetter
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import torch

from .data import DatasetType
from .settings import defaults

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from .inference import Activation
    from .learner import Learner

_I = TypeVar("_I", bound="Interpretation")

__all__ = ["Interpretation", "ClassificationInterpretation", "MultiLabelClassificationInterpretation"]


class Interpretation:
    """`preds`, `y_true` and per-item `losses` of `learn` on `ds_type` (its dataset is `ds`)."""

    def __init__(self, learn: Learner, preds: torch.Tensor, y_true: torch.Tensor, losses: torch.Tensor,
                 ds_type: DatasetType = DatasetType.Valid) -> None:
        self.data, self.preds, self.y_true, self.losses, self.ds_type, self.learn = (
            learn.data, preds, y_true, losses, ds_type, learn)
        self.ds = learn.data.dl(ds_type).dataset  # type: ignore[union-attr]  # no such loader: AttributeError

    @classmethod
    def from_learner(cls: type[_I], learn: Learner, ds_type: DatasetType = DatasetType.Valid,
                     activ: Activation | None = None) -> _I:
        """Compute the predictions (activated as `get_preds` does), targets and losses of `learn`."""
        preds, y_true, losses = learn.get_preds(ds_type=ds_type, activ=activ, with_loss=True)
        return cls(learn, preds, y_true, losses, ds_type=ds_type)

    def top_losses(self, k: int | None = None, largest: bool = True) -> torch.return_types.topk:
        """`(values, indexes)` of the `k` largest (or smallest) losses; all of them by default."""
        return self.losses.topk(len(self.losses) if k is None else k, largest=largest)


class ClassificationInterpretation(Interpretation):
    """Interpretation of a classifier: `pred_class` is the argmax of the predictions; the number of
    classes is `data.c`, else `len(data.classes)`, else the predictions' width."""

    def __init__(self, learn: Learner, preds: torch.Tensor, y_true: torch.Tensor, losses: torch.Tensor,
                 ds_type: DatasetType = DatasetType.Valid) -> None:
        super().__init__(learn, preds, y_true, losses, ds_type)
        self.pred_class = self.preds.argmax(dim=1)
        classes = getattr(self.data, "classes", None)
        self.c = getattr(self.data, "c", None) or (len(classes) if classes else self.preds.shape[1])
        self.classes = list(classes) if classes else list(range(self.c))

    def confusion_matrix(self, slice_size: int | None = 1) -> np.ndarray:
        """The confusion matrix (rows: actual, columns: predicted) as an `np.ndarray`; `slice_size`
        items at a time (None: all at once)."""
        x = torch.arange(0, self.c)
        if slice_size is None:
            cm = ((self.pred_class == x[:, None]) & (self.y_true == x[:, None, None])).sum(2)
        else:
            cm = torch.zeros(self.c, self.c, dtype=x.dtype)
            for i in range(0, self.y_true.shape[0], slice_size):
                cm += ((self.pred_class[i:i + slice_size] == x[:, None])
                       & (self.y_true[i:i + slice_size] == x[:, None, None])).sum(2)
        return cm.numpy()

    def plot_confusion_matrix(self, normalize: bool = False, title: str = "Confusion matrix", cmap: str = "Blues",
                              slice_size: int | None = 1, norm_dec: int = 2, plot_txt: bool = True,
                              return_fig: bool | None = None, **kwargs: Any) -> Figure | None:
        """Draw the confusion matrix (normalised per actual class if `normalize`) with matplotlib."""
        import matplotlib.pyplot as plt

        cm = self.confusion_matrix(slice_size=slice_size)
        if normalize:
            cm = cm.astype("float") / cm.sum(axis=1)[:, np.newaxis]
        fig = plt.figure(**kwargs)
        plt.imshow(cm, interpolation="nearest", cmap=cmap)
        plt.title(title)
        ticks = np.arange(self.c)
        # the class names may be ints (no `classes`): matplotlib formats any label, its stubs ask for str
        plt.xticks(ticks, self.classes, rotation=90)  # type: ignore[arg-type]
        plt.yticks(ticks, self.classes, rotation=0)  # type: ignore[arg-type]
        if plot_txt:
            thresh = cm.max() / 2.0
            for i, j in itertools.product(range(cm.shape[0]), range(cm.shape[1])):
                txt = f"{cm[i, j]:.{norm_dec}f}" if normalize else f"{cm[i, j]}"
                plt.text(j, i, txt, horizontalalignment="center", verticalalignment="center",
                         color="white" if cm[i, j] > thresh else "black")
        fig.gca().set_ylim(self.c - 0.5, -0.5)
        plt.tight_layout()
        plt.ylabel("Actual")
        plt.xlabel("Predicted")
        plt.grid(False)
        if (defaults.return_fig if return_fig is None else return_fig):
            return fig
        return None

    def most_confused(self, min_val: int = 1, slice_size: int | None = 1) -> list[tuple[Any, Any, int]]:
        """`(actual, predicted, count)` for the off-diagonal cells with at least `min_val`, largest first."""
        cm = self.confusion_matrix(slice_size=slice_size)
        np.fill_diagonal(cm, 0)
        res = [(self.classes[i], self.classes[j], cm[i, j]) for i, j in zip(*np.where(cm >= min_val))]
        return sorted(res, key=itemgetter(2), reverse=True)


class MultiLabelClassificationInterpretation(Interpretation):
    """fastai v1's placeholder for multi-label interpretation: as in fastai 1.0.61, constructing one
    (directly or through `from_learner`) raises `NotImplementedError`. `sigmoid` and `thresh` are
    fastai's arguments (predicted labels would be `sigmoid(preds) > thresh`)."""

    def __init__(self, learn: Learner, preds: torch.Tensor, y_true: torch.Tensor, losses: torch.Tensor,
                 ds_type: DatasetType = DatasetType.Valid, sigmoid: bool = True, thresh: float = 0.3) -> None:
        raise NotImplementedError(
            "MultiLabelClassificationInterpretation is not implemented (nor in fastai v1 1.0.61); use "
            "Interpretation for the per-item losses, or threshold `learn.get_preds()` yourself")
