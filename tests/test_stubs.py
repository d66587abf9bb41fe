"""The hand-written stubs of the compiled module match it (mypy's stubtest)."""

import subprocess
import sys

import pytest

pytest.importorskip("mypy.stubtest")


def test_core_stubs_match_the_compiled_module():
    done = subprocess.run([sys.executable, "-m", "mypy.stubtest", "fastcb._core"], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
