"""`benches/gpu_check.py` works on a fresh machine: without CUDA it says so and exits 0; its `--smoke`
mode (tiny sizes, CPU) runs every section that doesn't need CUDA, without fastprogress or matplotlib."""

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "benches" / "gpu_check.py"

# what a `pip install --no-deps` of the wheel lacks: fastprogress and matplotlib can't be imported
BLOCKED = ("import runpy, sys; sys.modules.update(fastprogress=None, matplotlib=None); "
           "sys.argv = [{script!r}, *sys.argv[1:]]; runpy.run_path({script!r}, run_name='__main__')")


def run(*args, env=None):
    code = BLOCKED.format(script=str(SCRIPT))
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=400,
                          env=env)


def test_without_cuda_it_says_so_and_exits_cleanly():
    import os

    res = run(env={**os.environ, "CUDA_VISIBLE_DEVICES": ""})
    assert res.returncode == 0, res.stderr
    assert "no CUDA device here" in res.stdout and res.stderr == ""


def test_smoke_mode_runs_every_cpu_section_and_passes(tmp_path):
    import json

    res = run("--smoke", "--out", str(tmp_path / "out.json"))
    assert res.returncode == 0, res.stdout + res.stderr
    out = res.stdout
    for title in ("== 1. Host syncs", "== 2. Per-step time", "== 3. Decoupled weight decay", "== 4. Tensor learning",
                  "== 5. A whole training step with a DeviceSchedule", "== 6. FSDP2"):
        assert title in out
    assert "crashed" not in out and "[FAIL]" not in out
    assert "8/8 checks passed" in out
    report = json.loads((tmp_path / "out.json").read_text())
    assert len(report["checks"]) == 8 and all(c["passed"] for c in report["checks"]) and not report["crashed"]
    assert "ResNet-50 parameter list: 20 tensors" in out


def test_the_resnet50_parameter_list_has_torchvisions_shapes():
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        from gpu_check import resnet50_shapes
    finally:
        sys.path.remove(str(SCRIPT.parent))
    shapes = resnet50_shapes()
    numel = [1 for _ in shapes]
    for i, s in enumerate(shapes):
        for d in s:
            numel[i] *= d
    assert (len(shapes), sum(numel)) == (161, 25_557_032)  # torchvision.models.resnet50()
