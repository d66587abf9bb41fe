"""fastcb: fastai v1's callback system for PyTorch training loops, with a compiled Rust core.

`from fastcb import *` gives the names of `from fastai.callback import *` (and the loop
around them); the drop-in schedulers live in `fastcb.lr_scheduler`.

The package loads its modules (and torch) on first use of a name, so the `fastcb` command
answers `--help` and argument errors without importing torch.
"""

import importlib
import importlib.util
from typing import Any

__version__ = "0.1.0"

#: The modules whose `__all__` make up `fastcb.__all__`, in order.
_STAR_MODULES = ("anneal", "callback", "optim", "data", "learner", "callbacks", "metrics", "settings", "inference",
                 "lifecycle", "train", "metric_callbacks", "interpret")
#: Submodules available as attributes (`fastcb.schedules`, ...) without their own import.
_SUBMODULES = (*_STAR_MODULES, "progress", "schedules")


def _load() -> None:
    """Import the modules and bind their public names here (once)."""
    names = []
    for mod in _STAR_MODULES:
        module = importlib.import_module(f".{mod}", __name__)
        globals().update({n: getattr(module, n) for n in module.__all__})
        names += module.__all__
    for mod in _SUBMODULES:
        globals()[mod] = importlib.import_module(f".{mod}", __name__)
    globals()["__all__"] = names


def __getattr__(name: str) -> Any:
    """The first public name used (or `from fastcb import *`) loads the package."""
    if name.startswith("__") and name != "__all__":
        raise AttributeError(name)
    if importlib.util.find_spec(f"{__name__}.{name}") is not None:
        # a submodule (`from . import checkpoint` asks here first): import just that one
        return importlib.import_module(f".{name}", __name__)
    if "__all__" not in globals():
        _load()
        if name in globals():
            return globals()[name]
    raise AttributeError(f"module 'fastcb' has no attribute {name!r}")


def __dir__() -> list[str]:
    if "__all__" not in globals():
        _load()
    return sorted({*globals(), *__all__})  # type: ignore[name-defined]  # noqa: F821 - `_load` defines it
