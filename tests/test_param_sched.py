"""fastai v2's ParamScheduler, fit_sgdr and fit_flat_cos on fastcb's Learner, against v2's
formulas batch by batch, at the joins."""

import math

import numpy as np
import pytest
import torch
from loop_helpers import tiny_learner

import fastcb.schedules as S
from fastcb.callbacks import ParamScheduler


def v2_cos(start, end, pos):
    return start + (1 + math.cos(math.pi * (1 - pos))) * (end - start) / 2


def v2_combine(pcts, scheds, pos):
    edges = np.cumsum([0.0] + list(pcts))
    idx = min(max(i for i in range(len(edges)) if pos >= edges[i]), len(edges) - 2)
    return scheds[idx]((pos - edges[idx]) / (edges[idx + 1] - edges[idx]))


def group_lrs(learn):
    return [g["lr"] for g in learn.opt.opt.param_groups]


class Spy:
    """Records every group's lr as the optimizer steps."""

    def __init__(self, learn):
        self.lrs = []
        opt = learn.opt.opt
        step = opt.step

        def spy(*a, **k):
            self.lrs.append([g["lr"] for g in opt.param_groups])
            return step(*a, **k)

        opt.step = spy


def two_groups(tmp_path):
    model = torch.nn.Sequential(torch.nn.Linear(10, 4), torch.nn.Linear(4, 2))
    learn = tiny_learner(tmp_path, model=model, n_train=40, bs=8)  # 5 batches per epoch
    learn.split(lambda m: [m[0], m[1]])
    return learn


def test_fit_sgdr_restarts_at_lr_max_at_each_cycle(tmp_path):
    learn = two_groups(tmp_path)
    learn.create_opt(1e-3)
    spy = Spy(learn)
    lr_max = np.array([1e-3, 1e-2])
    learn.fit_sgdr(3, 1, lr_max=lr_max)  # cycles of 1, 2, 4 epochs: 7 epochs, 35 batches
    assert len(spy.lrs) == 35
    pcts = [1 / 7, 2 / 7, 4 / 7]
    for it, got in enumerate(spy.lrs):
        pos = it / 35
        want = [v2_combine(pcts, [lambda p, lr=lr: v2_cos(lr, 0, p)] * 3, pos) for lr in lr_max]
        assert np.all(np.abs(np.array(got) - want) <= 4e-16 * lr_max), it
    # batches 5 and 15 start the second and third cycles: at lr_max, not at 0
    assert spy.lrs[5] == pytest.approx(list(lr_max)) and spy.lrs[15] == pytest.approx(list(lr_max))
    assert learn.recorder.hps["lr"] == [lrs[-1] for lrs in spy.lrs]


def test_fit_sgdr_with_a_cycle_mult_of_one(tmp_path):
    learn = tiny_learner(tmp_path, n_train=16, bs=8)
    learn.create_opt(1e-3)
    spy = Spy(learn)
    learn.fit_sgdr(2, 2, lr_max=0.1, cycle_mult=1)  # 4 epochs of 2 batches
    assert len(spy.lrs) == 8 and spy.lrs[0][0] == spy.lrs[4][0] == pytest.approx(0.1)


def test_fit_flat_cos_is_flat_then_cosine(tmp_path):
    learn = two_groups(tmp_path)
    learn.create_opt(1e-3)
    spy = Spy(learn)
    learn.fit_flat_cos(4, lr=slice(1e-3, 1e-2))  # 20 batches, flat for 15
    lr = learn.lr_range(slice(1e-3, 1e-2))
    for it, got in enumerate(spy.lrs):
        pos = it / 20
        want = [v2_combine([0.75, 0.25], [lambda p, v=v: v2_cos(v, v, p), lambda p, v=v: v2_cos(v, v / 1e5, p)], pos)
                for v in lr]
        assert np.all(np.abs(np.array(got) - want) <= 4e-16 * lr), it
    assert spy.lrs[15] == pytest.approx(list(lr)) and spy.lrs[16][1] < lr[1]


def test_param_scheduler_sets_any_hyper_parameter_and_records(tmp_path):
    learn = tiny_learner(tmp_path, n_train=32, bs=8)  # 4 batches
    learn.create_opt(1e-3)
    spy = Spy(learn)
    scheds = {"lr": S.SchedLin(0.1, 0.0), "mom": S.SchedPoly(0.95, 0.85, 2.0)}
    learn.fit(2, 1e-3, callbacks=[ParamScheduler(learn, scheds)])
    assert [l[0] for l in spy.lrs] == pytest.approx([0.1 * (1 - i / 8) for i in range(8)])
    assert learn.recorder.hps["mom"] == pytest.approx([0.95 + (0.85 - 0.95) * (i / 8) ** 2 for i in range(8)])


def test_param_scheduler_resumes_at_start_epoch(tmp_path):
    learn = tiny_learner(tmp_path, n_train=32, bs=8)
    learn.create_opt(1e-3)
    spy = Spy(learn)
    learn.fit(3, 1e-3, callbacks=[ParamScheduler(learn, {"lr": S.SchedLin(0.3, 0.0)})], start_epoch=2)
    assert [l[0] for l in spy.lrs] == pytest.approx([0.3 * (1 - i / 12) for i in range(8, 12)])


def test_bad_arguments(tmp_path):
    learn = tiny_learner(tmp_path)
    with pytest.raises(TypeError, match="scheds"):
        ParamScheduler(learn, [S.SchedLin(0, 1)])
    with pytest.raises(TypeError, match="scheds"):
        ParamScheduler(learn, {"lr": 0.1})
    with pytest.raises(ValueError, match="n_cycles"):
        learn.fit_sgdr(0, 1)
    with pytest.raises(ValueError, match="pct_start"):
        learn.fit_flat_cos(1, pct_start=1.5)
    with pytest.raises(ValueError, match="lr"):
        learn.fit_flat_cos(1, lr=-1.0)
