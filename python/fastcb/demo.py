"""`fastcb demo`: the learning-rate finder then one cycle on the embedded spirals, with plots.

Everything a newcomer should see in a minute: a `Learner` over a `DataBunch`, `lr_find` and
its suggestion, `fit_one_cycle` with a progress bar and a per-epoch table, and the
`Recorder`'s plots written as PNG files (and `CSVLogger`'s history.csv) into one folder.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import torch

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from .callbacks.recorder import Recorder

__all__ = ["run_demo", "PLOTS", "DemoInterrupted"]

#: The files the demo writes, and what each shows.
PLOTS = {
    "lr_find.png": "loss against learning rate during lr_find, with the suggested rate",
    "schedule.png": "learning rate and momentum per batch during fit_one_cycle",
    "losses.png": "training and validation losses",
    "metrics.png": "validation accuracy and error rate per epoch",
    "history.csv": "one row per epoch: losses, metrics and time (CSVLogger)",
}


class DemoInterrupted(KeyboardInterrupt):
    """Ctrl-C during the demo, after writing what was finished: `written` names the files in `out`."""

    def __init__(self, out: Path, written: list[str]) -> None:
        super().__init__()
        self.out, self.written = out, written


def _save(fig: Figure, path: Path) -> None:
    from matplotlib import pyplot as plt

    fig.savefig(path, dpi=100)
    plt.close(fig)


def _pick_lr(recorder: Recorder, fallback: float = 1e-2) -> tuple[Figure, float]:
    """fastai's suggestion (steepest descent of the smoothed loss), kept in a sane range."""
    n = len(recorder.lrs)  # fastai skips 10 + 5 points; short runs (tests) skip fewer
    fig = cast("Figure", recorder.plot(suggestion=n >= 4, return_fig=True, skip_start=min(10, n // 4),
                                        skip_end=min(5, n // 8)))  # return_fig: the figure
    lr = float(getattr(recorder, "min_grad_lr", fallback))
    return fig, min(max(lr, 1e-4), 1.0)


def _fit_plots(rec: Recorder) -> dict[str, Callable[[], Figure]]:
    """The plots of a (possibly interrupted) fit, by file name, as figure makers."""
    plots: dict[str, Callable[[], Figure]] = {}  # (with return_fig, each plot returns its figure)
    if rec.lrs:
        plots["schedule.png"] = lambda: cast("Figure", rec.plot_lr(show_moms=True, return_fig=True))
    if rec.losses:
        plots["losses.png"] = lambda: cast("Figure", rec.plot_losses(return_fig=True))
    if rec.metrics:
        plots["metrics.png"] = lambda: cast("Figure", rec.plot_metrics(return_fig=True))
    return plots


def run_demo(out: str | os.PathLike[str] = "fastcb-demo", epochs: int = 5, bs: int = 64, n_train: int = 4096,
             n_valid: int = 1024, lr: float | None = None, num_it: int = 100, device: str | torch.device = "cpu",
             seed: int = 0, quiet: bool = False, print_fn: Callable[..., Any] = print) -> dict[str, Any]:
    """Train the demo MLP on the spirals: `lr_find` (unless `lr` is given), then
    `fit_one_cycle(epochs, lr)` with a `CSVLogger`; write the files of `PLOTS` into `out`.
    Returns a dict of the results: folder, learning rate, final metrics, files written and
    seconds taken. On Ctrl-C, writes the plots of what was finished and raises `DemoInterrupted`."""
    from .callbacks import CSVLogger
    from .data import DataBunch
    from .demo_data import demo_model, spiral_datasets
    from .learner import Learner
    from .metrics import accuracy, error_rate

    started = time.perf_counter()
    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    train_ds, valid_ds = spiral_datasets(n_train, n_valid, seed=seed)
    data = DataBunch.create(train_ds, valid_ds, bs=bs, device=device)
    learn = Learner(data, demo_model(), loss_func=torch.nn.functional.cross_entropy, metrics=[accuracy, error_rate],
                    path=out, silent=quiet)
    say = (lambda *a: None) if quiet else print_fn
    say(f"fastcb demo: {n_train} training and {n_valid} validation points of 3 interleaved spirals, "
        f"an MLP on {data.device}, batches of {bs}")
    written: list[str] = []

    def save(name: str, make: Callable[[], Figure]) -> None:
        _save(make(), out / name)
        written.append(name)

    stage = "lr_find"
    try:
        if lr is None:
            say(f"\n1. Learning-rate finder: {num_it} batches, lr growing exponentially from 1e-7 to 10")
            learn.lr_find(num_it=num_it)
            fig, lr = _pick_lr(learn.recorder)
            save("lr_find.png", lambda: fig)
            say(f"   suggested learning rate: {lr:.2e}")
        else:
            say(f"\n1. Learning-rate finder skipped: lr = {lr:g} given")

        stage = "fit"
        say(f"\n2. fit_one_cycle({epochs}, {lr:.2e}): cosine warm-up then annealing, momentum in reverse")
        learn.fit_one_cycle(epochs, lr, callbacks=[CSVLogger(learn)])
        written.append("history.csv")
        for name, make in _fit_plots(learn.recorder).items():
            save(name, make)
    except KeyboardInterrupt:
        if stage == "fit":
            if (out / "history.csv").exists():
                written.append("history.csv")
            for name, make in _fit_plots(learn.recorder).items():
                try:
                    save(name, make)
                except (ValueError, IndexError):  # too little was recorded to draw this one
                    pass
        raise DemoInterrupted(out, written) from None

    rec = learn.recorder
    final = dict(zip(rec.metrics_names, [float(v) for v in rec.metrics[-1]]))
    result: dict[str, Any] = {
        "out": out,
        "lr": lr,
        "valid_loss": float(rec.val_losses[-1]),
        **final,
        "seconds": time.perf_counter() - started,
        "plots": sorted(written),
    }
    say(f"\nDone in {result['seconds']:.1f} s: validation loss {result['valid_loss']:.4f}, "
        + ", ".join(f"{k} {v:.4f}" for k, v in final.items()))
    print_fn(f"Plots written to {out}" + ("" if quiet else ":"))
    for name in result["plots"]:
        say(f"  {name:14s} {PLOTS[name]}")
    return result
