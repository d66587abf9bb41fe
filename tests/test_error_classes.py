"""Every public entry point of the compiled core, given bad input, raises a class of
`fastcb.errors` that is also the built-in it refines, with a message naming the argument;
no raw PyO3 error (a bare TypeError from extraction, OverflowError, KeyError) reaches a user."""

import pickle

import numpy as np
import pytest

import fastcb as fc
from fastcb import errors
from fastcb.errors import (
    ArgumentError,
    ArgumentTypeError,
    EmptyAccumulatorError,
    FastcbError,
    ReentrantCallError,
    ScheduleError,
    ShapeError,
    StateError,
)
from fastcb.schedules import SchedLin, Schedule, combine_scheds

BIG = 2**70


def empty_mean():
    return fc.WeightedMean().mean


def stepped(**state):
    s = fc.Stepper((1.0, 0.0), 10)
    s.load_state_dict({**s.state_dict(), **state})


def merged(other):
    fc.WeightedMean().merge(other)


def reentrant():
    box = {}
    box["s"] = fc.Stepper((1.0, 0.0), 10, lambda a, b, p: box["s"].step())
    box["s"].step()


# (call, class, built-in base, start of the message)
CASES = [
    # annealing functions
    (lambda: fc.annealing_cos(1.0, 0.0, float("nan")), ArgumentError, ValueError, "pct: expected a finite number"),
    (lambda: fc.annealing_linear("1", 0.0, 0.5), ArgumentTypeError, TypeError, "start: "),
    (lambda: fc.annealing_no(1.0, object(), 0.5), ArgumentTypeError, TypeError, "end: "),
    (lambda: fc.annealing_linear(10**400, 0.0, 0.5), ArgumentError, ValueError, "start: expected a number within"),
    (lambda: fc.annealing_exp(0.0, 1.0, 0.5), ArgumentError, ValueError, "start: "),
    (lambda: fc.annealing_exp(1e300, 1e-300, -5.0), ArgumentError, ValueError, ""),
    (lambda: fc.annealing_cos(np.ones(2), np.ones(3), 0.5), ShapeError, ValueError, ""),
    (lambda: fc.do_annealing_poly(1.0, 0.0, 0.5, "2"), ArgumentTypeError, TypeError, "degree: "),
    (lambda: fc.annealing_poly(float("inf")), ArgumentError, ValueError, "degree: "),
    (lambda: fc.AnnealPoly(None), ArgumentTypeError, TypeError, "degree: "),
    # fc.Stepper
    (lambda: fc.Stepper((1.0, 0.0), -1.5), ArgumentTypeError, TypeError, "n_iter: "),
    (lambda: fc.Stepper((1.0, 0.0), BIG), ArgumentError, ValueError, "n_iter: expected an integer below 2**64"),
    (lambda: fc.Stepper((1.0, 0.0, 2.0), 10), ArgumentError, ValueError, "vals: "),
    (lambda: fc.Stepper((1.0, 0.0), 10, func=3), ArgumentTypeError, TypeError, "func: expected a callable"),
    (lambda: fc.Stepper((np.ones(2), np.ones(3)), 10), ShapeError, ValueError, "vals: "),
    (lambda: fc.Stepper((1.0, 0.0), 10).peek(-1), ArgumentError, ValueError, "k: "),
    (lambda: fc.Stepper((1.0, 0.0), 10).peek("3"), ArgumentTypeError, TypeError, "k: "),
    (lambda: setattr(fc.Stepper((1.0, 0.0), 10), "n", BIG), ArgumentError, ValueError, "n: "),
    (lambda: fc.Stepper((1.0, 0.0), 10).load_state_dict([1]), ArgumentTypeError, TypeError, "state: expected a dict"),
    (lambda: stepped(n=-1), StateError, ValueError, "state: n: "),
    (lambda: stepped(n=BIG), StateError, ValueError, "state: n: "),
    (lambda: fc.Stepper((1.0, 0.0), 10).load_state_dict({}), StateError, ValueError, "state: missing key"),
    (reentrant, ReentrantCallError, RuntimeError, "Stepper: used again"),
    # fc.SmoothenValue
    (lambda: fc.SmoothenValue(1.0), ArgumentError, ValueError, "beta: "),
    (lambda: fc.SmoothenValue("0.9"), ArgumentTypeError, TypeError, "beta: "),
    (lambda: fc.SmoothenValue(0.9).add_value(float("inf")), ArgumentError, ValueError, "value: "),
    (lambda: fc.SmoothenValue(0.9).add_value("1"), ArgumentTypeError, TypeError, "value: "),
    (lambda: fc.SmoothenValue(0.9).load_state_dict(None), ArgumentTypeError, TypeError, "state: "),
    (lambda: fc.SmoothenValue(0.9).load_state_dict({"beta": 2.0, "n": 0, "mov_avg": 0.0, "smooth": 0.0}),
     StateError, ValueError, "state: "),
    # fc.WeightedMean
    (empty_mean, EmptyAccumulatorError, ValueError, ""),
    (lambda: fc.WeightedMean().add(1.0, -1.0), ArgumentError, ValueError, "weight: "),
    (lambda: fc.WeightedMean().add("x"), ArgumentTypeError, TypeError, "value: "),
    (lambda: fc.WeightedMean().add(1.0, 10**400), ArgumentError, ValueError, "weight: expected a number within"),
    (lambda: fc.WeightedMean().extend([1.0, 2.0], [1.0]), ShapeError, ValueError, "weights: "),
    (lambda: fc.WeightedMean().extend(["a"]), ArgumentTypeError, TypeError, "values: "),
    (lambda: merged([1.0]), ArgumentTypeError, TypeError, "other: expected a WeightedMean"),
    (lambda: fc.WeightedMean().load_state_dict({"sum": [], "total_weight": [], "count": -1}), StateError, ValueError,
     "state: "),
    (lambda: fc.WeightedMean().load_state_dict({"sum": []}), StateError, ValueError, "state: missing key"),
    # Schedule
    (lambda: Schedule.anneal("cosine", 1.0, 0.0), ScheduleError, ValueError, "shape: "),
    (lambda: Schedule.anneal(3, 1.0, 0.0), ArgumentTypeError, TypeError, "shape: expected a str"),
    (lambda: Schedule.anneal("poly", 1.0, 0.0), ScheduleError, ValueError, "degree: "),
    (lambda: Schedule.anneal("exp", 0.0, 1.0), ScheduleError, ValueError, "start: "),
    (lambda: Schedule.anneal("cos", "1", 0.0), ArgumentTypeError, TypeError, "start: "),
    (lambda: Schedule.constant(float("nan")), ScheduleError, ValueError, "value: "),
    (lambda: Schedule.power(0.0, 1.0, float("inf")), ScheduleError, ValueError, "power: "),
    (lambda: Schedule.join([0.0, 0.0], [Schedule.constant(1.0)]), ScheduleError, ValueError, "edges: "),
    (lambda: Schedule.join([0.0, 1.0], [1.0]), ArgumentTypeError, TypeError, "scheds: "),
    (lambda: Schedule.combine([0.5, 0.4], [Schedule.constant(1.0)] * 2), ScheduleError, ValueError, "pcts: "),
    (lambda: Schedule.restarts(0.0, Schedule.constant(1.0)), ScheduleError, ValueError, "period: "),
    (lambda: Schedule.restarts(1.0, "cos"), ArgumentTypeError, TypeError, "inner: expected a Schedule"),
    (lambda: Schedule.warmup_decay(0.2, 0.0, 1.0, 0.0, up="up"), ScheduleError, ValueError, "up: "),
    (lambda: Schedule.warmup_decay(0.2, 0.0, 1.0, 0.0, down=1), ArgumentTypeError, TypeError, "down: "),
    (lambda: Schedule.one_cycle(1.0, pct_start=1.5), ScheduleError, ValueError, "pct_start: "),
    (lambda: Schedule.wsd(0.5, 0.6, 0.0, 1.0, 0.0), ScheduleError, ValueError, "decay: "),
    (lambda: Schedule.sgdr(1.0, 0.0, 1.0, mult=0.5), ScheduleError, ValueError, "mult: "),
    (lambda: Schedule.from_spec(("bogus",)), ScheduleError, ValueError, "spec: "),
    (lambda: Schedule.constant(1.0)(float("nan")), ScheduleError, ValueError, "pos: "),
    (lambda: Schedule.constant(1.0)("x"), ArgumentTypeError, TypeError, "pos: "),
    (lambda: Schedule.constant(1.0).sample(-1), ArgumentError, ValueError, "n: "),
    # the Python schedule builders
    (lambda: SchedLin(np.ones(2), np.ones(3)), ShapeError, ValueError, "per-group values: "),
    (lambda: combine_scheds([0.5, 0.5], [SchedLin([1.0, 2.0], 0.0), SchedLin([1.0, 2.0, 3.0], 0.0)]),
     ShapeError, ValueError, "scheds: "),
]


