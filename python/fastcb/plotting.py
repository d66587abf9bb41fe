"""Matplotlib glue: show a figure where there is a display, save it to a file where there is none.

matplotlib is imported when a figure is made, not before: training (and `fastcb.testing`) need none.
"""

import importlib
from pathlib import Path

__all__ = ["finish_figure", "pyplot", "figure", "has_display", "figure_format", "FORMATS"]


def _import(name):
    try:
        return importlib.import_module(name)
    except ImportError:
        raise ImportError("matplotlib is needed to plot: pip install matplotlib") from None


def pyplot():
    """`matplotlib.pyplot` (imported now; ImportError saying what to install if it is missing)."""
    return _import("matplotlib.pyplot")


def figure(**kwargs):
    """A `matplotlib.figure.Figure(**kwargs)` made without pyplot (no display needed)."""
    return _import("matplotlib.figure").Figure(**kwargs)

#: The file formats figures are written in, by extension.
FORMATS = {".png": "png", ".svg": "svg", ".pdf": "pdf"}


def figure_format(path, name="path"):
    """The format of the figure file `path` from its extension (.png, .svg or .pdf); a
    ValueError naming `name` for any other, so no file holds data of another format."""
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise ValueError(f"{name}: expected a .png, .svg or .pdf file, got {str(path)!r}")
    return FORMATS[suffix]


_NON_INTERACTIVE = {"agg", "cairo", "pdf", "pgf", "ps", "svg", "template"}


def has_display():
    """True when matplotlib's backend shows figures (a window or a notebook), not only files."""
    return _import("matplotlib").get_backend().lower() not in _NON_INTERACTIVE


def finish_figure(fig, path, return_fig=None, silent=False):
    """Return `fig` if `return_fig`; else show it, or save it to `path` when there is no display."""
    if return_fig:
        return fig
    plt = pyplot()
    if has_display():
        plt.show()
    else:
        fmt = figure_format(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, format=fmt)
        plt.close(fig)
        if not silent:
            print(f"Saved the figure to {path}")
    return None
