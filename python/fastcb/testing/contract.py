"""The callback contract: run a user's `Callback` through a short fit and check it kept the
handler's rules — the events it saw came in the loop's order, with known keyword arguments,
and every value it returned is one the handler accepts for that event."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ..callback import EVENTS, STATE_KEYS, Callback

if TYPE_CHECKING:
    from ..learner import Learner

__all__ = ["check_callback_contract", "tiny_learner"]

_EXTRA_KWARGS = {"train_begin": {"metrics_names"}, "train_end": {"exception"}}

# What a hook may return besides None and a dict of state updates (the seed's per-event values).
_FLAG = (lambda r: isinstance(r, (bool, np.bool_)), "True or False")
_RETURNS = {
    "batch_begin": (lambda r: isinstance(r, (tuple, list)) and len(r) == 2, "a pair (xb, yb)"),
    "loss_begin": (lambda r: not isinstance(r, (bool, str)), "the new output"),
    "backward_begin": (lambda r: isinstance(r, torch.Tensor), "the new loss tensor"),
    "backward_end": _FLAG,
    "step_end": _FLAG,
    "batch_end": _FLAG,
    "epoch_end": _FLAG,
}

# The loop's grammar: after an event (with its `train` flag), which may come next.
_NEXT = {
    None: {"train_begin"},
    "train_begin": {"epoch_begin", "train_end"},
    "epoch_begin": {"batch_begin/train"},
    "batch_begin/train": {"loss_begin/train"},
    "loss_begin/train": {"backward_begin"},
    "backward_begin": {"backward_end"},
    "backward_end": {"step_end"},
    "step_end": {"batch_end/train"},
    "batch_end/train": {"batch_begin/train", "batch_begin/valid", "epoch_end"},
    "batch_begin/valid": {"loss_begin/valid"},
    "loss_begin/valid": {"batch_end/valid"},
    "batch_end/valid": {"batch_begin/valid", "epoch_end"},
    "epoch_end": {"epoch_begin", "train_end"},
    "train_end": set(),
}
_PER_BATCH = {"batch_begin", "loss_begin", "batch_end"}


def tiny_learner(n_train: int = 64, n_valid: int = 32, bs: int = 16, **kwargs: Any) -> Learner:
    """A quiet `Learner` on a few spiral points (4 training and 2 validation batches by default)."""
    from ..data import DataBunch
    from ..demo_data import demo_model, spiral_datasets
    from ..learner import Learner
    from ..metrics import accuracy

    train_ds, valid_ds = spiral_datasets(n_train, n_valid)
    data = DataBunch.create(train_ds, valid_ds, bs=bs, device="cpu")
    kwargs.setdefault("metrics", [accuracy])
    return Learner(data, demo_model(hidden=8), silent=True, **kwargs)


def _check_return(cb: Callback, event: str, res: object) -> None:
    owner = f"{type(cb).__name__}.on_{event}"
    if res is None:
        return
    if type(res) is dict:
        unknown = sorted(set(res) - STATE_KEYS)
        if unknown:
            raise AssertionError(
                f"{owner} returned the unknown state key(s) {unknown}; a hook may only update {sorted(STATE_KEYS)}"
            )
        return
    ok, meaning = _RETURNS.get(event, (lambda r: False, None))
    if not ok(res):
        allowed = "None or a dict of state updates" + (f", or {meaning}" if meaning else "")
        raise AssertionError(f"{owner} returned {type(res).__name__} {res!r:.80}; it may return {allowed}")


def _spy(cb: Callback, event: str, seen: list[str]) -> Callable[..., Any]:
    hook = getattr(cb, "on_" + event)
    allowed = STATE_KEYS | _EXTRA_KWARGS.get(event, set())

    def spied(**kwargs: Any) -> Any:
        unknown = sorted(set(kwargs) - allowed)
        if unknown:
            raise AssertionError(f"on_{event} received unknown keyword arguments {unknown}")
        seen.append(f"{event}/{'train' if kwargs.get('train', True) else 'valid'}" if event in _PER_BATCH else event)
        res = hook(**kwargs)
        _check_return(cb, event, res)
        return res

    return spied


def _check_order(seen: list[str], name: str) -> None:
    prev = None
    for i, ev in enumerate(seen):
        if ev not in _NEXT[prev]:
            context = ", ".join(seen[max(0, i - 4) : i + 1])
            raise AssertionError(
                f"{name}: event {i} was {ev} after {prev}; expected one of {sorted(_NEXT[prev])} (… {context})"
            )
        prev = ev
    if prev != "train_end":
        raise AssertionError(f"{name}: training ended without on_train_end (last event {prev})")


def check_callback_contract(callback: Callback | Callable[[Learner], Callback], learn: Learner | None = None,
                            epochs: int = 2, lr: float = 1e-2,
                            fit: Callable[[Learner, int, list[Callback]], object] | None = None) -> list[str]:
    """Run `callback` (a `Callback`, or a function of the `Learner` that makes one, like a
    `callback_fns` entry) through a short fit on `learn` (default: `tiny_learner()`), then
    check it kept the handler's rules: events in the loop's order (once `on_train_begin`,
    epochs of training then validation batches, `on_train_end` last), only known keyword
    arguments, and only accepted return values (None, a dict of known state keys, or the
    event's own value: `(xb, yb)`, an output, a loss tensor, a bool). `fit(learn, epochs,
    callbacks)` replaces `learn.fit`. Returns the events seen, in order."""
    learn = tiny_learner() if learn is None else learn
    cb = callback if isinstance(callback, Callback) else callback(learn)
    if not isinstance(cb, Callback):
        raise TypeError(f"callback: expected a Callback or a function of the learner making one, got {cb!r}")
    seen: list[str] = []
    patched = {"on_" + ev: _spy(cb, ev, seen) for ev in EVENTS}
    vars(cb).update(patched)
    try:
        if fit is None:
            learn.fit(epochs, lr, callbacks=[cb])
        else:
            fit(learn, epochs, [cb])
    finally:
        for k in patched:
            vars(cb).pop(k, None)
    _check_order(seen, type(cb).__name__)
    return seen
