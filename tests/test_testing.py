"""fastcb.testing: its strategies and checks pass on fastcb and catch planted bugs."""

import math
import types

import numpy as np
import pytest
import torch
from hypothesis import Phase, given, settings
from hypothesis import strategies as st

import fastcb
from fastcb import lr_scheduler
from fastcb._core import Schedule
from fastcb.callback import Callback
from fastcb.callbacks import EarlyStoppingCallback, GradientClipping, TerminateOnNaNCallback
from fastcb.testing import (
    OptimizerSpec,
    SchedulerCase,
    anneal_cases,
    chained_schedules,
    check_annealing,
    check_callback_contract,
    check_close,
    check_continuity,
    check_dropin,
    check_dropin_case,
    check_endpoints,
    check_monotone,
    check_resume,
    check_schedule,
    check_stepper,
    check_within,
    composite_schedules,
    endpoints,
    one_cycle_configs,
    optimizer_specs,
    scheduler_cases,
    steppers,
)

few = settings(max_examples=30, deadline=None)  # for properties that step torch schedulers in Python


def finds(test, match):
    """Run a Hypothesis-decorated `test` and require it to fail with a message matching `match`."""
    no_shrink = [Phase.explicit, Phase.reuse, Phase.generate]  # the failure is the point, not its minimal form
    with pytest.raises(AssertionError, match=match):
        settings(max_examples=200, database=None, deadline=None, phases=no_shrink)(test)()


# -- fastcb passes its own properties ------------------------------------------------------


@given(anneal_cases(groups=st.integers(0, 3)))
def test_annealing_functions_keep_their_properties(case):
    check_annealing(*case)


@given(steppers(groups=st.integers(0, 3)))
def test_steppers_keep_their_properties(stepper):
    check_stepper(stepper)


@given(composite_schedules())
def test_composite_schedules_keep_their_properties(schedule):
    check_schedule(schedule)


@given(one_cycle_configs())
def test_one_cycle_schedule_is_fastais(config):
    final_div = config["final_div"] or config["div_factor"] * 1e4
    lr_max, pct = config["lr_max"], config["pct_start"]
    sched = Schedule.one_cycle(lr_max, pct, config["div_factor"], final_div)
    values = check_schedule(sched, config["n_iter"])
    assert values[0] == pytest.approx(lr_max / config["div_factor"], rel=1e-14)
    assert float(sched(pct)) == pytest.approx(lr_max, rel=1e-14)
    assert float(sched(1.0)) == pytest.approx(lr_max / final_div, rel=1e-12)


@given(steppers(advanced=False), st.data())
def test_steppers_resume_identically(stepper, data):
    at = data.draw(st.integers(0, stepper.n_iter))
    check_resume(lambda: fastcb.Stepper((stepper.start, stepper.end), stepper.n_iter, stepper.func), stepper.n_iter, at)


@few
@given(scheduler_cases(), optimizer_specs(), st.integers(0, 60))
def test_dropin_schedulers_resume_identically(case, spec, at):
    def make():
        return case.build(lr_scheduler, spec.build())

    try:
        make()
    except Exception:  # arguments torch refuses: the drop-in test checks the drop-in refuses them alike
        return
    n_steps = min(60, case.kwargs.get("total_steps", 61) - 1)  # OneCycleLR raises past its end
    check_resume(make, n_steps, min(at, n_steps))


@few
@given(scheduler_cases(), optimizer_specs())
def test_dropin_schedulers_equal_torchs(case, spec):
    check_dropin_case(case, spec, n_steps=min(case.kwargs.get("total_steps", 200) + 1, 400))


@pytest.mark.parametrize("make", [
    lambda learn: GradientClipping(learn, clip=0.1),
    lambda learn: EarlyStoppingCallback(learn, patience=0),
    lambda learn: TerminateOnNaNCallback(),
])
def test_standard_callbacks_keep_the_contract(make):
    seen = check_callback_contract(make)
    assert seen[0] == "train_begin" and seen[-1] == "train_end"


# -- the checks fail, with a clear message, on planted bugs ----------------------------------


def swapped_cos(start, end, pct):
    """Planted bug: the cosine runs from `end` to `start`."""
    return start + (end - start) / 2 * (np.cos(np.pi * pct) + 1)


def overshooting_exp(start, end, pct):
    """Planted bug: the exponent runs 1% too far."""
    return start * (end / start) ** (pct * 1.01)


def annealing_ok(case):
    check_annealing(*case)


def stepper_ok(stepper):
    check_stepper(stepper)


def schedule_ok(schedule):
    check_schedule(schedule)


def test_finds_a_swapped_cosine():
    finds(given(anneal_cases(st.just(swapped_cos)))(annealing_ok), "first value")


def test_finds_an_overshooting_exponential():
    cases = endpoints(fastcb.annealing_exp).map(lambda se: (overshooting_exp, *se))
    finds(given(cases)(annealing_ok), "outside")


def test_finds_a_stepper_that_stops_short():
    def short(start, end, pct):  # planted bug: never gets past 99% of the way
        return fastcb.annealing_linear(start, end, np.minimum(pct, 0.99))

    finds(given(steppers(st.just(short)))(stepper_ok), "last value")


