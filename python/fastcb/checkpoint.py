"""Checkpoints for exact resume: what `Learner.save(..., with_opt=True)` writes and `Learner.load` reads.

A checkpoint is data with a schema, which `torch.load(..., weights_only=True)` reads (no pickled
code) and `read_checkpoint` validates whole before anything uses it:

- `format`: `"fastcb.checkpoint/2"`;
- `model`, `opt`: the state dicts of the (unwrapped) model and of the `OptimWrapper`;
- `epoch`: the last epoch completed when it was saved (-1 before any);
- `callbacks`: per callback of the running fit (keyed by class name, `#i` for repeats), its
  declared state (`state_dict()`: counters, best values, waits, schedule positions, the
  Recorder's history; never its configuration or paths) as plain data: numbers, strings,
  tensors, NumPy numbers and arrays of numeric dtypes, lists and dicts of those;
- `handler`: per rank (each smooths its own losses before they are averaged), the smoothed-loss
  accumulators and the iteration count (earlier files saved by one process hold one dict);
- `rng`: per rank, the torch, CUDA, NumPy and Python random states and those of the training
  loader's own generators.

`opt`, `handler` and `rng` are the declared `PARTS`: each names the object of a run that holds
it, with the `state_dict` / `check_state_dict` / `load_state_dict` protocol, and how its data is
checked when read; saving, reading and resuming are loops over them (and over the callbacks).

Reading checks types, shapes, dtypes (numeric only), sizes and depth, and raises one
`CheckpointError` saying what is wrong and where. `Learner.load` checks the model and optimizer
parts against the learner before it assigns anything; the rest is kept until the next `fit` that
starts at `epoch + 1` (`start_epoch`), which checks every callback's state, the handler's and the
random states, then applies them all, once, right after `on_train_begin` (callbacks restored
from the checkpoint don't `jump_to_epoch`; the others do).
"""

import errno
import math
import os
import random
import re
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import numpy as np
import torch

from . import distributed as fdist
from ._utils import check_number
from .errors import CheckpointError, CheckpointWriteError

if TYPE_CHECKING:
    from .callback import Callback, CallbackHandler
    from .learner import Learner

__all__ = ["FORMAT", "Checkpoint", "CheckpointError", "read_checkpoint", "state_of", "resume", "write"]

FORMAT = "fastcb.checkpoint/2"
_OLD_FORMATS = ("fastcb.checkpoint/1",)  # its model and optimizer load; its callbacks' part doesn't resume

#: Bounds on what a checkpoint may hold (beyond them it is refused, before any large allocation).
MAX_DEPTH = 64
MAX_ITEMS = 50_000_000
MAX_STR = 1 << 20
MAX_NDIM = 32

_NP_DTYPE = re.compile(r"[<>=|]?(b1|[iu][1248]|f[248]|c(8|16))")


# -- plain encoding (loadable with weights_only=True) -------------------------------------------
def encode(v: Any, where: str = "state") -> Any:
    """`v` as nested dicts, lists, tuples, numbers, strings and tensors (NumPy values marked with
    their dtype); `TypeError` naming `where` for anything else."""
    t = type(v)
    if v is None or t in (bool, int, float, str):
        return v
    if isinstance(v, torch.Tensor):
        return v.detach()
    if isinstance(v, (np.generic, np.ndarray)):
        if not _NP_DTYPE.fullmatch(v.dtype.str):
            raise TypeError(f"{where}: a NumPy value of dtype {v.dtype}: only numeric dtypes are checkpointed")
        if isinstance(v, np.generic):
            return {"__np__": v.item(), "dtype": v.dtype.str}
        return {"__np__": v.tolist(), "dtype": v.dtype.str, "shape": list(v.shape)}
    if isinstance(v, (list, tuple)):
        return (tuple if t is tuple else list)(encode(x, f"{where}[{i}]") for i, x in enumerate(v))
    if isinstance(v, dict):
        bad = [k for k in v if type(k) not in (str, int)]
        if bad:
            raise TypeError(f"{where}: key {bad[0]!r}: only str and int keys are checkpointed")
        return {k: encode(x, f"{where}[{k!r}]") for k, x in v.items()}
    raise TypeError(f"{where}: a {t.__name__} is not plain data (numbers, strings, tensors, NumPy values, "
                    f"lists and dicts of those)")


