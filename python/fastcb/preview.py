"""Evaluate and plot any schedule without training: values as an array, a figure, a PNG.

A *schedule* here is any of:

- a `Stepper` (its remaining values, from the current one; the stepper is not moved);
- a composable schedule of `fastcb.schedules` (sampled at `i / n_steps`; SGDR at step `i`);
- an annealing function with `start=` and `end=` (sampled at `pct = i / (n_steps - 1)`);
- a scheduler class (torch's or `fastcb.lr_scheduler`'s) or a factory taking the optimizer
  first (transformers-style), with its arguments: it is built on a throw-away optimizer and
  stepped `n_steps - 1` times, so value `i` is the learning rate of training step `i`.

Figures are `matplotlib.figure.Figure`s made without pyplot, so nothing needs a display;
files are written in the format their extension names (.png, .svg or .pdf), any other is refused.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import torch

from ._utils import check_number
from .anneal import Stepper, annealing_cos
from .one_cycle import LearningRates, check_one_cycle, one_cycle_phases
from .plotting import figure, figure_format

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "schedule_values",
    "schedule_trace",
    "one_cycle_trace",
    "plot_trace",
    "plot_schedule",
    "save_schedule",
    "save_trace",
    "plot_annealings",
    "make_optimizer",
]

_LRScheduler = torch.optim.lr_scheduler.LRScheduler
_Plateau = torch.optim.lr_scheduler.ReduceLROnPlateau
_FloatArray = npt.NDArray[np.float64]


def make_optimizer(
    lr: float | torch.Tensor | Sequence[float | torch.Tensor] | npt.NDArray[np.float64] = 0.1, n_groups: int = 1,
    kind: str | Callable[[list[dict[str, Any]]], torch.optim.Optimizer] = "sgd",
) -> torch.optim.Optimizer:
    """A throw-away optimizer with `n_groups` param groups: `kind` is 'sgd' (momentum 0.9),
    'adam', 'adamw', or a function of the param groups; `lr` is a number, a tensor or one per group."""
    lrs = list(lr) if isinstance(lr, (list, tuple, np.ndarray)) else [lr] * n_groups
    if len(lrs) != n_groups:
        raise ValueError(f"lr: expected one learning rate per group ({n_groups}), got {len(lrs)}")
    groups = [{"params": [torch.zeros(1, requires_grad=True)], "lr": v} for v in lrs]
    if callable(kind):
        return kind(groups)
    makers = {
        "sgd": lambda g: torch.optim.SGD(g, lr=0.1, momentum=0.9),
        "adam": lambda g: torch.optim.Adam(g, lr=0.1),
        "adamw": lambda g: torch.optim.AdamW(g, lr=0.1),
    }
    if kind not in makers:
        raise ValueError(f"kind: expected one of {sorted(makers)} or a callable, got {kind!r}")
    return makers[kind](groups)


def _is_scheduler_maker(obj: object) -> bool:
    """A scheduler class, or a function whose first parameter is the optimizer."""
    if isinstance(obj, type):
        return issubclass(obj, (_LRScheduler, _Plateau))
    if not callable(obj):
        return False
    try:
        params = list(inspect.signature(obj).parameters)
    except (TypeError, ValueError):
        return False
    return bool(params) and params[0] in ("optimizer", "opt")


def _momenta(opt: torch.optim.Optimizer) -> list[float] | None:
    """Each group's momentum (`momentum` or `betas[0]`), or None if the optimizer has neither."""
    out = []
    for g in opt.param_groups:
        if "betas" in g:
            out.append(float(g["betas"][0]))
        elif "momentum" in g:
            out.append(float(g["momentum"]))
        else:
            return None
    return out


