"""Schedules on the device: a `Schedule` as torch operations, and `DeviceSchedule`, which
writes an optimizer's hyper-parameter tensors in place from a step counter on the device.

Nothing here reads a value back to the host or branches on one, so a training step that
updates its learning rate this way can be compiled whole (`torch.compile(fullgraph=True)`:
one graph, reused at every step) or captured once in a CUDA graph and replayed.

The torch formulas are the compiled core's, operation for operation (its `cos(π·x)` kernel
included): in float64 on the CPU they give the NumPy evaluation's bits.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, cast

import numpy as np
import torch

from ._core import Schedule
from ._utils import check_number

__all__ = ["evaluate", "torch_schedule", "DeviceSchedule", "to_device_schedule"]

# fastcb's cos(π·x) kernel (rust/core/fastmath.rs): series on [0, 1/4] in b², and c·series in c².
_COS = (1.0, -4.934802200544679, 4.0587121264167685, -1.3352627688545895, 0.2353306303588932,
        -0.02580689139001406, 0.0019295743094039231, -0.0001046381049248457, 4.303069587032947e-06)
_SIN = (math.pi, -5.16771278004997, 2.5501640398773455, -0.5992645293207921, 0.08214588661112823,
        -0.0073704309457143504, 0.00046630280576761255, -2.1915353447830217e-05, 7.952054001475513e-07)
_HUGE = 2.0**51

TensorFn = Callable[[torch.Tensor], torch.Tensor]


def _horner(coefs: Sequence[float], z: torch.Tensor) -> torch.Tensor:
    acc = z * coefs[-1] + coefs[-2]
    for c in reversed(coefs[:-2]):
        acc = acc * z + c
    return acc


def cos_pi(x: torch.Tensor) -> torch.Tensor:
    """`cos(π·x)` as the compiled core computes it, in torch operations without branches."""
    k = torch.round(x * 0.5)  # half to even, as the core's 1.5·2^52 trick
    r = torch.where(x.abs() < _HUGE, (x - 2.0 * k).abs(), torch.zeros_like(x))
    flip = r > 0.5
    b = torch.where(flip, 1.0 - r, r)
    c = 0.5 - b
    v = torch.where(b <= 0.25, _horner(_COS, b * b), c * _horner(_SIN, c * c))
    return torch.where(flip, -v, v)


def _anneal(shape: str, degree: float | None, start: float, end: float) -> TensorFn:
    if shape == "no":
        return lambda p: torch.full_like(p, start)
    if shape == "linear":
        d = end - start
        return lambda p: p * d + start
    if shape == "exp":
        ratio = end / start
        return lambda p: torch.pow(ratio, p) * start
    if shape == "cos":
        half = (start - end) / 2.0
        return lambda p: half * (cos_pi(p) + 1.0) + end
    if shape == "poly":
        if degree is None:
            raise ValueError("spec: annealing 'poly' needs a degree")
        d, power = start - end, degree
        return lambda p: torch.pow(1.0 - p, power) * d + end
    raise ValueError(f"spec: unknown shape {shape!r}")


def _join(edges: Sequence[float], parts: Sequence[TensorFn], earlier: bool) -> TensorFn:
    spans = [(edges[i], edges[i + 1] - edges[i]) for i in range(len(parts))]

    def joined(p: torch.Tensor) -> torch.Tensor:
        a, w = spans[0]
        out = parts[0]((p - a) / w)
        for i in range(1, len(parts)):
            a, w = spans[i]
            at = p > a if earlier else p >= a
            out = torch.where(at, parts[i]((p - a) / w), out)
        return out

    return joined


def _restarts(period: float, mult: float, inner: TensorFn) -> TensorFn:
    if mult == 1.0:
        def cycle(p: torch.Tensor) -> torch.Tensor:
            return torch.where(p < 0, p / period, torch.fmod(p, period) / period)
    else:
        log_mult, m1 = math.log(mult), mult - 1.0

        def start(n: torch.Tensor) -> torch.Tensor:
            return period * (torch.pow(mult, n) - 1.0) / m1

        def cycle(p: torch.Tensor) -> torch.Tensor:
            q = p.clamp(min=0)
            n = torch.floor(torch.log(q / period * m1 + 1.0) / log_mult)
            # the logarithm's rounding at cycle boundaries, as the core guards it
            n = torch.where(start(n) > q, n - 1.0, torch.where(start(n + 1.0) <= q, n + 1.0, n))
            return torch.where(p < 0, p / period, (q - start(n)) / (torch.pow(mult, n) * period))
    return lambda p: inner(cycle(p))


def _from_spec(spec: tuple[Any, ...]) -> TensorFn:
    kind = spec[0]
    if kind == "anneal":
        _, shape, degree, start, end = spec
        return _anneal(shape, degree, start, end)
    if kind == "power":
        _, start, end, power = spec
        d = end - start
        return lambda p: torch.pow(p, power) * d + start
    if kind == "join":
        parts = [_from_spec(s) for s in spec[2]]
        return _join(list(spec[1]), parts, len(spec) > 3 and spec[3] == "earlier")
    if kind == "restarts":
        _, period, mult, inner = spec
        return _restarts(period, mult, _from_spec(inner))
    raise ValueError(f"spec: unknown schedule kind {kind!r}")


def torch_schedule(sched: Schedule) -> TensorFn:
    """`sched` as a plain-Python function of a tensor of positions, built once: what
    `torch.compile` traces (it can't look inside the compiled core's `Schedule.__call__`)."""
    if not isinstance(sched, Schedule):
        raise TypeError(f"sched: expected a fastcb Schedule, got {type(sched).__name__}")
    fn = _from_spec(sched.spec)

    def schedule(pos: torch.Tensor) -> torch.Tensor:
        return fn(pos if pos.is_floating_point() else pos.to(torch.float64))

    schedule.__doc__ = f"{sched!r} on torch tensors"
    return schedule


@torch._dynamo.assume_constant_result
def _spec(sched: Schedule) -> tuple[Any, ...]:
    return sched.spec  # read once while tracing: a Schedule is immutable


def _traced_call(sched: Schedule, pos: torch.Tensor) -> torch.Tensor:
    return _from_spec(_spec(sched))(pos if pos.is_floating_point() else pos.to(torch.float64))


# `sched(tensor)` inside torch.compile: Dynamo can't look inside the compiled core's
# `Schedule.__call__`, so it traces this plain-Python equivalent instead.
torch._dynamo.substitute_in_graph(Schedule.__call__, skip_signature_check=True)(_traced_call)  # type: ignore[arg-type]


def evaluate(sched: Schedule, pos: torch.Tensor) -> torch.Tensor:
    """`sched` at a tensor of positions: a tensor of the same shape on the same device, in
    its dtype (float64 for integer positions). Values are not checked (that would read them
    back to the host): `DeviceSchedule` checks a whole run once, when it is built."""
    return torch_schedule(sched)(pos)


# ---------------------------------------------------------------------------------------
# DeviceSchedule

_KEYS = {"lr": ("lr",), "mom": ("momentum", ("betas", 0)), "beta": (("betas", 1), "alpha"),
         "wd": ("weight_decay",)}


def _target(group: dict, name: str, g: int) -> torch.Tensor:
    """The tensor of param group `g` that hyper-parameter `name` lives in."""
    for key in _KEYS.get(name, (name,)):
        key, idx = key if isinstance(key, tuple) else (key, None)
        if key in group:
            value = group[key] if idx is None else group[key][idx]
            where = f"opt.param_groups[{g}][{key!r}]" + ("" if idx is None else f"[{idx}]")
            if not isinstance(value, torch.Tensor):
                raise TypeError(f"{name}: {where} is a {type(value).__name__}; scheduling on the device writes "
                                f"it in place, so build the optimizer with a tensor (e.g. {key}=torch.tensor(...))")
            if value.dim() != 0:
                raise ValueError(f"{name}: {where}: expected a 0-dim tensor, got shape {tuple(value.shape)}")
            return value
    raise ValueError(f"{name}: opt.param_groups[{g}] has none of the keys {[k if isinstance(k, str) else k[0] for k in _KEYS.get(name, (name,))]}")


def _per_group(name: str, sched: Any, n_groups: int) -> list[Schedule]:
    scheds = list(sched) if isinstance(sched, (list, tuple)) else [sched] * n_groups
    if len(scheds) != n_groups:
        raise ValueError(f"{name}: expected one schedule per param group ({n_groups}), got {len(scheds)}")
    for s in scheds:
        if not isinstance(s, Schedule):
            raise TypeError(f"{name}: expected a fastcb Schedule (or one per param group), got {type(s).__name__}")
    return scheds


class DeviceSchedule:
    """Schedules `opt`'s hyper-parameters for `total_steps` steps, on the device.

    `lr`, `mom`, `wd` (and any other param-group key given by keyword) are a `Schedule`, or
    one per param group (a list, or the per-group schedules `fastcb.schedules` builds from
    arrays). Positions run 0 → 1 over `total_steps` (`unit="fraction"`, fastai's `pct`) or
    count steps (`unit="step"`, for `sgdr`). `mom` is `momentum` or `betas[0]`, `beta`
    `betas[1]` or `alpha`.

    The hyper-parameters must be tensors (`torch.optim.SGD(params, lr=torch.tensor(0.1))`):
    `step()` advances a step counter kept on the parameters' device and writes every group's
    tensors in place (`copy_`) from the schedules there, with no host work that depends on
    the step, so it can run inside `torch.compile(fullgraph=True)` or a CUDA graph. Like
    torch's schedulers, building it sets the values of step 0, and `step()` follows
    `opt.step()`.

    `mode="table"` (the default) evaluates the whole run once, when it is built, in the
    compiled core (the NumPy values, bit for bit), keeps it on the device (`total_steps + 1`
    float64 values per distinct schedule) and looks the step up: a step is four operations,
    whatever the schedules; past `total_steps` the last values hold. `mode="formula"`
    computes the values from the counter with torch operations (`torch_schedule`) at every
    step: no table, more operations, and schedules that go on past `total_steps`.
    """

    def __init__(self, opt: torch.optim.Optimizer, total_steps: int, lr: Any = None, mom: Any = None, wd: Any = None,
                 unit: str = "fraction", mode: str = "table", **hypers: Any) -> None:
        if not isinstance(opt, torch.optim.Optimizer):
            raise TypeError(f"opt: expected a torch optimizer, got {type(opt).__name__}")
        check_number("total_steps", total_steps, integer=True, positive=True)
        if unit not in ("fraction", "step"):
            raise ValueError(f"unit: expected 'fraction' or 'step', got {unit!r}")
        if mode not in ("table", "formula"):
            raise ValueError(f"mode: expected 'table' or 'formula', got {mode!r}")
        hypers = {k: v for k, v in dict(lr=lr, mom=mom, wd=wd, **hypers).items() if v is not None}
        if not hypers:
            raise ValueError("lr: give at least one schedule (lr, mom, wd or a param-group key)")
        self.opt, self.total_steps, self.unit, self.mode = opt, total_steps, unit, mode
        groups = opt.param_groups
        self.schedules = {name: _per_group(name, s, len(groups)) for name, s in hypers.items()}
        positions = np.arange(total_steps + 1, dtype=np.float64)
        if unit == "fraction":
            positions /= total_steps
        values: dict[int, np.ndarray] = {}
        for scheds in self.schedules.values():
            for s in scheds:
                if id(s) not in values:
                    values[id(s)] = s(positions)  # a ValueError naming `pos` if the run leaves the finite floats
        device = next((p.device for g in groups for p in g["params"]), torch.device("cpu"))
        # float64 values where the device has them: float32 lrs then equal the eager
        # Schedule's to rounding, even where a schedule ends many decades below its peak.
        self._dtype = torch.float32 if device.type == "mps" else torch.float64
        self.step_count = torch.zeros((), dtype=torch.int64, device=device)
        writes: list[tuple[torch.Tensor, Schedule]] = []
        owners: dict[int, tuple[int, Schedule]] = {}
        for name, scheds in self.schedules.items():
            for i, (g, sched) in enumerate(zip(groups, scheds)):
                target = _target(g, name, i)
                if id(target) in owners:
                    j, other = owners[id(target)]
                    if other != sched:
                        raise ValueError(f"{name}: param groups {j} and {i} share one tensor, so they can't follow "
                                         f"different schedules; give each group its own (e.g. lr=torch.tensor(...) per group)")
                    continue
                owners[id(target)] = (i, sched)
                writes.append((target, sched))
        self._targets = [t for t, _ in writes]
        if mode == "table":
            cols: list[Any] = []
            index: dict[int, int] = {}
            for _, sched in writes:
                if id(sched) not in index:
                    index[id(sched)] = len(cols)
                    cols.append(values[id(sched)])
            # in the targets' dtype when they share one: rounding the table once is what copying
            # float64 values into them does, and equal dtypes keep `_foreach_copy_` on its fast path
            dtypes = {t.dtype for t, _ in writes}
            dtype = dtypes.pop() if len(dtypes) == 1 else self._dtype
            table = torch.from_numpy(np.stack(cols, axis=1)).to(device=device, dtype=dtype)
            # one column per target (a view when targets share a schedule is not needed: columns are few)
            self._table = table[:, [index[id(s)] for _, s in writes]].contiguous()
        else:
            fns = {id(s): torch_schedule(s) for _, s in writes}
            self._fns = [fns[id(s)] for _, s in writes]
        self._scale = 1.0 / total_steps if unit == "fraction" else 1.0
        self._write()

    def _write(self) -> None:
        if self.mode == "table":
            row = self._table.index_select(0, self.step_count.clamp(max=self.total_steps).view(1))[0]
            torch._foreach_copy_(self._targets, list(row.unbind()))
            return
        pos = self.step_count.to(self._dtype) * self._scale
        values: dict[int, torch.Tensor] = {}
        for target, fn in zip(self._targets, self._fns):
            v = values.get(id(fn))
            if v is None:
                v = values[id(fn)] = fn(pos)
            target.copy_(v)

    def step(self) -> None:
        """Advance one step and write the schedules' values there into the optimizer."""
        self.step_count.add_(1)
        self._write()

    def state_dict(self) -> dict:
        """The step reached (read back to the host: call it between steps, not inside one)."""
        return {"step": int(self.step_count.item()), "total_steps": self.total_steps, "unit": self.unit}

    def load_state_dict(self, state: dict) -> None:
        """Resume at `state["step"]`, writing that step's values into the optimizer."""
        step = state.get("step") if isinstance(state, dict) else None
        if isinstance(step, bool) or not isinstance(step, int) or step < 0:
            raise ValueError(f"state: expected a dict with a non-negative int 'step', got {state!r}")
        self.step_count.fill_(step)
        self._write()

    def __repr__(self) -> str:
        return (f"DeviceSchedule(total_steps={self.total_steps}, unit={self.unit!r}, mode={self.mode!r}, "
                f"hypers={sorted(self.schedules)})")


# ---------------------------------------------------------------------------------------
# The drop-in schedulers' equivalents

def _steps(edges: Sequence[float], parts: list[tuple[Any, ...]], earlier: bool = False) -> Schedule:
    """Anneal `parts` (specs) joined at `edges` in steps."""
    spec = ("join", [float(e) for e in edges], parts) + (("earlier",) if earlier else ())
    try:
        return Schedule.from_spec(spec)
    except ValueError as e:
        raise ValueError(f"scheduler: its phases have no Schedule equivalent ({e})") from None


def _a(shape: str, start: float, end: float) -> tuple[Any, ...]:
    return ("anneal", shape, None, float(start), float(end))


def _hf_schedule(spec: tuple[Any, ...], b: float) -> Schedule:
    """The Schedule over steps of `b * factor(step)` for a transformers factor spec."""
    kind = spec[0]
    if kind == "constant":
        return _steps([0, 1], [_a("no", b, b)])
    if kind == "constant_warmup" and spec[1] > 0:
        w = spec[1]
        return _steps([0, w, w + 1], [_a("linear", 0, b), _a("no", b, b)])
    if kind == "linear" and spec[2] > spec[1]:
        w, total = spec[1], spec[2]
        parts, edges = [_a("linear", b, 0), _a("no", 0, 0)], [w, total, total + 1]
        return _steps(([0] + edges) if w > 0 else edges, ([_a("linear", 0, b)] if w > 0 else []) + parts)
    if kind == "cosine" and spec[3] == 0.5 and spec[2] > spec[1]:
        w, total = spec[1], spec[2]
        parts = ([_a("linear", 0, b)] if w > 0 else []) + [_a("cos", b, 0)]
        return _steps(([0, w] if w > 0 else [0]) + [total], parts)
    if kind == "wsd" and spec[4] in ("linear", "cosine") and spec[5] in ("linear", "cosine") and spec[7] == 0.5:
        _, w, s, d, up, down, m, _ = spec
        shapes = {"linear": "linear", "cosine": "cos"}
        edges, parts = [0], []
        if w > 0:
            edges.append(w)
            parts.append(_a(shapes[up], b * m, b))
        if s > 0:
            edges.append(w + s)
            parts.append(_a("no", b, b))
        if d > 0:
            edges.append(w + s + d)
            parts.append(_a(shapes[down], b, b * m))
        edges.append(edges[-1] + 1)
        parts.append(_a("no", b * m, b * m))
        return _steps(edges, parts)
    raise ValueError(f"scheduler: transformers' {spec!r} has no Schedule equivalent on the device")


def to_device_schedule(scheduler: Any) -> DeviceSchedule:
    """A `DeviceSchedule` giving the same learning rates (and momenta) as `scheduler`, a torch
    or fastcb drop-in `OneCycleLR`, `CosineAnnealingLR`, `LinearLR`, or a transformers
    factory's `LambdaLR` (constant, linear, cosine, WSD; `fastcb.lr_scheduler.get_*`), from
    the step it has reached. Its optimizer's learning rates must be tensors (the momenta
    that torch's `OneCycleLR` sets as numbers become tensors of the same values). Past the
    end of its run it extrapolates where torch's `OneCycleLR` raises."""
    from torch.optim import lr_scheduler as tl

    from .lr_scheduler._transformers import factor_spec

    opt = getattr(scheduler, "optimizer", None)
    if not isinstance(opt, torch.optim.Optimizer):
        raise TypeError(f"scheduler: expected a torch learning-rate scheduler, got {type(scheduler).__name__}")
    groups, base = opt.param_groups, [float(b) for b in getattr(scheduler, "base_lrs", [])]
    hypers, mode = {}, "table"
    if isinstance(scheduler, tl.OneCycleLR):
        shape = {"cos": "cos", "linear": "linear"}[scheduler._anneal_func_type]
        phases = scheduler._schedule_phases
        edges = [0.0] + [float(p["end_step"]) for p in phases]
        hypers["lr"] = [_steps(edges, [_a(shape, g[p["start_lr"]], g[p["end_lr"]]) for p in phases], earlier=True)
                        for g in groups]
        if scheduler.cycle_momentum:
            for g in groups:  # torch's OneCycleLR sets the momenta as numbers: hold them as tensors
                like = g["lr"] if isinstance(g["lr"], torch.Tensor) else torch.tensor(0.0)
                if "momentum" in g and not isinstance(g["momentum"], torch.Tensor):
                    g["momentum"] = torch.tensor(float(g["momentum"]), dtype=like.dtype, device=like.device)
                if "betas" in g and not isinstance(g["betas"][0], torch.Tensor):
                    g["betas"] = tuple(torch.tensor(float(b), dtype=like.dtype, device=like.device) for b in g["betas"])
            hypers["mom"] = [_steps(edges, [_a(shape, g[p["start_momentum"]], g[p["end_momentum"]]) for p in phases],
                                    earlier=True) for g in groups]
        total = int(scheduler.total_steps)
    elif isinstance(scheduler, tl.CosineAnnealingLR):
        hypers["lr"] = [_steps([0, scheduler.T_max], [_a("cos", b, scheduler.eta_min)]) for b in base]
        total, mode = int(scheduler.T_max), "formula"  # torch's cosine goes on past T_max
    elif isinstance(scheduler, tl.LinearLR):
        t, sf, ef = scheduler.total_iters, scheduler.start_factor, scheduler.end_factor
        hypers["lr"] = [_steps([0, t, t + 1], [_a("linear", b * sf, b * ef), _a("no", b * ef, b * ef)]) for b in base]
        total = int(t)
    elif isinstance(scheduler, tl.LambdaLR) and all(factor_spec(f) is not None for f in scheduler.lr_lambdas):
        # the condition above checked that every factor has a spec
        hypers["lr"] = [_hf_schedule(cast("tuple[Any, ...]", factor_spec(f)), b)
                        for f, b in zip(scheduler.lr_lambdas, base)]
        spec = factor_spec(scheduler.lr_lambdas[0])
        assert spec is not None  # the condition above checked every factor
        mode = "formula" if spec[0] == "cosine" else "table"  # transformers' cosine goes on past the end
        total = int({"linear": lambda: spec[2], "cosine": lambda: spec[2],
                     "wsd": lambda: spec[1] + spec[2] + spec[3], "constant_warmup": lambda: spec[1]}.get(
                        spec[0], lambda: 1)())
    else:
        raise ValueError(f"scheduler: {type(scheduler).__name__} has no Schedule equivalent on the device "
                         "(OneCycleLR, CosineAnnealingLR, LinearLR and transformers' factories do)")
    ds = DeviceSchedule(opt, max(total, 1), unit="step", mode=mode, **hypers)
    ds.load_state_dict({"step": int(scheduler.last_epoch)})
    return ds