class _Reader:
    """Walks untrusted data once: checks it is plain data within the bounds, decodes NumPy marks."""

    def __init__(self) -> None:
        self.items = 0

    def check(self, v: Any, where: str, depth: int = 0) -> None:
        """Raise `CheckpointError` unless `v` is plain data within the bounds (tensors dense, numeric)."""
        self._count(where, depth)
        t = type(v)
        if v is None or t in (bool, float):
            return
        if t is int:
            if not -(2**63) <= v < 2**64:
                raise CheckpointError(f"{where}: the integer {v} is out of range")
            return
        if t is str:
            if len(v) > MAX_STR:
                raise CheckpointError(f"{where}: a string of {len(v)} characters (at most {MAX_STR})")
            return
        if isinstance(v, torch.Tensor):
            if v.layout != torch.strided or v.is_quantized:
                raise CheckpointError(f"{where}: a {v.layout} tensor; only dense tensors are read")
            return
        if isinstance(v, (list, tuple)):
            for i, x in enumerate(v):
                self.check(x, f"{where}[{i}]", depth + 1)
            return
        if isinstance(v, dict):
            for k, x in v.items():
                if type(k) not in (str, int):
                    raise CheckpointError(f"{where}: a key of type {type(k).__name__}; keys are str or int")
                self.check(x, f"{where}[{k!r}]", depth + 1)
            return
        raise CheckpointError(f"{where}: a {t.__name__}, which is not plain data")

    def _count(self, where: str, depth: int) -> None:
        self.items += 1
        if self.items > MAX_ITEMS:
            raise CheckpointError(f"{where}: more than {MAX_ITEMS} values in the file")
        if depth > MAX_DEPTH:
            raise CheckpointError(f"{where}: nested deeper than {MAX_DEPTH} levels")

    def decode(self, v: Any, where: str) -> Any:
        """`v` (checked) with NumPy and scalar marks turned back into values; `CheckpointError` if malformed."""
        if isinstance(v, dict):
            if "__np__" in v:
                return _decode_np(v, where)
            if "__scalars__" in v:  # lists of 0-d tensors, as earlier versions wrote them
                if set(v) != {"__scalars__", "tuple"} or not isinstance(v["__scalars__"], torch.Tensor) \
                        or v["__scalars__"].dim() != 1 or type(v["tuple"]) is not bool:
                    raise CheckpointError(f"{where}: a malformed list of scalars")
                vals = list(v["__scalars__"].unbind())
                return tuple(vals) if v["tuple"] else vals
            return {k: self.decode(x, f"{where}[{k!r}]") for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return (tuple if isinstance(v, tuple) else list)(self.decode(x, f"{where}[{i}]") for i, x in enumerate(v))
        return v


def _decode_np(v: dict, where: str) -> np.generic | np.ndarray:
    if not set(v) <= {"__np__", "dtype", "shape"} or not isinstance(v.get("dtype"), str):
        raise CheckpointError(f"{where}: a malformed NumPy value")
    if not _NP_DTYPE.fullmatch(v["dtype"]):
        raise CheckpointError(f"{where}: NumPy dtype {v['dtype'][:40]!r}; only numeric dtypes are read")
    dtype = np.dtype(v["dtype"])
    data = v["__np__"]
    try:
        if "shape" not in v:
            if isinstance(data, (list, tuple, dict)):
                raise ValueError("expected one number")
            return dtype.type(data)
        shape = v["shape"]
        if not isinstance(shape, list) or len(shape) > MAX_NDIM or \
                not all(type(n) is int and 0 <= n <= MAX_ITEMS for n in shape):
            raise ValueError(f"shape {shape!r}")
        arr = np.array(data, dtype=dtype)
        if arr.size != math.prod(shape):
            raise ValueError(f"{arr.size} values for shape {tuple(shape)}")
        return arr.reshape(shape)
    except (ValueError, TypeError, OverflowError) as e:
        raise CheckpointError(f"{where}: a malformed NumPy value ({e})") from None


def decode(v: Any, where: str = "state") -> Any:
    """The inverse of `encode`, for data that may be malformed (`CheckpointError` saying where)."""
    reader = _Reader()
    reader.check(v, where)
    return reader.decode(v, where)


# -- callbacks -----------------------------------------------------------------------------------
def _keys(callbacks: "list[Callback]") -> "list[tuple[str, Callback]]":
    """`(key, callback)` pairs: the class name, with `#i` for the i-th repeat of a class."""
    seen: dict[str, int] = {}
    out: list[tuple[str, Callback]] = []
    for cb in callbacks:
        name = type(cb).__qualname__
        i = seen.get(name, 0)
        seen[name] = i + 1
        out.append((name if i == 0 else f"{name}#{i}", cb))
    return out


def callback_states(callbacks: "list[Callback]") -> dict[str, Any]:
    """`{key: encoded state_dict()}` for the callbacks that declare some state."""
    out = {}
    for key, cb in _keys(callbacks):
        get = getattr(cb, "state_dict", None)
        state = get() if callable(get) else {}
        if state:
            out[key] = encode(state, f"{key}.state_dict()")
    return out


# -- random number generators ----------------------------------------------------------------------
def _loader_generators(learn: "Learner | None") -> list[torch.Generator]:
    dl = getattr(getattr(learn, "data", None), "train_dl", None)
    dl = getattr(dl, "dl", dl)
    gens: list[torch.Generator] = []
    for g in (getattr(dl, "generator", None), getattr(getattr(dl, "sampler", None), "generator", None)):
        if isinstance(g, torch.Generator) and all(g is not h for h in gens):
            gens.append(g)
    return gens


def rng_state(learn: "Learner | None" = None) -> dict[str, Any]:
    """This process's random states (torch, CUDA, NumPy, Python, the training loader's generators)."""
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate(),
             "loader": [g.get_state() for g in _loader_generators(learn)]}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _check_rng(state: Any, where: str) -> dict[str, Any]:
    """The random states of one rank, checked by loading each into a fresh generator."""
    if not isinstance(state, dict) or not {"torch", "numpy", "python", "loader"} <= set(state) or \
            not set(state) <= {"torch", "numpy", "python", "loader", "cuda"}:
        raise CheckpointError(f"{where}: expected the keys torch, numpy, python, loader (and cuda)")

    def gen_state(s: Any, w: str) -> torch.Tensor:
        if not isinstance(s, torch.Tensor) or s.dtype != torch.uint8 or s.dim() != 1:
            raise CheckpointError(f"{w}: expected a generator state (a 1-D uint8 tensor)")
        return s.cpu()

    try:
        torch.Generator().set_state(gen_state(state["torch"], f"{where}['torch']"))
        np_state = state["numpy"]
        if not isinstance(np_state, tuple) or len(np_state) != 5:
            raise CheckpointError(f"{where}['numpy']: expected NumPy's 5-tuple random state")
        np.random.RandomState().set_state(np_state)
        py = state["python"]
        if not isinstance(py, (tuple, list)) or len(py) != 3 or not isinstance(py[1], (tuple, list)) or \
                not all(type(x) is int for x in py[1]):
            raise CheckpointError(f"{where}['python']: expected Python's random state")
        py = (py[0], tuple(py[1]), py[2])
        random.Random().setstate(py)
        loader = state["loader"]
        if not isinstance(loader, list):
            raise CheckpointError(f"{where}['loader']: expected a list of generator states")
        for i, s in enumerate(loader):
            torch.Generator().set_state(gen_state(s, f"{where}['loader'][{i}]"))
        cuda = state.get("cuda", [])
        if not isinstance(cuda, list):
            raise CheckpointError(f"{where}['cuda']: expected a list of generator states")
        cuda = [gen_state(s, f"{where}['cuda'][{i}]") for i, s in enumerate(cuda)]
    except (ValueError, TypeError, RuntimeError) as e:
        if isinstance(e, CheckpointError):
            raise
        raise CheckpointError(f"{where}: not a valid random state ({type(e).__name__}: {e})") from None
    return {"torch": state["torch"].cpu(), "numpy": np_state, "python": py, "loader": [s.cpu() for s in loader],
            "cuda": cuda}


