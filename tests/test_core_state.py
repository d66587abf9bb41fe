"""The compiled objects' states are validated data: a refused state raises an error naming
the key and leaves the object exactly as it was; sums overflow loudly; counts never wrap."""

import math
import pickle

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from fastcb import SmoothenValue, Stepper, WeightedMean, annealing_cos
from fastcb.errors import StateError

BIG = 1.7e308


def snapshot(obj):
    return pickle.dumps(obj.state_dict())


# ---- WeightedMean: overflow raises like math.fsum, never nan/inf ----

def test_overflowing_sum_raises_like_fsum_and_adds_nothing():
    with pytest.raises(OverflowError):
        math.fsum([BIG, BIG])
    m = WeightedMean()
    m.add(BIG)
    with pytest.raises(ValueError, match="^value: the weighted sum overflows float64"):
        m.add(BIG)
    assert (m.sum, m.count, m.mean) == (BIG, 1, BIG)
    m.add(-BIG)
    assert (m.sum, m.count) == (0.0, 2), "large values that cancel stay exact"


def test_overflowing_total_weight_raises():
    m = WeightedMean()
    m.add(1.0, BIG)
    with pytest.raises(ValueError, match="^weight: the total weight overflows"):
        m.add(0.0, BIG)
    assert m.total_weight == BIG and m.count == 1


def test_extend_and_merge_that_overflow_change_nothing():
    m = WeightedMean()
    m.add(BIG)
    before = snapshot(m)
    with pytest.raises(ValueError, match="overflows"):
        m.extend([1.0, BIG])
    with pytest.raises(ValueError, match="overflows"):
        m.extend(np.full(4, BIG)[::2])
    other = WeightedMean()
    other.add(BIG)
    with pytest.raises(ValueError, match="overflows"):
        m.merge(other)
    assert snapshot(m) == before
    assert math.isfinite(m.mean)


@given(st.lists(st.floats(-BIG, BIG), min_size=1, max_size=20))
def test_sum_is_fsum_or_an_error(values):
    m = WeightedMean()
    try:
        expected = math.fsum(values)
    except OverflowError:
        expected = None
    try:
        m.extend(values)
    except ValueError as e:
        assert "overflows" in str(e) and m.count == 0
        return
    if expected is not None:  # fsum may refuse an intermediate overflow the exact sum avoids
        assert m.sum == expected
    assert math.isfinite(m.sum)


# ---- WeightedMean: load_state_dict validates, then swaps ----

GOOD_MEAN = {"sum": [3.0], "total_weight": [2.0], "count": 2}


@pytest.mark.parametrize("key, bad, error, message", [
    ("sum", [math.nan], ValueError, "state: sum: expected a finite number"),
    ("sum", [BIG, BIG], ValueError, "state: sum: the weighted sum overflows"),
    ("total_weight", [-1.0], ValueError, "state: total_weight: expected a non-negative number"),
    ("total_weight", [math.inf], ValueError, "state: total_weight: expected a finite number"),
    ("sum", "abc", TypeError, "state: sum: expected a list of floats"),
    ("sum", ["x"], TypeError, "state: sum: expected a real number, got str"),
    ("sum", [0.0] * 5000, ValueError, "state: sum has 5000 partials"),
    ("count", -1, ValueError, "state: count: expected a non-negative integer"),
    ("count", 2**64, ValueError, "state: count: expected an integer below 2\\*\\*64"),
    ("count", 1.5, TypeError, "state: count: expected an integer, got float"),
])
def test_weighted_mean_refuses_bad_states_and_keeps_its_own(key, bad, error, message):
    m = WeightedMean()
    m.add(1.0, 2.0)
    before = snapshot(m)
    assert issubclass(error, (ValueError, TypeError))
    with pytest.raises(StateError, match=f"^{message}"):
        m.load_state_dict({**GOOD_MEAN, key: bad})
    with pytest.raises(StateError, match=f"^{message}"):
        m.__setstate__({**GOOD_MEAN, key: bad})
    assert snapshot(m) == before and m.mean == 1.0
    m.load_state_dict(GOOD_MEAN)
    assert m.mean == 1.5


def test_restored_partials_are_renormalized():
    m = WeightedMean()
    m.load_state_dict({"sum": [1.0, 1e100, 1.0, -1e100], "total_weight": [2.0], "count": 2})
    assert m.sum == 2.0 and m.mean == 1.0


# ---- SmoothenValue ----

GOOD_SMOOTH = {"beta": 0.9, "n": 3, "mov_avg": 0.5, "smooth": 0.7}


