"""`OptimWrapper`: one API for the hyper-parameters of any `torch.optim` optimizer.

`lr`, `mom`, `beta`, `wd` map onto each optimizer's own keys (`momentum` or `betas[0]`;
`betas[1]` or `alpha`; `weight_decay`), one value per layer group. With `true_wd` the
weight decay is decoupled and applied before the step; `bn_wd=False` spares norm and bias
parameters. Optimizers built by `create` hold two param groups per layer group (decayed,
then norm/bias); an optimizer wrapped directly has one layer group per param group.
"""

from __future__ import annotations

import inspect
import weakref
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from ._core import read_lr_mom, write_lr_mom
from ._utils import GetAttr, check_number, listify, split_no_wd_params, trainable_params
from .errors import StateError

__all__ = ["OptimWrapper"]

_RESERVED = ("params", "lr", "momentum", "alpha", "betas", "weight_decay")


def _num(v: Any) -> Any:
    """NumPy and Python numbers become floats; tensors (and anything else) stay as they are."""
    t = type(v)
    if t is float:
        return v
    if t is int or isinstance(v, (np.floating, np.integer)):
        return float(v)
    return v


def _plain(v: Any) -> Any:
    """A hyper-parameter read out of a group, as a float when it is a one-element tensor."""
    if isinstance(v, torch.Tensor) and v.numel() == 1:
        return float(v)  # read once (construction / load), never per step
    return v


def _assign(group: dict[str, Any], key: str, v: Any) -> None:
    """Set `group[key] = v`, filling tensor hyper-parameters in place (fused/capturable optimizers)."""
    cur = group.get(key)
    if isinstance(cur, torch.Tensor):
        if isinstance(v, torch.Tensor):
            cur.copy_(v)
        else:
            cur.fill_(v)
    elif isinstance(cur, (tuple, list)) and any(isinstance(c, torch.Tensor) for c in cur):
        for c, x in zip(cur, v):
            if isinstance(c, torch.Tensor):
                c.fill_(x)
        group[key] = type(cur)(c if isinstance(c, torch.Tensor) else x for c, x in zip(cur, v))
    else:
        group[key] = v


def _copy(values: list[Any] | None) -> list[Any] | None:
    """A copy of a host-copy list (None stays): `_sync` updates the wrapper's own lists in place."""
    return None if values is None else list(values)


def _has_tensor(v: object) -> bool:
    return isinstance(v, torch.Tensor) or (isinstance(v, (tuple, list)) and any(isinstance(c, torch.Tensor) for c in v))


def _assign_fast(group: dict[str, Any], key: str, v: Any) -> None:
    """`_assign`, with the common case (plain numbers in the group) first: this runs every batch."""
    cur: Any = group.get(key)
    t = type(cur)
    if t is float or (t is tuple and type(cur[0]) is float and type(cur[1]) is float):
        group[key] = v
    else:
        _assign(group, key, v)


def _check_hyper(v: Any, where: str) -> Any:
    """`v` as a float if it is a finite, non-negative number (or a one-element tensor); else `StateError`."""
    if isinstance(v, torch.Tensor):
        if v.numel() != 1 or v.is_complex():
            raise StateError(f"{where}: expected one number, got a tensor of shape {tuple(v.shape)}")
        check_number(where, v, minimum=0, like_float=True, error=StateError)
        return v
    return float(check_number(where, v, minimum=0, error=StateError, type_error=StateError))


def _lr_needs_value(opt_func: Callable[..., Any]) -> bool:
    """True when `opt_func` has an `lr` parameter without a default (asked once per `opt_func`:
    a signature costs tens of microseconds, and every fit may build an optimizer)."""
    try:
        return _LR_NEEDS_VALUE[opt_func]
    except (KeyError, TypeError):  # TypeError: not hashable or not weakly referenceable
        pass
    try:
        param = inspect.signature(opt_func).parameters.get("lr")
    except (TypeError, ValueError):
        needs = False
    else:
        needs = param is not None and param.default is inspect.Parameter.empty
    try:
        _LR_NEEDS_VALUE[opt_func] = needs
    except TypeError:
        pass
    return needs


_LR_NEEDS_VALUE: weakref.WeakKeyDictionary[object, bool] = weakref.WeakKeyDictionary()


