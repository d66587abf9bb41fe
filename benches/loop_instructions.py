"""Instructions, not microseconds: fastcb's loop against the bare PyTorch loop under callgrind.

On a shared 2-core machine a run's time moves by far more than the 10 us per batch looked for;
the number of instructions executed does not move with the load at all. This counts them with
valgrind's callgrind (instrumentation starts after the imports and warm-up, so it takes a few
minutes, not an hour) for the same pieces as `loop_breakdown.py` and for whole `bench_loop.py`
runs, and prints instructions per training batch:

* whole runs (3 epochs of 200 training + 50 validation batches, Learner built inside, as
  `bench_loop.py` times them) and 0-epoch runs (what a fit costs before its first batch);
* the training batch and its parts, each on the same 200 batches;
* per epoch: validation (with the accuracy metric) against the bare loop's, and the epoch's end.

To turn instructions into time, the per-part microseconds of `loop_breakdown.py` give the rate
(for this Python-level code, about 8 000 instructions per microsecond on the 2-core machine).

    python benches/loop_instructions.py      # needs valgrind, gcc and valgrind's headers
    python benches/loop_instructions.py --batch   # the training batch's parts only (faster)
    python benches/loop_instructions.py --batch --cache   # and the cache misses

The rate above holds for code that stays in the CPU's caches. A training batch's bookkeeping
doesn't: between two of torch's steps, which stream more code and data than the L2 cache
holds, it runs cold. `--cache` simulates the caches and branch predictor (callgrind's
`--cache-sim` and `--branch-sim`, with its last level set to this CPU's L2, so that a miss
there is a fetch from L3 or memory) and prints, per training batch, fastcb minus bare: the L1
and L2 misses, code and data, and the mispredicted branches. At some 50 cycles an L2 miss, a
few hundred of them cost more than the instructions themselves.
"""

import contextlib
import io
import os
import re
import shutil
import subprocess
import sys
import tempfile

_MARKERS = r"""
#include <valgrind/callgrind.h>
void start(void) { CALLGRIND_START_INSTRUMENTATION; }
void stop(void) { CALLGRIND_STOP_INSTRUMENTATION; }
void zero(void) { CALLGRIND_ZERO_STATS; }
void dump(const char *s) { CALLGRIND_DUMP_STATS_AT(s); }
"""

N_BATCHES, N_VALID_BATCHES = 200, 50


def measure(lib):
    """Under callgrind: run each piece between a zeroing and a dump named after it."""
    import ctypes

    import torch
    import torch.nn.functional as F

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from bench_loop import bare_loop, bare_train_step, bare_validate, fastcb_loop, make_data
    from loop_breakdown import build, dispatched

    from fastcb.loop import train_batch, validate

    vg = ctypes.CDLL(lib)
    torch.set_num_threads(1)
    train_dl, valid_dl = make_data(32 * N_BATCHES, 32 * N_VALID_BATCHES)
    batches = list(train_dl)
    learn, handler = build(train_dl, valid_dl, 3)
    plain, plain_handler = build(train_dl, valid_dl, 3)
    plain_handler.callbacks, plain_handler.metrics = [], []
    plain_handler._refresh()
    bare_model = torch.nn.Linear(10, 2)
    bare_opt = torch.optim.Adam(bare_model.parameters(), lr=1e-3, betas=(0.9, 0.99))

    def bare(xb, yb):
        bare_train_step(bare_model, bare_opt, xb, yb)

    def fastcb_batch(xb, yb):  # what `fit` runs per training batch
        loss_func, opt = learn.loss_func, learn.opt
        if loss_func and opt is not None:
            train_batch(learn.model, xb, yb, loss_func, opt, handler)

    def no_callbacks(xb, yb):
        train_batch(plain.model, xb, yb, plain.loss_func, plain.opt, plain_handler)

    rec_call, sched_call = dispatched(handler, 0, "batch_begin"), dispatched(handler, 5, "batch_end")
    ctx_model = torch.nn.Linear(10, 2)  # a bare step with a hook beside it
    ctx_opt = torch.optim.Adam(ctx_model.parameters(), lr=1e-3, betas=(0.9, 0.99))

    def recorder_in_context(xb, yb):
        rec_call()
        bare_train_step(ctx_model, ctx_opt, xb, yb)

    def scheduler_in_context(xb, yb):
        bare_train_step(ctx_model, ctx_opt, xb, yb)
        sched_call()

    def nothing(xb, yb):
        pass

    def bare_valid():
        bare_validate(bare_model, valid_dl)

    def fastcb_valid():
        validate(learn.model, valid_dl, loss_func=F.cross_entropy, cb_handler=handler, pbar=handler.state_dict["pbar"])

    losses = [torch.tensor(0.5 + i * 1e-3) for i in range(N_BATCHES)]

    def epoch_end():
        handler._epoch_losses = list(losses)
        handler.on_epoch_end(0.5)

    per_batch = {"nothing": nothing, "bare step": bare, "fastcb batch": fastcb_batch, "without callbacks": no_callbacks,
                 "recorder": rec_call, "scheduler": sched_call, "recorder in context": recorder_in_context,
                 "scheduler in context": scheduler_in_context}
    per_epoch = {"bare validation": bare_valid, "fastcb validation": fastcb_valid, "epoch end": epoch_end}
    for f in per_batch.values():
        for xb, yb in batches:
            f(xb, yb)
    for f in per_epoch.values():
        f()
    with contextlib.redirect_stdout(io.StringIO()):
        bare_loop(train_dl, valid_dl, 1), fastcb_loop(train_dl, valid_dl, 1)
    vg.start()
    for name, f in per_batch.items():
        vg.zero()
        for xb, yb in batches:
            f(xb, yb)
        vg.dump(name.encode())
    if os.environ.get("FASTCB_CALLGRIND_BATCH"):
        vg.stop()
        return
    for name, f in per_epoch.items():
        vg.zero()
        f()
        vg.dump(name.encode())
    for epochs in (0, 3):
        for name, f in (("bare run", bare_loop), ("fastcb run", fastcb_loop)):
            with contextlib.redirect_stdout(io.StringIO()):
                vg.zero()
                f(train_dl, valid_dl, epochs)
                vg.dump(f"{name} {epochs}".encode())
    vg.stop()


