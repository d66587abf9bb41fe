"""Drop-in replacements for ``torch.optim.lr_scheduler``, with a compiled ``step()``.

Change one import — ``from fastcb.lr_scheduler import OneCycleLR`` — and get the same
learning rates (and momenta) as torch's class, at a fraction of the per-step cost.

Each class here is a subclass of torch's class of the same name, so it has torch's
constructor (signature, defaults, errors), attributes, ``state_dict()`` and
``load_state_dict()``, mixes with torch's own schedulers in ``SequentialLR`` and
``ChainedScheduler``, and is accepted wherever an ``LRScheduler`` is (Lightning, say).
What changes is ``step()``: a regular step runs in Rust (``fastcb._core.TorchCore``),
which mirrors torch's formula operation for operation — torch's recursive ("chainable")
recurrences included — reads and writes the scheduler's own attributes, and sets the
param groups' learning rates directly. Whatever the compiled step does not cover runs
torch's own code path, unchanged: the constructor's initial step and the first regular
step (torch's ordering warnings), ``step(epoch)``, tensor learning rates (updated in
place with ``fill_``), Python lambdas and ``scale_fn``, and every error torch raises
(``OneCycleLR`` past ``total_steps``, say).

The compiled step copies the schedule's parameters when the scheduler is built and when
a state dict is loaded: after changing an attribute such as ``gamma`` or ``T_max`` by
hand, call ``recompile()``. Reassigning ``base_lrs`` and replacing the optimizer's param
groups are noticed without it.
"""

from __future__ import annotations

import types
import warnings
from typing import Any

import torch.optim.lr_scheduler as _torch
from torch.optim.lr_scheduler import LRScheduler

from . import _core

__all__ = [
    "LRScheduler",
    "LambdaLR",
    "MultiplicativeLR",
    "StepLR",
    "MultiStepLR",
    "ConstantLR",
    "LinearLR",
    "ExponentialLR",
    "PolynomialLR",
    "CosineAnnealingLR",
    "CosineAnnealingWarmRestarts",
    "CyclicLR",
    "OneCycleLR",
    "SequentialLR",
    "ChainedScheduler",
    "ReduceLROnPlateau",
]

_UNCOMPILABLE = (TypeError, ValueError, AttributeError, KeyError, OverflowError)


def _install_step(scheduler, core) -> None:
    """Make `core` the instance's ``step`` (called straight from Python, it steps in Rust or
    else runs the class's ``step``, bound here), or take it away when there is none."""
    if core is None:
        scheduler.__dict__.pop("step", None)
        return
    core.set_fallback(types.MethodType(type(scheduler).step, scheduler))
    scheduler.__dict__["step"] = core


#: What a SequentialLR keeps in its `__dict__` beside torch's state: never saved.
_SEQ_PRIVATE = ("_seq_core", "_seq_cores", "step")


