"""PyTorch module hooks as fastai v1 wraps them: `Hook`/`Hooks`, `HookCallback`, `ActivationStats`,
and the model inspection helpers built on them (`model_sizes`, `num_features_model`, `model_summary`)."""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from .._utils import flatten_model, func_name, is_listy
from ..data import DatasetType
from ..learner_callback import LearnerCallback

if TYPE_CHECKING:
    from ..learner import Learner

#: What a hook computes from a module, its input and its output (stored in `Hook.stored`).
HookFunc = Callable[[nn.Module, Any, Any], Any]

__all__ = ["ActivationStats", "Hook", "HookCallback", "Hooks", "hook_output", "hook_outputs", "model_sizes",
           "num_features_model", "model_summary", "dummy_eval", "dummy_batch"]


class Hook:
    """A forward (or, with `is_forward=False`, backward) hook on `m` storing `hook_func(m, input, output)`
    in `stored`; inputs and outputs are detached first if `detach`. A context manager that removes it."""

    def __init__(self, m: nn.Module, hook_func: HookFunc, is_forward: bool = True, detach: bool = True) -> None:
        if not isinstance(m, nn.Module):
            raise TypeError(f"m: expected a torch.nn.Module, got {type(m).__name__}")
        self.hook_func, self.detach = hook_func, detach
        self.stored: Any = None
        register: Callable[..., Any] = m.register_forward_hook if is_forward else m.register_full_backward_hook
        self.hook = register(self.hook_fn)
        self.removed = False

    def hook_fn(self, module: nn.Module, input: Any, output: Any) -> None:
        """Apply `hook_func` to `module`, `input`, `output`."""
        if self.detach:
            input = tuple(o.detach() for o in input) if is_listy(input) else input.detach()
            output = tuple(o.detach() for o in output) if is_listy(output) else output.detach()
        self.stored = self.hook_func(module, input, output)

    def remove(self) -> None:
        """Remove the hook from the module."""
        if not self.removed:
            self.hook.remove()
            self.removed = True

    def __enter__(self, *args: Any) -> Hook:
        return self

    def __exit__(self, *args: Any) -> None:
        self.remove()


class Hooks:
    """A `Hook` on each module of `ms`; `stored` lists their results."""

    def __init__(self, ms: Iterable[nn.Module], hook_func: HookFunc, is_forward: bool = True,
                 detach: bool = True) -> None:
        self.hooks = [Hook(m, hook_func, is_forward, detach) for m in ms]

    def __getitem__(self, i: int) -> Hook:
        return self.hooks[i]

    def __len__(self) -> int:
        return len(self.hooks)

    def __iter__(self) -> Iterator[Hook]:
        return iter(self.hooks)

    @property
    def stored(self) -> list[Any]:
        """Each hook's stored result."""
        return [o.stored for o in self]

    def remove(self) -> None:
        """Remove all the hooks."""
        for h in self.hooks:
            h.remove()

    def __enter__(self, *args: Any) -> Hooks:
        return self

    def __exit__(self, *args: Any) -> None:
        self.remove()


def _hook_inner(m: nn.Module, i: Any, o: Any) -> Any:
    return o if isinstance(o, torch.Tensor) or is_listy(o) else list(o)


def hook_output(module: nn.Module, detach: bool = True, grad: bool = False) -> Hook:
    """A `Hook` storing `module`'s output (its output gradient with `grad`)."""
    return Hook(module, _hook_inner, detach=detach, is_forward=not grad)


def hook_outputs(modules: Iterable[nn.Module], detach: bool = True, grad: bool = False) -> Hooks:
    """`Hooks` storing each of `modules`' outputs (output gradients with `grad`)."""
    return Hooks(modules, _hook_inner, detach=detach, is_forward=not grad)


def _has_params(m: nn.Module) -> bool:
    return len(list(m.parameters())) > 0


class HookCallback(LearnerCallback):
    """Register `self.hook` on `modules` (default: every leaf module with parameters) for the fit,
    removing them at the end if `do_remove`. Subclasses define `hook(module, input, output)`."""

    def __init__(self, learn: Learner, modules: Sequence[nn.Module] | None = None, do_remove: bool = True) -> None:
        super().__init__(learn)
        self.modules, self.do_remove = modules, do_remove

    def on_train_begin(self, **kwargs: Any) -> None:
        """Register the hooks."""
        if not self.modules:
            self.modules = [m for m in flatten_model(self.learn.model) if _has_params(m)]
        self.hooks = Hooks(self.modules, self.hook)

    def on_train_end(self, **kwargs: Any) -> None:
        """Remove the hooks."""
        if self.do_remove:
            self.remove()

    def remove(self) -> None:
        """Remove the hooks now."""
        if getattr(self, "hooks", None):
            self.hooks.remove()

    def __del__(self) -> None:
        self.remove()


class ActivationStats(HookCallback):
    """Record the mean and standard deviation of the hooked modules' outputs at each training batch;
    at the end, `stats` is a tensor of shape `(2, n_modules, n_batches)` (means, stds)."""

    def on_train_begin(self, **kwargs: Any) -> None:
        """Register the hooks and start the record."""
        super().on_train_begin(**kwargs)
        self.stats: Any = []  # per batch, then a tensor at the end

    def hook(self, m: nn.Module, i: Any, o: torch.Tensor) -> tuple[float, float]:
        """The mean and std of the output."""
        return o.mean().item(), o.std().item()

    def on_batch_end(self, train: bool, **kwargs: Any) -> None:
        """Keep this batch's statistics."""
        if train:
            self.stats.append(self.hooks.stored)

    def on_train_end(self, **kwargs: Any) -> None:
        """Remove the hooks and stack the statistics."""
        super().on_train_end(**kwargs)
        self.stats = torch.tensor(self.stats).permute(2, 1, 0)


