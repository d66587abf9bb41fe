"""`Stepper` against fastai v1's pure-Python stepper, with state, pickling and previews."""

import copy
import pickle

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from fastcb import (
    Scheduler,
    Stepper,
    annealing_cos,
    annealing_exp,
    annealing_linear,
    annealing_no,
    annealing_poly,
)
from fastcb import reference as ref

PYTHON_TWIN = {
    annealing_no: ref.annealing_no,
    annealing_linear: ref.annealing_linear,
    annealing_cos: ref.annealing_cos,
    annealing_exp: ref.annealing_exp,
}


class PyStepper:
    """fastai v1's Stepper, in plain Python: the oracle."""

    def __init__(self, vals, n_iter, func=None):
        self.start, self.end = (vals[0], vals[1]) if isinstance(vals, tuple) else (vals, 0)
        self.n_iter = max(1, n_iter)
        self.func = func or (ref.annealing_linear if isinstance(vals, tuple) else ref.annealing_no)
        self.n = 0

    def step(self):
        self.n += 1
        return self.func(self.start, self.end, self.n / self.n_iter)


funcs = st.sampled_from([annealing_no, annealing_linear, annealing_cos, annealing_exp])
ends = st.floats(1e-6, 10.0)


@given(func=funcs, start=ends, end=ends, n_iter=st.integers(-2, 300))
def test_sequences_equal_fastai_bit_for_bit(func, start, end, n_iter):
    ours, theirs = Stepper((start, end), n_iter, func), PyStepper((start, end), n_iter, PYTHON_TWIN[func])
    assert ours.n_iter == theirs.n_iter
    while not ours.is_done:
        assert ours.step().hex() == float(theirs.step()).hex()
    assert ours.n == theirs.n == theirs.n_iter


@given(degree=st.floats(0.1, 4.0), n_iter=st.integers(1, 100))
def test_poly_sequences(degree, n_iter):
    ours = Stepper((2.0, 0.01), n_iter, annealing_poly(degree))
    theirs = PyStepper((2.0, 0.01), n_iter, lambda s, e, p: ref.do_annealing_poly(s, e, p, degree))
    assert [ours.step() for _ in range(n_iter)] == [theirs.step() for _ in range(n_iter)]


def test_defaults_follow_fastai():
    pair = Stepper((1.0, 3.0), 4)
    assert pair.func is annealing_linear and pair.step() == 1.5
    single = Stepper(0.1, 4)
    assert single.func is annealing_no and single.start == 0.1 and single.end == 0
    assert [single.step() for _ in range(4)] == [0.1] * 4
    assert Scheduler is Stepper


def test_attributes_and_restart():
    s = Stepper((1.0, 0.0), 0, annealing_cos)
    assert (s.start, s.end, s.n_iter, s.n, s.is_done) == (1.0, 0.0, 1, 0, False)
    assert s.step() == 0.0 and s.is_done
    s.restart()
    assert s.n == 0 and not s.is_done
    s.n = 1
    assert s.is_done


def test_array_values_give_arrays_per_group():
    start = np.array([1e-3, 1e-2, 1e-1])
    s = Stepper((start, start / 25), 10, annealing_cos)
    v = s.step()
    assert isinstance(v, np.ndarray) and v.shape == (3,)
    assert v.tolist() == [annealing_cos(x, x / 25, 0.1) for x in start]
    assert s.start is start, "the user's array is kept as given"


def test_peek_previews_without_stepping():
    s = Stepper((1.0, 0.0), 10, annealing_cos)
    s.step()
    preview = s.peek(5)
    assert s.n == 1 and preview.shape == (5,)
    assert preview.tolist() == [s.step() for _ in range(5)]
    groups = Stepper((np.array([1.0, 2.0]), 0.0), 4, annealing_linear)
    assert groups.peek(4).tolist() == [[0.75, 1.5], [0.5, 1.0], [0.25, 0.5], [0.0, 0.0]]


def test_custom_callables_are_called_back_with_the_given_objects():
    calls = []

    def f(start, end, pct):
        calls.append((start, end, pct))
        return pct

    s = Stepper(("a", "b"), 4, f)
    assert [s.step() for _ in range(2)] == [0.25, 0.5]
    assert calls == [("a", "b", 0.25), ("a", "b", 0.5)]
    assert s.peek(2).tolist() == [0.75, 1.0] and s.n == 2


def test_tensor_values_stay_tensors():
    start = torch.tensor([1.0, 2.0], dtype=torch.float64)
    s = Stepper((start, 0.0), 4, annealing_cos)
    v = s.step()
    assert isinstance(v, torch.Tensor)
    torch.testing.assert_close(v, ref.annealing_cos(start, 0.0, 0.25), rtol=0, atol=0)


@pytest.mark.parametrize("func", [annealing_cos, annealing_poly(0.9), annealing_exp])
def test_state_dict_resumes_with_identical_values(func):
    full = Stepper((1.0, 0.01), 50, func)
    expected = [full.step() for _ in range(50)]
    first = Stepper((1.0, 0.01), 50, func)
    head = [first.step() for _ in range(20)]
    state = first.state_dict()
    assert state == {"start": 1.0, "end": 0.01, "n_iter": 50, "n": 20}
    resumed = Stepper((5.0, 6.0), 3, func)
    resumed.load_state_dict(state)
    assert head + [resumed.step() for _ in range(30)] == expected


@pytest.mark.parametrize("copier", [lambda s: pickle.loads(pickle.dumps(s)), copy.deepcopy, copy.copy])
def test_pickle_and_copy_continue_identically(copier):
    s = Stepper((np.array([1.0, 2.0]), 0.0), 10, annealing_poly(2.0))
    s.step(), s.step()
    c = copier(s)
    assert c.n == 2 and c.func == s.func
    np.testing.assert_array_equal(c.step(), s.step())


def test_repr_shows_the_parameters():
    s = Stepper((1.0, 0.0), 10, annealing_cos)
    s.step()
    assert repr(s) == "Stepper(vals=(1.0, 0.0), n_iter=10, func=annealing_cos, n=1)"
    assert "annealing_poly(2.0)" in repr(Stepper((1.0, 0.0), 10, annealing_poly(2)))


def test_load_state_dict_reports_missing_keys():
    with pytest.raises(ValueError, match="n_iter"):
        Stepper((1.0, 0.0), 10).load_state_dict({"start": 1.0, "end": 0.0, "n": 3})


class Counting(Stepper):
    calls = 0

    def step(self):
        type(self).calls += 1
        return super().step()


def test_subclasses_keep_the_compiled_step():
    s = Counting((1.0, 0.0), 4, annealing_linear)
    assert [s.step() for _ in range(4)] == [0.75, 0.5, 0.25, 0.0] and Counting.calls == 4
    assert type(pickle.loads(pickle.dumps(s))) is Counting
