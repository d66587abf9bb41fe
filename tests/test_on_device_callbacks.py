"""The schedulers' on_device option: the same hyper-parameters as on the host, batch by batch,
with no host write of hyper-parameters per batch."""

import numpy as np
import pytest
import torch
from loop_helpers import tiny_learner

from fastcb.anneal import annealing_cos, annealing_linear
from fastcb.callbacks import GeneralScheduler, TrainingPhase


class Spy:
    """Records every torch param group's lr and momentum when the optimizer steps."""

    def __init__(self, learn):
        self.lrs, self.moms = [], []
        opt = learn.opt.opt
        step = opt.step

        def spy(*a, **k):
            self.lrs.append([float(g["lr"]) for g in opt.param_groups])
            b = [g["betas"][0] if "betas" in g else g.get("momentum", 0.0) for g in opt.param_groups]
            self.moms.append([float(v) for v in b])
            return step(*a, **k)

        opt.step = spy


def run(on_device, opt_func=None, **kw):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(10, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    extra = {"opt_func": opt_func} if opt_func else {}
    learn = tiny_learner(model=model, n_train=40, bs=8, **extra)
    learn.split(lambda m: [m[0], m[2]])
    learn.create_opt(1e-3)
    spy = Spy(learn)
    learn.fit_one_cycle(3, slice(1e-3, 1e-2), on_device=on_device, **kw)
    return learn, spy


@pytest.mark.parametrize("opt_func", [None, torch.optim.SGD])
def test_fit_one_cycle_on_device_follows_the_host_schedule(opt_func):
    host, hs = run(False, opt_func)
    dev, ds = run(True, opt_func)
    assert len(ds.lrs) == len(hs.lrs) == 15
    np.testing.assert_allclose(ds.lrs, hs.lrs, rtol=1e-6)
    np.testing.assert_allclose(ds.moms, hs.moms, rtol=1e-6)
    np.testing.assert_allclose(dev.recorder.lrs, host.recorder.lrs, rtol=1e-12)
    np.testing.assert_allclose(dev.recorder.moms, host.recorder.moms, rtol=1e-12)
    assert type(dev.opt.lr) is float and dev.opt.lr == pytest.approx(host.opt.lr, rel=1e-6)
    # the decoupled weight decay followed the device lr: the same weights
    for a, b in zip(host.model.parameters(), dev.model.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)


def test_no_host_write_of_hyper_parameters_per_batch():
    learn = tiny_learner(n_train=40, bs=8)
    learn.create_opt(1e-3)
    writes = []
    ow = type(learn.opt)
    orig = ow.lr.fset

    class Counting(ow):
        lr = property(ow.lr.fget, lambda self, v: (writes.append(v), orig(self, v)))

    learn.opt.__class__ = Counting
    learn.fit_one_cycle(2, 1e-2, on_device=True)
    assert len(writes) <= 3  # the fit's start and end, never per batch
    learn.opt.__class__ = ow


def test_general_scheduler_on_device():
    def phases():
        return [TrainingPhase(4).schedule_hp("lr", (1e-3, 1e-2), annealing_linear),
                TrainingPhase(6).schedule_hp("lr", (5e-3, 1e-5), annealing_cos)]

    got = []
    for on_device in (False, True):
        learn = tiny_learner(n_train=40, bs=8)
        learn.create_opt(1e-3)
        spy = Spy(learn)
        learn.fit(3, 1e-3, callbacks=[GeneralScheduler(learn, phases(), on_device=on_device)])
        got.append(spy.lrs)
    assert len(got[0]) == len(got[1]) == 11
    np.testing.assert_allclose(got[1], got[0], rtol=1e-6)


def test_a_python_annealing_function_cannot_go_on_the_device():
    learn = tiny_learner(n_train=16, bs=8)
    phase = TrainingPhase(2).schedule_hp("lr", (1e-3, 1e-2), lambda s, e, p: s + p * (e - s))
    with pytest.raises(ValueError, match="on_device: the annealing function"):
        learn.fit(1, 1e-3, callbacks=[GeneralScheduler(learn, [phase], on_device=True)])
