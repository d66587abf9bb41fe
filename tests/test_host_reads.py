"""`host_floats`: CPU tensors read one by one with `item()` (`_core.cpu_scalars`), everything
else through torch's one `stack`; both give what torch's `.double()` gives, bit for bit."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode

from fastcb import _utils
from fastcb._core import cpu_scalars
from fastcb._utils import host_floats

DTYPES = [torch.float64, torch.float32, torch.float16, torch.bfloat16, torch.int64, torch.int32, torch.int16,
          torch.int8, torch.uint8, torch.bool]


def torch_reference(values):
    """What torch gives: the values stacked and converted by `.double()`."""
    return torch.stack([v.detach().reshape(()) for v in values]).double().numpy()


def same_bits(a, b):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return a.shape == b.shape and all(x.tobytes() == y.tobytes() or (math.isnan(x) and math.isnan(y))
                                      for x, y in zip(a, b))


@pytest.fixture
def fast_calls(monkeypatch):
    """The lists the fast path answered (not None)."""
    calls = []

    def spy(values):
        out = cpu_scalars(values)
        if out is not None:
            calls.append(len(values))
        return out

    monkeypatch.setattr(_utils, "_cpu_scalars", spy)
    return calls


@pytest.mark.parametrize("dtype", DTYPES)
def test_every_real_dtype_reads_as_double_converts_it(dtype, fast_calls):
    raw = [0.0, -0.0, 1.0, -1.5, 0.1, 1 / 3, 65504.0, 70000.5, 1e-7, -2.0**-24, 1e-40, 3e38, 1e300, 2.0**53 + 1,
           -(2.0**62), math.inf, -math.inf, math.nan, 127.0, 255.0, -128.0]
    values = [torch.tensor(x, dtype=torch.float64).to(dtype) for x in raw]
    got = host_floats(values)
    assert fast_calls == [len(values)]
    assert got.dtype == np.float64 and same_bits(got, torch_reference(values))


@given(st.lists(st.floats(allow_nan=True, allow_infinity=True, width=32), min_size=1, max_size=40),
       st.sampled_from([torch.float32, torch.float16, torch.bfloat16, torch.float64]))
def test_any_floats_read_as_torch_reads_them(xs, dtype):
    values = [torch.tensor(x, dtype=torch.float32).to(dtype) for x in xs]
    assert same_bits(host_floats(values), torch_reference(values))
    assert same_bits(cpu_scalars(values), torch_reference(values))


@given(st.lists(st.integers(-(2**63), 2**63 - 1), min_size=1, max_size=20))
def test_int64_rounds_as_the_cast_does(xs):
    values = [torch.tensor(x, dtype=torch.int64) for x in xs]
    assert same_bits(cpu_scalars(values), torch_reference(values))


def test_what_torch_computes_as_views_reads_as_their_values(fast_calls):
    base = torch.tensor([1.5, -2.25, 3.0])
    values = [base[1], base[2:], base[::2][1], torch.tensor(4.0)._neg_view(), torch.tensor([[0.5]]).t(),
              torch.tensor(2.0, requires_grad=True) * 3, torch.tensor(7.0).expand(())]
    got = host_floats(values)
    assert fast_calls == [len(values)]
    assert got.tolist() == [-2.25, 3.0, 3.0, -4.0, 0.5, 6.0, 7.0]


class Wrapped(torch.Tensor):
    """A tensor subclass: it may define `item` and `__torch_function__` as it likes."""


@pytest.mark.parametrize("values, want", [
    ([torch.tensor(1.0), torch.tensor(2.0).as_subclass(Wrapped)], [1.0, 2.0]),  # a subclass among them
    ([torch.tensor(1.0), 2.0], [1.0, 2.0]),  # a number among them
    ([2.0, torch.tensor(1.0)], [2.0, 1.0]),
    ([torch.tensor(1.0), torch.tensor([1.0, 2.0])], ValueError),  # several numbers: torch's path names them
    ([torch.tensor(1.0, dtype=torch.float16), torch.tensor(3.0 + 0.5j)], [1.0, 3.0]),  # complex: torch's real part
    ([torch.tensor(1.0), torch.tensor(2.0, device="meta")], RuntimeError),  # no value to read
], ids=["subclass", "number", "number first", "several", "complex", "meta"])
@pytest.mark.filterwarnings("ignore:Casting complex values to real")
def test_anything_else_takes_torchs_path(values, want, fast_calls):
    assert cpu_scalars(values) is None
    if isinstance(want, type):
        with pytest.raises(want):
            host_floats(values, "losses")
    else:
        got = host_floats(values, "losses")
        assert got.dtype == np.float64 and got.tolist() == want
    assert fast_calls == []


def test_several_numbers_are_still_named():
    with pytest.raises(ValueError, match="losses: expected one number each"):
        host_floats([torch.tensor(1.0), torch.ones(2)], "losses")


class Seen(TorchFunctionMode):
    def __init__(self):
        super().__init__()
        self.names = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        self.names.append(getattr(func, "__name__", str(func)))
        return func(*args, **(kwargs or {}))


class SeenDispatch(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.names = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.names.append(str(func))
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("mode", [Seen, SeenDispatch])
def test_an_active_mode_sees_torchs_one_stack(mode, fast_calls):
    values = [torch.tensor(float(i)) for i in range(5)]
    with mode() as m:
        got = host_floats(values)
    assert fast_calls == []
    assert got.tolist() == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert any("stack" in n for n in m.names) and not any("item" in n or "_local_scalar" in n for n in m.names)


def test_an_empty_list_and_plain_numbers():
    assert host_floats([]).tolist() == [] and host_floats([]).dtype == np.float64
    assert host_floats([1, 2.5, np.float32(0.5)]).tolist() == [1.0, 2.5, 0.5]
    assert cpu_scalars([]).tolist() == []
