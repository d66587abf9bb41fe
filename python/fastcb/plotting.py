"""Matplotlib glue: show a figure where there is a display, save it to a file where there is none."""

try:
    import matplotlib
    import matplotlib.pyplot as plt
except ImportError:  # training needs no matplotlib; plotting says what is missing

    class _Missing:
        def __getattr__(self, name):
            raise ImportError("matplotlib is needed to plot: pip install matplotlib")

    matplotlib = plt = _Missing()

__all__ = ["finish_figure", "plt", "has_display"]


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
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path)
        plt.close(fig)
        if not silent:
            print(f"Saved the figure to {path}")
    return None
