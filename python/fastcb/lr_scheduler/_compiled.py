"""torch's scheduler classes with a compiled regular step: the registry.

Each compiled class names its rule (``rule=...``: what its ``step``, a method written in
Rust (``fastcb._core.torch_step_method``), reads from the scheduler's ``__dict__`` at every
step) and the methods the compiled step stands in for. A subclass that overrides one of them runs torch's code path, every step;
a subclass that only adds ``__init__`` logic keeps the compiled step.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any, ClassVar

import torch.optim.lr_scheduler as _torch
from torch.optim.lr_scheduler import EPOCH_DEPRECATION_WARNING, LRScheduler

from .. import _core

_get_lr = _core.torch_get_lr

# torch's own warnings (torch/optim/lr_scheduler.py), raised here at the caller's line.
_OVERRIDDEN = (
    "Seems like `optimizer.step()` has been overridden after learning rate scheduler "
    "initialization. Please, make sure to call `optimizer.step()` before "
    "`lr_scheduler.step()`. See more details at "
    "https://pytorch.org/docs/stable/optim.html#how-to-adjust-learning-rate"
)
_ORDER = (
    "Detected call of `lr_scheduler.step()` before `optimizer.step()`. "
    "In PyTorch 1.1.0 and later, you should call them in the opposite order: "
    "`optimizer.step()` before `lr_scheduler.step()`.  Failure to do this "
    "will result in PyTorch skipping the first value of the learning rate schedule. "
    "See more details at "
    "https://pytorch.org/docs/stable/optim.html#how-to-adjust-learning-rate"
)
_GET_LR = "To get the last learning rate computed by the scheduler, please use `get_last_lr()`."

#: What every compiled step stands in for.
_STANDS_IN_FOR = ("step", "get_lr", "_get_closed_form_lr", "_update_lr", "_initial_step")

__all__ = ["EPOCH_DEPRECATION_WARNING", "LRScheduler"]


if TYPE_CHECKING:  # the mixin's methods run on torch's schedulers: typed as one
    _SchedulerBase = LRScheduler
else:
    _SchedulerBase = object


class _Compiled(_SchedulerBase):
    """Mixin over one of torch's scheduler classes: regular steps run compiled."""

    __slots__ = ()
    #: The rule the compiled ``step`` runs; ``None``: torch's own code, always.
    _fastcb_rule: ClassVar[str | None] = None
    _fastcb_methods: ClassVar[dict[str, Any]] = {}

    def __init_subclass__(cls, rule: str | None = None, stands_in_for: tuple[str, ...] = (), **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if rule is not None:
            cls._fastcb_rule = rule
            cls._fastcb_methods = {n: getattr(cls, n, None) for n in _STANDS_IN_FOR + stands_in_for}
            _core.torch_register_class(cls)
        elif cls._fastcb_rule is not None and any(getattr(cls, n, None) is not m for n, m in cls._fastcb_methods.items()):
            cls._fastcb_rule = None

    def _fastcb_torch_step(self, epoch: int | None = None) -> None:
        """torch's ``step()``: what the compiled ``step`` calls where its rule can't step."""
        torch_step = super().step
        if torch_step.__func__ is not LRScheduler.step:  # type: ignore[attr-defined]  # a bound method
            return torch_step(epoch)
        # torch's LRScheduler.step, its warnings pointing at the caller's line
        if self._step_count == 1:
            if not hasattr(self.optimizer.step, "_wrapped_by_lr_sched"):
                warnings.warn(_OVERRIDDEN, UserWarning, stacklevel=2)
            elif not getattr(self.optimizer, "_opt_called", False):
                warnings.warn(_ORDER, UserWarning, stacklevel=2)
        self._step_count += 1
        if epoch is not None:
            warnings.warn(EPOCH_DEPRECATION_WARNING, UserWarning, stacklevel=2)
        self._update_lr(epoch)
        return None

    if not TYPE_CHECKING:  # type checkers see torch's signature
        #: torch's ``step()``, a method written in Rust: a regular step runs the class's
        #: rule; anything else (and a step the rule can't take) ``_fastcb_torch_step``.
        step = _core.torch_step_method(LRScheduler)

    def get_lr(self) -> list[Any]:
        """torch's ``get_lr()`` (as Ignite's wrapper calls it), compiled where it can be."""
        if not self._get_lr_called_within_step:
            warnings.warn(_GET_LR, UserWarning, stacklevel=2)
            self._get_lr_called_within_step = True
            try:
                return self.get_lr()
            finally:
                self._get_lr_called_within_step = False
        if not self._is_initial:
            lrs = _get_lr(self, self._fastcb_rule)
            if lrs is not None:
                return lrs
        return super().get_lr()


def _check_lambda_state(self: _torch.LambdaLR | _torch.MultiplicativeLR, state_dict: dict[str, Any]) -> dict[str, Any]:
    """The state to assign, after checking all of it: nothing is assigned on an error."""
    if not isinstance(state_dict, dict):
        raise TypeError(f"state_dict: expected a dict, got {type(state_dict).__name__}")
    n = len(self.optimizer.param_groups)
    saved = state_dict.get("lr_lambdas")
    if not isinstance(saved, (list, tuple)) or len(saved) != len(self.lr_lambdas):
        raise ValueError(f"state_dict['lr_lambdas']: expected a list of {len(self.lr_lambdas)} entries, got {saved!r}")
    for i, s in enumerate(saved):
        # a tuple: a factor spec saved by an earlier fastcb (the factory rebuilds the factor)
        if s is None or isinstance(s, tuple):
            continue
        if not isinstance(s, dict):
            raise ValueError(f"state_dict['lr_lambdas'][{i}]: expected None or a dict, got {type(s).__name__}")
        if s and not hasattr(self.lr_lambdas[i], "__dict__"):
            raise ValueError(f"state_dict['lr_lambdas'][{i}]: lr_lambdas[{i}] has no attributes to restore")
    last = state_dict.get("last_epoch", self.last_epoch)
    if isinstance(last, bool) or not isinstance(last, int):
        raise ValueError(f"state_dict['last_epoch']: expected an int, got {last!r}")
    for key in ("base_lrs", "_last_lr"):
        value = state_dict.get(key)
        if key in state_dict and (not isinstance(value, list) or len(value) != n):
            raise ValueError(f"state_dict[{key!r}]: expected a list of {n} learning rates, got {value!r}")
    count = state_dict.get("_step_count", 0)
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise ValueError(f"state_dict['_step_count']: expected a non-negative int, got {count!r}")
    return {k: v for k, v in state_dict.items() if k != "lr_lambdas"}


def _load_lambda_state(self: _torch.LambdaLR | _torch.MultiplicativeLR, state_dict: dict[str, Any]) -> None:
    """torch's ``load_state_dict`` of the LambdaLR family, validated before anything is assigned."""
    rest = _check_lambda_state(self, state_dict)
    self.__dict__.update(rest)
    for i, s in enumerate(state_dict["lr_lambdas"]):
        if isinstance(s, dict):
            self.lr_lambdas[i].__dict__.update(s)


class LambdaLR(_Compiled, _torch.LambdaLR, rule="lambda"):
    """torch's ``LambdaLR``; compiled over transformers' factors (this module's factories)."""

    __slots__ = ()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """torch's ``load_state_dict``: checks the whole state, then assigns it."""
        _load_lambda_state(self, state_dict)


class MultiplicativeLR(_torch.MultiplicativeLR):
    """torch's ``MultiplicativeLR`` (its factors are Python callables: torch's own step)."""

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """torch's ``load_state_dict``: checks the whole state, then assigns it."""
        _load_lambda_state(self, state_dict)


class StepLR(_Compiled, _torch.StepLR, rule="step"):
    """torch's ``StepLR``: ``lr *= gamma`` every ``step_size`` epochs; compiled step."""

    __slots__ = ()


class MultiStepLR(_Compiled, _torch.MultiStepLR, rule="multistep"):
    """torch's ``MultiStepLR``: ``lr *= gamma`` at each milestone; compiled step."""

    __slots__ = ()


class ConstantLR(_Compiled, _torch.ConstantLR, rule="constant"):
    """torch's ``ConstantLR``: ``lr * factor`` until ``total_iters``; compiled step."""

    __slots__ = ()


class LinearLR(_Compiled, _torch.LinearLR, rule="linear"):
    """torch's ``LinearLR``: a linear factor from ``start_factor`` to ``end_factor``; compiled step."""

    __slots__ = ()


class ExponentialLR(_Compiled, _torch.ExponentialLR, rule="exponential"):
    """torch's ``ExponentialLR``: ``lr *= gamma`` every epoch; compiled step."""

    __slots__ = ()


class PolynomialLR(_Compiled, _torch.PolynomialLR, rule="polynomial"):
    """torch's ``PolynomialLR``: polynomial decay over ``total_iters``; compiled step."""

    __slots__ = ()


class CosineAnnealingLR(_Compiled, _torch.CosineAnnealingLR, rule="cosine"):
    """torch's ``CosineAnnealingLR`` (its recursive form, exactly); compiled step."""

    __slots__ = ()


class CosineAnnealingWarmRestarts(_Compiled, _torch.CosineAnnealingWarmRestarts, rule="warmrestarts"):
    """torch's ``CosineAnnealingWarmRestarts`` (SGDR); compiled step."""

    __slots__ = ()


class CyclicLR(
    _Compiled,
    _torch.CyclicLR,
    rule="cyclic",
    stands_in_for=("scale_fn", "_init_scale_fn", "_triangular_scale_fn", "_triangular2_scale_fn", "_exp_range_scale_fn"),
):
    """torch's ``CyclicLR`` (and its momentum cycle); compiled step for the built-in modes."""

    __slots__ = ()


class OneCycleLR(
    _Compiled, _torch.OneCycleLR, rule="onecycle", stands_in_for=("_anneal_func", "_annealing_cos", "_annealing_linear")
):
    """torch's ``OneCycleLR`` (two or three phases, cos or linear, momentum or beta1); compiled step."""

    __slots__ = ()


class SequentialLR(_torch.SequentialLR):
    """torch's ``SequentialLR``; between milestones, a compiled scheduler steps in Rust."""

    _fastcb_rule: ClassVar[str | None] = "sequential"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.step is not SequentialLR.step:
            cls._fastcb_rule = None

    def _fastcb_torch_step(self) -> None:
        """torch's ``step()``: what the compiled ``step`` calls at a milestone."""
        super().step()

    if not TYPE_CHECKING:
        #: torch's ``step()``, a method written in Rust: between milestones the current
        #: scheduler's compiled step; anything else ``_fastcb_torch_step``.
        step = _core.torch_step_method(_torch.SequentialLR)


_core.torch_register_class(SequentialLR)


class ChainedScheduler(_torch.ChainedScheduler):
    """torch's ``ChainedScheduler``: steps each scheduler (compiled ones in Rust)."""


class ReduceLROnPlateau(_torch.ReduceLROnPlateau):
    """torch's ``ReduceLROnPlateau`` (driven by a metric, once per epoch: torch's own step)."""


