"""The `fastcb` command: `demo` (the main job), `plot` (preview a schedule), `bench`.

Bad arguments exit with status 2 and a message saying which and why, as argparse does.
"""

import argparse
import ast
import sys
from pathlib import Path

__all__ = ["main", "build_parser"]

_SHAPES = ("no", "linear", "exp", "cos", "poly")

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


def _device(value):
    import torch

    if value not in ("cpu", "cuda") and not value.startswith("cuda:"):
        raise argparse.ArgumentTypeError(f"expected cpu, cuda or cuda:N, got {value!r}")
    if value.startswith("cuda") and not torch.cuda.is_available():
        raise argparse.ArgumentTypeError(f"{value}: no CUDA device here (torch.cuda.is_available() is False)")
    return value


def _positive(kind):
    def parse(value):
        try:
            v = kind(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a positive {kind.__name__}, got {value!r}") from None
        if not v > 0:
            raise argparse.ArgumentTypeError(f"expected a positive {kind.__name__}, got {value!r}")
        return v

    return parse


def _key_value(text):
    key, sep, raw = text.partition("=")
    if not sep or not key.isidentifier():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key, ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        return key, raw  # a bare word, such as anneal_strategy=linear


def build_parser():
    """The argparse parser of the `fastcb` command."""
    parser = argparse.ArgumentParser(
        prog="fastcb", description="fastai v1's callback system with a compiled core: demo, schedule previews, speed.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND",
                                description="without a command: a one-cycle schedule and the core's speed, briefly")

    demo = sub.add_parser("demo", help="train a small network with lr_find then fit_one_cycle; write plots",
                          description="Train an MLP on an embedded spirals data set: lr_find, then fit_one_cycle "
                                      "with a progress bar and a per-epoch table; write PNG plots into --out.")
    demo.add_argument("--out", type=Path, default=Path("fastcb-demo"),
                      help="folder for the plots (default: %(default)s)")
    demo.add_argument("--epochs", type=_positive(int), default=5, help="epochs of fit_one_cycle (default: %(default)s)")
    demo.add_argument("--bs", type=_positive(int), default=64, help="batch size (default: %(default)s)")
    demo.add_argument("--n-train", type=_positive(int), default=4096, help="training points (default: %(default)s)")
    demo.add_argument("--n-valid", type=_positive(int), default=1024, help="validation points (default: %(default)s)")
    demo.add_argument("--num-it", type=_positive(int), default=100, help="lr_find batches (default: %(default)s)")
    demo.add_argument("--lr", type=_positive(float), default=None, help="skip lr_find and use this learning rate")
    demo.add_argument("--device", type=_device, default="cpu", help="cpu, cuda or cuda:N (default: %(default)s)")
    demo.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    demo.add_argument("--quiet", action="store_true",
                      help="no progress bar, no table: only the files and their folder's name")

    plot = sub.add_parser("plot", help="preview a schedule as a PNG and a short table, without training",
                          description="Evaluate a schedule without training; write a PNG and print a short table.",
                          epilog=_PLOT_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    plot.add_argument("schedule", metavar="SCHEDULE", help="what to preview (see below)")
    plot.add_argument("params", metavar="KEY=VALUE", nargs="*", type=_key_value, help="its arguments")
    plot.add_argument("--steps", type=_positive(int), default=None,
                      help="steps to evaluate (default: total_steps / num_training_steps if given, else 100)")
    plot.add_argument("--lr", type=_positive(float), default=0.1,
                      help="the optimizer's initial lr (default: %(default)s)")
    plot.add_argument("--groups", type=_positive(int), default=1, help="param groups (default: %(default)s)")
    plot.add_argument("--optimizer", choices=("sgd", "adam", "adamw"), default="sgd",
                      help="throw-away optimizer the scheduler drives (default: %(default)s)")
    plot.add_argument("--torch", action="store_true", help="use torch's class instead of fastcb's drop-in")
    plot.add_argument("--rows", type=_positive(int), default=11,
                      help="rows of the printed table (default: %(default)s)")
    plot.add_argument("--out", type=Path, default=None, help="PNG file (default: SCHEDULE.png)")

    bench = sub.add_parser("bench", help="time fastcb against the pure-Python peers installed here",
                           description="Per-step and whole-schedule speed of fastcb against fastai-style Python, "
                                       "NumPy and torch's schedulers, in one process, as ratios.")
    bench.add_argument("--quick", action="store_true", help="fewer repetitions and smaller arrays")
    bench.add_argument("--no-torch", action="store_true", help="skip the torch scheduler rows")
    for p in (demo, plot, bench):
        p.set_defaults(parser=p)  # so later checks report through the sub-command's usage
    return parser


# -- plot --------------------------------------------------------------------------------------


def _default_steps(params):
    for key in ("total_steps", "num_training_steps"):
        if key in params:
            return int(params[key])
    if "epochs" in params and "steps_per_epoch" in params:
        return int(params["epochs"]) * int(params["steps_per_epoch"])
    return 100


def _resolve(name, params, args, parser):
    """`(trace_fn, title)`: a function of the number of steps giving the schedule's trace."""
    import torch

    from . import anneal, lr_scheduler, preview, schedules

    if name in ("one-cycle", "one_cycle_policy"):
        return (lambda n: preview.one_cycle_trace(n, **params)), "fastai one-cycle policy"
    if name in _SHAPES or name.startswith("annealing_"):
        shape = name.removeprefix("annealing_")
        if shape not in _SHAPES:
            parser.error(f"SCHEDULE: unknown annealing function {name!r}; shapes are {', '.join(_SHAPES)}")
        if shape == "poly":
            func = anneal.annealing_poly(params.pop("degree", 2.0))
        else:
            func = getattr(anneal, f"annealing_{shape}")
        if "start" not in params:
            parser.error(f"{name}: needs start=VALUE (and end=VALUE)")
        return (lambda n: preview.schedule_trace(func, n, **params)), f"annealing_{shape}"
    module = torch.optim.lr_scheduler if args.torch else lr_scheduler
    maker = getattr(module, name, None) if name in getattr(lr_scheduler, "__all__", ()) else None
    if maker is not None and name != "LRScheduler":
        opt = dict(lr=args.lr, n_groups=args.groups, optimizer=args.optimizer)
        return (lambda n: preview.schedule_trace(maker, n, **opt, **params)), f"{module.__name__}.{name}"
    if name in schedules.__all__ and name != "Schedule":
        return (lambda n: preview.schedule_trace(getattr(schedules, name)(**params), n)), f"fastcb.schedules.{name}"
    known = sorted(n for n in lr_scheduler.__all__ if n != "LRScheduler")
    parser.error(
        f"SCHEDULE: unknown schedule {name!r}; try one-cycle, a shape ({', '.join(_SHAPES)}), "
        f"a fastcb.schedules function ({', '.join(n for n in schedules.__all__ if n != 'Schedule')}) "
        f"or a scheduler: {', '.join(known)}"
    )


def _table(trace, rows):
    """`rows` evenly spaced steps of the trace as aligned text (a list per step for several groups)."""
    import numpy as np

    idx = np.unique(np.linspace(0, len(trace["lr"]) - 1, rows).round().astype(int))

    def cell(v):
        return f"{float(v):.6g}" if np.ndim(v) == 0 else "[" + ", ".join(f"{x:.4g}" for x in v) + "]"

    table = [["step", *trace]] + [[str(int(i)), *(cell(vals[i]) for vals in trace.values())] for i in idx]
    widths = [max(len(r[c]) for r in table) for c in range(len(table[0]))]
    return "\n".join("  ".join(x.rjust(w) for x, w in zip(r, widths)) for r in table)


def _plot(args, parser):
    from . import preview

    params = dict(args.params)
    trace_fn, title = _resolve(args.schedule, dict(params), args, parser)
    steps = args.steps or _default_steps(params)
    try:
        trace = trace_fn(steps)
    except (TypeError, ValueError, ZeroDivisionError) as e:
        parser.error(f"{args.schedule}: {e}")
    out = args.out or Path(f"{args.schedule}.png")
    if out.suffix.lower() != ".png":
        parser.error(f"--out: expected a .png file, got {str(out)!r}")
    out.parent.mkdir(parents=True, exist_ok=True)
    preview.plot_trace(trace, title).savefig(out, dpi=100, format="png")
    shown = ", ".join(f"{k}={v!r}" for k, v in params.items())
    print(f"{title} over {steps} steps" + (f" ({shown})" if params else ""))
    print(_table(trace, args.rows))
    print(f"Plot written to {out.resolve()}")
    return 0


# -- main --------------------------------------------------------------------------------------


def main(argv=None):
    """Run the `fastcb` command with `argv` (default: `sys.argv[1:]`); returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        return _overview()
    sub = args.parser
    if args.command in ("demo", "plot"):
        import matplotlib

        matplotlib.use("Agg")  # the command only writes files; never open windows
    if args.command == "plot":
        return _plot(args, sub)
    if args.command == "bench":
        from .bench import format_table, run_bench

        print("fastcb bench: best-of-repeats time per call (per schedule for the whole-schedule rows); "
              "speed-up = peer / fastcb\n")
        print(format_table(run_bench(quick=args.quick, torch_schedulers=not args.no_torch)))
        return 0
    from .demo import run_demo

    run_demo(out=args.out, epochs=args.epochs, bs=args.bs, n_train=args.n_train, n_valid=args.n_valid, lr=args.lr,
             num_it=args.num_it, device=args.device, seed=args.seed, quiet=args.quiet)
    return 0


def _overview():
    """`fastcb` alone: a short one-cycle table and the per-call speed of the core against fastai's Python."""
    from .bench import FastaiSmoothenValue, FastaiStepper, fastai_annealing_cos, run_per_call
    from .anneal import SmoothenValue, Stepper, annealing_cos
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
