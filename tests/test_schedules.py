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
    """fastai v2's combine_scheds: a position at a join goes to the later part."""
    edges = [0.0]
    for p in pcts[:-1]:
        edges.append(edges[-1] + p)
    edges.append(1.0)
    i = next((i for i in range(len(parts) - 1) if pos < edges[i + 1]), len(parts) - 1)
    return parts[i]((pos - edges[i]) / (edges[i + 1] - edges[i]))


pcts01 = st.floats(0.0, 1.0)


@settings(max_examples=50)
@given(start=st.floats(-10, 10), end=st.floats(-10, 10), pos=pcts01)
def test_shapes_are_the_formulas(start, end, pos):
    assert S.SchedLin(start, end)(pos) == start + pos * (end - start)
    assert close_to_cos(S.SchedCos(start, end)(pos), cos(start, end, pos), start, end)
    assert S.SchedNo(start, end)(pos) == start
    assert S.SchedPoly(start, end, 2.0)(pos) == start + (end - start) * pos**2.0  # fastai v2's formula
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
    assert s.spec[2][0] == ("power", 1.0, 0.0, 0.5)
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
    (lambda: S.SchedPoly(1, 0, 0.5)(np.array([0.5, -2.0])), "pct"),
    (lambda: S.Schedule.anneal("poly", 1, 0, 0.5)(np.array([0.5, 2.0])), "pct"),
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


# --- fastai v2's names compute fastai v2's values ----------------------

def v2_cos(start, end, pos):  # fastai v2's sched_cos, as written there
    return start + (1 + math.cos(math.pi * (1 - pos))) * (end - start) / 2


def v2_combine(pcts, scheds, pos):
    """fastai v2's combine_scheds: the last part whose start is at or before `pos`."""
    edges = np.cumsum([0.0] + list(pcts))
    idx = min(max(i for i in range(len(edges)) if pos >= edges[i]), len(edges) - 2)
    return scheds[idx]((pos - edges[idx]) / (edges[idx + 1] - edges[idx]))


@pytest.mark.parametrize("power", [0.5, 1.0, 2.0, 3.0])
def test_sched_poly_is_v2s_formula_and_annealing_poly_stays_v1s(power):
    import fastcb

    for pos in np.linspace(0, 1, 11):
        assert S.SchedPoly(1.0, 0.0, power)(float(pos)) == 1.0 + (0.0 - 1.0) * pos**power
        assert fastcb.annealing_poly(power)(1.0, 0.0, float(pos)) == 0.0 + (1.0 - 0.0) * (1 - pos) ** power
    assert S.SchedPoly(1, 0, 2)(0.5) == 0.75 and fastcb.annealing_poly(2)(1, 0, 0.5) == 0.25


def test_combine_scheds_takes_the_later_part_at_each_join():
    # fit_sgdr's shape: cycles of 1, 2, 4 epochs out of 7, each cosine from lr to 0.
    pcts = [1 / 7, 2 / 7, 4 / 7]
    s = S.combine_scheds(pcts, [S.SchedCos(1.0, 0.0)] * 3)
    edges = np.cumsum([0.0] + pcts)
    for pos in [0.0, *edges[1:-1], 1.0, *np.linspace(0, 1, 29)]:
        expected = v2_combine(pcts, [lambda p: v2_cos(1.0, 0.0, p)] * 3, float(pos))
        assert abs(s(float(pos)) - expected) <= 1e-15, pos
    assert s(float(edges[1])) == 1.0 and s(float(edges[2])) == 1.0, "each restart is at the maximum"
    assert s(1.0) == 0.0
    j = S.join_scheds([0, 10, 20], [S.SchedLin(0, 1), S.SchedLin(5, 6)])
    assert j(10) == 5.0 and j(np.array([9.0, 10.0])).tolist() == [0.9, 5.0]


def test_per_group_arrays_give_per_group_values():
    lrs = np.array([1e-3, 1e-2, 1e-1])
    s = S.SchedCos(lrs, 0)
    assert isinstance(s, S.GroupSchedules) and len(s) == 3
    for pos in [0.0, 0.25, 0.5, 1.0]:
        np.testing.assert_allclose(s(pos), [v2_cos(lr, 0.0, pos) for lr in lrs], rtol=1e-15, atol=1e-18)
    oc = S.combined_cos(0.25, lrs / 25, lrs, lrs / 1e5)  # fastai v2's fit_one_cycle
    for pos in [0.0, 0.1, 0.25, 0.7, 1.0]:
        expected = [v2_combine([0.25, 0.75], [lambda p, lr=lr: v2_cos(lr / 25, lr, p),
                                              lambda p, lr=lr: v2_cos(lr, lr / 1e5, p)], pos) for lr in lrs]
        # fastai's own formula rounds at the ends: compare on the scale of each group's lr
        assert np.all(np.abs(oc(pos) - expected) <= 4 * 2.0**-52 * lrs), pos
    grid = oc(np.linspace(0, 1, 5))
    assert grid.shape == (5, 3) and grid[2, 1] == oc(0.5)[1]
    mixed = S.combine_scheds([0.5, 0.5], [S.SchedLin(lrs, 1.0), S.SchedNo(1.0)])
    assert mixed(0.75).tolist() == [1.0, 1.0, 1.0]
    assert S.one_cycle(lrs)(0.3).tolist() == lrs.tolist()
    assert pickle.loads(pickle.dumps(oc)) == oc
    with pytest.raises(ValueError, match="per-group"):
        S.SchedLin(np.ones(2), np.ones(3))
    with pytest.raises(ValueError, match="scheds"):
        S.combine_scheds([0.5, 0.5], [S.SchedLin(np.ones(2), 0), S.SchedLin(np.ones(3), 0)])


def test_one_default_set_per_name():
    for pos in np.linspace(0, 1, 21):
        assert S.one_cycle(2.0)(float(pos)) == S.Schedule.one_cycle(2.0)(float(pos))
    assert S.one_cycle(2.0) == S.Schedule.one_cycle(2.0, 0.3, 25.0, 25e4)


def test_the_benchmarks_numpy_peer_is_the_same_one_cycle():
    from fastcb.bench import numpy_one_cycle

    for n in (1, 7, 100, 1001):
        np.testing.assert_allclose(numpy_one_cycle(n, 1.0, 0.3, 25.0, 25e4),
                                   S.one_cycle(1.0, 0.3, 25.0, 25e4).sample(n), rtol=1e-12, atol=0)
