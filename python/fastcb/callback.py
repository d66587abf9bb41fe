"""`Callback`, `CallbackHandler` and `AverageMetric`: fastai v1's callback protocol.

Each event receives the handler's whole state as keyword arguments. A hook changes that
state only by what it returns: a dict of state updates (fastai v1's later style), or the
seed's per-event value (new `(xb, yb)`, output or loss; True to stop the epoch/training).
"""

import inspect
import math
import sys
import types
import weakref
from collections.abc import Callable, Iterable, Sequence
from operator import itemgetter
from typing import Any, TypeVar

import numpy as np
import torch

from ._utils import camel2snake, check_number, first_el, func_name, host_floats, is_listy
from .anneal import SmoothenValue, WeightedMean
from .distributed import all_merge, is_distributed
from .errors import StateError, UnknownStateKeyError

__all__ = [
    "EVENTS",
    "STATE_KEYS",
    "Callback",
    "CallbackHandler",
    "AverageMetric",
    "CallbackList",
    "UnknownStateKeyError",
    "add_metrics",
    "check_state_number",
    "compiled_as",
    "train_only",
    "weighted_mean",
    "uses_state",
]

#: The ten events, in the order one training step meets them.
EVENTS = (
    "train_begin",
    "epoch_begin",
    "batch_begin",
    "loss_begin",
    "backward_begin",
    "backward_end",
    "step_end",
    "batch_end",
    "epoch_end",
    "train_end",
)

#: The keys of `CallbackHandler.state_dict`: what a hook may receive and update. Interned, as the
#: literals the loop indexes the state with are: a lookup then matches by identity, without
#: comparing the strings (a dozen lookups per batch).
STATE_KEYS = frozenset(map(sys.intern, (
    "epoch iteration num_batch n_epochs pbar metrics train last_input last_target last_output last_loss "
    "smooth_loss smooth_losses last_metrics stop_epoch stop_training skip_bwd skip_step skip_zero skip_validate".split()
)))

#: The events of each batch: a hook on one of them may read `smooth_loss` while the epoch runs.
_BATCH_EVENTS = ("batch_begin", "loss_begin", "backward_begin", "backward_end", "step_end", "batch_end")

_HALF = (torch.float16, torch.bfloat16)
_FLAGS = ("stop_epoch", "skip_step", "skip_zero", "skip_bwd")

#: Keyword arguments some events pass beside the state.
_EVENT_KWARGS = frozenset({"metrics_names", "exception"})


