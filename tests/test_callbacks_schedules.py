"""OneCycleScheduler, LRFinder, GeneralScheduler: schedules against plain-Python formulas."""

import math

import numpy as np
import pytest
import torch
from loop_helpers import tiny_learner

from fastcb import annealing_linear, annealing_no
from fastcb.callbacks import GeneralScheduler, LRFinder, OneCycleScheduler, TrainingPhase


def cos(start, end, pct):
    return end + (start - end) / 2 * (math.cos(math.pi * pct) + 1)


def one_cycle_expected(n, lr_max, div=25.0, pct=0.3, final_div=None, moms=(0.95, 0.85)):
    final_div = div * 1e4 if final_div is None else final_div
    a1 = int(n * pct)
    a2 = n - a1
    lrs, mom = [lr_max / div], [moms[0]]
    for k in range(1, n):
        if k <= a1:
            lrs.append(cos(lr_max / div, lr_max, k / a1))
            mom.append(cos(moms[0], moms[1], k / a1))
        else:
            lrs.append(cos(lr_max, lr_max / final_div, (k - a1) / a2))
            mom.append(cos(moms[1], moms[0], (k - a1) / a2))
    return lrs, mom


@pytest.mark.parametrize("pct_start, final_div", [(0.3, None), (0.5, 100.0)])
def test_one_cycle_lrs_and_moms_follow_the_formula(pct_start, final_div):
    learn = tiny_learner(n_train=80, bs=8)
    learn.fit_one_cycle(2, 0.1, pct_start=pct_start, final_div=final_div)
    lrs, moms = one_cycle_expected(20, 0.1, pct=pct_start, final_div=final_div)
    assert learn.recorder.lrs == pytest.approx(lrs, rel=1e-12)
    assert learn.recorder.moms == pytest.approx(moms, rel=1e-12)
    assert learn.one_cycle_scheduler.idx_s == 2  # both phases done after the last batch


def test_one_cycle_on_sgd_moves_momentum_and_stops_after_the_cycle():
    learn = tiny_learner(n_train=16, bs=8, opt_func=torch.optim.SGD)
    sched = OneCycleScheduler(learn, 0.1, tot_epochs=1, pct_start=0.5)
    learn.fit(3, 0.1, callbacks=[sched])
    # fastai v1: the batch after the end of the cycle still runs, then training stops
    assert learn.recorder.lrs == pytest.approx([0.004, 0.1, 0.1 / 25e4]) and learn.recorder.nb_batches == [2, 1]
    assert learn.recorder.moms == pytest.approx([0.95, 0.85, 0.95])
    assert learn.opt.opt.param_groups[0]["momentum"] == pytest.approx(0.95)


def test_one_cycle_resumes_mid_cycle_with_start_epoch():
    full = tiny_learner(n_train=16, bs=8)
    full.fit_one_cycle(3, 0.1)
    resumed = tiny_learner(n_train=16, bs=8)
    resumed.fit_one_cycle(3, 0.1, start_epoch=1)
    assert resumed.recorder.lrs == pytest.approx(full.recorder.lrs[2:], rel=1e-12)


def test_one_cycle_bad_arguments():
    learn = tiny_learner()
    for kwargs, name in [({"lr_max": -1.0}, "lr_max"), ({"lr_max": 0.1, "pct_start": 1.5}, "pct_start"),
                         ({"lr_max": 0.1, "div_factor": 0}, "div_factor"), ({"lr_max": 0.1, "moms": (1, 2, 3)}, "moms"),
                         ({"lr_max": "x"}, "lr_max")]:
        with pytest.raises((ValueError, TypeError), match=name):
            OneCycleScheduler(learn, **kwargs)


def test_lr_finder_is_exponential_restores_weights_and_skips_validation(capsys):
    learn = tiny_learner(n_train=40, n_valid=16, bs=8, metrics=[])
    learn.fit(1, 1e-3)  # creates the optimizer and some state
    before = [p.detach().clone() for p in learn.model.parameters()]
    moments = [learn.opt.opt.state[p]["exp_avg"].clone() for p in learn.model.parameters()]
    learn.lr_find(start_lr=1e-5, end_lr=1e-1, num_it=12, stop_div=False)
    lrs = learn.recorder.lrs
    assert len(lrs) == 12
    assert lrs == pytest.approx([1e-5 * (1e-1 / 1e-5) ** (i / 12) for i in range(12)], rel=1e-12)
    assert all(torch.equal(a, b) for a, b in zip(before, learn.model.parameters()))
    assert all(torch.equal(m, learn.opt.opt.state[p]["exp_avg"]) for m, p in zip(moments, learn.model.parameters()))
    assert learn.recorder.val_losses == [None] * 3 and learn.recorder.nb_batches == [5, 5, 2]


def test_lr_finder_stops_when_the_loss_diverges():
    learn = tiny_learner(n_train=80, bs=8, opt_func=torch.optim.SGD)
    learn.lr_find(start_lr=1.0, end_lr=1e6, num_it=50)
    assert len(learn.recorder.lrs) < 50
    finder_stop = learn.lr_finder.stop
    assert finder_stop is not None and finder_stop == len(learn.recorder.lrs) - 1
    with pytest.raises(ValueError, match="num_it"):
        LRFinder(learn, num_it=0)


def test_general_scheduler_runs_its_phases():
    learn = tiny_learner(n_train=48, bs=8, opt_func=torch.optim.SGD)
    phases = [TrainingPhase(2).schedule_hp("lr", (0.1, 0.3), annealing_linear).schedule_hp("mom", 0.5),
              TrainingPhase(3).schedule_hp("lr", 0.01, annealing_no).schedule_hp("mom", (0.6, 0.9))]
    learn.fit(2, 0.1, callbacks=[GeneralScheduler(learn, phases)])
    assert learn.recorder.lrs == pytest.approx([0.1, 0.2, 0.3, 0.01, 0.01, 0.01])
    assert learn.recorder.moms == pytest.approx([0.5, 0.5, 0.5, 0.7, 0.8, 0.9])
    assert len(learn.recorder.lrs) == 6  # stopped after the phases (12 batches were available)
    with pytest.raises(ValueError, match="phases"):
        GeneralScheduler(learn, [])
    with pytest.raises(ValueError, match="length"):
        TrainingPhase(0)


def test_discriminative_one_cycle_keeps_group_ratios():
    model = torch.nn.Sequential(torch.nn.Linear(10, 4), torch.nn.Linear(4, 2))
    learn = tiny_learner(model=model, layer_groups=[model[0], model[1]], n_train=32)
    seen = []
    from fastcb import Callback

    class Watch(Callback):
        def on_batch_end(self, train, **kw):
            if train:
                seen.append(list(learn.opt._lr))

    learn.fit_one_cycle(1, np.array([1e-3, 1e-2]), callbacks=[Watch()])
    assert all(b / a == pytest.approx(10) for a, b in seen)
