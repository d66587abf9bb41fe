"""`WeightedMean`: exact to float64 rounding, mergeable, stateful."""

import copy
import math
import pickle
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fastcb import WeightedMean

# Products stay above ~1e-291, where a product's rounding error is itself a float (it can't be
# below that: subnormal products lose their low bits, see `WeightedMean`).
finite = st.floats(-1e100, 1e100, allow_nan=False).filter(lambda v: v == 0 or abs(v) > 1e-100)
weights = st.floats(0.0, 1e3).filter(lambda w: w == 0 or w > 1e-100)


def exact_sums(values, ws):
    """The oracle: the exact sums in rationals, each rounded once to a float."""
    total = sum(Fraction(v) * Fraction(w) for v, w in zip(values, ws))
    return float(total), float(sum(map(Fraction, ws)))


@given(st.lists(st.tuples(finite, weights), min_size=1, max_size=100))
def test_sums_are_exact(pairs):
    values, ws = zip(*pairs)
    m = WeightedMean()
    for v, w in pairs:
        m.add(v, w)
    total, total_w = exact_sums(values, ws)
    assert (m.sum, m.total_weight, m.count) == (total, total_w, len(pairs))
    if total_w > 0:
        assert m.mean == total / total_w


def test_a_million_values_with_large_cancellations():
    rng = np.random.default_rng(0)
    big = rng.normal(size=250_000) * 1e12
    values = np.concatenate([big, rng.normal(size=250_000), -big, rng.normal(size=250_000) * 1e-6])
    rng.shuffle(values)
    m = WeightedMean()
    for chunk in np.array_split(values, 1000):
        m.extend(chunk)
    expected = math.fsum(values) / values.size
    assert m.count == 1_000_000
    assert abs(m.mean - expected) <= 1e-15 * abs(expected)
    assert abs(values.sum() / values.size - expected) > 1e-12 * abs(expected), "naive summation would fail"


@given(st.lists(st.tuples(finite, weights), max_size=40), st.integers(0, 40))
def test_merge_equals_one_accumulator(pairs, cut):
    whole, left, right = WeightedMean(), WeightedMean(), WeightedMean()
    for i, (v, w) in enumerate(pairs):
        whole.add(v, w)
        (left if i < cut else right).add(v, w)
    left.merge(right)
    assert (left.sum, left.total_weight, left.count) == (whole.sum, whole.total_weight, whole.count)


def test_extend_equals_add_and_accepts_sequences():
    a, b = WeightedMean(), WeightedMean()
    a.extend(np.array([1.0, 2.0, 3.0]), [3, 2, 1])
    for v, w in [(1.0, 3), (2.0, 2), (3.0, 1)]:
        b.add(v, w)
    assert a.state_dict() == b.state_dict()
    assert a.mean == 10 / 6
    a.reset()
    assert a.count == 0 and a.total_weight == 0.0


@pytest.mark.parametrize("copier", [lambda m: pickle.loads(pickle.dumps(m)), copy.deepcopy, copy.copy])
def test_state_round_trips(copier):
    m = WeightedMean()
    m.extend([1e100, 1.0, -1e100], [1.0, 2.0, 1.0])
    c = copier(m)
    assert c.mean == m.mean == 0.5 and c.count == 3
    c.add(1.0)
    assert m.count == 3, "a copy is independent"
    r = WeightedMean()
    r.load_state_dict(m.state_dict())
    assert r.sum == 2.0 and repr(r) == "WeightedMean(mean=0.5, total_weight=4.0, count=3)"
