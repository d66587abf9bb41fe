"""Small helpers shared by the callback layer (fastai v1's `core`/`torch_core` bits we need)."""

import functools
import math
import re
from collections.abc import Callable, Iterable
from typing import Any, SupportsFloat, TypeVar, cast

import numpy as np
import numpy.typing as npt
import torch
from torch import nn
from torch.types import Device

from ._core import cpu_scalars as _cpu_scalars
from .errors import ArgumentError

__all__: list[str] = []

_T = TypeVar("_T")

bn_types = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
no_wd_types = bn_types + (nn.LayerNorm, nn.GroupNorm, nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d)
bias_types = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)


def is_listy(x: object) -> bool:
    """True for a list or a tuple."""
    return isinstance(x, (list, tuple))


def listify(p: Any = None, q: Any = None) -> list[Any]:
    """Make `p` a list as long as `q` (an int, a sized object, or None for `len(p)`)."""
    if p is None:
        p = []
    elif isinstance(p, (str, torch.Tensor)) or not isinstance(p, Iterable):
        p = [p]
    else:
        p = list(p)
    n = q if type(q) is int else len(p) if q is None else len(q)
    if len(p) == 1:
        p = p * n
    if len(p) != n:
        raise ValueError(f"expected {n} values (one per layer group), got {len(p)}")
    return p


def first_el(x: Any) -> Any:
    """The first leaf of nested lists/tuples/dicts `x`."""
    while True:
        if is_listy(x):
            x = x[0]
        elif isinstance(x, dict):
            x = next(iter(x.values()))
        else:
            return x


_camel_re1 = re.compile("(.)([A-Z][a-z]+)")
_camel_re2 = re.compile("([a-z0-9])([A-Z])")


@functools.lru_cache(maxsize=1024)  # class names, each fit: two `re.sub`s expand their templates in Python
def camel2snake(name: str) -> str:
    """`MyCallback` -> `my_callback`."""
    return _camel_re2.sub(r"\1_\2", _camel_re1.sub(r"\1_\2", name)).lower()


def even_mults(start: float, stop: float, n: int) -> npt.NDArray[np.float64]:
    """`n` values stepping geometrically from `start` to `stop`."""
    if n == 1:
        return np.array([stop], dtype=float)
    step = (stop / start) ** (1 / (n - 1))
    return np.array([start * step**i for i in range(n)])


def check_number(name: str, value: _T | None, *, integer: bool = False, positive: bool = False, minimum: float | None = None,
                 maximum: float | None = None, below: float | None = None, finite: bool = True,
                 like_float: bool = False, error: type[Exception] = ArgumentError,
                 type_error: type[Exception] | None = None) -> _T:
    """`value` if it is a real number (an int if `integer`; never a bool, never NaN) that is
    finite (unless `finite=False`), `> 0` if `positive`, within `[minimum, maximum]`, `< below`;
    else `error` (`ArgumentError`, a `ValueError`) in the one style of fastcb's argument errors:
    `name: expected <what>, got <value>`.

    `like_float` also takes what a plain comparison with a number took where fastai checked an
    argument that way: anything `float()` reads except a string (bools, one-number tensors,
    `Decimal`, `Fraction`). A value that is no number at all raises `type_error` (naming its
    type) where given, else `error`.

    >>> check_number("factor", 0.5, positive=True, below=1)
    0.5
    >>> check_number("factor", 1.5, positive=True, below=1)
    Traceback (most recent call last):
    ...
    fastcb.errors.ArgumentError: factor: expected a number in (0, 1), got 1.5
    """
    x = _as_number(value, integer, like_float)
    if x is not None and not (
            math.isnan(x) or (finite and math.isinf(x)) or (positive and x <= 0) or (minimum is not None and x < minimum)
            or (maximum is not None and x > maximum) or (below is not None and x >= below)):
        return cast(_T, value)  # a number, so not None
    kind = _number_kind(integer, positive, minimum, maximum, below, finite)
    if x is None and type_error is not None:
        raise type_error(f"{name}: expected {kind}, got {type(value).__name__}")
    raise error(f"{name}: expected {kind}, got {value!r}")


def _as_number(value: object, integer: bool, like_float: bool) -> float | None:
    """`value` as a float if `check_number` counts it as a number at all, else None."""
    if like_float:
        if isinstance(value, (str, bytes)):
            return None
        try:
            return float(cast(SupportsFloat, value))
        except (TypeError, ValueError, RuntimeError):  # not a number, or a tensor of several
            return None
    types = (int, np.integer) if integer else (int, float, np.integer, np.floating)
    if isinstance(value, types) and not isinstance(value, (bool, np.bool_)):
        return float(cast(SupportsFloat, value))
    return None


def _number_kind(integer: bool, positive: bool, minimum: float | None, maximum: float | None, below: float | None,
                 finite: bool) -> str:
    """'a positive int', 'an int >= 0', 'a number in [0, 1]', 'a number in (0, 1)', 'a finite number >= 2', ..."""
    kind = "int" if integer else "number"
    article = "an" if integer else "a"
    low = "(0" if positive else f"[{minimum}" if minimum is not None else None
    high = f"{maximum}]" if maximum is not None else f"{below})" if below is not None else None
    if low is not None and high is not None:
        return f"{article} {kind} in {low}, {high}"
    if positive:
        desc = f"positive {kind}"
    elif minimum is not None:
        desc = f"{kind} >= {minimum}"
    elif maximum is not None:
        desc = f"{kind} <= {maximum}"
    elif below is not None:
        desc = f"{kind} < {below}"
    else:
        desc = kind
    if finite and not integer:
        desc = "finite " + desc
    return ("an " if desc[0] in "aeiou" else "a ") + desc


