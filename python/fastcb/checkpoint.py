"""Checkpoints for exact resume: what `Learner.save(..., with_opt=True)` writes and `Learner.load` reads.

A checkpoint is a dict that `torch.load(..., weights_only=True)` can read (no pickled code):

- `model`, `opt`: the state dicts of the (unwrapped) model and of the `OptimWrapper`;
- `epoch`: the last epoch completed when it was saved (-1 before any);
- `callbacks`: per callback of the running fit (keyed by class name), its `get_state()` restricted
  to values that are state: numbers, strings, tensors, NumPy values, containers of those, and
  objects with `state_dict`/`load_state_dict` (Steppers, schedulers, gradient scalers), stored
  as their state dicts. That covers every scheduler's position, the trackers' best values and
  waits, and the Recorder's history;
- `handler`: the smoothed-loss accumulator and the iteration count;
- `rng`: per rank, the torch, CUDA, NumPy and Python random states and those of the training
  loader's own generators.

`Learner.load` validates the model and optimizer parts against the learner before it assigns
anything (a truncated or mismatched file raises `CheckpointError` and leaves the model as it
was); the rest is kept until the next `fit` that starts at `epoch + 1` (`start_epoch`), which
restores it after `on_train_begin`, so that run continues exactly where the saved one was.
"""

import errno
import os
import random
import re
import socket
from pathlib import Path

import numpy as np
import torch
from torch import nn

from . import distributed as fdist
from .errors import CheckpointError, CheckpointWriteError

__all__ = ["CheckpointError", "FORMAT", "state_of", "restore"]

FORMAT = "fastcb.checkpoint/1"

#: Callback attributes that are about presentation, not training state: never restored.
NOT_STATE = frozenset({"pbar", "silent", "learn", "_learn", "exclude", "not_min"})


class _NotState(Exception):
    """A value that is not training state (a module, a function, a file, ...)."""


# -- plain encoding (loadable with weights_only=True) -------------------------------------------
def encode(v):
    """`v` as nested dicts, lists, tuples, numbers, strings and tensors; raises `_NotState` otherwise."""
    t = type(v)
    if v is None or t in (bool, int, float, str):
        return v
    if isinstance(v, torch.Tensor):
        return v.detach()
    if isinstance(v, np.generic):
        if v.dtype == object:
            raise _NotState(t)
        return {"__np__": v.item(), "dtype": v.dtype.str}
    if isinstance(v, np.ndarray):
        if v.dtype == object:
            raise _NotState(t)
        return {"__np__": v.tolist(), "dtype": v.dtype.str, "shape": list(v.shape)}
    if t in (list, tuple):
        if v and all(isinstance(x, torch.Tensor) and x.dim() == 0 for x in v) and \
                len({(x.dtype, x.device) for x in v}) == 1:
            return {"__scalars__": torch.stack([x.detach() for x in v]), "tuple": t is tuple}
        return t(encode(x) for x in v)
    if isinstance(v, dict):
        if not all(type(k) in (str, int) for k in v):
            raise _NotState(t)
        return {k: encode(x) for k, x in v.items()}
    if isinstance(v, (nn.Module, torch.optim.Optimizer)) or hasattr(v, "on_train_begin") or hasattr(v, "opt_keys"):
        raise _NotState(t)  # the model, the optimizer and callbacks are saved on their own
    if callable(getattr(v, "state_dict", None)) and callable(getattr(v, "load_state_dict", None)):
        return {"__state__": encode(v.state_dict())}
    raise _NotState(t)


def decode(v):
    """The inverse of `encode` (state markers excepted: `restore` loads those into live objects)."""
    if type(v) is dict:
        if "__np__" in v:
            dtype = np.dtype(v["dtype"])
            if "shape" in v:
                return np.array(v["__np__"], dtype=dtype).reshape(v["shape"])
            return dtype.type(v["__np__"])
        if "__scalars__" in v:
            vals = list(v["__scalars__"].unbind())
            return tuple(vals) if v["tuple"] else vals
        if "__state__" in v:
            raise CheckpointError("decode: a stored state_dict needs the object to load it into")
        return {k: decode(x) for k, x in v.items()}
    if type(v) in (list, tuple):
        return type(v)(decode(x) for x in v)
    return v


