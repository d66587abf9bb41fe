"""mkdocs hook: draw the site's figures with fastcb's own plotting when the site is built.

Each figure is a file of the built site (`figures/<name>.png`), never committed, so the
pictures always show what the installed fastcb computes.
"""

import io

import matplotlib

matplotlib.use("Agg")

from mkdocs.structure.files import File  # noqa: E402


def _figures():
    """`{file name: Figure}`, drawn by fastcb.preview."""
    from fastcb import lr_scheduler
    from fastcb.preview import one_cycle_trace, plot_annealings, plot_schedule, plot_trace
    from fastcb.schedules import sgdr

    return {
        "annealing.png": plot_annealings(2.0, 1e-2, 100),
        "one_cycle.png": plot_trace(one_cycle_trace(1000, 1e-2), "fastai one-cycle policy (lr_max=1e-2)"),
        "OneCycleLR.png": plot_schedule(lr_scheduler.OneCycleLR, 1000, max_lr=0.1, total_steps=1000),
        "cosine_warmup.png": plot_schedule(lr_scheduler.get_cosine_schedule_with_warmup, 1000,
                                           num_warmup_steps=100, num_training_steps=1000),
        "sgdr.png": plot_schedule(sgdr(1.0, 0.1, 100, 2), 700, title="sgdr(max=1, min=0.1, period=100, mult=2)"),
    }


def on_files(files, config):
    """Add the figures to the site's files."""
    for name, fig in _figures().items():
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=90)
        files.append(File.generated(config, f"figures/{name}", content=buf.getvalue()))
    return files