def test_finds_a_discontinuous_join():
    def jumpy(schedule):  # planted bug: every phase after the first starts 1% above its join
        edges, parts = schedule.spec[1], schedule.spec[2]
        moved = [parts[0]] + [(k, s, d, a * 1.01 + 1e-3, b) for (k, s, d, a, b) in parts[1:]]
        return Schedule.join(edges, [Schedule.from_spec(p) for p in moved])

    chains = chained_schedules(shapes=("linear", "cos")).filter(lambda s: s.spec[0] == "join").map(jumpy)
    finds(given(chains)(schedule_ok), "jumps by")


class ForgetfulStepper(fastcb.Stepper):
    """Planted bug: its state dict forgets how far it went."""

    def state_dict(self):
        return {**super().state_dict(), "n": 0}


def test_finds_a_stepper_that_does_not_resume():
    @given(steppers(funcs=st.just(fastcb.annealing_cos), advanced=False), st.data())
    def resumes(stepper, data):
        at = data.draw(st.integers(0, stepper.n_iter))
        check_resume(lambda: ForgetfulStepper((stepper.start, stepper.end), stepper.n_iter, stepper.func),
                     stepper.n_iter, at)

    finds(resumes, "resumed after")


def test_finds_a_dropin_off_by_one():
    class OffByOne(torch.optim.lr_scheduler.CosineAnnealingLR):  # planted bug: one step too long
        def __init__(self, optimizer, T_max, eta_min=0.0, last_epoch=-1):
            super().__init__(optimizer, T_max + 1, eta_min, last_epoch)

    module = types.SimpleNamespace(CosineAnnealingLR=OffByOne)
    @given(scheduler_cases("CosineAnnealingLR"), optimizer_specs())
    def equal(case, spec):
        check_dropin_case(case, spec, n_steps=50, module=module)

    finds(equal, "torch's is")


def test_dropin_must_be_a_torch_scheduler():
    spec = OptimizerSpec("sgd", (0.1,))
    twin = torch.optim.lr_scheduler.StepLR(spec.build(), 3)
    with pytest.raises(AssertionError, match="not a torch LRScheduler"):
        check_dropin(fastcb.Stepper((0.1, 0.0), 10), twin, 5)


def test_dropin_must_raise_where_torch_raises():
    case = SchedulerCase("OneCycleLR", {"max_lr": 0.1, "total_steps": 10})
    lenient = types.SimpleNamespace(OneCycleLR=lambda opt, **kw: torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=kw["max_lr"], total_steps=kw["total_steps"] + 5))
    with pytest.raises(AssertionError, match="torch's twin raised ValueError"):
        check_dropin_case(case, OptimizerSpec("sgd", (0.1,)), n_steps=12, rtol=1.0, module=lenient)


class ReturnsUnknownKey(Callback):
    def on_batch_end(self, **kwargs):
        return {"lrr": 0.1}


class ReturnsString(Callback):
    def on_epoch_begin(self, **kwargs):
        return "go"


class ReturnsNonTensorLoss(Callback):
    def on_backward_begin(self, last_loss, **kwargs):
        return last_loss.detach().item()


@pytest.mark.parametrize("cb, match", [
    (ReturnsUnknownKey(), r"unknown state key\(s\) \['lrr'\]"),
    (ReturnsString(), "ReturnsString.on_epoch_begin returned str"),
    (ReturnsNonTensorLoss(), "the new loss tensor"),
])
def test_contract_catches_bad_returns(cb, match):
    with pytest.raises(AssertionError, match=match):
        check_callback_contract(cb, epochs=1)


def test_contract_catches_a_loop_out_of_order():
    def skips_validation_end(learn, epochs, callbacks):  # planted bug: a loop with no on_epoch_end
        from fastcb.callback import CallbackHandler

        handler = CallbackHandler(callbacks)
        handler.on_train_begin(epochs, pbar=None, metrics=[])
        handler.on_epoch_begin()
        handler.on_train_end(False)

    with pytest.raises(AssertionError, match="event 2 was train_end after epoch_begin"):
        check_callback_contract(Callback(), fit=skips_validation_end)


def test_contract_sees_early_stops():
    class StopsAtSecondBatch(Callback):
        def on_batch_end(self, train, num_batch, **kwargs):
            return bool(train and num_batch == 1)

    seen = check_callback_contract(StopsAtSecondBatch(), epochs=1)
    assert seen.count("batch_begin/train") == 2


# -- the elementary checks ---------------------------------------------------------------------


def test_elementary_checks_name_step_and_group():
    values = np.array([[1.0, 2.0], [0.5, 2.5], [0.0, 3.0]])
    check_within(values, [1.0, 2.0], [0.0, 3.0])
    check_monotone(values, [1.0, 2.0], [0.0, 3.0])
    check_endpoints(values, [1.0, 2.0], [0.0, 3.0])
    with pytest.raises(AssertionError, match="step 0, group 1"):
        check_monotone(values * [1, -1], [1.0, -2.0], [0.0, 3.0])
    with pytest.raises(AssertionError, match="not finite"):
        check_within([1.0, math.nan], 0.0, 1.0)
    with pytest.raises(AssertionError, match="last value"):
        check_endpoints([1.0, 0.5], 1.0, 0.0)
    with pytest.raises(AssertionError, match="differs"):
        check_close([1.0, 2.0], [1.0, 2.0 + 1e-9], rtol=1e-12)
    check_close([1.0, 2.0], [1.0, 2.0 + 1e-13], rtol=1e-12)
    with pytest.raises(AssertionError, match="jumps"):
        check_continuity(lambda p: np.where(p > 0.5, 1.0, 0.0), [0.5])
