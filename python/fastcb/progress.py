"""The progress bars passed to callbacks as `pbar`: fastprogress's, or quiet ones with the same interface.

Without fastprogress installed, bars are quiet and the table is printed as plain lines.
"""

import itertools
from collections.abc import Iterable, Iterator
from typing import Any

try:
    from fastprogress import fastprogress as _fp
    from fastprogress.fastprogress import format_time
    from fastprogress.fastprogress import master_bar as _fp_master_bar
    from fastprogress.fastprogress import progress_bar as _fp_progress_bar
except ImportError:  # the loop runs without it (a wheel installed with --no-deps, a minimal GPU image)
    _fp = _fp_master_bar = _fp_progress_bar = None

    def format_time(t: float) -> str:
        """`t` seconds as `mm:ss` (`h:mm:ss` past an hour), as fastprogress writes it."""
        t = int(t)
        h, m, s = t // 3600, (t // 60) % 60, t % 60
        return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"

__all__ = ["master_bar", "progress_bar", "end_interrupted", "QuietMasterBar", "QuietProgressBar"]


class QuietProgressBar:
    """Iterates `gen` without showing anything (and without any per-item work)."""

    def __init__(self, gen: Iterable[Any], total: int | None = None, parent: Any = None, leave: bool = True) -> None:
        self.gen, self.parent, self.leave, self.comment = gen, parent, leave, ""
        self.total = total if total is not None else _len(gen)
        if parent is not None:
            parent.add_child(self)

    def __iter__(self) -> Iterator[Any]:
        if self.total is not None and self.total != _len(self.gen):
            return itertools.islice(self.gen, max(self.total, 0))  # like fastprogress: stop at `total`
        return iter(self.gen)

    def __len__(self) -> int:
        return self.total  # type: ignore[return-value]  # None (an unsized `gen`): len() raises TypeError


class QuietMasterBar:
    """A master bar that shows nothing; `write` keeps the lines in `lines` instead of printing them."""

    def __init__(self, gen: Iterable[Any], total: int | None = None, **kwargs: Any) -> None:
        self.main_bar = QuietProgressBar(gen, total)
        self.child: QuietProgressBar | None = None
        self.lines: list[Any] = []
        self.clean_on_interrupt = False

    def __iter__(self) -> Iterator[Any]:
        return iter(self.main_bar)

    def add_child(self, child: QuietProgressBar) -> None:
        """Register the current inner bar."""
        self.child = child

    def write(self, line: Any, table: bool = False) -> None:
        """Record `line` (a list of cells when `table`)."""
        self.lines.append(list(line) if table else line)

    def update_graph(self, *args: Any, **kwargs: Any) -> None:
        """Nothing to draw."""

    def show_imgs(self, *args: Any, **kwargs: Any) -> None:
        """Nothing to show."""


def _len(gen: Any) -> int | None:
    try:
        return len(gen)
    except TypeError:
        return None


class _PlainMasterBar(QuietMasterBar):
    """What a non-quiet master bar becomes without fastprogress: no bars, the table printed."""

    def write(self, line: Any, table: bool = False) -> None:
        super().write(line, table)
        print("  ".join(str(c) for c in line) if table else line)


def master_bar(gen: Iterable[Any], total: int | None = None, quiet: bool = False) -> Any:
    """The outer (epoch) bar: fastprogress's, or a `QuietMasterBar` when `quiet`."""
    if quiet:
        return QuietMasterBar(gen, total)
    return _PlainMasterBar(gen, total) if _fp_master_bar is None else _fp_master_bar(gen, total=total)


def progress_bar(gen: Iterable[Any], parent: Any = None, leave: bool = True, total: int | None = None,
                 quiet: bool = False) -> Any:
    """The inner (batch) bar: fastprogress's, or a quiet one when `quiet` or when `parent` is quiet."""
    if quiet or isinstance(parent, QuietMasterBar) or _fp_progress_bar is None:
        return QuietProgressBar(gen, total, parent, leave)
    return _fp_progress_bar(gen, total=total, parent=parent, leave=leave)


def end_interrupted(bar: Any) -> None:
    """End the line of a console bar the loop broke out of (a callback stopped the epoch).

    fastprogress's console bar ends its line only when it runs to its total; left mid-way, the
    next line printed (the table's row) would continue the bar's line. The bar stays visible,
    showing where the epoch stopped, and what follows starts on a new line (fastai v1's output).
    """
    console = getattr(_fp, "ConsoleProgressBar", None)
    if console is None or not isinstance(bar, console):
        return
    if getattr(bar, "display", False) and getattr(bar, "last_v", None) is not None and _fp.printing():
        bar.last_v = None  # the bar is over: nothing more to end
        _fp.WRITER_FN("", flush=getattr(_fp, "FLUSH", True))
