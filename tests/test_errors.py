"""Bad input raises a clear exception naming the argument, never a crash or a silent NaN."""

import math

import numpy as np
import pytest
import torch

from fastcb import (
    SmoothenValue,
    Stepper,
    WeightedMean,
    _core,
    annealing_cos,
    annealing_exp,
    annealing_linear,
    annealing_poly,
    do_annealing_poly,
)

NON_FINITE = [math.nan, math.inf, -math.inf]


@pytest.mark.parametrize("bad", NON_FINITE)
@pytest.mark.parametrize("position, name", [(0, "start"), (1, "end"), (2, "pct")])
def test_non_finite_arguments_are_named(bad, position, name):
    args = [1.0, 0.5, 0.5]
    args[position] = bad
    for f in [annealing_cos, annealing_linear, annealing_exp, annealing_poly(2)]:
        with pytest.raises(ValueError, match=f"^{name}: expected a finite number"):
            f(*args)


def test_non_finite_elements_of_arrays_are_named():
    with pytest.raises(ValueError, match="^pct: expected a finite number"):
        annealing_cos(1.0, 0.0, np.array([0.1, np.nan, 0.3]))
    with pytest.raises(ValueError, match="^start: expected a finite number"):
        annealing_linear(np.array([1.0, np.inf]), 0.0, 0.5)
    with pytest.raises(ValueError, match="^pct: expected a finite number"):
        annealing_cos(1.0, 0.0, np.full(100_000, np.nan))


def test_exp_needs_a_nonzero_start_and_one_sign():
    with pytest.raises(ValueError, match="^start: annealing_exp needs a non-zero start"):
        annealing_exp(0.0, 1.0, 0.5)
    with pytest.raises(ValueError, match="^end: annealing_exp needs start and end of the same sign"):
        annealing_exp(1.0, -1.0, 0.5)
    with pytest.raises(ValueError, match="^end: "):
        annealing_exp(np.array([1.0, 2.0]), np.array([1.0, -2.0]), 0.5)


def test_fractional_degree_needs_one_minus_pct_at_least_zero():
    with pytest.raises(ValueError, match=r"^pct: expected a number <= 1 for annealing_poly of fractional degree 0.5"):
        do_annealing_poly(1.0, 0.0, 1.5, 0.5)
    with pytest.raises(ValueError, match="^degree: expected a finite number"):
        annealing_poly(math.nan)


def test_overflow_is_an_error_not_an_inf():
    with pytest.raises(ValueError, match="overflows"):
        annealing_exp(1e300, 1e-300, -2.0)


def test_mismatched_shapes():
    with pytest.raises(ValueError, match="do not broadcast"):
        annealing_cos(np.ones(2), np.ones(3), 0.5)
    with pytest.raises(ValueError, match="vals"):
        Stepper((np.ones(2), np.ones(3)), 10)
    with pytest.raises(ValueError, match="^weights: shape"):
        WeightedMean().extend([1.0, 2.0], [1.0])


def test_wrong_types_are_type_errors_naming_the_argument():
    with pytest.raises(TypeError, match="^start: expected a number"):
        annealing_cos("1", 0.0, 0.5)
    with pytest.raises(TypeError, match="^pct: expected a number"):
        annealing_cos(1.0, 0.0, None)
    with pytest.raises(TypeError, match="^end: expected an array of floats"):
        annealing_cos(1.0, ["a"], 0.5)
    with pytest.raises(TypeError, match="^func: expected a callable"):
        Stepper((1.0, 0.0), 10, func=3)
    with pytest.raises(TypeError, match="^value: expected a number or a torch tensor"):
        SmoothenValue(0.9).add_value("x")


@pytest.mark.parametrize("beta", [-0.1, 1.0, 1.5, math.nan])
def test_beta_outside_zero_one(beta):
    with pytest.raises(ValueError, match="^beta: expected a number in \\[0, 1\\)"):
        SmoothenValue(beta)


def test_smoothing_rejects_non_finite_values_and_keeps_its_state():
    s = SmoothenValue(0.9)
    s.add_value(1.0)
    with pytest.raises(ValueError, match="^value: expected a finite number"):
        s.add_value(math.nan)
    assert s.n == 1 and s.smooth == pytest.approx(1.0)


def test_weights_and_values():
    m = WeightedMean()
    with pytest.raises(ValueError, match="^weight: expected a finite non-negative number"):
        m.add(1.0, -1.0)
    with pytest.raises(ValueError, match="^weight: expected a finite non-negative number"):
        m.add(1.0, math.nan)
    with pytest.raises(ValueError, match="^value: expected a finite number"):
        m.add(math.nan)
    with pytest.raises(ValueError, match="^weight: "):
        m.extend([1.0, 2.0], [1.0, -2.0])
    assert m.count == 0, "a rejected batch adds nothing"
    with pytest.raises(ValueError, match="empty WeightedMean"):
        m.mean


def test_stepper_past_the_end_of_a_fractional_poly_does_not_advance():
    s = Stepper((1.0, 0.0), 2, annealing_poly(0.5))
    s.step(), s.step()
    with pytest.raises(ValueError, match="^pct: "):
        s.step()
    assert s.n == 2


def test_exp_stepper_with_zero_start():
    with pytest.raises(ValueError, match="^vals: start: annealing_exp needs a non-zero start"):
        Stepper((0.0, 1.0), 10, annealing_exp)


def test_a_failing_callable_is_propagated_and_does_not_advance():
    def boom(start, end, pct):
        raise RuntimeError("user error")

    s = Stepper((1.0, 0.0), 10, boom)
    with pytest.raises(RuntimeError, match="user error"):
        s.step()
    assert s.n == 0


