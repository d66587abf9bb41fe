"""`validate`'s batches in one frame (`loop._valid_losses`) against the event-by-event path they
replace (`on_batch_begin(train=False)`, `loss_batch`, `on_batch_end`)."""

from functools import partial

import loop_helpers
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from loop_helpers import tiny_data

from fastcb import AverageMetric, CallbackHandler, accuracy
from fastcb._utils import first_el
from fastcb.loop import _weighted_mean, loss_batch, validate

_EVENTS = ("batch_begin", "loss_begin", "batch_end")


class Meddler(loop_helpers.Meddler):
    """Logs the state each hook sees and, at random, returns what fastai v1 lets it return (a stop,
    and rarely `train=True`, among them)."""

    def seen(self, ev, kw):
        return (ev, kw["iteration"], kw["num_batch"], kw["train"], kw["stop_epoch"], _val(kw["last_loss"]),
                _val(kw["last_output"]), _val(kw["last_input"]))

    def reply(self, ev, kw, r):
        if r < 0.4:
            return None
        if r < 0.5:  # the rare hook that calls a validation batch a training one
            return {"train": True}
        if ev == "batch_begin":
            return (_half(kw["last_input"]), kw["last_target"]) if r < 0.8 else {"stop_epoch": r > 0.93}
        if ev == "loss_begin":
            return kw["last_output"] * 2.0
        return {"stop_epoch": r > 0.9}


def _val(v):
    if isinstance(v, (list, tuple)):
        return [_val(x) for x in v]
    return None if v is None else v.detach().sum().item() if isinstance(v, torch.Tensor) else v


def _half(x):
    return [_half(v) for v in x] if isinstance(x, list) else x * 0.5


def reference(model, dl, loss_func, cb_handler, average=True, n_batch=None):
    """`validate` as it was: the handler's events one by one around `loss_batch`."""
    model.eval()
    with torch.no_grad():
        val_losses, nums = [], []
        cb_handler.set_dl(dl)
        for xb, yb in dl:
            xb, yb = cb_handler.on_batch_begin(xb, yb, train=False)
            val_losses.append(loss_batch(model, xb, yb, loss_func, cb_handler=cb_handler))
            nums.append(first_el(yb).shape[0])
            if cb_handler.on_batch_end(val_losses[-1]):
                break
            if n_batch and len(nums) >= n_batch:
                break
        return _weighted_mean(val_losses, nums) if average else val_losses


def _run(events, seed, fast, average=True, n_batch=None, listy=False):
    torch.manual_seed(0)
    model = torch.nn.Linear(10, 2)
    log = []
    handler = CallbackHandler([Meddler(events, seed, log)], [accuracy])
    handler.on_train_begin(1, None, None)
    handler.on_epoch_begin()
    dl = tiny_data(n_valid=44, bs=8).valid_dl
    if listy:
        dl = [([xb], [yb]) for xb, yb in dl]
    run = partial(validate, quiet=True) if fast else reference
    res = run(model, dl, F.cross_entropy, handler, average=average, n_batch=n_batch)
    state = {k: _val(v) for k, v in handler.state_dict.items()
             if k in ("iteration", "num_batch", "train", "stop_epoch", "last_loss", "last_output")}
    met = handler.metrics[0]
    return log, res if average else [_val(v) for v in res], state, [_val(v) for v in met._vals], met._weights


@settings(max_examples=30, deadline=None)
@given(st.sets(st.sampled_from(_EVENTS)), st.integers(0, 10**6), st.booleans(), st.sampled_from([None, 2, 4]),
       st.booleans())
def test_the_fused_validation_is_the_event_by_event_path(events, seed, average, n_batch, listy):
    ref = _run(sorted(events), seed, False, average, n_batch, listy)
    got = _run(sorted(events), seed, True, average, n_batch, listy)
    assert got == ref


def test_a_loss_that_needs_grad_is_kept_detached():
    def with_grad(out, y):
        with torch.enable_grad():
            return F.cross_entropy(out.detach().requires_grad_(), y)

    handler = CallbackHandler([], [])
    losses = validate(torch.nn.Linear(10, 2), tiny_data().valid_dl, with_grad, handler, average=False)
    assert losses and not any(v.requires_grad for v in losses)


def test_a_loss_of_several_numbers_is_named_at_its_batch():
    handler = CallbackHandler([], [])
    with pytest.raises(ValueError, match="reduction='none'"):
        validate(torch.nn.Linear(10, 2), tiny_data().valid_dl, torch.nn.CrossEntropyLoss(reduction="none"), handler)


def test_the_metric_weighs_dict_and_list_targets_by_their_first_tensor():
    m = AverageMetric(lambda out, *ys: torch.tensor(1.0))
    m.on_epoch_begin()
    m.on_batch_end(torch.zeros(3, 2), torch.zeros(3))
    m.on_batch_end(torch.zeros(5, 2), [torch.zeros(5), torch.zeros(2)])
    m.on_batch_end(torch.zeros(4, 2), {"a": torch.zeros(4)})
    assert m._weights == [3, 5, 4]