def _has_marker(v):
    if type(v) is dict:
        return "__state__" in v or any(_has_marker(x) for x in v.values() if "__np__" not in v)
    if type(v) in (list, tuple):
        return any(_has_marker(x) for x in v)
    return False


# -- callbacks -----------------------------------------------------------------------------------
def _keys(callbacks):
    """`(key, callback)` pairs: the class name, with `#i` for the i-th repeat of a class."""
    seen, out = {}, []
    for cb in callbacks:
        name = type(cb).__qualname__
        i = seen.get(name, 0)
        seen[name] = i + 1
        out.append((name if i == 0 else f"{name}#{i}", cb))
    return out


def callback_states(callbacks):
    """`{key: {attribute: encoded value}}` for the callbacks' `get_state()` values that are state."""
    out = {}
    for key, cb in _keys(callbacks):
        get_state = getattr(cb, "get_state", None)
        if get_state is None:
            continue
        state = {}
        for k, v in get_state().items():
            if k in NOT_STATE:
                continue
            try:
                state[k] = encode(v)
            except _NotState:
                pass
        out[key] = state
    return out


def _plan(live, saved, where, steps):
    """Check that `saved` fits `live`; append the assignments to `steps` (run only if all fit)."""
    if type(saved) is dict and "__state__" in saved:
        if not callable(getattr(live, "load_state_dict", None)):
            raise CheckpointError(f"{where}: the checkpoint holds a state_dict, the run has {type(live).__name__}")
        steps.append((where, live.load_state_dict, decode(saved["__state__"])))
    elif type(saved) in (list, tuple):
        if not isinstance(live, (list, tuple)) or len(live) != len(saved):
            n = len(live) if isinstance(live, (list, tuple)) else type(live).__name__
            raise CheckpointError(f"{where}: the checkpoint holds {len(saved)} items, the run {n}")
        for i, (a, b) in enumerate(zip(live, saved)):
            _plan(a, b, f"{where}[{i}]", steps)
    elif type(saved) is dict:
        if not isinstance(live, dict) or set(live) != set(saved):
            raise CheckpointError(f"{where}: the checkpoint's keys differ from the run's")
        for k in saved:
            _plan(live[k], saved[k], f"{where}[{k!r}]", steps)


def plan_callbacks(callbacks, saved):
    """Validate the stored callback states against the running `callbacks`; the list of steps to apply.

    Callbacks of the checkpoint that are not in the run are ignored; callbacks of the run that
    are not in the checkpoint start afresh.
    """
    steps = []
    for key, cb in _keys(callbacks):
        state = saved.get(key)
        if state is None:
            continue
        attrs = vars(cb)
        for k, v in state.items():
            where = f"callbacks: {key}.{k}"
            if _has_marker(v):
                if k not in attrs:
                    raise CheckpointError(f"{where}: stored, but the running callback has no such attribute")
                _plan(attrs[k], v, where, steps)
            else:
                steps.append((where, lambda val, cb=cb, k=k: setattr(cb, k, val), decode(v)))
    return steps


# -- random number generators ----------------------------------------------------------------------
def _loader_generators(learn):
    dl = getattr(getattr(learn, "data", None), "train_dl", None)
    dl = getattr(dl, "dl", dl)
    gens = []
    for g in (getattr(dl, "generator", None), getattr(getattr(dl, "sampler", None), "generator", None)):
        if isinstance(g, torch.Generator) and all(g is not h for h in gens):
            gens.append(g)
    return gens


def rng_state(learn=None):
    """This process's random states (torch, CUDA, NumPy, Python, the training loader's generators)."""
    state = {"torch": torch.get_rng_state(), "numpy": encode(np.random.get_state()), "python": random.getstate(),
             "loader": [g.get_state() for g in _loader_generators(learn)]}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state, learn=None):
    """Restore what `rng_state` returned."""
    torch.set_rng_state(state["torch"].cpu())
    np.random.set_state(decode(state["numpy"]))
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    gens = _loader_generators(learn)
    if len(gens) == len(state["loader"]):
        for g, s in zip(gens, state["loader"]):
            g.set_state(s.cpu())
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


