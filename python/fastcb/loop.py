"""The training loop: `fit` over epochs, `loss_batch` for one batch, `validate` and `get_preds`."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from . import checkpoint, watchdog
from . import distributed as fdist
from ._utils import check_number, first_el, host_floats, to_detach
from .callback import CallbackHandler, weighted_mean
from .optim import OptimWrapper
from .progress import end_interrupted, master_bar, progress_bar

if TYPE_CHECKING:
    from torch import nn

    from .callback import Callback
    from .inference import Activation
    from .learner import Learner

__all__ = ["fit", "loss_batch", "validate", "get_preds"]

_Tensor = torch.Tensor


def loss_batch(model: nn.Module, xb: Any, yb: Any, loss_func: Callable[..., torch.Tensor] | None = None, opt: Any = None,
               cb_handler: CallbackHandler | None = None) -> Any:
    """Forward `xb`; with `loss_func`, compute the loss and, with `opt`, backprop and step. Returns the detached loss."""
    if cb_handler is None:
        cb_handler = CallbackHandler()
    if not isinstance(xb, (list, tuple)):
        xb = [xb]
    if not isinstance(yb, (list, tuple)):
        yb = [yb]
    out = cb_handler.on_loss_begin(model(*xb))
    if not loss_func:
        return to_detach(out), to_detach(yb[0])
    loss = loss_func(out, *yb)
    if loss.dim():  # shape metadata only: no host-device sync
        _check_scalar_loss(loss, loss_func)
    if opt is not None:
        loss, skip_bwd = cb_handler.on_backward_begin(loss)
        if not skip_bwd:
            loss.backward()
        if not cb_handler.on_backward_end():
            opt.step()
        if not cb_handler.on_step_end():
            opt.zero_grad()
    return loss.detach() if loss.requires_grad else loss  # validation (no_grad): nothing to detach from


def train_batch(model: nn.Module, xb: Any, yb: Any, loss_func: Callable[..., torch.Tensor], opt: Any,
                cb_handler: CallbackHandler) -> bool:
    """One training batch as `fit` runs it: `cb_handler.on_batch_begin(xb, yb)`, `loss_batch(...)`
    and `cb_handler.on_batch_end(loss)` in one call. The same events reach the same hooks with
    the same state and return-value rules; an event no callback defines costs one test, not a
    call. Returns `stop_epoch`."""
    st = cb_handler.state_dict
    batch_begin, loss_begin, backward_begin, backward_end, step_end, batch_end = cb_handler.train_calls
    st["last_input"], st["last_target"], st["train"] = xb, yb, True
    st["stop_epoch"] = st["skip_step"] = st["skip_zero"] = st["skip_bwd"] = False
    if batch_begin:
        one = cb_handler.train_one[0]
        if one is None:
            cb_handler._run("batch_begin", batch_begin)
        else:  # one hook that takes one state value: `_run`'s loop without its frame
            res = one[0](one[1](st))
            if res is not None:
                cb_handler._apply("batch_begin", one[0], res)
        xb, yb = st["last_input"], st["last_target"]
    # one input and one target (the common case) are passed as they are: no list to build and
    # unpack (a plain tensor is told apart by its type alone, before the `isinstance` test)
    listy = type(xb) is not _Tensor and isinstance(xb, (list, tuple))
    out = st["last_output"] = model(*xb) if listy else model(xb)
    if loss_begin:
        cb_handler._run("loss_begin", loss_begin)
        out = st["last_output"]
    listy = type(yb) is not _Tensor and isinstance(yb, (list, tuple))
    loss = loss_func(out, *yb) if listy else loss_func(out, yb)
    if loss.dim():  # shape metadata only: no host-device sync
        _check_scalar_loss(loss, loss_func)
    # kept for the epoch's record, and returned unless a hook replaces the loss. `.data` is
    # `detach()` without the dispatcher (a third of its cost): the same storage, no graph; it only
    # doesn't share the version counter, which nothing here needs (no one writes to it in place
    # before `backward`, and the record is read after it).
    value = loss.data
    cb_handler._epoch_losses.append(value)
    if cb_handler._live_smoothing:
        cb_handler.smooth_live(value)
    st["last_loss"] = loss
    if backward_begin:
        cb_handler._run("backward_begin", backward_begin)
        if st["last_loss"] is not loss:
            loss = st["last_loss"]
            value = loss.data
    if not st["skip_bwd"]:
        loss.backward()
    if backward_end:
        cb_handler._run("backward_end", backward_end)
    # An exact OptimWrapper steps and zeroes as its optimizer does when it has no decoupled decay
    # to apply: the optimizer's own methods are called (the one it holds now), without the
    # wrapper's frames. A subclass, a method set on the instance or patched on the class, or
    # decay go through the wrapper.
    od = (opt.__dict__ if type(opt) is OptimWrapper and OptimWrapper.step is _WRAPPER_STEP
          and OptimWrapper.zero_grad is _WRAPPER_ZERO_GRAD else None)
    if not st["skip_step"]:
        if od is not None and not (od["true_wd"] and any(od["_wd"])) and "step" not in od:
            od["opt"].step()
        else:
            opt.step()
    if step_end:
        cb_handler._run("step_end", step_end)
    if not st["skip_zero"]:
        if od is not None and "zero_grad" not in od:
            od["opt"].zero_grad()
        else:
            opt.zero_grad()
    st["last_loss"] = value
    if batch_end:
        one = cb_handler.train_one[5]
        if one is None:
            cb_handler._run("batch_end", batch_end)
        else:
            res = one[0](one[1](st))
            if res is not None:
                cb_handler._apply("batch_end", one[0], res)
    st["iteration"] += 1
    st["num_batch"] += 1
    return st["stop_epoch"]


_WRAPPER_STEP, _WRAPPER_ZERO_GRAD = OptimWrapper.step, OptimWrapper.zero_grad  # what the shortcut stands in for


def _check_scalar_loss(loss: torch.Tensor, loss_func: Any) -> None:
    """A training loss must be one number to backpropagate and record; say which function gave what."""
    if loss.numel() != 1:
        name = getattr(loss_func, "__name__", None) or repr(loss_func)
        if isinstance(getattr(loss_func, "reduction", None), str):
            name += f" with reduction={loss_func.reduction!r}"
        raise ValueError(f"loss_func: {name} returned a tensor of shape {list(loss.shape)}, not a scalar; "
                         "reduce it to one number per batch (reduction='mean', or .mean())")


def _weighted_mean(losses: list[Any], nums: list[int]) -> np.float64 | None:
    """The batch-size-weighted mean of per-batch device losses: one host transfer, exact sum
    (`weighted_mean`: merged over the ranks of a process group; non-finite losses give nan/inf)."""
    vals = host_floats(losses, "loss_func: the validation losses (one reduced loss per batch, to be averaged)")
    return weighted_mean(vals, np.asarray(nums, dtype=np.float64))


def validate(model: nn.Module, dl: Iterable[Any], loss_func: Callable[..., torch.Tensor] | None = None,
             cb_handler: CallbackHandler | None = None, pbar: Any = None, average: bool = True, n_batch: int | None = None,
             quiet: bool = False) -> Any:
    """Run `model` on `dl` in eval mode; the weighted mean loss if `average`, else the per-batch results.

    Under a process group the mean loss is over every rank's batches (call it on every rank).
    """
    model.eval()
    with torch.no_grad():
        val_losses: list[Any] = []
        nums: list[int] = []
        if cb_handler:
            cb_handler.set_dl(dl)
        bar = progress_bar(dl, parent=pbar, leave=pbar is not None, quiet=quiet)
        if cb_handler is not None and loss_func:
            _valid_losses(model, bar, loss_func, cb_handler, val_losses, nums, n_batch)
            return _weighted_mean(val_losses, nums) if average else val_losses
        for xb, yb in bar:
            if cb_handler:
                xb, yb = cb_handler.on_batch_begin(xb, yb, train=False)
            val_losses.append(loss_batch(model, xb, yb, loss_func, cb_handler=cb_handler))
            nums.append(first_el(yb).shape[0])
            if cb_handler and cb_handler.on_batch_end(val_losses[-1]):
                end_interrupted(bar)
                break
            if n_batch and len(nums) >= n_batch:
                end_interrupted(bar)
                break
        if not average:
            return val_losses
        return _weighted_mean(val_losses, nums)


def _valid_losses(model: nn.Module, bar: Iterable[Any], loss_func: Callable[..., torch.Tensor],
                  cb_handler: CallbackHandler, val_losses: list[Any], nums: list[int], n_batch: int | None) -> None:
    """`validate`'s batches with a handler and a loss function: per batch what
    `cb_handler.on_batch_begin(xb, yb, train=False)`, `loss_batch(model, xb, yb, loss_func,
    cb_handler=cb_handler)` and `cb_handler.on_batch_end(loss)` do (the same events reach the
    same hooks, with the same state), in one frame: an event no hook takes costs a test, not
    a call. Appends each batch's loss and size to `val_losses` and `nums`."""
    st = cb_handler.state_dict
    for xb, yb in bar:
        st["last_input"], st["last_target"], st["train"] = xb, yb, False
        st["stop_epoch"] = st["skip_step"] = st["skip_zero"] = st["skip_bwd"] = False
        calls = cb_handler._valid_calls["batch_begin"]
        if calls:
            cb_handler._run("batch_begin", calls)
            xb, yb = st["last_input"], st["last_target"]
        out = st["last_output"] = model(*xb) if isinstance(xb, (list, tuple)) else model(xb)
        calls = cb_handler._calls["loss_begin"][0]
        if calls:
            cb_handler._run("loss_begin", calls)
            out = st["last_output"]
        loss = loss_func(out, *yb) if isinstance(yb, (list, tuple)) else loss_func(out, yb)
        if loss.dim():  # shape metadata only: no host-device sync
            _check_scalar_loss(loss, loss_func)
        if loss.requires_grad:  # a loss function that enabled grad itself
            loss = loss.detach()
        val_losses.append(loss)
        nums.append((yb if type(yb) is torch.Tensor else first_el(yb)).shape[0])
        if st["train"]:  # a hook said this is training: the handler's own rules for that
            cb_handler.on_batch_end(loss)
        else:
            st["last_loss"] = loss
            calls = cb_handler._valid_calls["batch_end"]
            if calls:
                cb_handler._run("batch_end", calls)
        if st["stop_epoch"]:
            end_interrupted(bar)
            return
        if n_batch and len(nums) >= n_batch:
            end_interrupted(bar)
            return


