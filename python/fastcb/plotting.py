"""Matplotlib glue: show a figure where there is a display, save it to a file where there is none."""

from pathlib import Path

try:
    import matplotlib
    import matplotlib.pyplot as plt
except ImportError:  # training needs no matplotlib; plotting says what is missing

    class _Missing:
        def __getattr__(self, name):
            raise ImportError("matplotlib is needed to plot: pip install matplotlib")

    matplotlib = plt = _Missing()

__all__ = ["finish_figure", "plt", "has_display", "figure_format", "FORMATS"]

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
    return matplotlib.get_backend().lower() not in _NON_INTERACTIVE


def finish_figure(fig, path, return_fig=None, silent=False):
    """Return `fig` if `return_fig`; else show it, or save it to `path` when there is no display."""
    if return_fig:
        return fig
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