class Callback:
    """Base class for callbacks: override any of the `on_<event>` methods (all optional).

    A hook gets the training state as keyword arguments (or only those its signature names)
    and changes it by returning a dict; the `CallbackHandler` is what the loop calls:

    >>> import torch
    >>> class StopAfter(Callback):
    ...     "Ends the epoch after `n` batches."
    ...     def __init__(self, n):
    ...         self.n = n
    ...     def on_batch_end(self, num_batch, **kwargs):
    ...         return {"stop_epoch": num_batch + 1 >= self.n}
    >>> handler = CallbackHandler([StopAfter(2)])
    >>> handler.on_train_begin(1, None, [])
    >>> handler.on_epoch_begin()
    >>> for xb, yb in [(torch.ones(1), torch.ones(1))] * 5:
    ...     xb, yb = handler.on_batch_begin(xb, yb)
    ...     if handler.on_batch_end(torch.tensor(0.5)):  # the loop asks: stop the epoch?
    ...         break
    >>> handler.state_dict["num_batch"]
    2
    """

    _order = 0

    def on_train_begin(self, **kwargs: Any) -> Any:
        """Training is about to start: initialise state; the optimizer exists."""

    def on_epoch_begin(self, **kwargs: Any) -> Any:
        """An epoch is starting."""

    def on_batch_begin(self, **kwargs: Any) -> Any:
        """A batch is about to go through the model; may return new `(xb, yb)`."""

    def on_loss_begin(self, **kwargs: Any) -> Any:
        """The output is computed, the loss is not; may return a new output."""

    def on_backward_begin(self, **kwargs: Any) -> Any:
        """The loss is computed, the gradients are not; may return a new loss."""

    def on_backward_end(self, **kwargs: Any) -> Any:
        """The gradients are computed, the optimizer has not stepped yet."""

    def on_step_end(self, **kwargs: Any) -> Any:
        """The optimizer has stepped, the gradients are not zeroed yet."""

    def on_batch_end(self, **kwargs: Any) -> Any:
        """A batch is done; return True to end the epoch."""

    def on_epoch_end(self, **kwargs: Any) -> Any:
        """An epoch is done (validation included); return True to end training."""

    def on_train_end(self, **kwargs: Any) -> Any:
        """Training is over (always called; `exception` is False or the error raised)."""

    def jump_to_epoch(self, epoch: int) -> None:
        """Resume at `epoch` directly (called by the handler when training starts mid-way without a
        checkpoint of this callback's state)."""

    #: The attributes that are training state (counters, best values, waits, histories): what a
    #: checkpoint saves and a resume restores. Everything else is configuration (what the
    #: constructor took: patience, monitor, mode, paths...) and stays as the user passed it.
    state_attrs: tuple[str, ...] = ()

    def state_dict(self) -> dict[str, Any]:
        """This callback's training state: its `state_attrs` that are set."""
        attrs = vars(self)
        return {k: attrs[k] for k in self.state_attrs if k in attrs}

    def check_state_dict(self, state: Any) -> None:
        """Raise `StateError` (a `ValueError`) naming the key unless `load_state_dict(state)` accepts `state`:
        a dict of declared state only, each value valid for this callback (`check_state_value`)."""
        if not isinstance(state, dict):
            raise StateError(f"state: expected a dict, got {type(state).__name__}")
        unknown = sorted(map(str, set(state) - set(self.state_attrs)))
        if unknown:
            raise StateError(f"state: {unknown} are not state of {type(self).__name__} "
                             f"(its state is {list(self.state_attrs)})")
        for k, v in state.items():
            self.check_state_value(k, v)

    def check_state_value(self, key: str, value: Any) -> None:
        """Raise `StateError` if `value` is not a valid `key` of this callback's state (subclasses refine it)."""

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore `state_dict()`: checked whole first (`check_state_dict`), then assigned; a refused
        state leaves the callback unchanged."""
        self.check_state_dict(state)
        vars(self).update(state)

    def get_state(self, minimal: bool = True) -> dict[str, Any]:
        """fastai's view of this callback: its attributes, minus `exclude` (and `not_min` when `minimal`).
        Checkpoints use `state_dict()` instead."""
        drop = {"exclude", "not_min", *getattr(self, "exclude", ())}
        if minimal:
            drop.update(getattr(self, "not_min", ()))
        return {k: v for k, v in vars(self).items() if k not in drop}

    def __repr__(self) -> str:
        try:
            params = inspect.signature(type(self).__init__).parameters
        except (TypeError, ValueError):
            params = {}  # type: ignore[assignment]
        skip = {"self", "learn", *getattr(self, "exclude", ())}
        attrs = vars(self)
        shown = [f"{n}={attrs[n]!r}" for n in params if n not in skip and n in attrs]
        return f"{type(self).__name__}({', '.join(shown)})"


CallbackList = list


def check_state_number(key: str, value: Any, integer: bool = False, minimum: float | None = None,
                       finite: bool = False) -> None:
    """Raise `StateError` naming `key` unless `value` is a real number (not a bool, not NaN): an int
    if `integer`, finite if `finite`, at least `minimum` if given (`check_number`'s rules)."""
    check_number(f"state[{key!r}]", value, integer=integer, minimum=minimum, finite=finite, error=StateError)


def add_metrics(last_metrics: list | None, mets: Any) -> dict[str, list]:
    """The state update that appends `mets` (one value or a list) to `last_metrics`."""
    last = [] if last_metrics is None else list(last_metrics)
    return {"last_metrics": last + (list(mets) if is_listy(mets) else [mets])}


def overrides(obj: object, event: str) -> bool:
    """True if `obj` has its own `on_<event>` (not `Callback`'s do-nothing one)."""
    meth = getattr(obj, "on_" + event, None)
    if meth is None or not callable(meth):
        return False
    return getattr(meth, "__func__", meth) is not getattr(Callback, "on_" + event)


#: `(event, "on_<event>")` per event (interned names: attribute lookups by them hit the type's cache).
_HOOKS = tuple((ev, sys.intern("on_" + ev)) for ev in EVENTS)


def _own_hooks(obj: object) -> dict[str, Callable[..., Any]]:
    """`{event: obj.on_<event>}` for the events `obj` overrides (`overrides`' rule), each hook
    read once."""
    out = {}
    for ev, name in _HOOKS:
        meth = getattr(obj, name, None)
        if meth is not None and callable(meth) and getattr(meth, "__func__", meth) is not getattr(Callback, name):
            out[ev] = meth
    return out


_H = TypeVar("_H", bound=Callable[..., Any])


def uses_state(*keys: str) -> Callable[[_H], _H]:
    """Declare the state keys a hook reads, so the handler passes just those (positionally).

    The hook keeps its `**kwargs`, so calling it with the whole state still works (as a
    subclass's `super().on_batch_end(**kwargs)` does); the handler's per-batch call then
    costs the same whatever the size of the state::

        @uses_state("train")
        def on_batch_end(self, train, **kwargs): ...
    """
    unknown = [k for k in keys if k not in STATE_KEYS and k not in _EVENT_KWARGS]
    if unknown:
        raise ValueError(f"keys: {unknown} are not state keys; valid keys: {sorted(STATE_KEYS)}")

    def mark(hook: _H) -> _H:
        hook.state_keys = keys  # type: ignore[attr-defined]  # a function's attribute
        return hook

    return mark


def train_only(hook: _H) -> _H:
    """Declare that a batch hook does nothing on validation batches (it returns at once unless
    `train`), so the handler doesn't call it there. Only the marked function is concerned: a
    subclass's override is called as usual."""
    hook.train_only = True  # type: ignore[attr-defined]  # a function's attribute
    return hook


def compiled_as(factory: Callable[[Any, Callable[..., Any]], Callable[[Any], Any]]) -> Callable[[_H], _H]:
    """Declare that a batch hook taking one state value has a compiled equal: `factory(callback,
    hook)` returns a callable of that value doing what `hook` does (falling back to `hook`
    itself outside its plain case), which `train_batch` calls instead when the hook is the only
    one of its event. Only the marked function is concerned: a subclass's override is called
    as usual."""

    def mark(hook: _H) -> _H:
        hook.compiled_as = factory  # type: ignore[attr-defined]  # a function's attribute
        return hook

    return mark


def wanted_state(hook: Callable[..., Any]) -> tuple[str, ...] | None:
    """The state keys `hook` takes, in order, or None for the whole state as keywords.

    A hook marked with `uses_state`, or one naming only state keys and no `**kwargs`
    (`def on_batch_end(self, train)`), is passed just those, positionally. Any other hook
    receives the whole state as keyword arguments, as in fastai.
    """
    keys = getattr(hook, "state_keys", None)
    if keys is not None:
        return tuple(keys)
    # A method's answer depends on its function only: inspect each function once (a signature
    # costs tens of microseconds, and every fit builds a handler over the same classes).
    func = getattr(hook, "__func__", None) if isinstance(hook, types.MethodType) else None
    if isinstance(func, types.FunctionType):
        try:
            return _WANTED[func]
        except KeyError:
            pass
    try:
        params = inspect.signature(hook).parameters.values()
    except (TypeError, ValueError):
        return None
    names: list[str] | None = []
    for p in params:
        if p.kind not in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) or (
                p.name not in STATE_KEYS and p.name not in _EVENT_KWARGS):
            names = None
            break
        names.append(p.name)  # type: ignore[union-attr]  # a list until the break
    wants = None if names is None else tuple(names)
    if isinstance(func, types.FunctionType):
        _WANTED[func] = wants
    return wants


