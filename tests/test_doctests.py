"""The examples in the public API's docstrings run and print what they show: the annealing
functions, `Stepper`, `SmoothenValue`, `WeightedMean` and `Schedule` (compiled), the schedule
builders, `OptimWrapper`, `Callback`, the error classes, the number validator and the Recorder's
`RecordedFloat`."""

import doctest
import importlib

import numpy as np
import pytest

MODULES = ["fastcb._core", "fastcb.schedules", "fastcb.optim", "fastcb.callback", "fastcb.errors", "fastcb._utils",
           "fastcb.callbacks.recorder"]

#: Names that must carry at least one example.
DOCUMENTED = {
    "fastcb._core": ["annealing_no", "annealing_linear", "annealing_exp", "annealing_cos", "do_annealing_poly",
                     "annealing_poly", "Stepper", "SmoothenValue", "WeightedMean", "Schedule"],
    "fastcb.schedules": ["SchedNo", "SchedLin", "SchedCos", "SchedExp", "SchedPoly", "combine_scheds",
                         "combined_cos", "join_scheds", "warmup_decay", "one_cycle", "sgdr", "wsd",
                         "GroupSchedules"],
    "fastcb.optim": ["OptimWrapper"],
    "fastcb.callback": ["Callback"],
    "fastcb.errors": ["ArgumentError", "ArgumentTypeError", "ScheduleError", "ShapeError", "EmptyAccumulatorError"],
    "fastcb._utils": ["check_number"],
    "fastcb.callbacks.recorder": ["RecordedFloat"],
}


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, extraglobs={"np": np}, optionflags=doctest.NORMALIZE_WHITESPACE,
                             raise_on_error=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples of {name} failed (printed above)"


@pytest.mark.parametrize("name", MODULES)
def test_public_names_have_examples(name):
    module = importlib.import_module(name)
    missing = [n for n in DOCUMENTED[name] if ">>>" not in (getattr(module, n).__doc__ or "")]
    assert not missing, f"{name}: no example in the docstring of {missing}"
