"""Composable schedules (fastcb.schedules) against plain-Python formulas."""

import copy
import math
import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastcb.schedules as S


def cos(start, end, pct):
    return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)


def close_to_cos(value, expected, start, end):
    """Schedules use a SIMD cos(pi*x) within ~1 ulp of the true value, and libm's cos(pi*x)
    is off by up to |pi*x| ulp from rounding pi*x: the difference scales with |start|+|end|."""
    return abs(value - expected) <= 4 * 2.0**-52 * (abs(start) + abs(end))


def ref_combined(pcts, parts, pos):
    """fastai's combine_scheds, with a boundary position going to the earlier part."""
    edges = [0.0]
    for p in pcts[:-1]:
        edges.append(edges[-1] + p)
    edges.append(1.0)
    i = next((i for i in range(len(parts) - 1) if pos <= edges[i + 1]), len(parts) - 1)
    return parts[i]((pos - edges[i]) / (edges[i + 1] - edges[i]))


pcts01 = st.floats(0.0, 1.0)


@settings(max_examples=50)
@given(start=st.floats(-10, 10), end=st.floats(-10, 10), pos=pcts01)
def test_shapes_are_the_formulas(start, end, pos):
    assert S.SchedLin(start, end)(pos) == start + pos * (end - start)
    assert close_to_cos(S.SchedCos(start, end)(pos), cos(start, end, pos), start, end)
    assert S.SchedNo(start, end)(pos) == start
    assert S.SchedPoly(start, end, 2.0)(pos) == end + (start - end) * (1 - pos) ** 2.0
    if start > 1e-290 and end > 1e-290:  # below, end / start overflows: the schedule refuses it
        assert S.SchedExp(start, end)(pos) == start * (end / start) ** pos


@settings(max_examples=50)
@given(pct=st.floats(0.05, 0.95), lr_max=st.floats(1e-4, 10), pos=pcts01)
def test_one_cycle_is_fastai(pct, lr_max, pos):
    s = S.one_cycle(lr_max, pct, 25.0)
    parts = [lambda p: cos(lr_max / 25.0, lr_max, p), lambda p: cos(lr_max, lr_max / 25e4, p)]
    assert close_to_cos(s(pos), ref_combined([pct, 1 - pct], parts, pos), lr_max, lr_max)


def test_combine_and_join():
    s = S.combine_scheds([0.25, 0.25, 0.5], [S.SchedLin(0, 1), S.SchedNo(1), S.SchedCos(1, 0)])
    assert s(0.125) == 0.5 and s(0.4) == 1 and s(1.0) == 0.0
    j = S.join_scheds([0, 100, 1000], [S.SchedLin(0, 1), S.SchedCos(1, 0)])
    assert j(50) == 0.5 and j(550) == cos(1, 0, 0.5)
    assert S.combined_cos(0.3, 0.1, 1.0, 0.0)(0.3) == 1.0


def test_warmup_decay_wsd_sgdr():
    w = S.warmup_decay(0.1, 0.0, 1.0, 0.0)
    assert w(0.05) == 0.5 and w(0.1) == 1.0 and w(1.0) == cos(1, 0, 1.0)
    d = S.wsd(0.1, 0.2, peak=2.0, end=0.2)
    assert d(0.05) == 1.0 and d(0.5) == 2.0 and math.isclose(d(1.0), 0.2)
    r = S.sgdr(1.0, 0.0, 10, mult=2)
    assert r(0) == r(10) == r(30) == r(70) == 1.0
    assert r(5) == cos(1, 0, 0.5) and r(20) == cos(1, 0, 0.5)


def test_arrays_equal_scalars_and_sample():
    s = S.one_cycle(0.5, 0.25)
    pos = np.linspace(0, 1, 100_001)
    out = s(pos)
    assert out.shape == pos.shape
    assert all(out[i] == s(float(pos[i])) for i in range(0, pos.size, 997))
    n = 70_000
    sample = s.sample(n)
    assert sample.shape == (n,) and sample[12345] == s(12345 / n)
    square = pos[:100_000].reshape(1000, 100)
    grid = s(square[:, ::2])  # non-contiguous, 2-D
    assert grid.shape == (1000, 50) and grid[3, 4] == s(float(square[3, 8]))
    assert s([0.0, 1.0]).tolist() == [s(0.0), s(1.0)]


def test_pickle_copy_equality_repr():
    s = S.combine_scheds([0.5, 0.5], [S.SchedPoly(1, 0, 0.5), S.sgdr(1, 0, 0.1)])
    assert pickle.loads(pickle.dumps(s)) == s
    assert copy.deepcopy(s) == s
    assert S.Schedule.from_spec(s.spec) == s
    assert "join" in repr(s)


@pytest.mark.parametrize("build,arg", [
    (lambda: S.combine_scheds([0.5, 0.6], [S.SchedLin(0, 1), S.SchedLin(1, 0)]), "pcts"),
    (lambda: S.combine_scheds([0.5], [S.SchedLin(0, 1), S.SchedLin(1, 0)]), "pcts"),
    (lambda: S.join_scheds([0, 5, 5], [S.SchedLin(0, 1), S.SchedLin(1, 0)]), "edges"),
    (lambda: S.one_cycle(1.0, pct_start=1.0), "pct_start"),
    (lambda: S.one_cycle(1.0, div_factor=0.0), "div_factor"),
    (lambda: S.SchedExp(0.0, 1.0), "start"),
    (lambda: S.SchedCos(float("nan"), 1.0), "start"),
    (lambda: S.sgdr(1, 0, period=0), "period"),
    (lambda: S.sgdr(1, 0, period=5, mult=0.5), "mult"),
    (lambda: S.wsd(0.5, 0.6, 1.0), "decay"),
    (lambda: S.warmup_decay(1.5, 0, 1, 0), "warmup"),
    (lambda: S.Schedule.anneal("square", 0, 1), "shape"),
    (lambda: S.SchedCos(1, 0)(float("inf")), "pos"),
    (lambda: S.SchedPoly(1, 0, 0.5)(np.array([0.5, 2.0])), "pct"),
])
def test_bad_input_is_a_value_error_naming_the_argument(build, arg):
    with pytest.raises(ValueError, match=f"^{arg}"):
        build()


def test_bad_types_are_type_errors():
    with pytest.raises(TypeError):
        S.combine_scheds([1.0], [lambda p: p])
    with pytest.raises(TypeError):
        S.SchedCos(1, 0)(object())


def test_an_exponential_schedule_that_overflows_is_an_error_not_an_inf():
    with pytest.raises(ValueError, match="no finite value"):
        S.SchedExp(2.2e-311, 1.0)(1.0)
