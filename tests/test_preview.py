"""fastcb.preview: any schedule's values, figure and PNG, without training."""

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

import fastcb
from fastcb import lr_scheduler, reference, schedules
from fastcb.preview import (
    make_optimizer,
    one_cycle_trace,
    plot_schedule,
    save_schedule,
    schedule_trace,
    schedule_values,
)
from fastcb.testing import tiny_learner


def test_stepper_values_are_its_whole_schedule_and_leave_it_alone():
    stepper = fastcb.Stepper((1.0, 0.0), 4, fastcb.annealing_cos)
    values = schedule_values(stepper)
    assert values.tolist() == [reference.annealing_cos(1.0, 0.0, k / 4) for k in range(5)]
    assert stepper.n == 0
    stepper.step()
    assert schedule_values(stepper).tolist() == values[1:].tolist()


def test_per_group_stepper_has_a_column_per_group():
    stepper = fastcb.Stepper((np.array([1.0, 2.0]), np.array([0.0, 1.0])), 2)
    assert schedule_values(stepper).tolist() == [[1.0, 2.0], [0.5, 1.5], [0.0, 1.0]]


def test_annealing_function_is_sampled_over_0_to_1():
    values = schedule_values(fastcb.annealing_exp, 3, start=1.0, end=0.01)
    assert values.tolist() == [1.0, fastcb.annealing_exp(1.0, 0.01, 0.5), fastcb.annealing_exp(1.0, 0.01, 1.0)]


def test_composable_schedule_positions():
    sched = schedules.one_cycle(1.0, 0.25)
    assert schedule_values(sched, 8).tolist() == sched.sample(8).tolist()
    sgdr = schedules.sgdr(1.0, 0.0, 10.0)
    assert schedule_values(sgdr, 25).tolist() == sgdr(np.arange(25.0)).tolist()  # SGDR's positions are steps


@pytest.mark.parametrize("module", [torch.optim.lr_scheduler, lr_scheduler])
def test_scheduler_class_is_stepped_on_a_throwaway_optimizer(module):
    trace = schedule_trace(module.OneCycleLR, 20, max_lr=1.0, total_steps=20, n_groups=2)
    opt = make_optimizer(0.1, 2)
    twin = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=1.0, total_steps=20)
    expected = [[g["lr"] for g in opt.param_groups]]
    for _ in range(19):
        opt.step()
        twin.step()
        expected.append([g["lr"] for g in opt.param_groups])
    assert trace["lr"].shape == (20, 2) and trace["momentum"].shape == (20, 2)
    np.testing.assert_allclose(trace["lr"], expected, rtol=1e-12)


def test_factory_and_plateau():
    hf = schedule_values(lr_scheduler.get_linear_schedule_with_warmup, 11, num_warmup_steps=5,
                         num_training_steps=10, lr=1.0)
    assert hf[[0, 5, 10]].tolist() == [0.0, 1.0, 0.0]
    plateau = schedule_values(torch.optim.lr_scheduler.ReduceLROnPlateau, 6, patience=1, metric=1.0)
    assert plateau[0] == 0.1 and plateau[-1] < plateau[0]


def test_one_cycle_trace_is_what_the_learner_sets():
    learn = tiny_learner()
    learn.fit_one_cycle(2, 0.05, pct_start=0.4)
    n = len(learn.recorder.lrs)
    trace = one_cycle_trace(n, 0.05, pct_start=0.4)
    np.testing.assert_allclose(np.asarray(learn.recorder.lrs, dtype=float).reshape(n), trace["lr"], rtol=1e-15)
    np.testing.assert_allclose(np.asarray(learn.recorder.moms, dtype=float).reshape(n), trace["momentum"], rtol=1e-15)


def test_figure_and_png(tmp_path):
    fig = plot_schedule(lr_scheduler.OneCycleLR, 50, max_lr=0.1, total_steps=50, title="one cycle")
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    assert fig.axes[0].get_title() == "one cycle"
    assert fig.axes[0].lines[0].get_ydata().shape == (50,)
    path = save_schedule(tmp_path / "sub" / "cos.png", fastcb.annealing_cos, 30, start=1.0, end=0.0)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="n_steps"):
        schedule_values(lr_scheduler.StepLR, 0, step_size=2)
    with pytest.raises(TypeError, match="schedule: expected"):
        schedule_values(42, 10)
    with pytest.raises(ValueError, match="kind"):
        make_optimizer(kind="lion")
    with pytest.raises(ValueError, match="lr: expected one learning rate per group"):
        make_optimizer([0.1, 0.2], n_groups=3)