def test_tensor_arguments_with_bad_values_fall_to_torch_semantics():
    out = annealing_linear(torch.tensor(1.0), 0.0, 0.5)
    assert out.item() == 0.5


def test_results_too_large_for_memory_are_errors_not_aborts():
    from fastcb import schedules

    with pytest.raises(ValueError, match="^k: asks for 10000000000000 values"):
        Stepper((1.0, 0.0), 10).peek(10**13)
    with pytest.raises(ValueError, match="^pct: asks for 10000000000000 values"):
        annealing_cos(np.ones((10**6, 1)), np.ones((1, 10**7)), 0.5)
    with pytest.raises(ValueError, match="^n: asks for 10000000000000 values"):
        schedules.SchedCos(1.0, 0.0).sample(10**13)


def test_negative_counts_are_value_errors_naming_the_argument():
    from fastcb.schedules import SchedCos

    with pytest.raises(ValueError, match="^k: expected a non-negative integer, got -1"):
        Stepper((1.0, 0.0), 10).peek(-1)
    with pytest.raises(ValueError, match="^k: expected a non-negative integer, got -1"):
        Stepper((1.0, 0.0), 10, lambda a, b, p: p).peek(-1)
    with pytest.raises(ValueError, match="^n: expected a non-negative integer, got -1"):
        SchedCos(1.0, 0.0).sample(-1)
    s = Stepper((1.0, 0.0), 10)
    with pytest.raises(ValueError, match="^n: expected a non-negative integer, got -4"):
        s.n = -4
    with pytest.raises(TypeError, match="^k: expected an integer, got float"):
        s.peek(2.5)


@pytest.mark.parametrize("call, name", [
    (lambda: WeightedMean().add("a"), "value"),
    (lambda: WeightedMean().add(1.0, "a"), "weight"),
    (lambda: SmoothenValue("a"), "beta"),
    (lambda: annealing_poly("a"), "degree"),
    (lambda: do_annealing_poly(1.0, 0.0, 0.5, "a"), "degree"),
])
def test_wrong_types_of_numbers_name_the_argument(call, name):
    with pytest.raises(TypeError, match=f"^{name}: expected a real number, got str"):
        call()


def test_overflow_message_says_what_overflowed_briefly():
    with pytest.raises(ValueError) as e:
        annealing_exp(1e300, 1e-300, -2.0)
    assert str(e.value) == "annealing_exp(start=1e300, end=1e-300, pct=-2.0) overflows float64"
    with pytest.raises(ValueError, match=r"^beta: expected a number in \[0, 1\), got 1e300$"):
        SmoothenValue(1e300)


@pytest.mark.parametrize("bad", [math.nan, math.inf])
@pytest.mark.parametrize("position, name", [(0, "start"), (1, "end"), (2, "pct")])
def test_tensors_holding_nan_or_inf_are_errors_like_floats(bad, position, name):
    for as_tensor in [lambda v: torch.tensor(v), lambda v: torch.tensor([0.5, v])]:
        args = [torch.tensor(1.0), 0.5, 0.5]
        args[position] = as_tensor(bad)
        for f in [annealing_cos, annealing_linear, annealing_exp, annealing_poly(2)]:
            with pytest.raises(ValueError, match=f"^{name}: expected a finite number"):
                f(*args)
        with pytest.raises(ValueError, match=f"^{name}: expected a finite number"):
            Stepper((args[0], args[1]), 4, annealing_cos).peek(1) if position < 2 else annealing_cos(*args)


def test_tensor_results_that_overflow_are_errors():
    with pytest.raises(ValueError, match="^annealing_exp: the result on tensors is NaN or overflows"):
        annealing_exp(torch.tensor(1e300, dtype=torch.float64), 1e-300, -2.0)
    assert annealing_cos(torch.tensor([2.0, 1.0]), 0.0, 0.5).tolist() == [1.0, 0.5]


@pytest.mark.parametrize("build, name", [
    (lambda: _core.Schedule.anneal("cos", "a", 0.0), "start"),
    (lambda: _core.Schedule.anneal("poly", 1.0, 0.0, degree="z"), "degree"),
    (lambda: _core.Schedule.power(1.0, 0.0, "p"), "power"),
    (lambda: _core.Schedule.constant("c"), "value"),
    (lambda: _core.Schedule.one_cycle("x"), "lr_max"),
    (lambda: _core.Schedule.one_cycle(1.0, div_factor="d"), "div_factor"),
    (lambda: _core.Schedule.sgdr(1.0, 0.0, "p"), "period"),
    (lambda: _core.Schedule.sgdr(1.0, 0.0, 10.0, mult="m"), "mult"),
    (lambda: _core.Schedule.warmup_decay(0.1, 0.0, "peak", 0.0), "peak"),
    (lambda: _core.Schedule.wsd(0.1, 0.2, 0.0, 1.0, "e"), "end"),
])
def test_a_schedule_argument_that_is_not_a_number_is_named(build, name):
    with pytest.raises(TypeError, match=rf"^{name}: expected a real number, got str$"):
        build()


def test_schedule_defaults_are_fastai_v1s():
    assert _core.Schedule.one_cycle(1.0).spec == _core.Schedule.one_cycle(1.0, 0.3, 25.0, 25.0 * 1e4).spec
    assert _core.Schedule.sgdr(1.0, 0.0, 10.0).spec == _core.Schedule.sgdr(1.0, 0.0, 10.0, 1.0).spec