def set_rng_state(state: dict[str, Any], learn: "Learner | None" = None) -> None:
    """Restore what `rng_state` returned (as `read_checkpoint` checked it)."""
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    gens = _loader_generators(learn)
    if len(gens) == len(state["loader"]):
        for g, s in zip(gens, state["loader"]):
            g.set_state(s)
    cuda = state.get("cuda") or []
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)


class RandomStates:
    """This process's random states (those of `learn`'s training loader included), with the
    `state_dict` / `check_state_dict` / `load_state_dict` protocol of every part of a checkpoint."""

    def __init__(self, learn: "Learner | None" = None) -> None:
        self.learn = learn

    def state_dict(self) -> dict[str, Any]:
        """The torch, CUDA, NumPy, Python and loader random states now."""
        return rng_state(self.learn)

    def check_state_dict(self, state: Any) -> dict[str, Any]:
        """`state` ready to set (tensors on the CPU); `CheckpointError` saying what is wrong."""
        return _check_rng(state, "state")

    def load_state_dict(self, state: Any) -> None:
        """Set every random state from `state` (checked first: a refused state sets none)."""
        set_rng_state(self.check_state_dict(state), self.learn)


# -- whole checkpoints ----------------------------------------------------------------------------
def _read_opt(sd: Any, reader: _Reader) -> dict | None:
    if sd is None:
        raise CheckpointError("opt: missing (a checkpoint to resume from has the optimizer's state)")
    return _opt_part(sd, reader)


