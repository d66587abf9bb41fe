"""A `Learner`'s life outside training: `export` / `load_learner` (safe to load), `purge`, `destroy`.

`export` writes the model (its modules and weights), the training settings and the callbacks'
states with `torch.save`; `load_learner` reads it back with `torch.load(weights_only=True)`: only
an allow-list of globals may appear in the file (torch.nn modules, torch.optim optimizers,
torch.nn.functional, `functools.partial`, fastcb's public names, plus what the caller passes as
`safe_globals`), so loading never runs code chosen by the file.
"""

from __future__ import annotations

import gc
import inspect
import io
import os
import pickle
from collections.abc import Callable, Iterable
from functools import partial
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, TypeVar

import torch
from torch import nn

from . import distributed as fdist
from .data import DataBunch
from .learner_callback import LearnerCallback

if TYPE_CHECKING:
    from typing_extensions import TypeIs

    from .callback import Callback
    from .learner import Learner

_L = TypeVar("_L", bound="LifecycleMixin")

__all__ = ["load_learner", "load_callback", "default_safe_globals", "ExportError"]

_EXPORTED = ["opt_func", "loss_func", "metrics", "true_wd", "bn_wd", "wd", "train_bn", "model_dir", "callback_fns"]


class ExportError(ValueError):
    """What a `Learner` holds can't be exported (a lambda, a local function or class, an open file...)."""


def _is_pathlike(f: object) -> TypeIs[str | Path]:
    return isinstance(f, (str, Path))


def default_safe_globals() -> list[Any]:
    """The globals `load_learner` accepts without being told: torch.nn modules, torch.optim
    optimizers, torch.nn.functional's functions, `functools.partial`, fastcb's public names."""
    import torch.nn.functional as F

    import fastcb

    out: list[Any] = [partial, torch.device]
    out += [v for v in vars(nn).values() if inspect.isclass(v) and issubclass(v, nn.Module)]
    out += [v for v in vars(torch.optim).values() if inspect.isclass(v) and issubclass(v, torch.optim.Optimizer)]
    out += [v for k, v in vars(F).items() if not k.startswith("_") and inspect.isfunction(v)]
    out += [getattr(fastcb, n) for n in fastcb.__all__ if inspect.isclass(getattr(fastcb, n))
            or inspect.isfunction(getattr(fastcb, n))]
    return out


def _dump(state: dict[str, Any]) -> bytes:
    """`torch.save(state)` to bytes; an entry that can't be pickled is named in an `ExportError`."""
    buf = io.BytesIO()
    try:
        torch.save(state, buf)
    except Exception as e:  # find the culprit for a clear message
        for k, v in state.items():
            try:
                torch.save(v, io.BytesIO())
            except Exception as inner:
                raise ExportError(f"{k}: {v!r} can't be exported ({inner}); use a module-level function or class "
                                  "(not a lambda or a local definition)") from inner
        raise ExportError(f"the Learner can't be exported: {e}") from e
    return buf.getvalue()


def load_callback(class_func: type[Callback], state: dict[str, Any], learn: Learner) -> Callback:
    """Rebuild a callback of class `class_func` from its `get_state()` (fastai's `load_callback`)."""
    params = inspect.signature(class_func.__init__).parameters
    init_kwargs = {k: v for k, v in state.items() if k in params}
    others = {k: v for k, v in state.items() if k not in params}
    res = class_func(learn, **init_kwargs) if issubclass(class_func, LearnerCallback) else class_func(**init_kwargs)
    for k, v in others.items():
        setattr(res, k, v)
    return res


class _EmptyDataset(torch.utils.data.Dataset):
    """A dataset with no items (the data of a loaded `Learner`, until a test set is added)."""

    items = ()

    def __len__(self) -> int:
        return 0

    def __getitem__(self, i: int) -> Any:
        raise IndexError(i)