def _scheduler_trace(maker: Callable[..., Any], n_steps: int, args: tuple[Any, ...],
                     kwargs: dict[str, Any]) -> dict[str, _FloatArray]:
    opt_args = {k: kwargs.pop(k) for k in ("lr", "n_groups", "optimizer") if k in kwargs}
    metric = kwargs.pop("metric", 1.0)
    opt = make_optimizer(opt_args.get("lr", 0.1), opt_args.get("n_groups", 1), opt_args.get("optimizer", "sgd"))
    sched = maker(opt, *args, **kwargs)
    lrs: list[list[float]] = []
    moms: list[list[float] | None] = []  # all None, or none: every step has the same groups
    for i in range(n_steps):
        if i:
            opt.step()  # no gradients, so a no-op; torch warns when a scheduler steps first
            sched.step(metric) if isinstance(sched, _Plateau) else sched.step()
        lrs.append([float(g["lr"]) for g in opt.param_groups])
        moms.append(_momenta(opt))
    trace = {"lr": np.array(lrs, dtype=np.float64)}
    if moms and moms[0] is not None and len({tuple(m) for m in moms if m is not None}) > 1:
        trace["momentum"] = np.array(moms, dtype=np.float64)
    return trace


def _stepper_values(stepper: Stepper, n_steps: int | None) -> _FloatArray:
    """The stepper's current value and the rest of its schedule (or `n_steps` values)."""
    remaining = max(stepper.n_iter - stepper.n, 0) if n_steps is None else n_steps - 1
    first = stepper.func(stepper.start, stepper.end, stepper.n / stepper.n_iter)
    rest = stepper.peek(remaining)
    first = np.asarray(first, dtype=np.float64)
    return np.concatenate([first.reshape((1, *first.shape)), np.asarray(rest, dtype=np.float64)])


def _squeeze(a: _FloatArray) -> _FloatArray:
    return a[:, 0] if a.ndim == 2 and a.shape[1] == 1 else a


def schedule_trace(schedule: Any, n_steps: int | None = None, *args: Any, **kwargs: Any) -> dict[str, _FloatArray]:
    """Everything a schedule sets, per step: `{'lr': values}` plus `'momentum'` where a
    scheduler cycles it. Values have one row per step (and one column per param group if several)."""
    if isinstance(schedule, Stepper):
        return {"lr": _stepper_values(schedule, n_steps)}
    n_steps = check_number("n_steps", None if n_steps is None else int(n_steps), integer=True, positive=True)
    if _is_scheduler_maker(schedule):
        return {k: _squeeze(v) for k, v in _scheduler_trace(schedule, n_steps, args, dict(kwargs)).items()}
    if hasattr(schedule, "sample"):
        if getattr(schedule, "spec", ("",))[0] == "restarts":  # SGDR's positions are steps
            return {"lr": np.asarray(schedule(np.arange(n_steps, dtype=np.float64)), dtype=np.float64)}
        return {"lr": np.asarray(schedule.sample(n_steps), dtype=np.float64)}
    if callable(schedule) and "start" in kwargs:
        pct = np.linspace(0.0, 1.0, n_steps) if n_steps > 1 else np.zeros(1)
        return {"lr": np.asarray(schedule(kwargs["start"], kwargs.get("end", 0.0), pct), dtype=np.float64)}
    if callable(schedule):
        return {"lr": np.asarray(schedule(np.arange(n_steps) / n_steps), dtype=np.float64)}
    raise TypeError(
        "schedule: expected a Stepper, a fastcb schedule, an annealing function (with start=, end=), "
        f"or a scheduler class/factory with its arguments; got {type(schedule).__name__}"
    )


def one_cycle_trace(n_steps: int, lr_max: LearningRates, moms: float | list[float] | tuple[float, ...] = (0.95, 0.85),
                    div_factor: float = 25.0, pct_start: float = 0.3,
                    final_div: float | None = None) -> dict[str, _FloatArray]:
    """The learning rate and momentum that fastai's `OneCycleScheduler` sets for each of
    `n_steps` training batches (its two cosine phases of `Stepper`s, without a model).
    The arguments obey the rules `OneCycleScheduler` applies."""
    check_number("n_steps", n_steps, integer=True, positive=True)
    n_steps = int(n_steps)
    phases = one_cycle_phases(n_steps, *check_one_cycle(lr_max, moms, div_factor, pct_start, final_div))

    def values(name: str) -> _FloatArray:  # what the scheduler sets before each batch: each phase's start, then its steps
        first = np.asarray([phases[0][name].start], dtype=np.float64)
        rest = [np.asarray(p[name].peek(p[name].n_iter), dtype=np.float64) for p in phases]
        return np.concatenate([first, *rest])[:n_steps]

    return {"lr": values("lr"), "momentum": values("mom")}