class OptimWrapper(GetAttr):
    """Wrap `opt` so that `lr`, `mom`, `beta`, `wd` read and set per layer group, with `true_wd` and `bn_wd`.

    >>> import torch
    >>> from torch import nn
    >>> model = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 1))
    >>> groups = [nn.ModuleList([model[0]]), nn.ModuleList([model[1]])]
    >>> opt = OptimWrapper.create(torch.optim.Adam, 1e-3, groups, wd=0.01, true_wd=True)
    >>> opt.lr = [1e-4, 1e-3]          # one value per layer group (or one for all)
    >>> opt.lr, opt.mom                # the last group's, as in fastai; Adam's `mom` is betas[0]
    (0.001, 0.9)
    >>> tuple(group["lr"] for group in opt.param_groups)
    (0.0001, 0.001)
    >>> opt.mom = 0.95
    >>> first = opt.opt.param_groups[0]
    >>> first["betas"]
    (0.95, 0.999)
    """

    _default = "opt"  # unknown attributes are the opt's
    # the hyper-parameters per layer group, as set (`read_defaults`, the setters)
    _lr: list[Any]
    _mom: list[Any] | None
    _beta: list[Any] | None
    _wd: list[Any]
    _stats: dict[str, list[Any]]

    def __init__(self, opt: torch.optim.Optimizer, wd: Any = 0.0, true_wd: bool = False, bn_wd: bool = True, *,
                 paired: bool = False) -> None:
        if isinstance(opt, OptimWrapper):
            raise TypeError("opt: already an OptimWrapper; wrap its `.opt` instead")
        if not (hasattr(opt, "param_groups") and hasattr(opt, "step")):
            raise TypeError(f"opt: expected a torch.optim.Optimizer, got {type(opt).__name__}")
        if paired and len(opt.param_groups) % 2:
            raise ValueError("paired: needs an even number of param groups (decayed, norm/bias) per layer group")
        self.opt, self.true_wd, self.paired = opt, bool(true_wd), paired
        self._bn_wd = bool(bn_wd)
        self.opt_func: Callable[..., torch.optim.Optimizer] = type(opt)
        self.opt_keys = [k for k in opt.param_groups[0] if k != "params"]
        self._momentum_key = "momentum" in self.opt_keys  # else betas[0] (asked every batch by `mom =`)
        self._own_tensors()
        self.read_defaults()
        self.wd = wd

    @classmethod
    def create(cls, opt_func: Callable[..., torch.optim.Optimizer], lr: Any, layer_groups: Sequence[nn.Module],
               wd: Any = 0.0, true_wd: bool = False, bn_wd: bool = True) -> OptimWrapper:
        """Build `opt_func` over `layer_groups` and set `lr` per layer group.

        With `bn_wd=False` each layer group gets two param groups (decayed, then norm/bias, never
        decayed); with `bn_wd=True` both would always hold the same values, so they are one param
        group (the optimizer then does half the per-group work every step).
        """
        if not callable(opt_func):
            raise TypeError(f"opt_func: expected an optimizer class or factory, got {type(opt_func).__name__}")
        split = split_no_wd_params(layer_groups)
        if bn_wd:
            return cls._build(opt_func, [{"params": a + b} for a, b in zip(split[::2], split[1::2])], lr, wd,
                              true_wd, bn_wd, paired=False)
        return cls._build(opt_func, [{"params": p} for p in split], lr, wd, true_wd, bn_wd)

    @classmethod
    def _build(cls, opt_func: Callable[..., torch.optim.Optimizer], groups: list[dict[str, Any]], lr: Any, wd: Any,
               true_wd: bool, bn_wd: bool, paired: bool = True) -> OptimWrapper:
        if _lr_needs_value(opt_func):
            groups = [{**g, "lr": 0.0} for g in groups]
        res = cls(opt_func(groups), wd=wd, true_wd=true_wd, bn_wd=bn_wd, paired=paired)
        res.lr, res.opt_func = listify(lr, len(groups) // 2 if paired else len(groups)), opt_func
        return res

    def _copy_hypers_to(self, res: OptimWrapper) -> OptimWrapper:
        res.mom, res.beta = self.mom, self.beta
        for k, v in self._stats.items():
            if k in res._stats and isinstance(v[-1], float):
                res.set_stat(k, v[-1])
        return res

    def new(self, layer_groups: Sequence[nn.Module], split_no_wd: bool = True) -> OptimWrapper:
        """A new `OptimWrapper` over `layer_groups` with the same optimizer and hyper-parameters."""
        if split_no_wd:
            res = self.create(self.opt_func, self.lr, layer_groups, self.wd, self.true_wd, self.bn_wd)
        else:
            opt = self.opt_func([{"params": trainable_params(g)} for g in layer_groups])
            res = type(self)(opt, wd=self.wd, true_wd=self.true_wd, bn_wd=self.bn_wd)
            res.lr, res.opt_func = self.lr, self.opt_func
        return self._copy_hypers_to(res)

    def new_with_params(self, param_groups: Sequence[Any]) -> OptimWrapper:
        """A new `OptimWrapper` over `param_groups` (decayed, norm/bias pairs) with the same hyper-parameters."""
        groups = [{"params": list(p)} for p in param_groups]
        self._sync()
        same = len(groups) // 2 == len(self._lr)
        res = self._build(self.opt_func, groups, self._lr if same else self.lr,
                          self._wd if same else self.wd, self.true_wd, self.bn_wd)
        return self._copy_hypers_to(res)

    def __repr__(self) -> str:
        return f"OptimWrapper over {self.opt!r}.\nTrue weight decay: {self.true_wd}"

    # -- the optimizer's own methods --------------------------------------------------
    def step(self, *args: Any, **kwargs: Any) -> Any:
        """Apply decoupled weight decay (if `true_wd`), then step the optimizer."""
        d = self.__dict__  # as in `set_lr_mom`: no pass through `__getattr__`'s slot per attribute
        if d["true_wd"] and any(d["_wd"]):
            self._decay()
        if args or kwargs:
            return d["opt"].step(*args, **kwargs)
        return d["opt"].step()

    def _decay(self) -> None:
        main, norm = self._groups()
        with torch.no_grad():
            for i, wd in enumerate(self._wd):
                if not wd:
                    continue
                lr = main[i]["lr"]  # what the optimizer steps with (a device tensor on device schedules)
                params = [p for p in main[i]["params"] if p.grad is not None]
                if self.bn_wd and norm:
                    params += [p for p in norm[i]["params"] if p.grad is not None]
                if params:
                    torch._foreach_mul_(params, 1 - wd * lr)

    def zero_grad(self, *args: Any, **kwargs: Any) -> None:
        """Clear the gradients."""
        if args or kwargs:
            self.opt.zero_grad(*args, **kwargs)
        else:
            self.opt.zero_grad()


    def clear(self) -> None:
        """Reset the optimizer's state (moments, buffers), keeping its hyper-parameters."""
        sd = self.opt.state_dict()
        sd["state"] = {}
        self.opt.load_state_dict(sd)

    def state_dict(self) -> dict[str, Any]:
        """The optimizer's state dict plus this wrapper's hyper-parameters (key `'fastcb'`)."""
        sd = self.opt.state_dict()
        self._sync()
        sd["fastcb"] = {"lr": list(self._lr), "mom": _copy(self._mom), "beta": _copy(self._beta), "wd": list(self._wd),
                        "true_wd": self.true_wd, "bn_wd": self.bn_wd, "stats": dict(self._stats)}
        return sd

    def load_state_dict(self, sd: dict[str, Any]) -> None:
        """Restore a `state_dict()` (a plain torch optimizer state dict works too).

        The whole state is checked first (`check_state_dict`); a refused state raises `StateError`
        (a `ValueError`) and leaves the wrapper and its optimizer as they were.
        """
        sd, extra = self.check_state_dict(sd)
        tensors = [{k: v for k, v in g.items() if k != "params" and _has_tensor(v)} for g in self.opt.param_groups]
        self.opt.load_state_dict(sd)  # torch checks, then swaps state and param groups at once
        # hyper-parameter tensors keep their identity (fused/capturable steps, device schedules and
        # CUDA graphs hold them): the loaded values are copied into them
        for g, own in zip(self.opt.param_groups, tensors):
            for k, cur in own.items():
                if k in g:
                    kept = {k: cur}
                    _assign(kept, k, g[k])
                    g[k] = kept[k]
        self._own_tensors()
        if extra is None:
            wd = self._wd
            self.read_defaults()
            if self.true_wd:
                self._wd = wd
            return
        self.true_wd, self._bn_wd = extra["true_wd"], extra["bn_wd"]
        self._lr, self._mom, self._beta, self._wd = extra["lr"], extra["mom"], extra["beta"], extra["wd"]
        self._stats = extra["stats"]
        # the param groups hold what the wrapper says (a file could disagree with itself)
        if "lr" in self.opt_keys:
            self.set_val("lr", self._lr)
        if self._mom is not None:
            self.mom = list(self._mom)
        if self._beta is not None:
            self.beta = list(self._beta)
        self.wd = list(self._wd)

    def check_state_dict(self, sd: Any) -> tuple[dict[str, Any], Any]:
        """`(torch_state_dict, fastcb_part or None)` if `load_state_dict(sd)` would accept `sd`; else `StateError`
        naming the part that doesn't fit this wrapper (its optimizer type, groups and parameters)."""
        if not isinstance(sd, dict):
            raise StateError(f"sd: expected an optimizer state dict, got {type(sd).__name__}")
        sd = dict(sd)
        extra = sd.pop("fastcb", None)
        groups, state = sd.get("param_groups"), sd.get("state")
        if not isinstance(groups, (list, tuple)) or not isinstance(state, dict):
            raise StateError("sd: expected the keys 'state' (a dict) and 'param_groups' (a list)")
        own = self.opt.param_groups
        if len(groups) != len(own) or any(not isinstance(g, dict) or not isinstance(g.get("params"), (list, tuple))
                                           or len(g["params"]) != len(o["params"]) for g, o in zip(groups, own)):
            sizes = [len(g["params"]) if isinstance(g, dict) and isinstance(g.get("params"), (list, tuple)) else "?"
                     for g in groups]
            raise StateError(f"sd['param_groups']: param groups of sizes {sizes}, this optimizer's "
                             f"{[len(o['params']) for o in own]}")
        missing = [k for k in _RESERVED[1:] if k in self.opt_keys and any(k not in g for g in groups)]
        if missing:
            raise StateError(f"sd['param_groups']: no {missing} (a {type(self.opt).__name__} needs them)")
        params = {i: p for g, o in zip(groups, own) for i, p in zip(g["params"], o["params"])}
        for i, st in state.items():
            p = params.get(i)
            if p is None:
                raise StateError(f"sd['state']: state for parameter {i!r}, which this optimizer doesn't have")
            if not isinstance(st, dict):
                raise StateError(f"sd['state'][{i!r}]: expected a dict, got {type(st).__name__}")
            for k, v in st.items():
                if isinstance(v, torch.Tensor) and v.dim() > 0 and v.shape != p.shape:
                    raise StateError(f"sd['state'][{i!r}][{k!r}]: shape {tuple(v.shape)} for a parameter of "
                                     f"shape {tuple(p.shape)}")
        for g in groups:
            for k in ("lr", "weight_decay", "momentum", "alpha"):
                if k in g:
                    _check_hyper(g[k], f"sd['param_groups'][...][{k!r}]")
            if "betas" in g:
                if not isinstance(g["betas"], (tuple, list)) or len(g["betas"]) != 2:
                    raise StateError(f"sd['param_groups'][...]['betas']: expected a pair, got {g['betas']!r}")
                for b in g["betas"]:
                    _check_hyper(b, "sd['param_groups'][...]['betas']")
        return sd, None if extra is None else self._check_extra(extra, set(groups[0]) | set(self.opt_keys))

    def _check_extra(self, extra: Any, keys_in_groups: set[str]) -> dict[str, Any]:
        """The wrapper's part of a state dict, validated with the constructor's and setters' rules."""
        if not isinstance(extra, dict):
            raise StateError(f"sd['fastcb']: expected a dict, got {type(extra).__name__}")
        keys = {"lr", "mom", "beta", "wd", "true_wd", "bn_wd", "stats"}
        if set(extra) != keys:
            raise StateError(f"sd['fastcb']: expected the keys {sorted(keys)}; missing {sorted(keys - set(extra))}, "
                             f"unknown {sorted(set(extra) - keys, key=str)}")
        n = len(self._groups()[0])

        def values(name: str, optional: bool = False) -> list[Any] | None:
            v = extra[name]
            if v is None and optional:
                return None
            if isinstance(v, np.ndarray):
                v = v.tolist()
            if not isinstance(v, (list, tuple)) or len(v) != n:
                raise StateError(f"sd['fastcb'][{name!r}]: expected {n} values (one per layer group), got {v!r}")
            return [_check_hyper(x, f"sd['fastcb'][{name!r}]") for x in v]

        out: dict[str, Any] = {"lr": values("lr"), "mom": values("mom", True), "beta": values("beta", True), "wd": values("wd")}
        for name, has in (("mom", self._mom is not None), ("beta", self._beta is not None)):
            if (out[name] is None) == has:
                raise StateError(f"sd['fastcb'][{name!r}]: {extra[name]!r} doesn't fit a {type(self.opt).__name__}")
        for name in ("true_wd", "bn_wd"):
            if not isinstance(extra[name], (bool, np.bool_)):
                raise StateError(f"sd['fastcb'][{name!r}]: expected True or False, got {extra[name]!r}")
            out[name] = bool(extra[name])
        if not out["bn_wd"] and not self.paired:
            raise StateError("sd['fastcb']['bn_wd']: False, but this optimizer has no separate norm/bias groups")
        stats = extra["stats"]
        if not isinstance(stats, dict):
            raise StateError(f"sd['fastcb']['stats']: expected a dict, got {type(stats).__name__}")
        unknown = sorted(map(str, set(stats) - keys_in_groups))
        if unknown:
            raise StateError(f"sd['fastcb']['stats']: {unknown} are not hyper-parameters of this optimizer")
        for k, v in stats.items():
            if not isinstance(v, (list, tuple)) or len(v) != n:
                raise StateError(f"sd['fastcb']['stats'][{k!r}]: expected {n} values (one per layer group)")
        out["stats"] = {k: list(v) for k, v in stats.items()}
        return out

    def get_state(self) -> dict[str, Any]:
        """The wrapper's state minus the layer groups (fastai v1's export format)."""
        self._sync()
        return {"opt_state": self.opt.state_dict(), "lr": list(self._lr), "wd": list(self._wd), "beta": _copy(self._beta),
                "mom": _copy(self._mom), "opt_func": self.opt_func, "true_wd": self.true_wd, "bn_wd": self.bn_wd}

    @classmethod
    def load_with_state_and_layer_group(cls, state: dict[str, Any], layer_groups: Sequence[nn.Module]) -> OptimWrapper:
        """Rebuild from `get_state()` over `layer_groups`."""
        res = cls.create(state["opt_func"], state["lr"], layer_groups, wd=state["wd"],
                         true_wd=state["true_wd"], bn_wd=state["bn_wd"])
        res._mom, res._beta = state["mom"], state["beta"]
        res.opt.load_state_dict(state["opt_state"])
        return res

    @property
    def bn_wd(self) -> bool:
        """Whether norm and bias parameters get weight decay."""
        return self._bn_wd

    @bn_wd.setter
    def bn_wd(self, val: bool) -> None:
        if not val and not self.paired:
            raise ValueError("bn_wd: this optimizer has no separate norm/bias param groups; create it with bn_wd=False")
        self._bn_wd = bool(val)

    @property
    def n_params(self) -> int:
        """The number of parameter tensors."""
        return sum(len(pg["params"]) for pg in self.opt.param_groups)

    # -- hyper-parameters ---------------------------------------------------------------
    @property
    def lr(self) -> Any:
        """Learning rate of the last layer group: its param group's, as the optimizer steps with it."""
        v = self._last_group().get("lr")
        return v if type(v) is float else self._lr[-1]

    @lr.setter
    def lr(self, val: Any) -> None:
        if type(val) is float:  # the per-batch case of schedulers: one number for every group
            for pg in self.opt.param_groups:
                if type(pg.get("lr")) is float:  # `_assign_fast`'s common case, without its call
                    pg["lr"] = val
                else:
                    _assign(pg, "lr", val)
            self._lr = [val] * len(self._lr)
            return
        self._lr = self.set_val("lr", listify(val, self._lr))

    @property
    def mom(self) -> Any:
        """Momentum (`momentum` or `betas[0]`); None when the optimizer has neither."""
        if self._mom is None:
            return None
        g = self._last_group()
        v = g["momentum"] if "momentum" in g else g["betas"][0]
        return v if type(v) is float else self._mom[-1]

    @mom.setter
    def mom(self, val: Any) -> None:
        if val is None or self._mom is None:
            return
        if type(val) is float:  # the per-batch case of schedulers: plain floats in every group
            groups = self.opt.param_groups
            if self._momentum_key:
                for pg in groups:
                    if type(pg["momentum"]) is not float:
                        break
                else:
                    for pg in groups:
                        pg["momentum"] = val
                    self._mom = [val] * len(self._mom)
                    return
            else:
                for pg in groups:
                    betas = pg["betas"]
                    if type(betas) is not tuple or type(betas[0]) is not float:
                        break
                else:
                    for pg in groups:
                        pg["betas"] = (val, pg["betas"][1])
                    self._mom = [val] * len(self._mom)
                    return
        val = listify(val, self._mom)
        if "momentum" in self.opt_keys:
            self._mom = self.set_val("momentum", val)
        else:
            self._sync()  # the second-moment decays the groups hold now: `betas` is written as a pair
            self._mom = [v for v, _ in self.set_val("betas", (val, self._beta))]

    def lr_mom(self) -> tuple[Any, Any]:
        """`(lr, mom)` as the `lr` and `mom` properties read them, in one call (the Recorder asks
        every training batch): the compiled `read_lr_mom` when the last layer group holds plain
        floats, else the host copies' rules (`_lr_mom`)."""
        got = read_lr_mom(self.__dict__)
        return got if got is not None else self._lr_mom()

    def _lr_mom(self) -> tuple[Any, Any]:
        d = self.__dict__  # as in `set_lr_mom`: no pass through `__getattr__`'s slot per attribute
        pgs = d["opt"].param_groups
        g = pgs[-2] if d["paired"] else pgs[-1]
        lr = g.get("lr")
        if type(lr) is not float:
            lr = d["_lr"][-1]
        mom = d["_mom"]
        if mom is None:
            return lr, None
        m = g["momentum"] if d["_momentum_key"] else g["betas"][0]
        return lr, m if type(m) is float else mom[-1]

    def set_lr_mom(self, lr: Any, mom: Any) -> None:
        """`self.lr, self.mom = lr, mom` in one pass over the param groups (a one-cycle scheduler
        writes both every training batch). Floats into groups that all hold plain floats are
        written by the compiled `write_lr_mom`; anything else goes through the two setters, with
        their rules. The param groups then hold the values; the host copies `_lr`/`_mom` are read
        back from them (`_sync`) where needed."""
        if type(lr) is float and type(mom) is float and write_lr_mom(self.__dict__, lr, mom):
            return
        self.lr = lr  # the general case (or a group that isn't plain floats): every group again
        self.mom = mom

    @property
    def beta(self) -> Any:
        """Second moment decay (`betas[1]` or `alpha`); None when the optimizer has neither."""
        if self._beta is None:
            return None
        g = self._last_group()
        v = g["betas"][1] if "betas" in g else g["alpha"]
        return v if type(v) is float else self._beta[-1]

    @beta.setter
    def beta(self, val: Any) -> None:
        if val is None or self._beta is None:
            return
        val = listify(val, self._beta)
        if "betas" in self.opt_keys:
            self._sync()  # the momentums the groups hold now: `betas` is written as a pair
            self._beta = [b for _, b in self.set_val("betas", (self._mom, val))]
        else:
            self._beta = self.set_val("alpha", val)

    @property
    def wd(self) -> Any:
        """Weight decay of the last layer group (the param group's, unless it is decoupled: `true_wd`)."""
        v = None if self.true_wd else self._last_group().get("weight_decay")
        return v if type(v) is float else self._wd[-1]

    @wd.setter
    def wd(self, val: Any) -> None:
        val = [_num(v) for v in listify(val, self._wd)]
        has_key = "weight_decay" in self.opt_keys
        if self.true_wd:
            if has_key:
                self.set_val("weight_decay", [0.0] * len(val))
        elif has_key:
            self.set_val("weight_decay", val, bn_groups=self.bn_wd)
            if not self.bn_wd:
                self._set_norm("weight_decay", 0.0)
        elif any(val):
            raise ValueError(f"wd: {type(self.opt).__name__} has no weight_decay; use true_wd=True")
        self._wd = val

    def get_stat(self, name: str) -> Any:
        """Hyper-parameter `name` (`lr`, `mom`, `beta`, `wd` or any other optimizer key)."""
        if name in ("lr", "mom", "beta", "wd"):
            return getattr(self, name)
        return self._stats[name][-1]

    def set_stat(self, name: str, value: Any) -> None:
        """Set hyper-parameter `name` (one value or one per layer group)."""
        if name in ("lr", "mom", "beta", "wd"):
            setattr(self, name, value)
        elif name in self._stats:
            self._stats[name] = self.set_val(name, listify(value, self._stats[name]))
        else:
            raise KeyError(f"name: {type(self.opt).__name__} has no hyper-parameter {name!r}")

    # -- helpers ------------------------------------------------------------------------
    def _last_group(self) -> dict[str, Any]:
        """The param group of the last layer group (its decayed parameters)."""
        pgs = self.opt.param_groups
        return pgs[-2] if self.paired else pgs[-1]

    def _sync(self) -> None:
        """Take into `_lr`, `_mom`, `_beta` the plain-float values the param groups hold now (a
        scheduler or the user may write them directly). The host copy stays where a group holds a
        tensor: reading that would wait on the device, and whoever wrote it keeps the copy."""
        main = self._groups()[0]
        for i, g in enumerate(main):
            pairs = [("lr", g.get("lr"), self._lr)]
            if self._mom is not None:
                pairs.append(("mom", g["momentum"] if "momentum" in g else g["betas"][0], self._mom))
            if self._beta is not None:
                pairs.append(("beta", g["betas"][1] if "betas" in g else g["alpha"], self._beta))
            if not self.true_wd and "weight_decay" in g:
                pairs.append(("wd", g["weight_decay"], self._wd))
            for _, v, cache in pairs:
                if type(v) is float and cache[i] is not v:
                    cache[i] = v

    def _groups(self) -> tuple[list[dict[str, Any]], Sequence[dict[str, Any]]]:
        pgs = self.opt.param_groups
        return (pgs[::2], pgs[1::2]) if self.paired else (pgs, ())

    def _set_norm(self, key: str, v: Any) -> None:
        for pg in self._groups()[1]:
            _assign(pg, key, v)

    def _own_tensors(self) -> None:
        """Give each param group its own tensor hyper-parameters (torch shares the default's tensor)."""
        seen = set()
        for pg in self.opt.param_groups:
            for k, v in pg.items():
                if isinstance(v, torch.Tensor) and k != "params":
                    if id(v) in seen:
                        pg[k] = v.clone()
                    seen.add(id(pg[k]))

    def read_defaults(self) -> None:
        """Read the hyper-parameters from the optimizer's param groups."""
        keys = self.opt_keys
        n = len(self._groups()[0])
        self._lr = self.read_val("lr") if "lr" in keys else [0.0] * n
        self._mom = self.read_val("momentum") if "momentum" in keys else None
        self._beta = self.read_val("alpha") if "alpha" in keys else None
        if "betas" in keys:
            self._mom, self._beta = self.read_val("betas")
        self._wd = self.read_val("weight_decay") if "weight_decay" in keys else [0.0] * n
        self._stats = {k: self.read_val(k) for k in keys if k not in _RESERVED}

    def read_val(self, key: str) -> Any:
        """The values of `key` per layer group (a pair of lists for tuple values such as `betas`)."""
        val = [pg[key] for pg in self._groups()[0]]
        if val and isinstance(val[0], (tuple, list)):
            return [_plain(o[0]) for o in val], [_plain(o[1]) for o in val]
        return [_plain(v) for v in val]

    def set_val(self, key: str, val: Any, bn_groups: bool = True) -> list[Any]:
        """Set `val` (one per layer group; a pair of lists for tuples) at `key` in the param groups."""
        if isinstance(val, tuple):
            val = [(_num(a), _num(b)) for a, b in zip(*val)]
        else:
            val = [_num(v) for v in val]
        main, norm = self._groups()
        if len(val) != len(main):
            raise ValueError(f"val: expected {len(main)} values for {key!r} (one per layer group), got {len(val)}")
        both = bn_groups and norm
        for i, v in enumerate(val):
            _assign_fast(main[i], key, v)
            if both:
                _assign_fast(norm[i], key, v)
        return val
