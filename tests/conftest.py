"""Hypothesis profiles: `ci` is derandomized (the same examples every run), `dev` explores.

Select one with the environment variable HYPOTHESIS_PROFILE (default `dev`); `.ci/run`
sets `ci`.
"""

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci", derandomize=True, max_examples=100, deadline=None, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("dev", max_examples=300, deadline=None)
settings.register_profile("thorough", max_examples=5000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))