def fit(epochs: int, learn: Learner, callbacks: Sequence[Callback] | None = None,
        metrics: Sequence[Any] | None = None) -> None:
    """Train `learn.model` on `learn.data` with `learn.opt` and `learn.loss_func` for `epochs` epochs.

    Progress bars and the table show on rank 0 only. A checkpoint kept by `learn.load` is
    continued when the run starts (through `start_epoch`) right after its epoch.
    """
    check_number("epochs", epochs, integer=True, minimum=0)
    if len(learn.data.train_dl) == 0:
        raise ValueError("learn.data.train_dl: is empty, can't train a model (use a smaller batch size)")
    cb_handler = CallbackHandler(callbacks, metrics)
    learn.cb_handler = cb_handler  # what `learn.save` checkpoints
    quiet = getattr(learn, "silent", False) or not fdist.is_main_process()
    pbar = master_bar(range(epochs), quiet=quiet)
    exception: bool | BaseException = False
    try:  # on_train_end runs whenever on_train_begin started, even if one of its hooks raised
        cb_handler.on_train_begin(epochs, pbar=pbar, metrics=metrics, jump=False)
        checkpoint.resume(learn, cb_handler)  # at a start epoch: the checkpoint kept by `load`, or the callbacks jump
        for _ in pbar:
            learn.model.train()
            cb_handler.set_dl(learn.data.train_dl)
            cb_handler.on_epoch_begin()
            bar = progress_bar(learn.data.train_dl, parent=pbar)
            for xb, yb in bar:
                loss_func, opt = learn.loss_func, learn.opt
                if loss_func and opt is not None:
                    stop = train_batch(learn.model, xb, yb, loss_func, opt, cb_handler)
                else:  # nothing to train: loss_batch's outputs go to the callbacks as they are
                    xb, yb = cb_handler.on_batch_begin(xb, yb)
                    stop = cb_handler.on_batch_end(loss_batch(learn.model, xb, yb, loss_func, opt, cb_handler))
                if stop:
                    end_interrupted(bar)
                    break
            if not cb_handler.skip_validate and not learn.data.empty_val:
                # the bare module: under DDP ranks may have different numbers of validation batches
                val_loss = validate(fdist.unwrap(learn.model), learn.data.valid_dl, loss_func=learn.loss_func,  # type: ignore[arg-type]  # not empty_val: there is one
                                    cb_handler=cb_handler, pbar=pbar)
            else:
                val_loss = None
            if cb_handler.on_epoch_end(val_loss):
                break
    except BaseException as e:
        exception = watchdog.explain(e)  # a collective that failed because another rank stalled: which one
        if exception is e:
            raise
        raise exception from e
    finally:
        cb_handler.on_train_end(exception)


def get_preds(model: nn.Module, dl: Iterable[Any], pbar: Any = None, cb_handler: CallbackHandler | None = None,
              activ: Activation | None = None, loss_func: Callable[..., torch.Tensor] | None = None,
              n_batch: int | None = None, quiet: bool = False) -> list[torch.Tensor]:
    """`[predictions, targets]` (and per-item losses with `loss_func`) over `dl`, on the CPU.

    `activ` is applied to the predictions (after the losses are computed on the raw outputs).
    """
    res = [torch.cat(o).cpu() for o in zip(*validate(model, dl, cb_handler=cb_handler, pbar=pbar, average=False,
                                                      n_batch=n_batch, quiet=quiet))]
    if loss_func is not None:
        reduction = getattr(loss_func, "reduction", None)
        if reduction is not None:
            loss_func = copy.copy(loss_func)
            loss_func.reduction = "none"  # type: ignore[attr-defined]  # it has one: read above
            res.append(loss_func(res[0], res[1]))
        else:
            res.append(loss_func(res[0], res[1], reduction="none"))
    if activ is not None:
        res[0] = activ(res[0])
    return res