class _Compiled:
    """Mixin: a compiled ``step()`` over torch's class, falling back to torch's own step."""

    __slots__ = ("_core",)

    def _rule(self) -> tuple | None:
        """The rule for ``TorchCore``: a tuple naming the formula and its parameters."""
        return None

    def _momentum_key(self) -> str | None:
        """Where the momentum goes (``"momentum"`` or ``"betas"``), if this class cycles it."""
        return None

    def _rule_groups(self) -> list | None:
        """The param groups whose values the rule copies, if any."""
        return None

    def recompile(self) -> None:
        """Rebuilds the compiled step from the scheduler's current attributes."""
        core = None
        try:
            rule = self._rule()
            if rule is not None:
                core = _core.TorchCore(
                    self.__dict__,
                    rule,
                    len(self.optimizer.param_groups),
                    self._momentum_key(),
                    self._rule_groups(),
                )
        except _UNCOMPILABLE:
            core = None
        self._core = core
        _install_step(self, core)

    def _initial_step(self) -> None:
        """Torch's initial step, then the compiled step is built."""
        self._core = None
        _install_step(self, None)
        super()._initial_step()
        self.recompile()

    def step(self, epoch=None) -> None:
        """Steps the schedule: in Rust when it can, else through torch's own ``step``."""
        core = self._core
        if epoch is None and core is not None and core.step():
            return
        super().step(epoch)
        if core is not None and core.stale:
            self.recompile()

    def state_dict(self) -> dict[str, Any]:
        """Torch's state dict (loadable with ``torch.load(..., weights_only=True)``)."""
        out = super().state_dict()
        out.pop("step", None)
        return out

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Torch's ``load_state_dict``, then the compiled step is rebuilt."""
        super().load_state_dict(state_dict)
        self.recompile()

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("step", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.recompile()


def _float(x) -> float:
    """A Python float of ``x``, refusing tensors and other objects (they take torch's path)."""
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        raise TypeError(f"not a plain number: {type(x).__name__}")
    return float(x)


def _int(x) -> int:
    if isinstance(x, bool) or not isinstance(x, int):
        raise TypeError(f"not an int: {type(x).__name__}")
    return x


class LambdaLR(_Compiled, _torch.LambdaLR):
    """torch's ``LambdaLR``; compiled when every lambda is a ``fastcb._core.HfFactor``
    (as this module's transformers factories build them)."""

    __slots__ = ()

    def _rule(self):
        if all(isinstance(f, _core.HfFactor) for f in self.lr_lambdas):
            return ("lambda", list(self.lr_lambdas))
        return None

    def state_dict(self) -> dict[str, Any]:
        """Torch's state dict; a compiled factor is saved as its spec (a tuple)."""
        out = {k: v for k, v in self.__dict__.items() if k not in ("optimizer", "lr_lambdas", "step")}
        out["lr_lambdas"] = [_saved_lambda(f) for f in self.lr_lambdas]
        return out

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Torch's ``load_state_dict``; a saved factor spec restores that factor."""
        saved = list(state_dict["lr_lambdas"])
        specs = {i: s for i, s in enumerate(saved) if isinstance(s, tuple)}
        super().load_state_dict(dict(state_dict, lr_lambdas=[None if i in specs else s for i, s in enumerate(saved)]))
        for i, s in specs.items():
            self.lr_lambdas[i] = _core.HfFactor(*s)
        self.recompile()


def _saved_lambda(f):
    """What torch saves of a lambda (``None`` for a function, else its ``__dict__``); a
    compiled factor saves its spec."""
    if isinstance(f, _core.HfFactor):
        return f.spec
    if isinstance(f, types.FunctionType):
        return None
    return f.__dict__.copy()


class MultiplicativeLR(_torch.MultiplicativeLR):
    """torch's ``MultiplicativeLR`` (its factors are Python callables: torch's own step)."""


class StepLR(_Compiled, _torch.StepLR):
    """torch's ``StepLR``: ``lr *= gamma`` every ``step_size`` epochs; compiled step."""

    __slots__ = ()

    def _rule(self):
        return ("step", _int(self.step_size), _float(self.gamma))


class MultiStepLR(_Compiled, _torch.MultiStepLR):
    """torch's ``MultiStepLR``: ``lr *= gamma`` at each milestone; compiled step."""

    __slots__ = ()

    def _rule(self):
        return ("multistep", [_int(m) for m in self.milestones.elements()], _float(self.gamma))


class ConstantLR(_Compiled, _torch.ConstantLR):
    """torch's ``ConstantLR``: ``lr * factor`` until ``total_iters``; compiled step."""

    __slots__ = ()

    def _rule(self):
        return ("constant", _float(self.factor), _int(self.total_iters))


class LinearLR(_Compiled, _torch.LinearLR):
    """torch's ``LinearLR``: a linear factor from ``start_factor`` to ``end_factor``; compiled step."""

    __slots__ = ()

    def _rule(self):
        return ("linear", _float(self.start_factor), _float(self.end_factor), _int(self.total_iters))


class ExponentialLR(_Compiled, _torch.ExponentialLR):
    """torch's ``ExponentialLR``: ``lr *= gamma`` every epoch; compiled step."""

    __slots__ = ()

    def _rule(self):
        return ("exponential", _float(self.gamma))


class PolynomialLR(_Compiled, _torch.PolynomialLR):
    """torch's ``PolynomialLR``: polynomial decay over ``total_iters``; compiled step."""

    __slots__ = ()

    def _rule(self):
        return ("polynomial", _int(self.total_iters), _float(self.power))


class CosineAnnealingLR(_Compiled, _torch.CosineAnnealingLR):
    """torch's ``CosineAnnealingLR`` (its recursive form, exactly); compiled step."""

    __slots__ = ()

    def _rule(self):
        return ("cosine", _int(self.T_max), _float(self.eta_min))


class CosineAnnealingWarmRestarts(_Compiled, _torch.CosineAnnealingWarmRestarts):
    """torch's ``CosineAnnealingWarmRestarts`` (SGDR); compiled step."""

    __slots__ = ()

    def _rule(self):
        return ("warmrestarts", _int(self.T_mult), _float(self.eta_min))


class CyclicLR(_Compiled, _torch.CyclicLR):
    """torch's ``CyclicLR`` (and its momentum cycle); compiled step for the built-in modes."""

    __slots__ = ()

    def _rule(self):
        if self._scale_fn_custom is not None:
            return None
        moms = None
        if self.cycle_momentum:
            moms = [(_float(b), _float(m)) for b, m in zip(self.base_momentums, self.max_momentums, strict=True)]
        return (
            "cyclic",
            _float(self.total_size),
            _float(self.step_ratio),
            self.mode,
            _float(self.gamma),
            [_float(m) for m in self.max_lrs],
            moms,
        )

    def _momentum_key(self):
        if not self.cycle_momentum:
            return None
        return "betas" if self.use_beta1 else "momentum"


class OneCycleLR(_Compiled, _torch.OneCycleLR):
    """torch's ``OneCycleLR`` (two or three phases, cos or linear, momentum or beta1);
    compiled step over the composable schedules (``fastcb._core.Schedule``)."""

    __slots__ = ()

    def _rule(self):
        shape = {"cos": "cos", "linear": "linear"}[self._anneal_func_type]
        phases = self._schedule_phases
        edges = [0.0] + [_float(p["end_step"]) for p in phases]
        groups = self.optimizer.param_groups
        lrs = [[(_float(g[p["start_lr"]]), _float(g[p["end_lr"]])) for p in phases] for g in groups]
        moms = None
        if self.cycle_momentum:
            moms = [[(_float(g[p["start_momentum"]]), _float(g[p["end_momentum"]])) for p in phases] for g in groups]
        return ("onecycle", _int(self.total_steps), edges, shape, lrs, moms)

    def _momentum_key(self):
        if not self.cycle_momentum:
            return None
        return "betas" if self.use_beta1 else "momentum"

    def _rule_groups(self):
        return list(self.optimizer.param_groups)


class SequentialLR(_torch.SequentialLR):
    """torch's ``SequentialLR``; between milestones, a compiled scheduler steps in Rust."""

    def __init__(
        self,
        optimizer,
        schedulers: list[LRScheduler],
        milestones: list[int],
        last_epoch: int = -1,
    ) -> None:
        super().__init__(optimizer, schedulers, milestones, last_epoch)
        self.recompile()

    def recompile(self) -> None:
        """Rebuilds the compiled step from the schedulers' compiled steps."""
        children = []
        self.__dict__["_seq_cores"] = [getattr(s, "_core", None) for s in self._schedulers]
        for s in self._schedulers:
            core = getattr(s, "_core", None) if isinstance(s, _Compiled) else None
            children.append((core, s.__dict__) if core is not None else None)
        try:
            milestones = [_int(m) for m in self._milestones]
            core = _core.SequentialCore(self.__dict__, milestones, children)
        except _UNCOMPILABLE:
            core = None
        self.__dict__["_seq_core"] = core
        _install_step(self, core)

    def step(self) -> None:
        """Steps the current scheduler (in Rust between milestones, when it is compiled)."""
        core = self._seq_core
        if core is not None and core.step():
            return
        super().step()
        # A scheduler's compiled step may have been rebuilt meanwhile.
        if [getattr(s, "_core", None) for s in self._schedulers] != self._seq_cores:
            self.recompile()

    def state_dict(self) -> dict[str, Any]:
        """Torch's state dict, without the compiled step."""
        out = super().state_dict()
        for key in _SEQ_PRIVATE:
            out.pop(key, None)
        return out

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Torch's ``load_state_dict``, then the compiled step is rebuilt."""
        super().load_state_dict(state_dict)
        self.recompile()

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        for key in _SEQ_PRIVATE:
            state.pop(key, None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.recompile()


class ChainedScheduler(_torch.ChainedScheduler):
    """torch's ``ChainedScheduler``: steps each scheduler (compiled ones in Rust)."""


class ReduceLROnPlateau(_torch.ReduceLROnPlateau):
    """torch's ``ReduceLROnPlateau`` (driven by a metric, once per epoch: torch's own step)."""


# --- transformers' schedule factories ------------------------------------------------
#
# The names, signatures and values of ``transformers.optimization``: each returns a
# ``LambdaLR`` whose factor is a compiled, picklable ``fastcb._core.HfFactor`` (no
# closures), so its ``step()`` runs in Rust.


def _factor_lr(optimizer, factor, last_epoch: int) -> LambdaLR:
    return LambdaLR(optimizer, factor, last_epoch=last_epoch)


def get_constant_schedule(optimizer, last_epoch: int = -1) -> LambdaLR:
    """A constant learning rate: the optimizer's own."""
    return _factor_lr(optimizer, _core.HfFactor("constant"), last_epoch)


def get_constant_schedule_with_warmup(optimizer, num_warmup_steps: int, last_epoch: int = -1) -> LambdaLR:
    """Linear warm-up from 0 over ``num_warmup_steps``, then the optimizer's learning rate."""
    return _factor_lr(optimizer, _core.HfFactor("constant_warmup", num_warmup_steps), last_epoch)


def get_linear_schedule_with_warmup(optimizer, num_warmup_steps, num_training_steps, last_epoch=-1) -> LambdaLR:
    """Linear warm-up from 0, then linear decay to 0 at ``num_training_steps``."""
    return _factor_lr(optimizer, _core.HfFactor("linear", num_warmup_steps, num_training_steps), last_epoch)


def get_cosine_schedule_with_warmup(
    optimizer, num_warmup_steps: int, num_training_steps: int, num_cycles: float = 0.5, last_epoch: int = -1
) -> LambdaLR:
    """Linear warm-up from 0, then cosine decay (``num_cycles`` waves; 0.5: down to 0)."""
    factor = _core.HfFactor("cosine", num_warmup_steps, num_training_steps, num_cycles)
    return _factor_lr(optimizer, factor, last_epoch)


def get_cosine_with_hard_restarts_schedule_with_warmup(
    optimizer, num_warmup_steps: int, num_training_steps: int, num_cycles: int = 1, last_epoch: int = -1
) -> LambdaLR:
    """Linear warm-up from 0, then ``num_cycles`` cosine decays to 0 with hard restarts."""
    factor = _core.HfFactor("hard_restarts", num_warmup_steps, num_training_steps, num_cycles)
    return _factor_lr(optimizer, factor, last_epoch)


def get_polynomial_decay_schedule_with_warmup(
    optimizer, num_warmup_steps, num_training_steps, lr_end=1e-7, power=1.0, last_epoch=-1
) -> LambdaLR:
    """Linear warm-up from 0, then polynomial decay (``power``) from the optimizer's
    default learning rate to ``lr_end`` at ``num_training_steps``."""
    lr_init = optimizer.defaults["lr"]
    if not (lr_init > lr_end):
        raise ValueError(f"lr_end ({lr_end}) must be smaller than initial lr ({lr_init})")
    factor = _core.HfFactor("polynomial", num_warmup_steps, num_training_steps, lr_end, power, lr_init)
    return _factor_lr(optimizer, factor, last_epoch)


def get_inverse_sqrt_schedule(
    optimizer, num_warmup_steps: int, timescale: int | None = None, last_epoch: int = -1
) -> LambdaLR:
    """Linear warm-up from 0, then decay as ``1 / sqrt((step + shift) / timescale)``;
    ``timescale`` defaults to ``num_warmup_steps or 10_000``."""
    if timescale is None:
        timescale = num_warmup_steps or 10_000
    return _factor_lr(optimizer, _core.HfFactor("inverse_sqrt", num_warmup_steps, timescale), last_epoch)


def get_wsd_schedule(
    optimizer,
    num_warmup_steps: int,
    num_decay_steps: int,
    num_training_steps: int | None = None,
    num_stable_steps: int | None = None,
    warmup_type: str = "linear",
    decay_type: str = "cosine",
    min_lr_ratio: float = 0,
    num_cycles: float = 0.5,
    last_epoch: int = -1,
) -> LambdaLR:
    """Warmup-stable-decay: warm-up (``warmup_type``) from ``min_lr_ratio``, a stable
    phase, then decay (``decay_type``) to ``min_lr_ratio`` times the learning rate."""
    if num_training_steps is None and num_stable_steps is None:
        raise ValueError("Either num_training_steps or num_stable_steps must be specified.")
    if num_training_steps is not None and num_stable_steps is not None:
        warnings.warn("Both num_training_steps and num_stable_steps are specified. num_stable_steps will be used.")
    if warmup_type not in ["linear", "cosine", "1-sqrt"]:
        raise ValueError(f"Unknown warmup type: {warmup_type}, expected 'linear', 'cosine' or '1-sqrt'")
    if decay_type not in ["linear", "cosine", "1-sqrt"]:
        raise ValueError(f"Unknown decay type: {decay_type}, expected 'linear', 'cosine' or '1-sqrt'")
    if num_stable_steps is None:
        num_stable_steps = num_training_steps - num_warmup_steps - num_decay_steps
    factor = _core.HfFactor(
        "wsd", num_warmup_steps, num_stable_steps, num_decay_steps, warmup_type, decay_type, min_lr_ratio, num_cycles
    )
    return _factor_lr(optimizer, factor, last_epoch)


__all__ += [
    "get_constant_schedule",
    "get_constant_schedule_with_warmup",
    "get_linear_schedule_with_warmup",
    "get_cosine_schedule_with_warmup",
    "get_cosine_with_hard_restarts_schedule_with_warmup",
    "get_polynomial_decay_schedule_with_warmup",
    "get_inverse_sqrt_schedule",
    "get_wsd_schedule",
]
