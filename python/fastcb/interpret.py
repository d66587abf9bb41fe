"""`Interpretation`, `ClassificationInterpretation` (and fastai's unfinished
`MultiLabelClassificationInterpretation`): a model's predictions, targets and per-item losses
on a dataset, with the largest losses and the confusion matrix (fastai v1's `fastai.train` classes)."""

import itertools
from operator import itemgetter

import numpy as np
import torch

from .data import DatasetType
from .settings import defaults

__all__ = ["Interpretation", "ClassificationInterpretation", "MultiLabelClassificationInterpretation"]


class Interpretation:
    """`preds`, `y_true` and per-item `losses` of `learn` on `ds_type` (its dataset is `ds`)."""

    def __init__(self, learn, preds, y_true, losses, ds_type=DatasetType.Valid):
        self.data, self.preds, self.y_true, self.losses, self.ds_type, self.learn = (
            learn.data, preds, y_true, losses, ds_type, learn)
        self.ds = learn.data.dl(ds_type).dataset

    @classmethod
    def from_learner(cls, learn, ds_type=DatasetType.Valid, activ=None):
        """Compute the predictions (activated as `get_preds` does), targets and losses of `learn`."""
        return cls(learn, *learn.get_preds(ds_type=ds_type, activ=activ, with_loss=True), ds_type=ds_type)

    def top_losses(self, k=None, largest=True):
        """`(values, indexes)` of the `k` largest (or smallest) losses; all of them by default."""
        return self.losses.topk(len(self.losses) if k is None else k, largest=largest)


class ClassificationInterpretation(Interpretation):
    """Interpretation of a classifier: `pred_class` is the argmax of the predictions; the number of
    classes is `data.c`, else `len(data.classes)`, else the predictions' width."""

    def __init__(self, learn, preds, y_true, losses, ds_type=DatasetType.Valid):
        super().__init__(learn, preds, y_true, losses, ds_type)
        self.pred_class = self.preds.argmax(dim=1)
        classes = getattr(self.data, "classes", None)
        self.c = getattr(self.data, "c", None) or (len(classes) if classes else self.preds.shape[1])
        self.classes = list(classes) if classes else list(range(self.c))

    def confusion_matrix(self, slice_size=1):
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

    def plot_confusion_matrix(self, normalize=False, title="Confusion matrix", cmap="Blues", slice_size=1,
                              norm_dec=2, plot_txt=True, return_fig=None, **kwargs):
        """Draw the confusion matrix (normalised per actual class if `normalize`) with matplotlib."""
        import matplotlib.pyplot as plt

        cm = self.confusion_matrix(slice_size=slice_size)
        if normalize:
            cm = cm.astype("float") / cm.sum(axis=1)[:, np.newaxis]
        fig = plt.figure(**kwargs)
        plt.imshow(cm, interpolation="nearest", cmap=cmap)
        plt.title(title)
        ticks = np.arange(self.c)
        plt.xticks(ticks, self.classes, rotation=90)
        plt.yticks(ticks, self.classes, rotation=0)
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

    def most_confused(self, min_val=1, slice_size=1):
        """`(actual, predicted, count)` for the off-diagonal cells with at least `min_val`, largest first."""
        cm = self.confusion_matrix(slice_size=slice_size)
        np.fill_diagonal(cm, 0)
        res = [(self.classes[i], self.classes[j], cm[i, j]) for i, j in zip(*np.where(cm >= min_val))]
        return sorted(res, key=itemgetter(2), reverse=True)


class MultiLabelClassificationInterpretation(Interpretation):
    """fastai v1's placeholder for multi-label interpretation: as in fastai 1.0.61, constructing one
    (directly or through `from_learner`) raises `NotImplementedError`. `sigmoid` and `thresh` are
    fastai's arguments (predicted labels would be `sigmoid(preds) > thresh`)."""

    def __init__(self, learn, preds, y_true, losses, ds_type=DatasetType.Valid, sigmoid=True, thresh=0.3):
        raise NotImplementedError(
            "MultiLabelClassificationInterpretation is not implemented (nor in fastai v1 1.0.61); use "
            "Interpretation for the per-item losses, or threshold `learn.get_preds()` yourself")
