"""`SmoothenValue` against the seed's formula, on numbers and on device tensors."""

import copy
import pickle

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from fastcb import SmoothenValue
from fastcb import reference as ref


@given(beta=st.floats(0.0, 0.999), values=st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=200))
def test_equals_the_python_formula_bit_for_bit(beta, values):
    s = SmoothenValue(beta)
    expected = ref.smoothen(beta, values)
    for v, e in zip(values, expected):
        s.add_value(v)
        assert s.smooth.hex() == e.hex()
    assert s.n == len(values) and s.beta == beta


@given(beta=st.floats(0.0, 0.999), first=st.lists(st.floats(-1e6, 1e6), max_size=50),
       rest=st.lists(st.floats(-1e6, 1e6), max_size=200))
def test_add_values_is_add_value_per_number_bit_for_bit(beta, first, rest):
    one, many = SmoothenValue(beta), SmoothenValue(beta)
    for v in first:
        one.add_value(v)
    many.add_values(first)
    got = many.add_values(rest)
    want = []
    for v in rest:
        one.add_value(v)
        want.append(one.smooth)
    assert [x.hex() for x in got] == [x.hex() for x in want] and got == ref.smoothen(beta, first + rest)[len(first):]
    assert many.state_dict() == one.state_dict()


def test_add_values_adds_all_or_nothing():
    s = SmoothenValue(0.9)
    s.add_values([1.0, 2.0])
    before = s.state_dict()
    for bad in ([3.0, float("nan")], [float("inf")], ["x"]):
        with pytest.raises((ValueError, TypeError)):
            s.add_values(bad)
        assert s.state_dict() == before
    s.add_value(torch.tensor(1.0))
    with pytest.raises(TypeError, match="values: this average holds a tensor"):
        s.add_values([1.0])


def test_tensors_are_smoothed_on_their_device_and_stay_tensors():
    s = SmoothenValue(0.9)
    s.add_value(1.0)
    losses = [torch.tensor(x) for x in (2.0, 3.0, 0.5)]
    for loss in losses:
        s.add_value(loss)
    assert isinstance(s.smooth, torch.Tensor) and s.smooth.device == losses[0].device and s.smooth.dim() == 0
    expected = ref.smoothen(0.9, [1.0, 2.0, 3.0, 0.5])[-1]
    assert s.smooth.item() == pytest.approx(expected, rel=1e-6)
    s.add_value(1.0)  # numbers mix in once a tensor has been seen
    assert isinstance(s.smooth, torch.Tensor) and s.n == 5


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_cuda_tensors_never_sync():
    s = SmoothenValue(0.98)
    torch.cuda.set_sync_debug_mode("error")
    try:
        for _ in range(5):
            s.add_value(torch.rand((), device="cuda"))
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert s.smooth.device.type == "cuda"


@pytest.mark.parametrize("copier", [lambda s: pickle.loads(pickle.dumps(s)), copy.deepcopy])
def test_state_round_trips(copier):
    s = SmoothenValue(0.98)
    for v in (1.0, 2.0, 4.0):
        s.add_value(v)
    c = copier(s)
    assert (c.beta, c.n, c.mov_avg, c.smooth) == (s.beta, s.n, s.mov_avg, s.smooth)
    c.add_value(3.0), s.add_value(3.0)
    assert c.smooth == s.smooth
    r = SmoothenValue(0.5)
    r.load_state_dict(s.state_dict())
    assert r.state_dict() == s.state_dict()
    assert repr(r).startswith("SmoothenValue(beta=0.98, n=4")


def test_tensor_state_round_trips():
    s = SmoothenValue(0.9)
    s.add_value(torch.tensor(2.0))
    c = pickle.loads(pickle.dumps(s))
    assert torch.equal(c.smooth, s.smooth) and c.n == 1


def test_long_runs_stay_bit_identical_once_the_bias_settles():
    values = [((i * 7919) % 1000) / 100 for i in range(3000)]
    s = SmoothenValue(0.9)
    for v in values:
        s.add_value(v)
    assert s.smooth.hex() == ref.smoothen(0.9, values)[-1].hex()
    restored = SmoothenValue(0.9)
    restored.load_state_dict(s.state_dict())
    s.add_value(1.0), restored.add_value(1.0)
    assert restored.smooth.hex() == s.smooth.hex() == ref.smoothen(0.9, values + [1.0])[-1].hex()


def test_tensor_smoothing_matches_the_formula_over_long_runs_and_mixed_dtypes():
    values = [((i * 7919) % 1000) / 100 for i in range(2500)]
    s = SmoothenValue(0.98)
    for v in values:
        s.add_value(torch.tensor(v, dtype=torch.float64))
    assert s.smooth.dtype == torch.float64
    assert s.smooth.item() == pytest.approx(ref.smoothen(0.98, values)[-1], rel=1e-12)
    prev, half = s.mov_avg, torch.tensor(2.1, dtype=torch.float16)
    s.add_value(half)  # lerp refuses mixed dtypes: torch's operators (and promotion) take over
    assert s.n == 2501 and s.smooth.dtype == torch.float64
    torch.testing.assert_close(s.smooth, 0.98 * prev + (1 - 0.98) * half, rtol=1e-15, atol=0)
