"""The schedulers' `on_device=True` option: a fit's hyper-parameter schedules stepped on the
device by a `DeviceSchedule`, with no host write of hyper-parameters per batch.

For the fit, the optimizer's scheduled values become 0-dim tensors on the parameters' device
(its learning rates, momenta), the `OptimWrapper` reads its learning rates from them (so its
decoupled weight decay follows the schedule), and the `Recorder`'s `lrs`/`moms` are filled
from the schedules at the end (the values are known without reading the device). At the end
of the fit the final values are read back once and set as plain numbers again.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from .. import anneal
from ..device_schedule import DeviceSchedule
from ..schedules import Schedule

if TYPE_CHECKING:
    from .recorder import Recorder

__all__ = ["stepper_schedules", "DeviceRun"]

def _shape(func: Callable[..., Any]) -> tuple[str, float | None]:
    shape = anneal.shape_of(func)
    if shape == "poly":
        return "poly", func.degree  # type: ignore[attr-defined]  # an AnnealPoly
    if shape is None:
        raise ValueError(f"on_device: the annealing function {func!r} has no device equivalent; use one of "
                         "fastcb's annealing_no/linear/exp/cos/poly")
    return shape, None


def stepper_schedules(phases: list[dict], n_groups: int) -> dict[str, list[Schedule]]:
    """Phases of `Stepper`s (hyper-parameter name -> Stepper, one dict per phase) as one
    `Schedule` over steps per hyper-parameter and layer group, with fastai v1's stepping:
    the value at step `k` of a phase of `n` steps is the phase's shape at `k / n`, a phase's
    last step giving its end (its successor's start is never used)."""
    names = set(phases[0])
    if any(set(p) != names for p in phases):
        raise ValueError("on_device: every phase must schedule the same hyper-parameters")
    lengths = [next(iter(p.values())).n_iter for p in phases]
    edges = np.concatenate([[0.0], np.cumsum(lengths, dtype=np.float64)]).tolist()
    out = {}
    for name in names:
        per_group = []
        for g in range(n_groups):
            parts = []
            for phase in phases:
                st = phase[name]
                shape, degree = _shape(st.func)
                start, end = (np.broadcast_to(np.asarray(v, dtype=np.float64), (n_groups,))[g] for v in (st.start, st.end))
                parts.append(Schedule.anneal(shape, float(start), float(end), degree).spec)
            per_group.append(Schedule.from_spec(("join", edges, parts, "earlier")))
        out[name] = per_group
    return out


class DeviceRun:
    """`scheds` (name -> one Schedule over steps per layer group) stepped on the device for
    `learn`'s fit, from step `start`."""

    def __init__(self, learn: Any, scheds: dict[str, list[Schedule]], total_steps: int, start: int = 0) -> None:
        ow = learn.opt
        if "wd" in scheds:
            raise ValueError("on_device: scheduling wd on the device is not supported (the OptimWrapper applies it)")
        opt = ow.opt
        main, norm = ow._groups()
        layer = {id(g): i for i, g in enumerate(main)}
        layer.update({id(g): i for i, g in enumerate(norm or [])})
        for g in opt.param_groups:
            p = g["params"][0]
            if p.is_cuda and g.get("foreach") and not (g.get("capturable") or g.get("fused")):
                raise ValueError("on_device: torch's foreach optimizers take tensor hyper-parameters only when "
                                 "capturable; create the optimizer with capturable=True or fused=True "
                                 "(opt_func=partial(torch.optim.AdamW, fused=True), say)")
            _tensorize(g, scheds, p)
        self.learn, self.ow, self.scheds, self.start = learn, ow, scheds, start
        self.ds = DeviceSchedule(opt, total_steps, unit="step",
                                 **{n: [s[layer[id(g)]] for g in opt.param_groups] for n, s in scheds.items()})  # type: ignore[arg-type]
        if start:
            self.ds.load_state_dict({"step": start})
        if "lr" in scheds:
            self._host_lr = ow._lr
            ow._lr = [g["lr"] for g in main]  # the decoupled weight decay reads these
        self.steps = start

    def jump(self, step: int) -> None:
        """Continue from `step` (a resumed fit)."""
        self.ds.load_state_dict({"step": step})
        self.start = self.steps = step

    def step(self) -> None:
        """One batch trained: the next step's values, on the device."""
        self.ds.step()
        self.steps += 1

    def finish(self, recorder: Recorder | None = None) -> None:
        """Read the final values back once, set them as numbers, and give the Recorder the
        values of the batches trained."""
        ow, main = self.ow, self.ow._groups()[0]
        n = self.steps - self.start
        if "lr" in self.scheds:
            ow._lr = self._host_lr
            ow.lr = [float(g["lr"]) for g in main]
        if "mom" in self.scheds:
            key = "momentum" if "momentum" in main[0] else "betas"
            ow.mom = [float(g[key] if key == "momentum" else g[key][0]) for g in main]
        if "beta" in self.scheds:
            ow.beta = [float(g["betas"][1] if "betas" in g else g["alpha"]) for g in main]
        if recorder is not None:
            steps = np.arange(self.start, self.start + n, dtype=np.float64)
            for name, attr in (("lr", "lrs"), ("mom", "moms")):
                if name in self.scheds and len(getattr(recorder, attr)) >= n:
                    vals = self.scheds[name][-1](steps).tolist()
                    rec = getattr(recorder, attr)
                    rec[len(rec) - n:] = vals


def _tensorize(group: dict[str, Any], scheds: dict[str, Any], param: torch.Tensor) -> None:
    """The group's scheduled hyper-parameters as 0-dim tensors on `param`'s device."""
    def t(v: Any) -> torch.Tensor:
        return v if isinstance(v, torch.Tensor) else torch.tensor(float(v), dtype=param.dtype, device=param.device)

    if "lr" in scheds:
        group["lr"] = t(group["lr"])
    if "momentum" in group and "mom" in scheds:
        group["momentum"] = t(group["momentum"])
    if "betas" in group and ("mom" in scheds or "beta" in scheds):
        group["betas"] = tuple(t(b) for b in group["betas"])  # torch wants both betas of one kind
    if "alpha" in group and "beta" in scheds:
        group["alpha"] = t(group["alpha"])