def schedule_values(schedule: Any, n_steps: int | None = None, *args: Any, **kwargs: Any) -> _FloatArray:
    """The learning rates (values) of `schedule` over `n_steps` steps, as a float64 array."""
    return schedule_trace(schedule, n_steps, *args, **kwargs)["lr"]


def _label(schedule: Any) -> str:
    if isinstance(schedule, Stepper):
        return f"Stepper ({getattr(schedule.func, '__name__', 'func')})"
    return getattr(schedule, "__name__", type(schedule).__name__)


def plot_trace(trace: Mapping[str, _FloatArray], title: str | None = None) -> Figure:
    """A figure of a `schedule_trace` result: one panel per hyper-parameter against steps, each
    with a title, labelled axes and a legend (one line per param group)."""
    fig = figure(figsize=(6, 3.2 * len(trace)), layout="constrained")
    axes = fig.subplots(len(trace), 1, squeeze=False)[:, 0]
    for i, (ax, (name, vals)) in enumerate(zip(axes, trace.items())):
        label = "learning rate" if name == "lr" else name
        cols = vals.reshape(len(vals), -1)
        for g in range(cols.shape[1]):
            ax.plot(np.arange(len(vals)), cols[:, g], label=label if cols.shape[1] == 1 else f"{label}, group {g}")
        ax.set_xlabel("step")
        ax.set_ylabel(label)
        ax.set_title(title if i == 0 and title else f"{label.capitalize()} per step")
        ax.legend(fontsize="small")
    return fig


def plot_annealings(start: float = 2.0, end: float = 1e-2, n_steps: int = 100, degree: float = 0.8) -> Figure:
    """A figure of the five annealing functions from `start` to `end` over `n_steps` steps (the
    figure of fastai's "Classes for callback implementors" page), drawn from fastcb's values."""
    from .anneal import annealing_exp, annealing_linear, annealing_no, annealing_poly

    fig = figure(figsize=(6, 3.6), layout="constrained")
    ax = fig.subplots()
    funcs = {"annealing_no": annealing_no, "annealing_linear": annealing_linear, "annealing_cos": annealing_cos,
             "annealing_exp": annealing_exp, f"annealing_poly({degree:g})": annealing_poly(degree)}
    for name, func in funcs.items():
        ax.plot(np.arange(n_steps), schedule_values(func, n_steps, start=start, end=end), label=name)
    ax.set_title(f"Annealing functions from {start:g} to {end:g}")
    ax.set_xlabel("step")
    ax.set_ylabel("value")
    ax.legend(fontsize="small")
    return fig


def plot_schedule(schedule: Any, n_steps: int | None = None, *args: Any, title: str | None = None,
                  **kwargs: Any) -> Figure:
    """A figure of the schedule's values per step (and momentum, where cycled, below them)."""
    return plot_trace(schedule_trace(schedule, n_steps, *args, **kwargs), title or _label(schedule))


def save_trace(path: str | os.PathLike[str], trace: Mapping[str, _FloatArray], title: str | None = None,
               dpi: float = 100) -> Path:
    """Write the `plot_trace` figure to `path` (.png, .svg or .pdf, by its extension) and return its `Path`."""
    path = Path(path)
    fmt = figure_format(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    plot_trace(trace, title).savefig(path, dpi=dpi, format=fmt)
    return path


def save_schedule(path: str | os.PathLike[str], schedule: Any, n_steps: int | None = None, *args: Any,
                  dpi: float = 100, title: str | None = None, **kwargs: Any) -> Path:
    """Write the `plot_schedule` figure to `path` (.png, .svg or .pdf, by its extension; any
    other is refused before any work) and return its `Path`."""
    figure_format(path)
    trace = schedule_trace(schedule, n_steps, *args, **kwargs)
    return save_trace(path, trace, title or _label(schedule), dpi)