def read_dumps(prefix, events=None):
    """{dump name: instructions} from callgrind's numbered output files; with `events` (a dict),
    each dump's {event: count} is put there too."""
    out = {}
    folder, base = os.path.split(prefix)
    for name in os.listdir(folder):
        if not re.fullmatch(re.escape(base) + r"\.\d+", name):
            continue
        text = open(os.path.join(folder, name)).read()
        trig = re.search(r"^desc: Trigger: Client Request: (.*)$", text, re.M)
        total = re.search(r"^(?:summary|totals): ([\d ]+)$", text, re.M)
        names = re.search(r"^events: (.*)$", text, re.M)
        if trig and total:
            counts = [int(v) for v in total.group(1).split()]
            out[trig.group(1).strip()] = counts[0]
            if events is not None and names:
                events[trig.group(1).strip()] = dict(zip(names.group(1).split(), counts))
    return out


def l2_cache():
    """callgrind's `--LL` for this CPU's L2 cache (size,ways,line), or its L2 of 512 KiB, 8 ways."""
    base = "/sys/devices/system/cpu/cpu0/cache/index2/"
    try:
        size = open(base + "size").read().strip()
        size = int(size[:-1]) * {"K": 1024, "M": 1024 ** 2}[size[-1]] if size[-1] in "KM" else int(size)
        ways, line = (int(open(base + f).read()) for f in ("ways_of_associativity", "coherency_line_size"))
    except (OSError, ValueError, KeyError):
        size, ways, line = 512 * 1024, 8, 64
    return f"{size},{ways},{line}"


def report_cache(events):
    """Per training batch, fastcb minus bare: the simulated cache misses and mispredictions."""
    n = N_BATCHES
    rows = (("training batch: fastcb - bare step", "fastcb batch", "bare step"),
            ("  train_batch without callbacks - bare step", "without callbacks", "bare step"),
            ("  Recorder.on_batch_begin beside a bare step", "recorder in context", "bare step"),
            ("  OneCycleScheduler.on_batch_end beside a bare step", "scheduler in context", "bare step"),
            ("  Recorder.on_batch_begin alone (dispatched)", "recorder", "nothing"),
            ("  OneCycleScheduler.on_batch_end alone", "scheduler", "nothing"),
            ("(bare step itself)", "bare step", "nothing"))
    print(f"\nsimulated caches (L2 as the last level: {l2_cache()}), per training batch")
    print(f"{'':52s} {'instr':>7s} {'L1 code':>8s} {'L1 data':>8s} {'L2 code':>8s} {'L2 data':>8s} {'mispred':>8s}")
    for label, a, b in rows:
        d = {k: (events[a].get(k, 0) - events[b].get(k, 0)) / n for k in events[a]}
        print(f"{label:52s} {d['Ir']:7.0f} {d.get('I1mr', 0):8.0f} {d.get('D1mr', 0) + d.get('D1mw', 0):8.0f} "
              f"{d.get('ILmr', 0):8.0f} {d.get('DLmr', 0) + d.get('DLmw', 0):8.0f} "
              f"{d.get('Bcm', 0) + d.get('Bim', 0):8.0f}")