def _read_handler(handler: Any, reader: _Reader) -> list | None:
    if handler is None:
        return None
    per_rank = handler if isinstance(handler, list) and handler else [handler]
    bad = [type(h).__name__ for h in per_rank if not isinstance(h, dict)]
    if bad:
        raise CheckpointError(f"handler: expected a dict (or a list of them, one per rank), got a {bad[0]}")
    return [reader.decode(h, f"handler[{i}]") for i, h in enumerate(per_rank)]


def _read_rng(rng: Any, reader: _Reader) -> list[dict[str, Any]]:
    if not isinstance(rng, list) or not rng:
        raise CheckpointError("rng: expected a list of random states, one per rank")
    return [_check_rng(reader.decode(s, f"rng[{i}]"), f"rng[{i}]") for i, s in enumerate(rng)]


@dataclass(frozen=True)
class Part:
    """A part of a checkpoint beside the model and the callbacks: its key in the file (and in
    `Checkpoint`), the object of a run that holds it (with `state_dict` / `check_state_dict` /
    `load_state_dict`), whether each rank holds its own (then the file has every rank's, in rank
    order), and how its data is checked when the file is read (before any learner sees it)."""

    key: str
    of: Callable[[Any, Any], Any]  # (learn, handler) -> the stateful object, or None
    read: Callable[[Any, "_Reader"], Any]  # (the file's data, the reader) -> checked and decoded
    per_rank: bool = False


#: What a checkpoint holds besides the model and the callbacks' declared state; saving and
#: resuming go through these parts in this order.
PARTS = (
    Part("opt", lambda learn, handler: learn.opt, _read_opt),
    Part("handler", lambda learn, handler: None if handler is None else handler.training_state, _read_handler,
         per_rank=True),
    Part("rng", lambda learn, handler: RandomStates(learn), _read_rng, per_rank=True),
)


def _callbacks(handler: "CallbackHandler | None") -> "list[Callback]":
    """The callbacks of `handler`'s fit that a checkpoint may hold (not the device loader)."""
    return [c for c in getattr(handler, "callbacks", ()) if c is not getattr(handler, "cb_dl", None)]


def state_of(learn: "Learner", epoch: int | None = None, with_tensors: bool = True) -> dict[str, Any]:
    """The checkpoint of `learn` now. Under a process group, every rank must call it (RNG states are gathered).

    `epoch` is the last epoch completed; by default the one before the running fit's current
    epoch (pass it when saving from `on_epoch_end`, as `SaveModelCallback` does). Without
    `with_tensors` (a sharded checkpoint, whose tensors are in DCP's files) the model and the
    optimizer parts are left None.
    """
    handler = getattr(learn, "cb_handler", None)
    if epoch is None:
        epoch = handler.state_dict["epoch"] - 1 if handler is not None else -1
    state: dict[str, Any] = {"format": FORMAT, "model": fdist.unwrap(learn.model).state_dict() if with_tensors else None,
             "epoch": int(epoch), "callbacks": callback_states(_callbacks(handler))}
    for part in PARTS:
        obj = None if part.key == "opt" and not with_tensors else part.of(learn, handler)
        value = None if obj is None else encode(obj.state_dict(), part.key)
        state[part.key] = _all_ranks(value) if part.per_rank and obj is not None else value
    return state


def _all_ranks(state: Any) -> list:
    """`[state]` in one process; under a process group, every rank's (in rank order, on the CPU)."""
    return fdist.all_gather_object(_cpu(state)) if fdist.is_distributed() else [state]