#: `wanted_state` of each method's function, while the function exists.
_WANTED: "weakref.WeakKeyDictionary[types.FunctionType, tuple[str, ...] | None]" = weakref.WeakKeyDictionary()


def _reads_smooth_loss(hook: Callable[..., Any]) -> bool:
    wants = wanted_state(hook)
    return wants is None or "smooth_loss" in wants


def _set_batch(st: dict[str, Any], res: Any) -> None:
    if not is_listy(res) or len(res) != 2:
        raise TypeError(f"on_batch_begin must return None, a dict or (xb, yb), got {type(res).__name__}")
    st["last_input"], st["last_target"] = res


def _flag(key: str) -> Callable[[dict[str, Any], Any], None]:
    def rule(st: dict[str, Any], res: Any) -> None:
        if res:
            st[key] = True

    return rule


# What a non-dict return value means, per event (the seed's rules; events absent here take only dicts).
_RETURN_RULES: dict[str, Callable[[dict[str, Any], Any], Any]] = {
    "batch_begin": _set_batch,
    "loss_begin": lambda st, res: st.__setitem__("last_output", res),
    "backward_begin": lambda st, res: st.__setitem__("last_loss", res),
    "backward_end": _flag("skip_step"),
    "step_end": _flag("skip_zero"),
    "batch_end": _flag("stop_epoch"),
    "epoch_end": _flag("stop_training"),
}


