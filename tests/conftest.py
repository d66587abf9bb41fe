"""Hypothesis profiles: `ci` is derandomized (the same examples every run), `dev` explores.

Select one with the environment variable HYPOTHESIS_PROFILE (default `dev`); `.ci/run`
sets `ci`.
"""

import os
import tempfile

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci", derandomize=True, max_examples=100, deadline=None, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("dev", max_examples=300, deadline=None)
settings.register_profile("thorough", max_examples=5000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))


@pytest.fixture(autouse=True, scope="session")
def _temporary_files_in_pytests_folder(tmp_path_factory):
    """Files made with `tempfile` (torch's `mp.spawn` leaves its `pytorch-errorfile-*.pickle`
    there when a worker fails) go under pytest's temporary folder, in this process and in the
    processes it starts, so no test leaves files behind elsewhere."""
    folder = tmp_path_factory.mktemp("tempfiles")
    old_dir, old_env = tempfile.tempdir, os.environ.get("TMPDIR")
    tempfile.tempdir = str(folder)
    os.environ["TMPDIR"] = str(folder)
    yield
    tempfile.tempdir = old_dir
    if old_env is None:
        os.environ.pop("TMPDIR", None)
    else:
        os.environ["TMPDIR"] = old_env
