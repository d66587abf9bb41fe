"""The compiled per-batch read and write of an `OptimWrapper`'s lr and momentum (`read_lr_mom`,
`write_lr_mom`, `step_lr_mom`) against plain-Python references: the same values in the same
param groups, and, outside the plain case, `None`/False with nothing changed."""

import copy
from functools import partial

import pytest
import torch

from fastcb import OptimWrapper
from fastcb._core import read_lr_mom, step_lr_mom, write_lr_mom
from fastcb.anneal import Stepper, annealing_cos


def ref_write(opt, lr, mom):
    """The plain-Python float write `set_lr_mom` had: True if every group took both floats."""
    d = opt.__dict__
    if d["_mom"] is None:
        return False
    groups = d["opt"].param_groups
    for pg in groups:
        if d["_momentum_key"]:
            if type(pg.get("lr")) is not float or type(pg.get("momentum")) is not float:
                return False
        else:
            betas = pg.get("betas")
            if type(pg.get("lr")) is not float or type(betas) is not tuple or len(betas) != 2 or type(betas[0]) is not float:
                return False
    for pg in groups:
        pg["lr"] = lr
        if d["_momentum_key"]:
            pg["momentum"] = mom
        else:
            pg["betas"] = (mom, pg["betas"][1])
    return True


def hypers(opt):
    return [{k: v for k, v in g.items() if k != "params"} for g in opt.opt.param_groups]


def build(opt_cls, kwargs, bn_wd, change=None):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.BatchNorm1d(4), torch.nn.Linear(4, 2))
    opt = OptimWrapper.create(partial(opt_cls, **kwargs), [0.01, 0.02], [model[:2], model[2:]], bn_wd=bn_wd)
    if change is not None:
        change(opt.opt.param_groups)
    return opt


def _tensor_lr(groups):
    groups[0]["lr"] = torch.tensor(0.5)


def _tensor_last_lr(groups):
    groups[-1]["lr"] = torch.tensor(0.5)


def _int_lr(groups):
    groups[-1]["lr"] = 1


def _list_betas(groups):
    if "betas" in groups[-1]:
        groups[-1]["betas"] = list(groups[-1]["betas"])


def _three_betas(groups):
    if "betas" in groups[0]:
        groups[0]["betas"] = (*groups[0]["betas"], 0.5)


def _tensor_beta(groups):
    if "betas" in groups[-1]:
        groups[-1]["betas"] = (torch.tensor(0.9), 0.999)
    if "momentum" in groups[-1]:
        groups[-1]["momentum"] = torch.tensor(0.9)


def _no_lr(groups):
    del groups[0]["lr"]


OPTS = [(torch.optim.SGD, {"momentum": 0.9}), (torch.optim.Adam, {}), (torch.optim.AdamW, {}),
        (torch.optim.RMSprop, {"momentum": 0.5}), (torch.optim.Adagrad, {}), (torch.optim.SGD, {})]
CHANGES = [None, _tensor_lr, _tensor_last_lr, _int_lr, _list_betas, _three_betas, _tensor_beta, _no_lr]


@pytest.mark.parametrize("opt_cls, kwargs", OPTS)
@pytest.mark.parametrize("bn_wd", [True, False])
@pytest.mark.parametrize("change", CHANGES)
def test_write_lr_mom_is_the_python_write(opt_cls, kwargs, bn_wd, change):
    got, want = build(opt_cls, kwargs, bn_wd, change), build(opt_cls, kwargs, bn_wd, change)
    for lr, mom in [(0.1, 0.9), (0.2, 0.85), (3e-4, 0.95)]:
        before = copy.deepcopy(hypers(got))
        done = write_lr_mom(got.__dict__, lr, mom)
        assert done == ref_write(want, lr, mom)
        assert hypers(got) == hypers(want)
        if not done:
            assert hypers(got) == before  # nothing changed
        else:
            assert got.lr_mom() == got._lr_mom() == (lr, mom)


@pytest.mark.parametrize("opt_cls, kwargs", OPTS)
@pytest.mark.parametrize("bn_wd", [True, False])
@pytest.mark.parametrize("change", CHANGES)
def test_read_lr_mom_is_the_python_read_or_none(opt_cls, kwargs, bn_wd, change):
    opt = build(opt_cls, kwargs, bn_wd, change)
    for lr in (None, 0.25):
        if lr is not None:
            for g in opt.opt.param_groups:  # behind the wrapper's back, as a torch scheduler writes
                if type(g.get("lr")) is float:
                    g["lr"] = lr
        try:
            want = opt._lr_mom()
        except (KeyError, IndexError, TypeError) as e:
            with pytest.raises(type(e)):
                opt.lr_mom()
            continue
        got = read_lr_mom(opt.__dict__)
        if got is not None:
            assert got == want and all(type(v) is float or v is None for v in got)
        assert opt.lr_mom() == want == (opt.lr, opt.mom)