def _init_state() -> dict[str, Any]:
    state = dict.fromkeys(STATE_KEYS)
    state.update(epoch=0, iteration=0, num_batch=0, train=True, stop_training=False, skip_validate=False,
                 smooth_losses=[])
    state.update(dict.fromkeys(_FLAGS, False))
    return state


class CallbackHandler:
    """Runs `callbacks` (sorted by `_order`) and `metrics` at each event, keeping their shared state."""

    def __init__(self, callbacks: Sequence[Callback] | None = None, metrics: Sequence[Any] | None = None,
                 beta: float = 0.98) -> None:
        callbacks = [] if callbacks is None else callbacks
        metrics = [] if metrics is None else metrics
        if not is_listy(callbacks):
            raise TypeError(f"callbacks: expected a list of callbacks, got {type(callbacks).__name__}")
        if not is_listy(metrics):
            raise TypeError(f"metrics: expected a list of metric functions or callbacks, got {type(metrics).__name__}")
        for m in metrics:
            if not (isinstance(m, Callback) or callable(m)):
                raise TypeError(f"metrics: {m!r} is neither a callable nor a Callback")
        self.metrics = [m if isinstance(m, Callback) else AverageMetric(m) for m in metrics]
        self.callbacks = sorted(callbacks, key=lambda o: getattr(o, "_order", 0))
        self.beta = beta
        self.smoothener = SmoothenValue(beta)  # per batch, on the device, for hooks that read it live
        self.loss_history = SmoothenValue(beta)  # per epoch, on the host: fastai's float64 formula exactly
        self._epoch_losses: list[Any] = []
        self._history_nan = False
        self.state_dict = _init_state()
        self._dispatch_on: tuple[tuple[int, ...], tuple[int, ...]] | None = None
        self._rebuild()

    def _rebuild(self) -> None:
        """Precompute, per event, the bound hooks to call (metrics first), with and without metrics."""
        for c in self.callbacks:
            if is_listy(c):  # `learn.callbacks.append([cb])`: fastai fails here too, with this text
                raise TypeError(f"callbacks: '{type(c).__name__}' object has no attribute 'on_train_begin' "
                                f"(a list inside the callbacks: use `callbacks.extend(...)`, not `append`)")
        self.callbacks.sort(key=lambda o: getattr(o, "_order", 0))
        self._calls: dict[str, tuple[Any, Any]] = {}
        self._owners: dict[int, str] = {}
        cb_hooks, met_hooks = [(c, _own_hooks(c)) for c in self.callbacks], [(m, _own_hooks(m)) for m in self.metrics]
        for ev in EVENTS:
            cbs = tuple(self._hook(c, hooks[ev]) for c, hooks in cb_hooks if ev in hooks)
            mets = tuple(self._hook(m, hooks[ev]) for m, hooks in met_hooks if ev in hooks)
            self._calls[ev] = (cbs, mets + cbs)
        #: The callbacks' hooks of a training batch's events, in order (what `loop.train_batch` runs).
        self.train_calls = tuple(self._calls[ev][0] for ev in _BATCH_EVENTS)
        #: Per event of `train_calls`, `(hook, get)` when it is one hook that takes one state value
        #: (mode 1), else None: `train_batch` then calls it as `_run` would, without `_run`'s frame.
        self.train_one = tuple(self._direct(calls) for calls in self.train_calls)
        #: The hooks of a validation batch's begin and end (metrics first), less the `train_only` ones.
        self._valid_calls = {ev: tuple(c for c in self._calls[ev][1] if not getattr(c[0], "train_only", False))
                             for ev in ("batch_begin", "batch_end")}
        self._live_smoothing = any(_reads_smooth_loss(hook) for ev in _BATCH_EVENTS for hook, *_ in self._calls[ev][0])
        self._dispatch_on = (tuple(map(id, self.callbacks)), tuple(map(id, self.metrics)))

    def _hook(self, obj: object, hook: Callable[..., Any]) -> tuple[Callable[..., Any], Callable[[dict[str, Any]], Any] | None, int]:
        """`(hook, get, mode)` for `obj`'s `hook`: how `_run` passes the state to the hook: mode 0,
        all of it as keywords; 1, the one value `get(state)`; 2, the values `*get(state)`; 3,
        nothing. Tuples rather than closures: one Python call per hook, not two."""
        self._owners[id(hook)] = type(obj).__name__
        wants = wanted_state(hook)
        if wants is None:
            return hook, None, 0
        if not wants:
            return hook, None, 3
        return hook, itemgetter(*wants), 1 if len(wants) == 1 else 2

    def _direct(self, calls: tuple[Any, ...]) -> tuple[Callable[[Any], Any], Any] | None:
        """`(hook, get)` if `calls` is one hook taking one state value, else None; a hook marked
        `compiled_as` is its compiled equal, bound to its callback."""
        if len(calls) != 1 or calls[0][2] != 1:
            return None
        hook, get, _ = calls[0]
        factory = getattr(hook, "compiled_as", None)
        owner = getattr(hook, "__self__", None)
        if factory is not None and owner is not None:
            hook = factory(owner, hook)
            self._owners[id(hook)] = type(owner).__name__
        return hook, get

    def _refresh(self) -> None:
        if self._dispatch_on != (tuple(map(id, self.callbacks)), tuple(map(id, self.metrics))):
            self._rebuild()

    def _run(self, event: str, calls: Iterable[tuple[Callable[..., Any], Any, int]],
             kwargs: dict[str, Any] | None = None) -> None:
        st = self.state_dict
        for hook, get, mode in calls:
            state = {**st, **kwargs} if kwargs else st  # per hook: it sees what the previous one set
            if mode == 1:
                res = hook(get(state))
            elif mode == 0:
                res = hook(**state)
            elif mode == 2:
                res = hook(*get(state))
            else:
                res = hook()
            if res is not None:
                self._apply(event, hook, res)

    def _apply(self, event: str, hook: Callable[..., Any], res: Any) -> None:
        st = self.state_dict
        if type(res) is dict:
            for k, v in res.items():
                if k not in STATE_KEYS:
                    owner = self._owners.get(id(hook), "callback")
                    raise UnknownStateKeyError(
                        f"{owner}.on_{event} returned {k!r}, which isn't a valid key in the state of the "
                        f"callbacks; valid keys: {sorted(STATE_KEYS)}"
                    )
                st[k] = v
            return
        rule = _RETURN_RULES.get(event)
        if rule is None:
            owner = self._owners.get(id(hook), "callback")
            raise TypeError(f"{owner}.on_{event} may return None or a dict of state updates, got {type(res).__name__}")
        rule(st, res)

    def __call__(self, cb_name: str, call_mets: bool = True, **kwargs: Any) -> None:
        """Call `on_<cb_name>` on the metrics (if `call_mets`) and callbacks that define it."""
        if cb_name not in EVENTS:
            raise ValueError(f"cb_name: unknown event {cb_name!r}; events are {EVENTS}")
        self._refresh()
        self._run(cb_name, self._calls[cb_name][1 if call_mets else 0], kwargs)

    def set_dl(self, dl: Any) -> None:
        """Use `dl` next; if its dataset is a `Callback`, it joins the callbacks for that time."""
        old = getattr(self, "cb_dl", None)
        if old is not None:
            self.callbacks.remove(old)
            self.cb_dl = None
        dataset = getattr(dl, "dataset", None)
        if isinstance(dataset, Callback):
            self.callbacks.append(dataset)
            self.cb_dl = dataset
        self._refresh()

    def on_train_begin(self, epochs: int, pbar: Any, metrics: Sequence[Any] | None, jump: bool = True,
                       **kwargs: Any) -> None:
        """About to start learning for `epochs` epochs; if a hook set a start epoch, the callbacks
        `jump_to_epoch` (unless `jump=False`: `fit` resumes first, then calls `jump_to_epoch`)."""
        self._refresh()
        self.state_dict = _init_state()
        self.state_dict.update(n_epochs=epochs, pbar=pbar, metrics=metrics)
        names = [getattr(m, "name", None) or camel2snake(type(m).__name__) for m in self.metrics]
        self._run("train_begin", self._calls["train_begin"][1], {"metrics_names": names, **kwargs})
        epoch = self.state_dict["epoch"]
        if epoch:
            main_bar = getattr(pbar, "main_bar", None)
            if main_bar is not None and getattr(main_bar, "total", None) is not None:
                main_bar.total -= epoch
            if jump:
                self.jump_to_epoch(epoch)

    def jump_to_epoch(self, epoch: int, skip: Iterable[Callback] = ()) -> None:
        """Call `jump_to_epoch(epoch)` on the callbacks, except those in `skip` (restored from a checkpoint)."""
        for cb in self.callbacks:
            if any(cb is s for s in skip):
                continue
            jump_to = getattr(cb, "jump_to_epoch", None)
            if jump_to is not None:
                jump_to(epoch)

    def on_epoch_begin(self) -> None:
        """A new epoch starts."""
        self._refresh()
        st = self.state_dict
        st["num_batch"], st["stop_training"] = 0, False
        self._run("epoch_begin", self._calls["epoch_begin"][1])

    def on_batch_begin(self, xb: Any, yb: Any, train: bool = True) -> tuple[Any, Any]:
        """Handle a new batch `xb`, `yb` (training or validation); returns the batch to use."""
        st = self.state_dict
        st["last_input"], st["last_target"], st["train"] = xb, yb, train
        st["stop_epoch"] = st["skip_step"] = st["skip_zero"] = st["skip_bwd"] = False
        calls = self._calls["batch_begin"][0] if train else self._valid_calls["batch_begin"]
        if calls:
            self._run("batch_begin", calls)
        return st["last_input"], st["last_target"]

    def on_loss_begin(self, out: Any) -> Any:
        """The model produced `out`; returns the output to compute the loss on."""
        st = self.state_dict
        st["last_output"] = out
        calls = self._calls["loss_begin"][0]
        if calls:
            self._run("loss_begin", calls)
        return st["last_output"]

    def on_backward_begin(self, loss: torch.Tensor) -> tuple[torch.Tensor, bool]:
        """Keep `loss` for the epoch's record and, when a hook reads it per batch, smooth it on its
        device; returns `(loss to backprop, skip_bwd)`."""
        st = self.state_dict
        value = loss.detach()
        self._epoch_losses.append(value)
        if self._live_smoothing:
            self.smooth_live(value)
        st["last_loss"] = loss
        calls = self._calls["backward_begin"][0]
        if calls:
            self._run("backward_begin", calls)
        return st["last_loss"], st["skip_bwd"]

    def smooth_live(self, value: torch.Tensor) -> None:
        """Smooth the detached loss `value` on its device into state `smooth_loss` (only when a
        batch hook reads it: `_live_smoothing`)."""
        self.smoothener.add_value(value.float() if value.dtype in _HALF else value)
        self.state_dict["smooth_loss"] = self.smoothener.smooth

    def on_backward_end(self) -> bool:
        """Gradients are computed; returns `skip_step`."""
        calls = self._calls["backward_end"][0]
        if calls:
            self._run("backward_end", calls)
        return self.state_dict["skip_step"]

    def on_step_end(self) -> bool:
        """The optimizer stepped; returns `skip_zero`."""
        calls = self._calls["step_end"][0]
        if calls:
            self._run("step_end", calls)
        return self.state_dict["skip_zero"]

    def on_batch_end(self, loss: torch.Tensor) -> bool:
        """A batch with `loss` is done; returns `stop_epoch`."""
        st = self.state_dict
        st["last_loss"] = loss
        train = st["train"]
        calls = self._calls["batch_end"][0] if train else self._valid_calls["batch_end"]
        if calls:
            self._run("batch_end", calls)
        if train:
            st["iteration"] += 1
            st["num_batch"] += 1
        return st["stop_epoch"]

    def on_epoch_end(self, val_loss: Any) -> bool:
        """The epoch is done, with validation loss `val_loss` (None if not validated); returns `stop_training`.

        The epoch's smoothed training losses are computed now, in one host transfer: state
        `smooth_losses` (one float per training batch) and `smooth_loss` (the last of them).
        """
        self._refresh()
        st = self.state_dict
        self._record_losses()
        st["last_metrics"] = [val_loss]
        self._run("epoch_end", self._calls["epoch_end"][0 if val_loss is None else 1])
        st["epoch"] += 1
        return st["stop_training"]

    def on_train_end(self, exception: bool | BaseException) -> None:
        """Training ended; `exception` is False or the exception that stopped it."""
        self._refresh()
        self._record_losses()  # batches since the last epoch end, when training stopped mid-epoch
        self._run("train_end", self._calls["train_end"][1], {"exception": exception})

    def _record_losses(self) -> None:
        """Smooth the training losses kept since the last call (one transfer to the host) into
        `smooth_losses`; from the first non-finite loss on, the average is NaN, as in fastai."""
        st, losses, self._epoch_losses = self.state_dict, self._epoch_losses, []
        if not losses:
            st["smooth_losses"] = []
            return
        values = host_floats(losses, "losses")
        finite = np.isfinite(values)
        n_finite = 0 if self._history_nan else len(values) if finite.all() else int(np.argmin(finite))
        out = self.loss_history.add_values(values[:n_finite].tolist())  # one compiled call for the epoch
        if n_finite < len(values):
            self._history_nan = True
            out += [math.nan] * (len(values) - n_finite)
        st["smooth_losses"], st["smooth_loss"] = out, out[-1]

    @property
    def training_state(self) -> "HandlerState":
        """The handler's own training state (the iteration count and the loss smoothers), with
        the `state_dict` / `check_state_dict` / `load_state_dict` protocol every stateful part
        of a checkpoint has (the handler's `state_dict` attribute is fastai's per-event state)."""
        return HandlerState(self)

    @property
    def skip_validate(self) -> bool:
        """True when a callback asked to skip validation."""
        return self.state_dict["skip_validate"]

    def __repr__(self) -> str:
        return f"CallbackHandler(callbacks={self.callbacks!r}, metrics={self.metrics!r}, beta={self.beta!r})"