# -- whole checkpoints ----------------------------------------------------------------------------
def state_of(learn, epoch=None):
    """The checkpoint of `learn` now. Under a process group, every rank must call it (RNG states are gathered).

    `epoch` is the last epoch completed; by default the one before the running fit's current
    epoch (pass it when saving from `on_epoch_end`, as `SaveModelCallback` does).
    """
    handler = getattr(learn, "cb_handler", None)
    if epoch is None:
        epoch = handler.state_dict["epoch"] - 1 if handler is not None else -1
    callbacks = [c for c in getattr(handler, "callbacks", ()) if c is not getattr(handler, "cb_dl", None)]
    return {
        "format": FORMAT,
        "model": fdist.unwrap(learn.model).state_dict(),
        "opt": encode(learn.opt.state_dict()),
        "epoch": int(epoch),
        "callbacks": callback_states(callbacks),
        "handler": None if handler is None else {"smoothing": encode(handler.smoothing_state()),
                                                  "iteration": handler.state_dict["iteration"]},
        "rng": fdist.all_gather_object(rng_state(learn)),
    }


def _temp_name(target):
    host = re.sub(r"[^A-Za-z0-9_-]", "_", socket.gethostname())
    return target.with_name(f".{target.name}.{host}-{os.getpid()}.tmp")


def _sweep(folder):
    """Remove the temporary files that saves on this host left behind when their process died (SIGKILL)."""
    host = re.sub(r"[^A-Za-z0-9_-]", "_", socket.gethostname())
    for tmp in folder.glob(f".*.{host}-*.tmp"):
        m = re.fullmatch(rf"\..+\.{re.escape(host)}-(\d+)\.tmp", tmp.name)
        if m is None or int(m[1]) == os.getpid():
            continue
        try:
            os.kill(int(m[1]), 0)
        except ProcessLookupError:
            tmp.unlink(missing_ok=True)
        except (PermissionError, OverflowError):
            pass  # another user's live process (or not a pid): not ours to remove