def test_read_and_write_reach_the_optimizer_the_wrapper_holds_now():
    opt = build(torch.optim.SGD, {"momentum": 0.9}, True)
    old = opt.opt
    opt.opt = torch.optim.SGD([p for g in old.param_groups for p in g["params"]], lr=0.5, momentum=0.3)
    assert read_lr_mom(opt.__dict__) == (0.5, 0.3)
    assert write_lr_mom(opt.__dict__, 0.1, 0.7)
    assert hypers(opt) == [{**hypers(opt)[0], "lr": 0.1, "momentum": 0.7}]
    assert [g["lr"] for g in old.param_groups] == [0.01, 0.02]


def test_the_wrapper_without_momentum_reads_none_and_is_not_written():
    opt = build(torch.optim.Adagrad, {}, True)
    assert opt._mom is None and read_lr_mom(opt.__dict__) == (0.02, None)
    assert not write_lr_mom(opt.__dict__, 0.1, 0.9) and hypers(opt)[-1]["lr"] == 0.02


def test_a_wrapper_dict_missing_its_keys_is_not_the_plain_case():
    opt = build(torch.optim.SGD, {"momentum": 0.9}, True)
    for key in ("opt", "_mom", "_momentum_key", "paired"):
        d = dict(opt.__dict__)
        del d[key]
        assert read_lr_mom(d) is None
        assert write_lr_mom(d, 0.1, 0.9) is (key == "paired")  # the write doesn't read `paired`
        assert step_lr_mom(*_steppers(), d) is (None if key != "paired" else False)


def _steppers(n=5, func=annealing_cos):
    return Stepper((0.01, 0.1), n, func), Stepper((0.95, 0.85), n, func)


def ref_step(opt, lr, mom):
    """The Python path: `set_lr_mom(lr.step(), mom.step())`, then `lr.is_done`."""
    opt.set_lr_mom(lr.step(), mom.step())
    return lr.is_done


@pytest.mark.parametrize("opt_cls, kwargs", OPTS)
@pytest.mark.parametrize("bn_wd", [True, False])
@pytest.mark.parametrize("change", CHANGES)
def test_step_lr_mom_is_the_python_step_or_changes_nothing(opt_cls, kwargs, bn_wd, change):
    got, want = build(opt_cls, kwargs, bn_wd, change), build(opt_cls, kwargs, bn_wd, change)
    (lr_a, mom_a), (lr_b, mom_b) = _steppers(), _steppers()
    for _ in range(6):
        before = copy.deepcopy(hypers(got))
        done = step_lr_mom(lr_a, mom_a, got.__dict__)
        if done is None:  # not the plain case: nothing stepped, nothing written
            assert hypers(got) == before and (lr_a.n, mom_a.n) == (lr_b.n, mom_b.n)
            try:
                done = ref_step(got, lr_a, mom_a)
            except (KeyError, TypeError) as e:
                with pytest.raises(type(e)):
                    ref_step(want, lr_b, mom_b)
                return
        assert done == ref_step(want, lr_b, mom_b)
        assert hypers(got) == hypers(want) and (lr_a.n, mom_a.n) == (lr_b.n, mom_b.n)
        assert got.state_dict()["fastcb"] == want.state_dict()["fastcb"]


@pytest.mark.parametrize("which", ["python func", "array", "subclass", "same stepper", "not a stepper"])
def test_step_lr_mom_leaves_other_steppers_to_python(which):
    import numpy as np

    opt = build(torch.optim.Adam, {}, True)
    lr, mom = _steppers()
    if which == "python func":
        lr = Stepper((0.01, 0.1), 5, lambda s, e, p: s + (e - s) * p)
    elif which == "array":
        lr = Stepper((np.array([0.01, 0.02]), 0.1), 5, annealing_cos)
    elif which == "subclass":
        class MyStepper(Stepper):
            def step(self):
                return 0.5

        mom = MyStepper((0.95, 0.85), 5, annealing_cos)
    elif which == "same stepper":
        mom = lr
    else:
        mom = 0.9
    before = hypers(opt)
    assert step_lr_mom(lr, mom, opt.__dict__) is None
    assert hypers(opt) == before and lr.n == 0 and getattr(mom, "n", 0) == 0


def test_step_lr_mom_answers_when_lr_is_done_and_raises_as_a_step_would():
    opt = build(torch.optim.SGD, {"momentum": 0.9}, True)
    lr, mom = _steppers(2)
    assert [step_lr_mom(lr, mom, opt.__dict__) for _ in range(3)] == [False, True, True]
    lr.n = 2 ** 64 - 1
    before = hypers(opt)
    with pytest.raises(ValueError, match="2\\*\\*64"):
        step_lr_mom(lr, mom, opt.__dict__)
    assert hypers(opt) == before and mom.n == 3