class HandlerState:
    """A `CallbackHandler`'s training state, for checkpoints: the iteration count and the loss
    smoothers (the live one and the per-epoch history)."""

    _KEYS = ("iteration", "live", "history", "history_nan")

    def __init__(self, handler: CallbackHandler) -> None:
        self.handler = handler

    def state_dict(self) -> dict[str, Any]:
        """The iteration count and the smoothers' states."""
        h = self.handler
        return {"iteration": h.state_dict["iteration"], "live": h.smoothener.state_dict(),
                "history": h.loss_history.state_dict(), "history_nan": h._history_nan}

    def check_state_dict(self, state: Any) -> list[SmoothenValue]:
        """The smoothers `state` describes, built aside; `StateError` naming the key if it doesn't fit."""
        beta = self.handler.beta
        if not isinstance(state, dict) or set(state) != set(self._KEYS):
            got = sorted(map(str, state)) if isinstance(state, dict) else type(state).__name__
            raise StateError(f"state: expected the keys {sorted(self._KEYS)}, got {got}")
        check_state_number("iteration", state["iteration"], integer=True, minimum=0)
        if type(state["history_nan"]) is not bool:
            raise StateError(f"state['history_nan']: expected True or False, got {state['history_nan']!r}")
        built = []
        for key in ("live", "history"):
            sv = state[key]
            if not isinstance(sv, dict) or sv.get("beta") != beta:
                their = sv.get("beta") if isinstance(sv, dict) else None
                raise StateError(f"state[{key!r}]: smoothed with beta={their!r}, this handler's beta is {beta!r}")
            check_number(f"state[{key!r}]['n']", sv.get("n"), integer=True, minimum=0, error=StateError)
            for k in ("mov_avg", "smooth"):
                v = sv.get(k)
                if not isinstance(v, torch.Tensor):
                    check_number(f"state[{key!r}][{k!r}]", v, error=StateError)
                elif not bool(torch.isfinite(v).all()):
                    raise StateError(f"state[{key!r}][{k!r}]: expected a finite number, got {v!r}")
            new = SmoothenValue(beta)
            try:
                new.load_state_dict(sv)
            except (ValueError, TypeError, KeyError, OverflowError) as e:
                raise StateError(f"state[{key!r}]: {e}") from None
            built.append(new)
        return built

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore `state_dict()`: checked and built aside first; a refused state changes nothing."""
        h = self.handler
        h.smoothener, h.loss_history = self.check_state_dict(state)
        h._history_nan = state["history_nan"]
        h.state_dict["iteration"] = int(state["iteration"])


def weighted_mean(values: Any, weights: Any) -> np.float64 | None:
    """The `weights`-weighted mean of `values` (None when there are none), over the ranks of a
    process group when there is one (one collective).

    Finite values are summed exactly (compensated, in the compiled `WeightedMean`). A non-finite
    value is a result, not an error, as in fastai: the mean is then `inf`, `-inf` or `nan`
    (stopping a run on it is `TerminateOnNaNCallback`'s job); so is a sum too large for a float.
    """
    values, weights = np.asarray(values, dtype=np.float64), np.asarray(weights, dtype=np.float64)
    acc, bad, n = WeightedMean(), None, values.size  # bad: the sum of the terms that aren't finite
    finite = np.isfinite(values)
    if not finite.all():
        with np.errstate(invalid="ignore", over="ignore"):
            bad = float(np.sum(values[~finite] * weights[~finite]))
        values, weights = values[finite], weights[finite]
    if values.size:
        err = None
        try:
            acc.extend(values, weights)
        except (ArithmeticError, ValueError) as e:
            err = e
        if err is not None or not math.isfinite(acc.sum):
            # finite values whose sum exceeds a float64: it is +-inf (nan when both signs overflow)
            with np.errstate(invalid="ignore", over="ignore"):
                terms = values * weights
                total = float(np.sum(terms[terms > 0])) + float(np.sum(terms[terms < 0]))
            if math.isfinite(total) and err is not None:
                raise err
            bad, acc = total if bad is None else bad + total, WeightedMean()
    if is_distributed():
        acc, bad, n = all_merge(acc, bad, n)
    if not n:
        return None
    return np.float64(bad) if bad is not None else np.float64(acc.mean)


class AverageMetric(Callback):
    """Batch-size-weighted mean of `func(output, *targets)` over the validation set.

    Per-batch values stay on their device; the exact (compensated) reduction runs once per
    epoch in the compiled `WeightedMean`, and `metric` holds the result (a float64).
    """

    def __init__(self, func: Callable[..., Any]) -> None:
        if not callable(func):
            raise TypeError(f"func: expected a callable metric, got {type(func).__name__}")
        self.func, self.name = func, func_name(func)
        self.metric: np.float64 | None = None
        self._vals: list[Any] = []
        self._weights: list[int] = []

    def on_epoch_begin(self, **kwargs: Any) -> None:
        """Forget the previous epoch's values."""
        self._vals, self._weights = [], []

    @uses_state("last_output", "last_target")
    def on_batch_end(self, last_output: Any, last_target: Any, **kwargs: Any) -> None:
        """Record the metric of this batch (a device tensor, not read here) and its size."""
        listy = is_listy(last_target)
        try:
            val = self.func(last_output, *last_target) if listy else self.func(last_output, last_target)
        except Exception as e:
            if hasattr(e, "add_note"):  # Python 3.11+: the error keeps its type and names the metric
                e.add_note(f"raised by the metric {self.name!r}")
            raise
        self._vals.append(val.detach() if isinstance(val, torch.Tensor) and val.requires_grad else val)
        # the batch size: the first target's (a tensor's own, without a call in the common case)
        self._weights.append((last_target if type(last_target) is torch.Tensor else first_el(last_target)).shape[0])

    @property
    def count(self) -> int:
        """The number of samples seen this epoch."""
        return sum(self._weights)

    def _values(self) -> np.ndarray:
        try:
            return host_floats(self._vals, f"metric {self.name!r}")
        except (RuntimeError, ValueError, TypeError) as e:
            raise ValueError(f"metric {self.name!r} must return one number per batch") from e

    def on_epoch_end(self, last_metrics: list[Any] | None, **kwargs: Any) -> dict[str, list[Any]]:
        """Reduce the epoch's values once and append the mean to `last_metrics`.

        Under a process group the ranks' exact partial sums are merged (one collective per
        epoch), so the result equals one process's over the same batches.
        """
        self.metric = weighted_mean(self._values() if self._vals else [], self._weights)
        return add_metrics(last_metrics, self.metric)