def _cpu(v: Any) -> Any:
    """`v` with its tensors on the CPU (what one rank sends the others)."""
    if isinstance(v, torch.Tensor):
        return v.detach().cpu()
    if isinstance(v, dict):
        return {k: _cpu(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return type(v)(_cpu(x) for x in v)
    return v


@dataclass(frozen=True)
class Checkpoint:
    """A checkpoint read and checked by `read_checkpoint` (decoded: NumPy values are NumPy values again).

    `epoch` is None for files that hold weights only (or weights and optimizer): those load, but a
    fit can't continue them with `start_epoch`.
    """

    model: dict
    opt: dict | None = None
    epoch: int | None = None
    callbacks: dict = field(default_factory=dict)
    handler: list | None = None  # per rank (one entry when saved by one process)
    rng: list = field(default_factory=list)

    @property
    def resumable(self) -> bool:
        """True when a `fit(..., start_epoch=epoch + 1)` can continue it."""
        return self.epoch is not None and self.opt is not None


_KEYS = {"format", "model", "opt", "epoch", "callbacks", "handler", "rng"}


def read_checkpoint(source: str | os.PathLike[str] | IO[bytes], map_location: Any = "cpu",
                    sharded: bool = False) -> Checkpoint:
    """The checkpoint at `source` (a path or a file object), read with `weights_only=True` and checked
    whole; `CheckpointError` (a `ValueError`) saying what is wrong and where, `FileNotFoundError`
    if there is no file. `sharded`: the `fastcb.pth` of a sharded checkpoint (`fastcb.sharded`),
    whose model part is names -> [shape, dtype] and whose optimizer tensors are DCP keys."""
    try:
        raw = torch.load(source, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as e:  # truncated zip, not a torch file, pickled code, ...
        first = str(e).splitlines()[0][:300] if str(e) else ""
        raise CheckpointError(f"file: {source} is not a complete checkpoint ({type(e).__name__}: {first})") from e
    reader = _Reader()
    if not isinstance(raw, dict):
        raise CheckpointError(f"file: {source} holds a {type(raw).__name__}, not a state dict or checkpoint")
    if sharded and raw.get("format") != FORMAT:
        raise CheckpointError(f"file: {source} is not the fastcb part of a sharded checkpoint")
    if "format" not in raw:
        if set(raw) == {"model", "opt"}:  # fastcb's earlier (model, optimizer) files
            reader.check(raw, "file")
            return Checkpoint(model=_model_part(raw["model"]), opt=_opt_part(raw["opt"], reader))
        reader.check(raw, "model")
        return Checkpoint(model=_model_part(raw, "file"))
    fmt = raw["format"]
    if fmt in _OLD_FORMATS:
        reader.check({k: raw.get(k) for k in ("model", "opt")}, "file")
        return Checkpoint(model=_model_part(raw.get("model")), opt=_opt_part(raw.get("opt"), reader))
    if fmt != FORMAT:
        raise CheckpointError(f"format: {str(fmt)[:80]!r}; this fastcb reads {FORMAT!r}")
    if set(raw) != _KEYS:
        raise CheckpointError(f"file: expected the parts {sorted(_KEYS)}; missing {sorted(_KEYS - set(raw))}, "
                              f"unknown {sorted(map(str, set(raw) - _KEYS))}")
    reader.check(raw, "checkpoint")
    epoch = int(check_number("epoch", raw["epoch"], integer=True, minimum=-1, error=CheckpointError))
    callbacks = raw["callbacks"]
    if not isinstance(callbacks, dict) or not all(isinstance(k, str) and isinstance(v, dict)
                                                  for k, v in callbacks.items()):
        raise CheckpointError("callbacks: expected a dict of callback name -> state dict")
    callbacks = {k: reader.decode(v, f"callbacks[{k!r}]") for k, v in callbacks.items()}
    parts = {part.key: part.read(raw[part.key], reader) for part in PARTS}
    if sharded:
        model = raw["model"]
        if not isinstance(model, dict) or not all(isinstance(k, str) for k in model):
            raise CheckpointError("model: expected the model's parameter names")
        model = {}  # the tensors are in DCP's files
    else:
        model = _model_part(raw["model"])
    return Checkpoint(model=model, epoch=epoch, callbacks=callbacks, **parts)


def _model_part(sd: Any, where: str = "model") -> dict[str, torch.Tensor]:
    if not isinstance(sd, dict) or not sd or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                                     for k, v in sd.items()):
        raise CheckpointError(f"{where}: expected the model's state dict (parameter names -> tensors)")
    return sd


def _opt_part(sd: Any, reader: _Reader) -> dict | None:
    if sd is None:
        return None
    if not isinstance(sd, dict) or not isinstance(sd.get("state"), dict) or \
            not isinstance(sd.get("param_groups"), list) or not set(sd) <= {"state", "param_groups", "fastcb"}:
        raise CheckpointError("opt: expected an optimizer state dict (state, param_groups and fastcb's part)")
    for i, g in enumerate(sd["param_groups"]):
        if not isinstance(g, dict) or not isinstance(g.get("params"), list) or \
                not all(type(p) is int for p in g["params"]):
            raise CheckpointError(f"opt['param_groups'][{i}]: expected a dict with 'params', a list of ints")
    for k, st in sd["state"].items():
        if type(k) is not int or not isinstance(st, dict):
            raise CheckpointError(f"opt['state'][{k!r}]: expected parameter index -> dict of tensors and numbers")
    return reader.decode(sd, "opt")


def _temp_name(target: Path) -> Path:
    host = re.sub(r"[^A-Za-z0-9_-]", "_", socket.gethostname())
    return target.with_name(f".{target.name}.{host}-{os.getpid()}.tmp")


def _sweep(folder: Path) -> None:
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


def _fsync_dir(folder: Path) -> None:
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


def write(state: Any, target: str | os.PathLike[str] | IO[bytes]) -> None:
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


def check_model(model: torch.nn.Module, sd: dict[str, torch.Tensor], strict: bool = True) -> None:
    """Raise `CheckpointError` unless `model.load_state_dict(sd, strict)` would load every tensor."""
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
    bad = [f"{k}: {sd[k].dtype} in the checkpoint, {v.dtype} in the model" for k, v in own.items()
           if k in sd and not torch.can_cast(sd[k].dtype, v.dtype)]
    if bad:
        raise CheckpointError(f"model: the checkpoint's dtypes don't fit the model's: {'; '.join(bad[:5])}")


def check_opt(opt: Any, sd: dict) -> None:
    """Raise `CheckpointError` unless `opt.load_state_dict(sd)` would accept `sd` (the optimizer is untouched)."""
    try:
        opt.check_state_dict(sd)
    except (ValueError, TypeError) as e:
        raise CheckpointError(f"opt: {e}") from None


def resume(learn: "Learner", handler: "CallbackHandler") -> None:
    """At the start of a fit, after `on_train_begin`: when the fit starts at epoch k > 0, continue the
    checkpoint `Learner.load` kept (it must be the one saved after epoch k-1), or else let the
    callbacks `jump_to_epoch(k)` (fastai's replay).

    Everything is checked before anything is assigned (`CheckpointError`, nothing changed); then
    the callbacks' declared state, the optimizer, the handler's smoothing and the random states
    are restored, and only the callbacks that the checkpoint doesn't cover jump. A fit that
    starts at epoch 0 is a new run from the loaded weights: the rest is dropped.
    """
    ck = learn.__dict__.pop("_resume", None)
    start = handler.state_dict["epoch"]
    if not start:
        return
    if ck is None:
        handler.jump_to_epoch(start)
        return
    if start != ck.epoch + 1:
        raise CheckpointError(f"start_epoch: the checkpoint was saved after epoch {ck.epoch}: resume with "
                              f"start_epoch={ck.epoch + 1}, not {start}")
    rank = fdist.rank()
    # the stateful parts the checkpoint covers, each with the state_dict protocol: the callbacks',
    # then the optimizer's (again: the fit's setup changed the hyper-parameters since `load`), the
    # handler's smoothing and the random states (each rank its own; one entry when one process saved)
    parts = [(f"callbacks[{key!r}]", cb, ck.callbacks[key]) for key, cb in _keys(_callbacks(handler))
             if key in ck.callbacks]
    for part in PARTS:
        obj, saved = part.of(learn, handler), getattr(ck, part.key)
        if obj is not None and saved is not None:
            parts.append((part.key, obj, saved[rank if rank < len(saved) else 0] if part.per_rank else saved))
    for where, obj, state in parts:
        if not callable(getattr(obj, "load_state_dict", None)):
            raise CheckpointError(f"{where}: the checkpoint has its state, this {type(obj).__name__} "
                                  f"has no load_state_dict")
        try:
            obj.check_state_dict(state)
        except (ValueError, TypeError, KeyError) as e:
            raise CheckpointError(f"{where}: {e}") from None
    # everything fits: apply (each load checks again, and can't refuse now)
    for _, obj, state in parts:
        obj.load_state_dict(state)
    handler.jump_to_epoch(start, skip=[cb for where, cb, _ in parts if where.startswith("callbacks")])
