"""The `fastcb` command: `demo` (the main job), `plot` (preview a schedule), `bench`.

Bad arguments exit with status 2 and a message saying which and why, as argparse does.
"""

from __future__ import annotations

import argparse
import ast
import math
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from .plotting import FORMATS

if TYPE_CHECKING:  # numpy is imported where it is used: `fastcb --help` needs none
    import numpy as np
    import numpy.typing as npt

    _Trace = dict[str, npt.NDArray[np.float64]]

__all__ = ["main", "build_parser"]

_NON_FINITE = ("inf", "+inf", "-inf", "infinity", "-infinity", "nan")
#: Upper bounds that keep every command in memory and in minutes.
_MAX_POINTS, _MAX_STEPS = 10**7, 10**7

_PLOT_EPILOG = """\
SCHEDULE is one of (with example arguments):
  a scheduler class of fastcb.lr_scheduler (or torch's, with --torch)
      OneCycleLR max_lr=0.1 total_steps=1000
  a transformers-style factory of fastcb.lr_scheduler
      get_linear_schedule_with_warmup num_warmup_steps=10 num_training_steps=1000
  fastai's one-cycle policy (learning rate and momentum)
      one-cycle lr_max=0.01 pct_start=0.25
  a composable schedule of fastcb.schedules
      sgdr max=1 min=0.1 period=100 mult=2
  an annealing shape: no, linear, exp, cos, poly
      cos start=1 end=0.01
Arguments are KEY=VALUE, VALUE a Python literal (0.1, 1e-3, [0.1, 0.01], True, 'cos').
"""


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line on stderr (and exit status 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _number(kind: type[int] | type[float], low: float | None = None, high: float | None = None,
            low_open: bool = False) -> Callable[[str], float]:
    """An argparse type: a finite `kind` within [low, high] (low excluded when `low_open`)."""
    word = {int: "an int", float: "a number"}[kind]
    if low is not None and high is not None:
        want = f"{word} in {'(' if low_open else '['}{low:g}, {high:g}]"
    elif low == 0 and low_open:
        want = f"a positive {'int' if kind is int else 'number'}"
    else:
        want = f"{word} {'>' if low_open else '>='} {low:g}"

    def parse(text: str) -> float:
        try:
            v = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {want}, got {text!r}") from None
        if not math.isfinite(v) or (low is not None and (v <= low if low_open else v < low)) or (
                high is not None and v > high):
            raise argparse.ArgumentTypeError(f"expected {want}, got {text!r}")
        return v

    return parse


def _key_value(text: str) -> tuple[str, Any]:
    key, sep, raw = text.partition("=")
    if not sep or not key.isidentifier():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        value = ast.literal_eval(raw)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        value = raw  # a bare word, such as anneal_strategy=linear
    if isinstance(value, str) and value.strip().lower() in _NON_FINITE:
        value = float(value)  # so `inf` and `nan` reach the checks as numbers
    return key, value


def _writable_dir(folder: str | os.PathLike[str]) -> str | None:
    """None if files can be written into `folder` (created if missing), else why not."""
    import tempfile

    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        return f"{str(folder)!r} is a file, not a folder"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as e:
        return f"can't write into {str(folder)!r}: {e.strerror or e}"
    return None


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser of the `fastcb` command."""
    parser = _Parser(
        prog="fastcb", description="fastai v1's callback system with a compiled core: demo, schedule previews, speed.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND",
                                description="without a command: a one-cycle schedule and the core's speed, briefly")

    demo = sub.add_parser("demo", help="train a small network with lr_find then fit_one_cycle; write plots",
                          description="Train an MLP on an embedded spirals data set: lr_find, then fit_one_cycle "
                                      "with a progress bar and a per-epoch table; write PNG plots and the "
                                      "per-epoch history.csv into --out.")
    demo.add_argument("--out", type=Path, default=Path("fastcb-demo"),
                      help="folder for the plots and history.csv (default: %(default)s)")
    demo.add_argument("--epochs", type=_number(int, 1, 10**4), default=5,
                      help="epochs of fit_one_cycle, 1 to 10000 (default: %(default)s)")
    demo.add_argument("--bs", type=_number(int, 2, 10**6), default=64,
                      help="batch size, at least 2 for batch norm (default: %(default)s)")
    demo.add_argument("--n-train", type=_number(int, 2, _MAX_POINTS), default=4096,
                      help="training points, 2 to 10^7 (default: %(default)s)")
    demo.add_argument("--n-valid", type=_number(int, 1, _MAX_POINTS), default=1024,
                      help="validation points, 1 to 10^7 (default: %(default)s)")
    demo.add_argument("--num-it", type=_number(int, 1, 10**6), default=100,
                      help="lr_find batches (default: %(default)s)")
    demo.add_argument("--lr", type=_number(float, 0, 10, low_open=True), default=None,
                      help="skip lr_find and use this learning rate, in (0, 10] (lr_find's range ends at 10)")
    demo.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default: %(default)s)")
    demo.add_argument("--seed", type=_number(int, 0, 2**32 - 2), default=0,
                      help="random seed, 0 to 2^32-2 (default: %(default)s)")
    demo.add_argument("--quiet", action="store_true",
                      help="no progress bar, no table: only the files and their folder's name")

    plot = sub.add_parser("plot", help="preview a schedule as a figure and a short table, without training",
                          description="Evaluate a schedule without training; write a figure and print a short table.",
                          epilog=_PLOT_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    plot.add_argument("schedule", metavar="SCHEDULE", help="what to preview (see below)")
    plot.add_argument("params", metavar="KEY=VALUE", nargs="*", type=_key_value, help="its arguments")
    plot.add_argument("--steps", type=_number(int, 1, _MAX_STEPS), default=None,
                      help="steps to evaluate (default: total_steps / num_training_steps if given, else 100)")
    plot.add_argument("--lr", type=_number(float, 0, low_open=True), default=0.1,
                      help="the optimizer's initial lr (default: %(default)s)")
    plot.add_argument("--groups", type=_number(int, 1, 1000), default=1, help="param groups (default: %(default)s)")
    plot.add_argument("--optimizer", choices=("sgd", "adam", "adamw"), default="sgd",
                      help="throw-away optimizer the scheduler drives (default: %(default)s)")
    plot.add_argument("--torch", action="store_true", help="use torch's class instead of fastcb's drop-in")
    plot.add_argument("--rows", type=_number(int, 1, 1000), default=11,
                      help="rows of the printed table (default: %(default)s)")
    plot.add_argument("--out", type=Path, default=None,
                      help="figure file: .png, .svg or .pdf (default: SCHEDULE.png)")

    bench = sub.add_parser("bench", help="time fastcb against the pure-Python peers installed here",
                           description="Per-step and whole-schedule speed of fastcb against fastai-style Python, "
                                       "NumPy and torch's schedulers, in one process, as ratios.")
    bench.add_argument("--quick", action="store_true", help="fewer repetitions and smaller arrays")
    bench.add_argument("--no-torch", action="store_true", help="skip the torch scheduler rows")
    for p in (demo, plot, bench):
        p.set_defaults(parser=p)  # so later checks report through the sub-command's usage
    return parser


# -- demo --------------------------------------------------------------------------------------


def _check_demo(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    """Everything `run_demo` needs, checked before any training."""
    device = args.device
    if device not in ("cpu", "cuda") and not (device.startswith("cuda:") and device[5:].isdigit()):
        parser.error(f"argument --device: expected cpu, cuda or cuda:N, got {device!r}")
    if device != "cpu":
        import torch

        if not torch.cuda.is_available():
            parser.error(f"argument --device: {device}: no CUDA device here (torch.cuda.is_available() is False)")
        if device.startswith("cuda:") and int(device[5:]) >= torch.cuda.device_count():
            parser.error(f"argument --device: {device}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    problem = _writable_dir(args.out)
    if problem:
        parser.error(f"argument --out: {problem}")


def _demo(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    _check_demo(args, parser)
    from .demo import run_demo

    run_demo(out=args.out, epochs=args.epochs, bs=args.bs, n_train=args.n_train, n_valid=args.n_valid, lr=args.lr,
             num_it=args.num_it, device=args.device, seed=args.seed, quiet=args.quiet)
    return 0


# -- plot --------------------------------------------------------------------------------------


def _default_steps(params: Mapping[str, Any]) -> int:
    """The steps the arguments imply (total_steps, num_training_steps, epochs * steps_per_epoch), else 100."""
    def count(v: object) -> int | None:
        return v if isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= _MAX_STEPS else None

    for key in ("total_steps", "num_training_steps"):
        if key in params:
            return count(params[key]) or 100  # the scheduler itself reports a bad value, by its name
    if "epochs" in params and "steps_per_epoch" in params:
        e, s = count(params["epochs"]), count(params["steps_per_epoch"])
        return e * s if e and s and e * s <= _MAX_STEPS else 100
    return 100


def _check_keys(params: Mapping[str, Any], func: Callable[..., Any], skip: Sequence[str], what: str,
                parser: argparse.ArgumentParser) -> None:
    """Refuse arguments `func` does not take (when it names all it takes)."""
    import inspect

    sig = inspect.signature(func)
    if any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values()):
        return
    known = [n for n, p in sig.parameters.items()
             if n not in skip and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    for key in params:
        if key not in known:
            parser.error(f"{key}: unknown argument of {what}; it takes {', '.join(known) or 'no arguments'}")


# Public names of those modules that are not a schedule to preview (base classes, an enum,
# wrappers that take a schedule or an optimizer).
_NOT_SCHEDULES = frozenset({"LRScheduler", "SchedulerType", "Schedule", "GroupSchedules", "DeviceSchedule",
                            "torch_schedule"})


def _resolve(name: str, params: dict[str, Any], args: argparse.Namespace,
             parser: argparse.ArgumentParser) -> tuple[Callable[[int], _Trace], str]:
    """`(trace_fn, title)`: a function of the number of steps giving the schedule's trace."""
    from . import anneal, lr_scheduler, preview, schedules
    from ._core import SHAPES

    if name in ("one-cycle", "one_cycle_policy"):
        _check_keys(params, preview.one_cycle_trace, ("n_steps",), "one-cycle", parser)
        if "lr_max" not in params:
            parser.error("one-cycle: needs lr_max=VALUE")
        return (lambda n: preview.one_cycle_trace(n, **params)), "fastai one-cycle policy"
    if name in SHAPES or name.startswith("annealing_"):
        shape = name.removeprefix("annealing_")
        if shape not in SHAPES:
            parser.error(f"SCHEDULE: unknown annealing function {name!r}; shapes are {', '.join(SHAPES)}")
        known = ("start", "end", "degree") if shape == "poly" else ("start", "end")
        for key in params:
            if key not in known:
                parser.error(f"{key}: unknown argument of {name}; it takes {', '.join(known)}")
        if "start" not in params:
            parser.error(f"{name}: needs start=VALUE (and end=VALUE)")
        degree = params.pop("degree", 2.0)

        def trace(n: int) -> _Trace:  # annealing_poly checks its degree, so inside the caller's error handling
            func = anneal.annealing_poly(degree) if shape == "poly" else getattr(anneal, f"annealing_{shape}")
            return preview.schedule_trace(func, n, **params)

        return trace, f"annealing_{shape}"
    if name in getattr(lr_scheduler, "__all__", ()) and name not in _NOT_SCHEDULES:
        import torch

        module = torch.optim.lr_scheduler if args.torch else lr_scheduler
        maker = getattr(module, name, None)
        if maker is None:
            parser.error(f"SCHEDULE: {name} is not in {module.__name__} (leave out --torch)")
        what = f"{module.__name__}.{name}"
        _check_keys(params, maker, ("optimizer", "opt", "self"), what, parser)
        opt = dict(lr=args.lr, n_groups=args.groups, optimizer=args.optimizer)
        return (lambda n: preview.schedule_trace(maker, n, **opt, **params)), what
    if name in schedules.__all__ and name not in _NOT_SCHEDULES:
        make = getattr(schedules, name)
        _check_keys(params, make, (), f"fastcb.schedules.{name}", parser)
        return (lambda n: preview.schedule_trace(make(**params), n)), f"fastcb.schedules.{name}"
    schedulers = sorted(n for n in lr_scheduler.__all__ if n not in _NOT_SCHEDULES)
    parser.error(
        f"SCHEDULE: unknown schedule {name!r}; try one-cycle, a shape ({', '.join(SHAPES)}), "
        f"a fastcb.schedules function ({', '.join(n for n in schedules.__all__ if n not in _NOT_SCHEDULES)}) "
        f"or a scheduler: {', '.join(schedulers)}"
    )


def _table(trace: Mapping[str, npt.NDArray[np.float64]], rows: int) -> str:
    """`rows` evenly spaced steps of the trace as aligned text (a list per step for several groups)."""
    import numpy as np

    idx = np.unique(np.linspace(0, len(trace["lr"]) - 1, rows).round().astype(int))

    def cell(v: Any) -> str:
        return f"{float(v):.6g}" if np.ndim(v) == 0 else "[" + ", ".join(f"{x:.4g}" for x in v) + "]"

    table = [["step", *trace]] + [[str(int(i)), *(cell(vals[i]) for vals in trace.values())] for i in idx]
    widths = [max(len(r[c]) for r in table) for c in range(len(table[0]))]
    return "\n".join("  ".join(x.rjust(w) for x, w in zip(r, widths)) for r in table)


def _shown(params: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in params.items()) or "no arguments"


def _blame(error: BaseException, params: Mapping[str, Any]) -> str:
    """The first line of `error`, naming the arguments it may be about when it names none."""
    msg = str(error).splitlines()[0] if str(error) else type(error).__name__
    if any(key in msg for key in params):
        return msg
    text = [f"{k}={v!r}" for k, v in params.items() if isinstance(v, str)]
    if text and isinstance(error, TypeError):
        return f"{msg} ({', '.join(text)} {'is' if len(text) == 1 else 'are'} text, not a number)"
    return f"{msg} (with {_shown(params)})"


def _plot(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    keys = [k for k, _ in args.params]
    for key in keys:
        if keys.count(key) > 1:
            parser.error(f"{key}: given {keys.count(key)} times")
    params = dict(args.params)
    out = args.out or Path(f"{args.schedule}.png")
    if out.suffix.lower() not in FORMATS:
        parser.error(f"argument --out: expected a {', '.join(FORMATS)} file, got {str(out)!r}")
    if out.is_dir():
        parser.error(f"argument --out: {str(out)!r} is a folder; give a file name")
    problem = _writable_dir(out.parent)
    if problem:
        parser.error(f"argument --out: {problem}")

    trace_fn, title = _resolve(args.schedule, dict(params), args, parser)
    steps = args.steps or _default_steps(params)
    import numpy as np

    try:
        trace = trace_fn(steps)
    except (TypeError, ValueError, ArithmeticError, KeyError, IndexError) as e:
        parser.error(f"{args.schedule}: {_blame(e, params)}")
    for name, vals in trace.items():
        if not np.all(np.isfinite(vals)):
            parser.error(f"{args.schedule}: non-finite values of {name} with {_shown(params)}")

    from . import preview

    preview.save_trace(out, trace, title)
    print(f"{title} over {steps} steps" + (f" ({_shown(params)})" if params else ""))
    print(_table(trace, args.rows))
    print(f"Plot written to {out.resolve()}")
    return 0


# -- main --------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Run the `fastcb` command with `argv` (default: `sys.argv[1:]`); returns the exit status.

    Argument errors exit 2 with one line; Ctrl-C returns 130 after one line (and, for the
    demo, after writing what was finished).
    """
    parser = build_parser()
    args = _parse(parser, argv)
    try:
        return _run(args)
    except KeyboardInterrupt as e:
        sys.stdout.write("\n")  # close a half-drawn progress bar on its own line
        sys.stdout.flush()
        written, out = getattr(e, "written", None), getattr(e, "out", None)  # the demo's DemoInterrupted
        done = f"; wrote {', '.join(written)} into {out}" if written else ""
        print(f"fastcb {args.command or ''}: interrupted{done}".replace("  ", " "), file=sys.stderr)
        return 130


def _parse(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse `argv`; `plot`'s KEY=VALUE arguments may also come after its options."""
    args, extra = parser.parse_known_args(argv)
    if extra and args.command == "plot" and not any(a.startswith("-") for a in extra):
        try:
            args.params += [_key_value(a) for a in extra]
        except argparse.ArgumentTypeError as e:
            args.parser.error(f"argument KEY=VALUE: {e}")
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    return args


def _run(args: argparse.Namespace) -> int:
    if args.command is None:
        return _overview()
    if args.command in ("demo", "plot"):
        import matplotlib

        matplotlib.use("Agg")  # the command only writes files; never open windows
    if args.command == "plot":
        return _plot(args, args.parser)
    if args.command == "demo":
        return _demo(args, args.parser)
    from .bench import format_table, run_bench

    print("fastcb bench: best-of-repeats time per call (per schedule for the whole-schedule rows); "
          "speed-up = peer / fastcb\n")
    print(format_table(run_bench(quick=args.quick, torch_schedulers=not args.no_torch)))
    return 0


def _overview() -> int:
    """`fastcb` alone: a short one-cycle table and the per-call speed of the core against fastai's Python."""
    from .anneal import SmoothenValue, Stepper, annealing_cos
    from .bench import FastaiSmoothenValue, FastaiStepper, fastai_annealing_cos, run_per_call
    from .preview import one_cycle_trace

    n = 10
    trace = one_cycle_trace(n, 1e-2)
    print(f"fastai's one-cycle over {n} batches (lr_max=1e-2), as OneCycleScheduler sets it:")
    print(f"{'batch':>5}  {'lr':>10}  {'momentum':>8}")
    for i, (lr, mom) in enumerate(zip(trace["lr"], trace["momentum"])):
        print(f"{i:>5}  {lr:>10.3e}  {mom:>8.4f}")
    huge = 10**12
    ours, peer = Stepper((1.0, 0.0), huge, annealing_cos), FastaiStepper((1.0, 0.0), huge, fastai_annealing_cos)
    smooth, py_smooth = SmoothenValue(0.98), FastaiSmoothenValue(0.98)
    rows = [("annealing_cos(s, e, p)", lambda: fastai_annealing_cos(1.0, 0.0, 0.3), lambda: annealing_cos(1.0, 0.0, 0.3)),
            ("Stepper.step()", peer.step, ours.step),
            ("SmoothenValue.add_value(v)", lambda: py_smooth.add_value(0.3), lambda: smooth.add_value(0.3))]
    print("\nper call, fastai v1's Python against fastcb's compiled core (`fastcb bench` for more):")
    for name, theirs, mine in rows:
        t_peer, t_ours = run_per_call(theirs), run_per_call(mine)
        print(f"  {name:28s} {t_peer * 1e9:7.1f} ns -> {t_ours * 1e9:6.1f} ns  ({t_peer / t_ours:4.1f}x)")
    print("\ncommands: fastcb demo | plot | bench   (fastcb COMMAND --help)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
