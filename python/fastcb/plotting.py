"""Matplotlib glue: show a figure where there is a display, save it to a file where there is none.

matplotlib is imported when a figure is made, not before: training (and `fastcb.testing`) need none.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["finish_figure", "pyplot", "figure", "has_display", "figure_format", "FORMATS"]


def _import(name: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ImportError:
        raise ImportError("matplotlib is needed to plot: pip install matplotlib") from None


def pyplot() -> ModuleType:
    """`matplotlib.pyplot` (imported now; ImportError saying what to install if it is missing)."""
    return _import("matplotlib.pyplot")


def figure(**kwargs: Any) -> Figure:
    """A `matplotlib.figure.Figure(**kwargs)` made without pyplot (no display needed)."""
    return _import("matplotlib.figure").Figure(**kwargs)

#: The file formats figures are written in, by extension.
FORMATS = {".png": "png", ".svg": "svg", ".pdf": "pdf"}


def figure_format(path: str | os.PathLike[str], name: str = "path") -> str:
    """The format of the figure file `path` from its extension (.png, .svg or .pdf); a
    ValueError naming `name` for any other, so no file holds data of another format."""
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise ValueError(f"{name}: expected a .png, .svg or .pdf file, got {str(path)!r}")
    return FORMATS[suffix]


_NON_INTERACTIVE = {"agg", "cairo", "pdf", "pgf", "ps", "svg", "template"}


def has_display() -> bool:
    """True when matplotlib's backend shows figures (a window or a notebook), not only files."""
    return _import("matplotlib").get_backend().lower() not in _NON_INTERACTIVE


def finish_figure(fig: Figure, path: Path, return_fig: bool | None = None, silent: bool = False) -> Figure | None:
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