def load_learner(path: str | os.PathLike[str], file: str | Path | IO[bytes] = "export.pkl",
                 test: Any = None, tfm_y: Any = None, safe_globals: Iterable[Any] = (), **db_kwargs: Any) -> Learner:
    """The `Learner` that `Learner.export` wrote to `path/file` (or the file-like `file`), with empty data.

    `test` (a dataset) becomes `data.test_dl`; `db_kwargs` go to `DataBunch` (`device`, ...).
    The file is read with `weights_only=True`: classes and functions it names must be in
    `default_safe_globals()` or in `safe_globals` (your model's classes, your loss...), else a
    `pickle.UnpicklingError` names them. `tfm_y` is accepted for fastai's signature (no effect).
    """
    source = Path(path) / file if _is_pathlike(file) else file
    if _is_pathlike(source) and not Path(source).exists():
        raise FileNotFoundError(f"file: no exported Learner at {source}")
    allowed = default_safe_globals() + list(safe_globals)
    with torch.serialization.safe_globals(allowed):
        try:
            state = torch.load(source, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as e:
            unsafe = _unsafe_globals(source, allowed)
            raise pickle.UnpicklingError(
                f"file: refers to {unsafe or 'globals'} outside the allow-list; if you trust the file, pass them as "
                f"load_learner(..., safe_globals=[...])") from e
    if not isinstance(state, dict) or "model" not in state or "cls" not in state:
        raise ValueError(f"file: {source} is not a file written by Learner.export")
    model, cls, cb_state = state.pop("model"), state.pop("cls"), state.pop("cb_state")
    data_state = state.pop("data", {})
    empty = torch.utils.data.DataLoader(_EmptyDataset(), batch_size=1)
    test_dl = None if test is None else torch.utils.data.DataLoader(test, batch_size=db_kwargs.pop("bs", 64))
    data = DataBunch(empty, torch.utils.data.DataLoader(_EmptyDataset(), batch_size=1), test_dl=test_dl,
                     no_check=True, path=path, **db_kwargs)
    for k, v in data_state.items():
        setattr(data, k, v)
    res = cls(data, model, **state)
    res.callback_fns = state["callback_fns"]  # as saved: the Recorder is already in it
    res.callbacks = [load_callback(c, s, res) for c, s in cb_state.items()]
    return res


def _unsafe_globals(source: Any, allowed: Iterable[Any]) -> list[str]:
    try:
        if not _is_pathlike(source):
            source.seek(0)
        names = torch.serialization.get_unsafe_globals_in_checkpoint(source)
    except Exception:
        return []
    known = {f"{getattr(g, '__module__', '')}.{getattr(g, '__qualname__', getattr(g, '__name__', ''))}" for g in allowed}
    return [n for n in names if n not in known]


class _Destroyed:
    """What a destroyed `Learner` becomes: every attribute reads None and every method does nothing."""

    msg = "this object has been destroyed"

    _methods: set[str] = set()  # the destroyed Learner's method names (set by `destroy`)

    def __getattr__(self, k: str) -> Callable[..., None] | None:
        if k in _Destroyed._methods:
            return lambda *args, **kwargs: print(_Destroyed.msg)
        print(_Destroyed.msg)
        return None

    def __repr__(self) -> str:
        return "<destroyed Learner>"


class LifecycleMixin:
    """`Learner.export`, `purge` and `destroy` (fastai v1 names and signatures)."""

    if TYPE_CHECKING:  # what they use of the `Learner`
        path: Path
        model_dir: str | os.PathLike[str]
        model: nn.Module
        data: DataBunch
        callbacks: list[Callback]
        opt: Any

    def export(self, file: str | Path | IO[bytes] = "export.pkl", destroy: bool = False) -> None:
        """Write what inference needs to `path/file` (or the file-like `file`), for `load_learner`.

        The model (on the CPU), `opt_func`, `loss_func`, `metrics`, the weight-decay settings,
        `model_dir`, `callback_fns`, the callbacks' states and the data's `classes`/`c`; no data.
        What can't be pickled (a lambda loss, say) raises `ExportError` naming it, before anything
        is written. With `destroy`, `destroy()` the learner afterwards. Under a process group
        only rank 0 writes.
        """
        if not fdist.is_main_process():
            return
        state = {a: getattr(self, a) for a in _EXPORTED}
        state["cb_state"] = {type(cb): cb.get_state() for cb in self.callbacks}
        state["data"] = {k: getattr(self.data, k) for k in ("classes", "c")
                         if isinstance(getattr(self.data, k, None), (list, tuple, int))}
        state["cls"] = type(self)
        model = fdist.unwrap(self.model)
        device = next((p.device for p in model.parameters()), torch.device("cpu"))
        state["model"] = model.cpu()
        try:
            blob = _dump(state)
        finally:
            model.to(device)
        if _is_pathlike(file):
            Path(self.path / file).write_bytes(blob)
        else:
            file.write(blob)
        if destroy:
            self.destroy()

    def _test_writeable_path(self) -> None:
        """Raise a clear error when `path/model_dir` can't be written."""
        folder = self.path / self.model_dir
        try:
            folder.mkdir(parents=True, exist_ok=True)
            probe = folder / ".fastcb_write_test"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as e:
            raise OSError(f"model_dir: can't write to '{folder}' ({e}); set `learn.model_dir` to a writable "
                          "folder") from None

    def purge(self: _L, clear_opt: bool = True) -> _L:
        """Drop what the learner caches between fits (the last fit's callback handler and callback
        objects, the optimizer if `clear_opt`) and release cached GPU memory; keeps the model,
        the data, the settings, `callbacks` and the Recorder."""
        self._test_writeable_path()
        for k, v in list(vars(self).items()):
            if isinstance(v, LearnerCallback) and k != "recorder" and v not in self.callbacks:
                delattr(self, k)
        self.__dict__.pop("cb_handler", None)
        if clear_opt:
            self.opt = None
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        return self

    def destroy(self) -> None:
        """Free everything the learner holds; what is left answers every attribute with None and
        every method with a message (fastai v1's `destroy`)."""
        _Destroyed._methods = {k for k in dir(type(self)) if not k.startswith("__")}
        self.__dict__.clear()
        self.__class__ = _Destroyed  # type: ignore[assignment]  # what a destroyed Learner becomes
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        print("this Learner object self-destroyed - it still exists, but no longer usable")
