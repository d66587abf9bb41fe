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
                 "recorder": rec_call, "scheduler": sched_call}
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


def read_dumps(prefix):
    """{dump name: instructions} from callgrind's numbered output files."""
    out = {}
    folder, base = os.path.split(prefix)
    for name in os.listdir(folder):
        if not re.fullmatch(re.escape(base) + r"\.\d+", name):
            continue
        text = open(os.path.join(folder, name)).read()
        trig = re.search(r"^desc: Trigger: Client Request: (.*)$", text, re.M)
        total = re.search(r"^(?:summary|totals): (\d+)", text, re.M)
        if trig and total:
            out[trig.group(1).strip()] = int(total.group(1))
    return out


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
        run = subprocess.run(["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={prefix}",
                              sys.executable, os.path.abspath(__file__)], env=env, capture_output=True, text=True)
        if run.returncode:
            print(run.stdout[-2000:], run.stderr[-4000:])
            return run.returncode
        report(read_dumps(prefix))
    return 0


if __name__ == "__main__":
    sys.exit(main())
