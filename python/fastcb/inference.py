"""Inference on a `Learner`: fastai v1's `pred_batch`, `predict`, `backward`, `show_results`,
`predict_with_mc_dropout`, and the loss-function-to-activation rule `get_preds` uses."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from ._utils import camel2snake, is_listy, to_detach
from .callback import CallbackHandler
from .callbacks.misc import RecordOnCPU
from .data import DatasetType
from .loop import loss_batch

if TYPE_CHECKING:
    from .callback import Callback
    from .data import DataBunch, DeviceDataLoader

#: an activation: the model's output -> probabilities (or what `activ=` a user passes returns)
Activation = Callable[[torch.Tensor], Any]

__all__ = ["loss_func2activ", "FakeOptimizer"]

_ACTIV: dict[str, Callable[..., torch.Tensor]] = {"cross_entropy_loss": F.softmax, "cross_entropy": F.softmax, "nll_loss": torch.exp,
          "poisson_nll_loss": torch.exp, "kl_div_loss": torch.exp, "kl_div": torch.exp,
          "bce_with_logits_loss": torch.sigmoid, "binary_cross_entropy_with_logits": torch.sigmoid}


def _activ(name: str, axis: int) -> Activation:
    f = _ACTIV[name]
    return partial(F.softmax, dim=axis) if f is F.softmax else f


def loss_func2activ(loss_func: Any) -> Activation | None:
    """The activation that turns `loss_func`'s inputs into probabilities (fastai's `_loss_func2activ`).

    Softmax (over `loss_func.axis`, default last) for cross-entropy, exp for NLL/KL/Poisson with
    log inputs, sigmoid for BCE-with-logits; `None` for anything else. Looks through
    `functools.partial`, flattened losses (`.func`) and `MixUpLoss` (`.crit`).
    """
    if getattr(loss_func, "keywords", None) and not loss_func.keywords.get("log_input", True):
        return None
    axis = getattr(loss_func, "axis", -1)
    loss_func = getattr(loss_func, "func", loss_func)
    loss_func = getattr(loss_func, "func", loss_func)
    name = camel2snake(type(loss_func).__name__)
    if name == "mix_up_loss":
        loss_func = loss_func.crit
        name = camel2snake(type(loss_func).__name__)
    if name in _ACTIV:
        if name == "poisson_nll_loss" and not getattr(loss_func, "log_input", True):
            return None
        return _activ(name, axis)
    if getattr(loss_func, "__name__", "") in _ACTIV:
        return _activ(loss_func.__name__, axis)
    return None


class FakeOptimizer:
    """An optimizer that does nothing (`Learner.backward` computes gradients without stepping)."""

    def step(self) -> None:
        """Do nothing."""

    def zero_grad(self) -> None:
        """Do nothing."""


def _grab_idx(x: Any, i: int, batch_first: bool = True) -> Any:
    """Item `i` of batch `x` (nested lists/tuples handled)."""
    if is_listy(x):
        return [_grab_idx(o, i, batch_first) for o in x]
    return x[i] if batch_first else x[:, i]


def _analyze(ds: Any, raw_pred: Any, **kwargs: Any) -> Any:
    """The prediction from the activated output: the dataset's `y.analyze_pred` when it has one
    (fastai's item lists), else the argmax for a probability vector, else the output itself."""
    y: Any = getattr(ds, "y", None)
    if hasattr(y, "analyze_pred"):
        return y.analyze_pred(raw_pred, **kwargs)
    return raw_pred


class InferenceMixin:
    """`Learner`'s inference methods (fastai v1 names and signatures)."""

    if TYPE_CHECKING:  # what they use of the `Learner`
        data: DataBunch
        model: nn.Module
        loss_func: Any
        callbacks: list[Callback]

        def dl(self, ds_type: DatasetType = DatasetType.Valid) -> DeviceDataLoader | None: ...

    def apply_dropout(self, m: nn.Module) -> None:
        """Switch modules whose class name contains 'dropout' to training mode (Monte-Carlo dropout)."""
        if "dropout" in type(m).__name__.lower():
            m.train()

    def pred_batch(self, ds_type: DatasetType = DatasetType.Valid, batch: tuple[Any, Any] | None = None,
                   reconstruct: bool = False, with_dropout: bool = False, activ: Activation | None = None) -> Any:
        """The model's activated output on one batch of `ds_type` (or on `batch`), in eval mode.

        `activ` defaults to the loss function's activation (see `get_preds`); `with_dropout`
        keeps dropout active; `reconstruct` maps the outputs through the dataset's `reconstruct`
        when it has one.
        """
        xb, yb = batch if batch is not None else self.data.one_batch(ds_type, detach=False, cpu=False)
        cb_handler = CallbackHandler(self.callbacks)
        xb, yb = cb_handler.on_batch_begin(xb, yb, train=False)
        activ = loss_func2activ(self.loss_func) if activ is None else activ
        model = self.model.eval()
        if with_dropout:
            model.apply(self.apply_dropout)
        with torch.no_grad():
            out = loss_batch(model, xb, yb, cb_handler=cb_handler)[0]
            res = activ(out) if activ is not None else out
        if not reconstruct:
            return res
        res = res.detach().cpu()
        ds = self.dl(ds_type).dataset  # type: ignore[union-attr]  # no such loader: AttributeError
        return [ds.reconstruct(o) for o in res] if hasattr(ds, "reconstruct") else list(res)

    def backward(self, item: Any) -> Any:
        """Run `item` through the model in eval mode and backpropagate its loss (no optimizer step)."""
        xb, yb = self.data.one_item(item)
        return loss_batch(self.model.eval(), xb, yb, self.loss_func, opt=FakeOptimizer(),
                          cb_handler=CallbackHandler(self.callbacks))

    def predict(self, item: Any, return_x: bool = False, batch_first: bool = True, with_dropout: bool = False,
                **kwargs: Any) -> tuple[Any, ...]:
        """`(y, pred, raw_pred)` for one `item` (`(x, y, pred, raw_pred)` with `return_x`).

        `raw_pred` is the activated model output; `pred` is the dataset's `y.analyze_pred(raw_pred)`
        when it has one, else `raw_pred`; `y` is the dataset's `y.reconstruct(pred)` when it has
        one, else `pred`. `kwargs` go to `analyze_pred`.
        """
        batch = self.data.one_item(item)
        res = self.pred_batch(batch=batch, with_dropout=with_dropout)
        raw_pred, x = _grab_idx(res, 0, batch_first=batch_first), batch[0]
        ds = self.data.single_ds
        pred = _analyze(ds, raw_pred, **kwargs)
        x = _grab_idx(x, 0)
        if hasattr(getattr(ds, "x", None), "reconstruct"):
            x = ds.x.reconstruct(x)
        y_list: Any = getattr(ds, "y", None)
        y = y_list.reconstruct(pred) if hasattr(y_list, "reconstruct") else pred
        return (x, y, pred, raw_pred) if return_x else (y, pred, raw_pred)

    def predict_with_mc_dropout(self, item: Any, with_dropout: bool = True, n_times: int = 10,
                                **kwargs: Any) -> list[tuple[Any, ...]]:
        """`n_times` predictions of `item` with dropout on (Monte-Carlo dropout)."""
        return [self.predict(item, with_dropout=with_dropout, **kwargs) for _ in range(n_times)]

    def show_results(self, ds_type: DatasetType = DatasetType.Valid, rows: int = 5, **kwargs: Any) -> Any:
        """Show `rows` inputs, targets and predictions of one batch of `ds_type`.

        Datasets with fastai's item-list API (`x.show_xyzs`) draw themselves; otherwise the
        tensors are printed, one row per item.
        """
        n = min(rows, self.dl(ds_type).batch_size or rows)  # type: ignore[union-attr]  # no such loader: AttributeError
        rec = RecordOnCPU()
        self.callbacks.append(rec)
        try:
            preds = self.pred_batch(ds_type)
        finally:
            self.callbacks.remove(rec)
        x, y = rec.input, rec.target
        n = min(n, len(preds))
        ds = self.dl(ds_type).dataset  # type: ignore[union-attr]  # no such loader: AttributeError
        if hasattr(getattr(ds, "x", None), "show_xyzs"):
            xs = [ds.x.reconstruct(_grab_idx(x, i)) for i in range(n)]
            ys = [ds.y.reconstruct(_grab_idx(y, i)) for i in range(n)]
            zs = [ds.y.reconstruct(_analyze(ds, _grab_idx(preds, i))) for i in range(n)]
            return ds.x.show_xyzs(xs, ys, zs, **kwargs)
        for i in range(n):
            print(f"input: {to_detach(_grab_idx(x, i))}\ntarget: {_grab_idx(y, i)}\nprediction: {_grab_idx(preds, i).cpu()}\n")