def _in_channels(m: nn.Module) -> int:
    for layer in flatten_model(m):
        w = getattr(layer, "weight", None)
        if isinstance(w, torch.Tensor) and w.dim() >= 2:
            return w.shape[1]
    raise ValueError("m: no layer with a weight of 2 or more dimensions to read the input channels from")


def dummy_batch(m: nn.Module, size: tuple[int, ...] = (64, 64)) -> torch.Tensor:
    """A batch of one uniform(-1, 1) input for `m` (a conv net): `(1, in_channels, *size)`."""
    p = next(m.parameters(), None)
    if p is None:
        raise ValueError("m: has no parameters to read the input channels from")
    return p.new_empty(1, _in_channels(m), *size).requires_grad_(False).uniform_(-1.0, 1.0)


def dummy_eval(m: nn.Module, size: tuple[int, ...] = (64, 64)) -> Any:
    """`m`'s output on a `dummy_batch`, in eval mode."""
    return m.eval()(dummy_batch(m, size))


def model_sizes(m: nn.Sequential, size: tuple[int, ...] = (64, 64)) -> list[torch.Size]:
    """The output shape of each direct child of `m` on a `dummy_batch` of spatial `size`."""
    with hook_outputs(m) as hooks:
        dummy_eval(m, size)
        return [o.stored.shape for o in hooks]


def num_features_model(m: nn.Sequential) -> int:
    """The number of output features (channels) of `m`, trying inputs of 64 to 2048 pixels."""
    sz = 64
    while True:
        try:
            return model_sizes(m, size=(sz, sz))[-1][1]
        except Exception:
            sz *= 2
            if sz > 2048:
                raise


def _total_params(m: nn.Module) -> tuple[int, bool]:
    params, trainable = 0, False
    weight, bias = getattr(m, "weight", None), getattr(m, "bias", None)
    if isinstance(weight, torch.Tensor):
        params += weight.numel()
        trainable = weight.requires_grad
    if isinstance(bias, torch.Tensor):
        params += bias.numel()
    return params, trainable


class PrettyString(str):
    """A string that shows as itself (not quoted) at the prompt."""

    def __repr__(self) -> str:
        return self


def _layers_info(learn: Learner) -> list[Any]:
    if learn.data.is_empty:
        raise ValueError("This is an empty `Learner` and `Learner.summary` requires some data to pass through the model.")
    d = learn.data
    ds_type = DatasetType.Train if len(d.train_ds) else DatasetType.Valid if d.valid_dl is not None else DatasetType.Test
    x = d.one_batch(ds_type=ds_type, detach=False, denorm=False, cpu=False)[0]
    x = [o[:1] for o in x] if is_listy(x) else x[:1]
    layers = flatten_model(learn.model)
    with hook_outputs(layers) as hook_o, Hooks(layers, lambda m, i, o: _total_params(m)) as hook_p:
        training = learn.model.training
        try:
            with torch.no_grad():
                learn.model.eval()(*x) if is_listy(x) else learn.model.eval()(x)
        finally:
            learn.model.train(training)
        sizes = [o.stored.shape[1:] if o.stored is not None and hasattr(o.stored, "shape") else None for o in hook_o]
        params = [o.stored if o.stored is not None else (None, None) for o in hook_p]
    info = namedtuple("Layer_Information", ["Layer", "OutputSize", "Params", "Trainable"])  # type: ignore[name-match]  # fastai's name
    return [info(type(l).__name__, s, p, t) for l, s, (p, t) in zip(layers, sizes, params)]


def model_summary(m: Learner, n: int = 70) -> PrettyString:
    """A text table of `m`'s (a `Learner`) layers: output shape, parameter count, trainable; then totals,
    optimizer, loss function and callbacks. Needs data: an empty `Learner` raises a `ValueError`."""
    if not (hasattr(m, "model") and hasattr(m, "data")):  # a Learner (learner.py imports this module)
        raise TypeError(f"m: expected a Learner, got {type(m).__name__}")
    header = ["Layer (type)", "Output Shape", "Param #", "Trainable"]
    res = type(m.model).__name__ + "\n" + "=" * n + "\n"
    res += f"{header[0]:<20} {header[1]:<20} {header[2]:<10} {header[3]:<10}\n" + "=" * n + "\n"
    total, total_trainable = 0, 0
    for layer, size, params, trainable in _layers_info(m):
        if size is None:
            continue
        total += int(params)
        total_trainable += int(params) * trainable
        res += f"{layer:<20} {str(list(size)):<20} {int(params):<10,} {str(trainable):<10}\n" + "_" * n + "\n"
    res += f"\nTotal params: {total:,}\nTotal trainable params: {total_trainable:,}\n"
    res += f"Total non-trainable params: {total - total_trainable:,}\n"
    res += f"Optimized with {m.opt_func!r}\n"
    if m.true_wd:
        res += "Using true weight decay as discussed in https://www.fast.ai/2018/07/02/adam-weight-decay/ \n"
    res += f"Loss function : {func_name(m.loss_func)}\n" + "=" * n + "\n"
    res += "Callbacks functions applied \n" + "\n".join(f"    {type(cb).__name__}" for cb in m.callbacks)
    return PrettyString(res)