def report(c):
    n = N_BATCHES
    b = {k: v / n for k, v in c.items() if k in ("nothing", "bare step", "fastcb batch", "without callbacks",
                                                  "recorder", "scheduler")}
    if "bare run 3" not in c:  # --batch
        for label, v in (("training batch: fastcb - bare step", b["fastcb batch"] - b["bare step"]),
                         ("  train_batch without callbacks - bare step", b["without callbacks"] - b["bare step"]),
                         ("  Recorder.on_batch_begin (dispatched)", b["recorder"] - b["nothing"]),
                         ("  OneCycleScheduler.on_batch_end (dispatched)", b["scheduler"] - b["nothing"])):
            print(f"{label:52s} {v:10.0f}")
        return
    whole = (c["fastcb run 3"] - c["bare run 3"]) / (3 * n)
    fit = (c["fastcb run 0"] - c["bare run 0"]) / (3 * n)
    valid = (c["fastcb validation"] - c["bare validation"]) / n
    end = c["epoch end"] / n
    batch = b["fastcb batch"] - b["bare step"]
    print(f"instructions per training batch (Linear(10,2), batch 32; {n} training + {N_VALID_BATCHES} validation "
          "batches per epoch, 3 epochs)")
    rows = [
        ("whole run, fastcb - bare (bench_loop's figure)", whole),
        ("  training batch: fastcb - bare step", batch),
        ("    train_batch without callbacks - bare step", b["without callbacks"] - b["bare step"]),
        ("    Recorder.on_batch_begin (dispatched)", b["recorder"] - b["nothing"]),
        ("    OneCycleScheduler.on_batch_end (dispatched)", b["scheduler"] - b["nothing"]),
        ("  per epoch, over its batches: validation - bare's", valid),
        ("  per epoch, over its batches: the epoch's end", end),
        ("  per fit, over 3 epochs: before the first batch", fit),
        ("  the rest (epoch begin, bars, loop; by difference)", whole - batch - valid - end - fit),
        ("(bare step itself)", b["bare step"] - b["nothing"]),
    ]
    for label, v in rows:
        print(f"{label:52s} {v:10.0f}")


def main():
    lib = os.environ.get("FASTCB_CALLGRIND_MARKERS")
    if lib:
        return measure(lib)
    missing = [t for t in ("valgrind", "gcc") if shutil.which(t) is None]
    if missing or not os.path.exists("/usr/include/valgrind/callgrind.h"):
        print(f"needs valgrind, gcc and valgrind's headers (missing: {missing or ['valgrind/callgrind.h']})")
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        src, lib = os.path.join(tmp, "markers.c"), os.path.join(tmp, "libmarkers.so")
        with open(src, "w") as f:
            f.write(_MARKERS)
        subprocess.run(["gcc", "-O2", "-shared", "-fPIC", "-o", lib, src], check=True)
        prefix = os.path.join(tmp, "cg.out")
        env = dict(os.environ, FASTCB_CALLGRIND_MARKERS=lib)
        if "--batch" in sys.argv[1:]:
            env["FASTCB_CALLGRIND_BATCH"] = "1"
        cache = "--cache" in sys.argv[1:]
        sim = ["--cache-sim=yes", "--branch-sim=yes", f"--LL={l2_cache()}"] if cache else []
        run = subprocess.run(["valgrind", "--tool=callgrind", "--instr-atstart=no", *sim,
                              f"--callgrind-out-file={prefix}", sys.executable, os.path.abspath(__file__)],
                             env=env, capture_output=True, text=True)
        if run.returncode:
            print(run.stdout[-2000:], run.stderr[-4000:])
            return run.returncode
        events = {}
        report(read_dumps(prefix, events))
        if cache:
            report_cache(events)
    return 0


if __name__ == "__main__":
    sys.exit(main())