@pytest.mark.parametrize("call, cls, builtin, message", CASES,
                         ids=[f"{i}-{c[1].__name__}" for i, c in enumerate(CASES)])
def test_bad_input_raises_the_fastcb_class_that_is_also_the_builtin(call, cls, builtin, message):
    with pytest.raises(cls) as info:
        call()
    assert type(info.value) is cls, f"{type(info.value).__name__}: {info.value}"
    assert isinstance(info.value, builtin) and isinstance(info.value, FastcbError)
    assert str(info.value).startswith(message), str(info.value)
    assert "must " not in str(info.value), "one message style: '<argument>: expected <what>, got <value>'"


def test_every_error_class_is_a_fastcb_error_and_a_builtin():
    builtins = {"FastcbError": Exception, "ArgumentError": ValueError, "ArgumentTypeError": TypeError,
                "ScheduleError": ValueError, "ShapeError": ValueError, "EmptyAccumulatorError": ValueError,
                "ReentrantCallError": RuntimeError, "StateError": ValueError, "CheckpointError": ValueError,
                "CheckpointWriteError": OSError, "UnknownStateKeyError": KeyError, "RankStalledError": RuntimeError}
    for name in errors.__all__:
        cls = getattr(errors, name)
        if issubclass(cls, Warning):
            continue
        assert issubclass(cls, FastcbError) and issubclass(cls, builtins[name]), name
    assert set(builtins) <= set(errors.__all__)


def test_errors_pickle_with_their_class_and_message():
    # worker processes send exceptions back pickled
    try:
        Schedule.one_cycle(1.0, pct_start=1.5)
    except ScheduleError as e:
        back = pickle.loads(pickle.dumps(e))
    assert type(back) is ScheduleError and str(back).startswith("pct_start: ")


def test_a_refused_state_keeps_the_failed_check_as_its_cause():
    with pytest.raises(StateError) as info:
        stepped(n=-1)
    assert isinstance(info.value.__cause__, ArgumentError)