@pytest.mark.parametrize("key, bad, error, message", [
    ("mov_avg", math.nan, ValueError, "state: mov_avg: expected a finite number"),
    ("smooth", math.inf, ValueError, "state: smooth: expected a finite number"),
    ("smooth", "abc", TypeError, "state: smooth: expected a number or a torch tensor, got str"),
    ("smooth", torch.tensor([1.0, math.nan]), ValueError, "state: smooth: expected a finite number, got a tensor"),
    ("beta", 1.0, ValueError, "state: beta: expected a number in \\[0, 1\\)"),
    ("beta", "x", TypeError, "state: beta: expected a real number, got str"),
    ("n", -4, ValueError, "state: n: expected a non-negative integer, got -4"),
    ("n", 2**64, ValueError, "state: n: expected an integer below 2\\*\\*64"),
])
def test_smoothen_value_refuses_bad_states_and_keeps_its_own(key, bad, error, message):
    s = SmoothenValue(0.5)
    s.add_value(2.0)
    before = s.state_dict()
    with pytest.raises(StateError, match=f"^{message}") as e:
        s.load_state_dict({**GOOD_SMOOTH, key: bad})
    assert isinstance(e.value.__cause__, error), "the failed check is the cause"
    with pytest.raises(StateError, match=f"^{message}"):
        s.__setstate__({**GOOD_SMOOTH, key: bad})
    assert s.state_dict() == before
    s.add_value(2.0)
    assert s.smooth == pytest.approx(2.0), "the object still works"
    s.load_state_dict(GOOD_SMOOTH)
    assert (s.beta, s.n, s.smooth) == (0.9, 3, 0.7)


def test_smoothen_value_n_does_not_wrap():
    s = SmoothenValue(0.5)
    s.load_state_dict({**GOOD_SMOOTH, "n": 2**64 - 1})
    with pytest.raises(ValueError, match="^n: cannot count past 2\\*\\*64 - 1"):
        s.add_value(1.0)
    with pytest.raises(ValueError, match="^n: cannot count past"):
        s.add_value(torch.tensor(1.0))
    assert s.n == 2**64 - 1 and s.smooth == 0.7


# ---- Stepper ----

def test_stepper_n_is_checked_and_never_wraps():
    s = Stepper((1.0, 0.0), 10, annealing_cos)
    for bad, message in [(-4, "expected a non-negative integer, got -4"), (2**64, "expected an integer below 2\\*\\*64")]:
        with pytest.raises(ValueError, match=f"^n: {message}"):
            s.n = bad
    with pytest.raises(TypeError, match="^n: expected an integer, got float"):
        s.n = 1.5
    assert s.n == 0
    s.n = 2**64 - 1
    with pytest.raises(ValueError, match="^n: cannot go past 2\\*\\*64 - 1 steps"):
        s.step()
    assert s.n == 2**64 - 1
    py = Stepper((1.0, 0.0), 10, lambda a, b, p: p)
    py.n = 2**64 - 1
    with pytest.raises(ValueError, match="^n: cannot go past"):
        py.step()
    assert py.n == 2**64 - 1


@pytest.mark.parametrize("key, bad, error, message", [
    ("n", -1, ValueError, "state: n: expected a non-negative integer"),
    ("n", 2**64, ValueError, "state: n: expected an integer below"),
    ("n", "3", TypeError, "state: n: expected an integer"),
    ("start", math.nan, ValueError, "state: vals: start: expected a finite number"),
    ("end", "abc", TypeError, "state: vals: expected a number"),
    ("n_iter", 1.5, TypeError, "state: n_iter: expected an integer"),
    ("n_iter", None, TypeError, "state: n_iter: expected an integer"),
])
def test_stepper_refuses_bad_states_and_keeps_its_own(key, bad, error, message):
    s = Stepper((1.0, 0.0), 10, annealing_cos)
    s.step(), s.step()
    before = s.state_dict()
    good = {"start": 2.0, "end": 1.0, "n_iter": 4, "n": 1}
    with pytest.raises(StateError, match=f"^{message}"):
        s.load_state_dict({**good, key: bad})
    assert s.state_dict() == before
    s.load_state_dict(good)
    assert s.step() == annealing_cos(2.0, 1.0, 0.5)
    with pytest.raises(StateError, match="^state: n: expected a non-negative"):
        s.__setstate__(-1)
    with pytest.raises(StateError, match='^state: missing key "n_iter"'):
        s.load_state_dict({"start": 1.0, "end": 0.0, "n": 3})
    assert s.n == 2


def test_n_iter_below_one_counts_as_one_as_in_fastai():
    # fastai v1: `self.n_iter = max(1, n_iter)`; kept, and said in the docstring.
    for n_iter in [0, -5, -10**30]:
        assert Stepper((1.0, 0.0), n_iter).n_iter == 1
    assert "n_iter` below 1 counts as 1" in Stepper.__doc__
