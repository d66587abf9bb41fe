"""No abort, ever: under a memory limit, each compiled entry point that allocates refuses a
result too large for memory with a ValueError naming the argument; the process lives on.

Each case runs in a child process that loads only NumPy and the compiled module, lowers its
address-space limit (`RLIMIT_AS`) to what it uses plus `headroom`, then makes the call.
"""

import importlib.util
import os
import subprocess
import sys
import textwrap

import pytest

resource = pytest.importorskip("resource")

MB = 1 << 20
CORE = os.path.join(os.path.dirname(importlib.util.find_spec("fastcb").origin), "_core.abi3.so")

PRELUDE = """
import importlib.util, resource, sys
import numpy as np
spec = importlib.util.spec_from_file_location("fastcb._core", sys.argv[1])
core = importlib.util.module_from_spec(spec)
spec.loader.exec_module(core)
core.annealing_cos(np.zeros(1 << 16), 0.0, 0.5)  # start the thread pool before the limit

def vm_size():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:"))

def limit(headroom):
    size = vm_size() + headroom
    resource.setrlimit(resource.RLIMIT_AS, (size, size))

def lazy(n):
    '''n ones that take no memory: a non-contiguous (stride 0) float64 array.'''
    return np.broadcast_to(np.ones(1), (n,))
"""

# (name, setup, headroom, call, expected start of the error message or "ok: ...").
CASES = [
    ("annealing functions, broadcast arrays", "big = (np.ones((1 << 15, 1)), np.ones((1, 1 << 15)))", 256 * MB,
     "for f in [core.annealing_no, core.annealing_linear, core.annealing_exp, core.annealing_cos,\n"
     "          core.annealing_poly(2)]:\n"
     "    try:\n"
     "        f(*big, 0.5)\n"
     "    except ValueError as e:\n"
     "        assert str(e).startswith('pct: asks for'), e\n"
     "core.do_annealing_poly(*big, 0.5, 2.0)", "pct: asks for 1073741824 values"),
    ("Stepper from a huge non-contiguous array", "", 256 * MB,
     "core.Stepper((lazy(1 << 28), 0.0), 10, core.annealing_cos)", "vals: asks for"),
    ("Stepper from a huge broadcast", "", 256 * MB,
     "core.Stepper((np.ones((1 << 14, 1)), np.ones((1, 1 << 14))), 10, core.annealing_cos)", "vals: asks for"),
    ("Stepper.step over a large array", "s = core.Stepper((lazy(1 << 23), 0.0), 10, core.annealing_cos)", 24 * MB,
     "s.step()", "vals: asks for"),
    ("Stepper.peek, compiled", "s = core.Stepper((1.0, 0.0), 10, core.annealing_cos)", 256 * MB,
     "s.peek(1 << 28)", "k: asks for 268435456 values"),
    ("Stepper.peek, Python callable", "s = core.Stepper((1.0, 0.0), 10, lambda a, b, p: a + p * (b - a))", 256 * MB,
     "s.peek(1 << 28)", "k: asks for 268435456 values"),
    ("WeightedMean.extend, non-contiguous (read in place)", "m = core.WeightedMean()", 64 * MB,
     "m.extend(lazy(1 << 24), lazy(1 << 24)); assert m.count == 1 << 24; print('ok: added', m.count)",
     "ok: added 16777216"),
    ("WeightedMean.extend, strided", "m = core.WeightedMean(); a = np.ones(1 << 24)[::2]", 32 * MB,
     "m.extend(a); print('ok:', m.mean)", "ok: 1.0"),
    ("WeightedMean.load_state_dict, huge partials",
     "import fastcb.errors\nm = core.WeightedMean(); p = [0.0] * (1 << 24)", 64 * MB,
     "m.load_state_dict({'sum': p, 'total_weight': [1.0], 'count': 1})", "state: sum has 16777216 partials"),
    ("Schedule on a non-contiguous array", "s = core.Schedule.anneal('cos', 1.0, 0.0)", 256 * MB,
     "s(lazy(1 << 28))", "pos: asks for 268435456 values"),
    ("Schedule on a contiguous array", "s = core.Schedule.anneal('cos', 1.0, 0.0); a = np.zeros(1 << 23)", 24 * MB,
     "s(a)", "pos: asks for 8388608 values"),
    ("Schedule.sample", "s = core.Schedule.anneal('cos', 1.0, 0.0)", 256 * MB,
     "s.sample(1 << 28)", "n: asks for 268435456 values"),
    ("Schedule.join with huge edges", "parts = [core.Schedule.constant(1.0)]", 256 * MB,
     "core.Schedule.join(lazy(1 << 28), parts)", "edges: asks for 268435456 values"),
]


def run_case(setup, headroom, call):
    body = f"{setup}\nlimit({headroom})\ntry:\n{textwrap.indent(call, '    ')}\n" \
           "except (ValueError, MemoryError) as e:\n    print(type(e).__name__ + ':', e)\n"
    return subprocess.run([sys.executable, "-c", PRELUDE + body, CORE], capture_output=True, text=True,
                          timeout=120)


@pytest.mark.parametrize("name, setup, headroom, call, expected", CASES, ids=[c[0] for c in CASES])
def test_too_large_is_an_error_not_an_abort(name, setup, headroom, call, expected):
    proc = run_case(setup, headroom, call)
    assert proc.returncode == 0, f"{name}: exit {proc.returncode}\n{proc.stderr[-2000:]}"
    out = proc.stdout.strip()
    if expected.startswith("ok:"):
        assert out == expected, out
    else:
        assert out.startswith(tuple(f"{cls}: {expected}" for cls in ("ArgumentError", "StateError"))), out


def test_long_arrays_without_threads_run_on_the_calling_thread():
    """Under a limit too tight for the thread pool's stacks, long arrays are still computed
    (on the calling thread), not a PanicException from the pool."""
    prelude = PRELUDE.replace("core.annealing_cos(np.zeros(1 << 16), 0.0, 0.5)", "")
    body = ("a = np.linspace(0, 1, 1 << 16)\nlimit(4 << 20)\n"
            "out = core.annealing_cos(1.0, 0.0, a)\nprint('ok:', out[0], out[-1])\ndel out\n"
            "print('ok:', core.Schedule.anneal('cos', 1.0, 0.0)(a)[-1])\n")
    proc = subprocess.run([sys.executable, "-c", prelude + body, CORE], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "Panic" not in proc.stderr, proc.stderr[-2000:]
    assert proc.stdout.split("\n")[:2] == ["ok: 1.0 0.0", "ok: 0.0"], proc.stdout


def test_the_limit_is_real():
    """The same child without the fix's checks would die: a plain NumPy allocation beyond the
    limit is refused there, so the limit is in force."""
    proc = run_case("", 64 * MB, "np.ones(1 << 26)")
    assert proc.returncode == 0 and proc.stdout.startswith("MemoryError"), proc.stdout + proc.stderr