def _fsync_dir(folder):
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return  # platforms without directory handles
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write(state, target):
    """`torch.save(state, target)`, durably: to a path through a temporary file, flushed to disk, then
    renamed over `target` (never half-written) and the folder synced. Leftovers of saves killed
    mid-way are removed first. A failure raises `CheckpointWriteError` (an `OSError`; the previous
    file at `target` is intact)."""
    if not isinstance(target, (str, Path)):
        torch.save(state, target)
        return
    target = Path(target)
    _sweep(target.parent)
    tmp = _temp_name(target)
    try:
        with open(tmp, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
        _fsync_dir(target.parent)
    except (OSError, RuntimeError) as e:  # RuntimeError: torch's writer on a full disk
        raise CheckpointWriteError(getattr(e, "errno", None) or errno.EIO,
                                   f"can't write the checkpoint {target}: {e}") from e
    finally:
        tmp.unlink(missing_ok=True)


def read(source, map_location):
    """The checkpoint at `source` as `{"model": ..., "opt": ... or None, ...}`; `CheckpointError` if unreadable."""
    try:
        state = torch.load(source, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as e:  # truncated zip, not a torch file, pickled code, ...
        raise CheckpointError(f"file: {source} is not a complete checkpoint ({type(e).__name__}: "
                              f"{str(e).splitlines()[0] if str(e) else ''})") from e
    if not isinstance(state, dict):
        raise CheckpointError(f"file: {source} holds a {type(state).__name__}, not a state dict or checkpoint")
    if state.get("format") == FORMAT:
        return state
    if "format" in state:
        raise CheckpointError(f"file: {source} has format {state['format']!r}; this fastcb reads {FORMAT!r}")
    if set(state) == {"model", "opt"}:  # fastcb's earlier (model, optimizer) files
        return {"model": state["model"], "opt": state["opt"]}
    return {"model": state, "opt": None}


def check_model(model, sd, strict=True):
    """Raise `CheckpointError` unless `model.load_state_dict(sd, strict)` would load every tensor."""
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise CheckpointError("model: the checkpoint's model part is not a state dict of tensors")
    own = model.state_dict()
    missing, unexpected = sorted(set(own) - set(sd)), sorted(set(sd) - set(own))
    if strict and (missing or unexpected):
        raise CheckpointError(f"model: the checkpoint doesn't match the model: missing keys {missing[:5]}"
                              f"{'...' if len(missing) > 5 else ''}, unexpected keys {unexpected[:5]}"
                              f"{'...' if len(unexpected) > 5 else ''}")
    bad = [f"{k}: {tuple(sd[k].shape)} in the checkpoint, {tuple(v.shape)} in the model"
           for k, v in own.items() if k in sd and sd[k].shape != v.shape]
    if bad:
        raise CheckpointError(f"model: the checkpoint doesn't match the model's shapes: {'; '.join(bad[:5])}")


def check_opt(opt, sd):
    """Raise `CheckpointError` unless `sd` is a state dict of an optimizer over the same parameters as `opt`."""
    try:
        groups, state = sd["param_groups"], sd["state"]
    except (TypeError, KeyError):
        raise CheckpointError("opt: the checkpoint's optimizer part is not an optimizer state dict") from None
    own = opt.opt.param_groups
    if len(groups) != len(own) or any(len(g["params"]) != len(o["params"]) for g, o in zip(groups, own)):
        raise CheckpointError(f"opt: the checkpoint's optimizer has param groups of sizes "
                              f"{[len(g['params']) for g in groups]}, this one {[len(o['params']) for o in own]}")
    params = {i: p for g, o in zip(groups, own) for i, p in zip(g["params"], o["params"])}
    for i, st in state.items():
        p = params.get(i)
        if p is None:
            raise CheckpointError(f"opt: the checkpoint has state for a parameter ({i}) the optimizer doesn't have")
        for k, v in st.items():
            if isinstance(v, torch.Tensor) and v.dim() > 0 and v.shape != p.shape:
                raise CheckpointError(f"opt: state {k!r} has shape {tuple(v.shape)} for a parameter of shape "
                                      f"{tuple(p.shape)}")
    extra = sd.get("fastcb")
    if extra is not None and len(extra["lr"]) != len(opt._lr):
        raise CheckpointError(f"opt: the checkpoint has {len(extra['lr'])} layer groups, the learner {len(opt._lr)}")


def restore(learn, handler):
    """At the start of a fit: continue the checkpoint `Learner.load` kept, if this run starts after its epoch.

    A fit that starts at epoch 0 is a new run from the loaded weights: the rest is dropped.
    """
    ck = learn.__dict__.pop("_resume", None)
    start = handler.state_dict["epoch"]
    if ck is None or not start:
        return
    if start != ck["epoch"] + 1:
        raise CheckpointError(f"start_epoch: the checkpoint was saved after epoch {ck['epoch']}: resume with "
                              f"start_epoch={ck['epoch'] + 1}, not {start}")
    callbacks = [c for c in handler.callbacks if c is not getattr(handler, "cb_dl", None)]
    steps = plan_callbacks(callbacks, ck.get("callbacks") or {})
    for where, assign, value in steps:
        try:
            assign(value)
        except Exception as e:
            raise CheckpointError(f"{where}: can't be restored ({type(e).__name__}: {e})") from e
    learn.opt.load_state_dict(decode(ck["opt"]))  # again: the fit's setup changed the hyper-parameters since `load`
    if ck.get("handler") is not None:
        handler.load_smoothing_state(decode(ck["handler"]["smoothing"]))
        handler.state_dict["iteration"] = ck["handler"]["iteration"]
    rngs = ck.get("rng") or []
    if rngs:
        set_rng_state(rngs[fdist.rank()] if fdist.rank() < len(rngs) else rngs[0], learn)