def _modes_active() -> bool:
    """A torch function mode or dispatch mode is active: it must see torch's operations, so
    `host_floats` reads through torch."""
    return torch._C._is_torch_function_mode_enabled() or torch._C._len_torch_dispatch_stack() > 0


def host_floats(values: Iterable[float | torch.Tensor], what: str = "values") -> npt.NDArray[np.float64]:
    """`values` (numbers, or one-number tensors on any device) as a float64 NumPy array, the tensors
    brought to the host in one transfer: how the loop reads what stayed on the device.
    Exact 0-dim CPU tensors are read in host memory without a torch operation each
    (`_core.cpu_scalars`), as their `.double()` converts them, unless a torch function or
    dispatch mode is active.

    `ValueError` naming `what` if a tensor holds more than one number.
    """
    values = list(values)
    if values and type(values[0]) is torch.Tensor and not _modes_active():
        # CPU tensors (the loop's losses and metrics on the CPU) are read where they lie; None
        # for anything else (a device tensor, a subclass, a float among them): torch's path below
        host = _cpu_scalars(values)
        if host is not None:
            return host
    out = np.empty(len(values), dtype=np.float64)
    idx = [i for i, v in enumerate(values) if isinstance(v, torch.Tensor)]
    if idx and len(idx) == len(values):  # the loop's case (a loss per batch): one stack, no op per tensor
        try:
            with torch.no_grad():
                stacked = torch.stack(cast("list[torch.Tensor]", values))
        except RuntimeError:  # shapes (or devices) differ: one by one below
            stacked = None
        if stacked is not None and stacked.numel() == len(values):
            return stacked.reshape(len(values)).double().cpu().numpy()
    if idx:
        tensors = [v for v in values if isinstance(v, torch.Tensor)]  # values[idx]
        if any(t.numel() != 1 for t in tensors):
            raise ValueError(f"{what}: expected one number each, got a tensor of shape "
                             f"{next(list(t.shape) for t in tensors if t.numel() != 1)}")
        out[idx] = torch.stack([t.detach().reshape(()) for t in tensors]).double().cpu().numpy()
    for i, v in enumerate(values):
        if not isinstance(v, torch.Tensor):
            out[i] = float(v)
    return out


def func_name(func: Callable[..., Any]) -> str:
    """The name of `func`, looking through (nested) `functools.partial`s."""
    while not hasattr(func, "__name__") and hasattr(func, "func"):
        func = func.func
    return getattr(func, "__name__", type(func).__name__)


def trainable_params(m: nn.Module) -> list[nn.Parameter]:
    """The parameters of `m` that require grad."""
    return [p for p in m.parameters() if p.requires_grad]


def flatten_model(m: nn.Module) -> list[nn.Module]:
    """The leaf modules of `m`, in order."""
    children = list(m.children())
    if not children:
        return [m]
    return [leaf for c in children for leaf in flatten_model(c)]


def _unique(params: Iterable[nn.Parameter]) -> list[nn.Parameter]:
    seen, out = set(), []
    for p in params:
        if id(p) not in seen:
            seen.add(id(p))
            out.append(p)
    return out


def split_no_wd_params(layer_groups: Iterable[nn.Module]) -> list[list[nn.Parameter]]:
    """Per layer group, two lists: params that get weight decay, and norm/bias params that may not."""
    split = []
    for group in layer_groups:
        decay, no_decay = [], []
        for module in group.modules():
            own = [p for p in module.parameters(recurse=False) if p.requires_grad]
            if isinstance(module, no_wd_types):
                no_decay += own
            elif isinstance(module, bias_types):
                bias = getattr(module, "bias", None)
                decay += [p for p in own if p is not bias]
                no_decay += [p for p in own if p is bias]
            else:
                decay += own
        split += [_unique(decay), _unique(no_decay)]
    return split


def to_detach(b: Any, cpu: bool = False) -> Any:
    """Detach the tensors in nested `b` (moving them to the CPU only if `cpu`)."""
    if isinstance(b, torch.Tensor):
        b = b.detach()
        return b.cpu() if cpu else b
    if is_listy(b):
        return type(b)(to_detach(o, cpu) for o in b)
    if isinstance(b, dict):
        return {k: to_detach(v, cpu) for k, v in b.items()}
    return b


def to_cpu(b: Any) -> Any:
    """The tensors in nested `b`, detached, on the CPU."""
    return to_detach(b, cpu=True)


def to_device(b: Any, device: Device, non_blocking: bool = True) -> Any:
    """Move the tensors in nested `b` to `device`."""
    if isinstance(b, torch.Tensor):
        return b.to(device, non_blocking=non_blocking)
    if is_listy(b):
        return type(b)(to_device(o, device, non_blocking) for o in b)
    if isinstance(b, dict):
        return {k: to_device(v, device, non_blocking) for k, v in b.items()}
    return b


class GetAttr:
    """Pass unknown attributes on to the object in `self.<_default>` (fastai's `GetAttr`).

    Dunder names are never passed on, and unpickling sets `__dict__` directly, so a half-built
    object never recurses into `__getattr__`.
    """

    _default: str | None = None

    def __getattr__(self, k: str) -> Any:
        inner = self.__dict__.get(self._default) if self._default else None
        if inner is None or k.startswith("__"):
            raise AttributeError(k)
        return getattr(inner, k)

    def __setstate__(self, data: dict[str, Any]) -> None:
        self.__dict__.update(data)
