"""The annealing functions against the plain-Python formulas: bit for bit on scalars,
elementwise on arrays, and by the same formula on torch tensors."""

import math
import pickle

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import fastcb
from fastcb import reference as ref

SHAPES = {name: (getattr(fastcb, f"annealing_{name}"), getattr(ref, f"annealing_{name}"))
          for name in ("no", "linear", "cos", "exp")}

values = st.floats(-1e6, 1e6, allow_nan=False)
positive = st.floats(1e-8, 1e6)
pcts = st.floats(0.0, 1.0)
degrees = st.one_of(st.floats(0.05, 6.0), st.integers(0, 6).map(float))


def same_bits(a: float, b: float) -> bool:
    return type(a) is float and a.hex() == b.hex()


@given(name=st.sampled_from(["no", "linear", "cos"]), start=values, end=values, pct=pcts)
def test_scalars_equal_the_python_formula_bit_for_bit(name, start, end, pct):
    compiled, python = SHAPES[name]
    assert same_bits(compiled(start, end, pct), float(python(start, end, pct)))


@given(start=positive, end=positive, sign=st.sampled_from([1.0, -1.0]), pct=pcts)
def test_exp_equals_the_python_formula_bit_for_bit(start, end, sign, pct):
    assert same_bits(fastcb.annealing_exp(sign * start, sign * end, pct), ref.annealing_exp(sign * start, sign * end, pct))


@given(start=values, end=values, pct=pcts, degree=degrees)
def test_poly_equals_the_python_formula_bit_for_bit(start, end, pct, degree):
    expected = ref.do_annealing_poly(start, end, pct, degree)
    assert same_bits(fastcb.do_annealing_poly(start, end, pct, degree), expected)
    assert same_bits(fastcb.annealing_poly(degree)(start, end, pct), expected)


@given(start=values, end=values, pct=st.floats(1.0, 3.0), degree=st.integers(0, 5))
def test_integral_poly_degrees_run_past_the_end(start, end, pct, degree):
    assert same_bits(fastcb.do_annealing_poly(start, end, pct, degree), float(ref.do_annealing_poly(start, end, pct, float(degree))))


def test_numbers_of_every_kind_give_a_float():
    for args in [(2, 0, 0.5), (np.float32(2), np.int64(0), np.float64(0.5)), (True, 0, 1)]:
        out = fastcb.annealing_linear(*args)
        assert type(out) is float
        assert out == ref.annealing_linear(*(float(a) for a in args))


@pytest.mark.parametrize("name", ["no", "linear", "cos", "exp"])
def test_endpoints(name):
    f, _ = SHAPES[name]
    assert f(2.0, 1e-2, 0.0) == 2.0
    end = f(2.0, 1e-2, 1.0)
    if name == "no":
        assert end == 2.0
    else:
        assert end == pytest.approx(1e-2, rel=1e-15)
    assert fastcb.annealing_poly(0.8)(2.0, 1e-2, 1.0) == 1e-2


@given(
    name=st.sampled_from(["no", "linear", "cos"]),
    start=values,
    end=values,
    pcts=st.lists(pcts, min_size=0, max_size=50),
)
def test_pct_arrays_equal_scalar_results(name, start, end, pcts):
    compiled, _ = SHAPES[name]
    out = compiled(start, end, np.array(pcts))
    assert isinstance(out, np.ndarray) and out.dtype == np.float64 and out.shape == (len(pcts),)
    assert [v.hex() for v in out.tolist()] == [compiled(start, end, p).hex() for p in pcts]


@given(starts=st.lists(positive, min_size=1, max_size=8), pct=pcts, degree=degrees)
def test_per_group_arrays_equal_scalar_results(starts, pct, degree):
    start = np.array(starts)
    for f in [fastcb.annealing_cos, fastcb.annealing_linear, fastcb.annealing_exp, fastcb.annealing_poly(degree)]:
        out = f(start, start / 25, pct)
        assert out.tolist() == [f(s, s / 25, pct) for s in starts]


def test_long_arrays_use_every_core_and_equal_scalars():
    pct = np.linspace(0, 1, 200_001)
    out = fastcb.annealing_cos(np.float64(2.0), 0.1, pct)
    idx = np.arange(0, pct.size, 997)
    assert out[idx].tolist() == [fastcb.annealing_cos(2.0, 0.1, float(p)) for p in pct[idx]]


def test_arrays_broadcast_like_numpy_and_accept_lists_and_ints():
    start = np.array([[1.0], [2.0]])
    out = fastcb.annealing_linear(start, [0, 1, 2], 0.5)
    assert out.shape == (2, 3)
    np.testing.assert_array_equal(out, start + 0.5 * (np.array([0.0, 1.0, 2.0]) - start))
    assert fastcb.annealing_linear(np.array([4, 8]), 0, 0.25).tolist() == [3.0, 6.0]


def test_zero_dim_and_empty_arrays():
    assert fastcb.annealing_cos(np.array(1.0), 0.0, 0.5).shape == ()
    assert fastcb.annealing_cos(1.0, 0.0, np.array([])).shape == (0,)


def test_tensors_are_computed_in_python_on_their_device_and_type():
    start = torch.tensor([2.0, 1.0], dtype=torch.float64)
    for compiled, python in SHAPES.values():
        out = compiled(start, start / 10, 0.3)
        assert isinstance(out, torch.Tensor) and out.device == start.device
        torch.testing.assert_close(out, python(start, start / 10, 0.3), rtol=0, atol=0)
    pct = torch.linspace(0, 1, 11, dtype=torch.float64)
    out = fastcb.annealing_cos(1.0, 0.0, pct)
    torch.testing.assert_close(out, 0.5 * (torch.cos(math.pi * pct) + 1), rtol=1e-15, atol=1e-15)
    assert fastcb.annealing_poly(2)(start, 0.0, 0.5).tolist() == [0.5, 0.25]


def test_poly_callable_pickles_and_shows_its_degree():
    f = fastcb.annealing_poly(0.8)
    g = pickle.loads(pickle.dumps(f))
    assert g == f and g.degree == 0.8 and repr(g) == "annealing_poly(0.8)"
    assert g(2, 1e-2, 0.3) == f(2, 1e-2, 0.3)
    assert hash(g) == hash(f) and g != fastcb.annealing_poly(0.9)


def test_builtin_functions_pickle_by_name():
    for f in [fastcb.annealing_no, fastcb.annealing_linear, fastcb.annealing_exp, fastcb.annealing_cos, fastcb.do_annealing_poly]:
        assert pickle.loads(pickle.dumps(f)) is f


def test_exported_from_the_package():
    for name in ["annealing_no", "annealing_linear", "annealing_exp", "annealing_cos", "annealing_poly", "do_annealing_poly"]:
        assert name in fastcb.__all__ and callable(getattr(fastcb, name))
