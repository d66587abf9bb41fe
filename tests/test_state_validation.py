"""State dicts are validated whole before anything is assigned: a refused state leaves the object as it was."""

import copy
import math

import numpy as np
import pytest
import torch
from loop_helpers import tiny_learner

from fastcb import OptimWrapper, accuracy
from fastcb.callback import weighted_mean
from fastcb.errors import CheckpointError, FastcbError, StateError, UnknownStateKeyError


def test_errors_are_one_hierarchy_of_builtins():
    assert issubclass(CheckpointError, FastcbError) and issubclass(CheckpointError, ValueError)
    assert issubclass(StateError, ValueError) and issubclass(UnknownStateKeyError, KeyError)
    from fastcb import UnknownStateKeyError as reexported
    from fastcb import checkpoint
    assert reexported is UnknownStateKeyError and checkpoint.CheckpointError is CheckpointError


def _wrapper(groups=1, opt=torch.optim.Adam):
    layers = [torch.nn.Linear(3, 3) for _ in range(groups)]
    return OptimWrapper.create(opt, 1e-3, layers, wd=0.1, true_wd=True)


def _same(a, b):
    sa, sb = a.state_dict(), b
    assert sa["fastcb"] == sb["fastcb"]
    assert sa["param_groups"] == sb["param_groups"]


@pytest.mark.parametrize("change, where", [
    (lambda sd: sd["fastcb"].update(lr=[1e-3, 1e-3, 1e-3]), r"'lr'.*expected 1 values"),
    (lambda sd: sd["fastcb"].update(lr=[math.nan]), r"'lr'.*finite"),
    (lambda sd: sd["fastcb"].update(wd=[-1.0]), r"'wd'.*expected a finite number >= 0, got -1.0"),
    (lambda sd: sd["fastcb"].update(mom=["x"]), r"'mom'.*expected a finite number >= 0, got str"),
    (lambda sd: sd["fastcb"].update(mom=None), r"'mom'.*doesn't fit"),
    (lambda sd: sd["fastcb"].pop("true_wd"), r"missing \['true_wd'\]"),
    (lambda sd: sd["fastcb"].update(true_wd="yes"), r"'true_wd'.*True or False"),
    (lambda sd: sd["fastcb"].update(bn_wd=False), r"bn_wd.*no separate"),
    (lambda sd: sd["fastcb"].update(stats={"nope": [1]}), r"not hyper-parameters"),
    (lambda sd: sd["fastcb"].update(extra=1), r"unknown \['extra'\]"),
    (lambda sd: sd.update(fastcb=[1]), r"'fastcb'.*expected a dict"),
    (lambda sd: sd["param_groups"].append(dict(sd["param_groups"][0])), r"param groups of sizes"),
    (lambda sd: sd["param_groups"][0].update(lr=float("inf")), r"'lr'.*finite"),
    (lambda sd: sd["param_groups"][0].pop("betas"), r"no \['betas'\]"),
    (lambda sd: sd["state"].update({7: {}}), r"parameter 7"),
    (lambda sd: sd["state"][0].update(exp_avg=torch.zeros(2, 2)), r"shape \(2, 2\)"),
    (lambda sd: sd.pop("state"), r"'state'"),
])
def test_optim_wrapper_refuses_a_bad_state_and_changes_nothing(change, where):
    w = _wrapper()
    w.opt.param_groups[0]["params"][0].grad = torch.ones(3, 3)
    w.opt.param_groups[0]["params"][1].grad = torch.ones(3)
    w.step()
    before = copy.deepcopy(w.state_dict())
    bad = copy.deepcopy(before)
    change(bad)
    with pytest.raises(StateError, match=where):
        w.load_state_dict(bad)
    _same(w, before)
    after = w.opt.state_dict()["state"]
    assert all(torch.equal(after[i][k], before["state"][i][k]) for i in after for k in after[i])
    assert w._lr == [1e-3] and w.opt.param_groups[0]["lr"] == 1e-3


def test_optim_wrapper_load_makes_the_groups_agree_with_the_wrapper():
    w = _wrapper(2)
    sd = w.state_dict()
    sd["fastcb"]["lr"] = [0.5, 0.25]  # a file whose groups say otherwise: the wrapper's values are pushed
    w2 = _wrapper(2)
    w2.load_state_dict(sd)
    assert w2.lr == 0.25 and [g["lr"] for g in w2.opt.param_groups] == [0.5, 0.25]
    assert [g["weight_decay"] for g in w2.opt.param_groups] == [0.0, 0.0] and w2._wd == [0.1, 0.1]


# -- non-finite values are results, not errors ------------------------------------------------------
def test_weighted_mean_of_non_finite_values_is_nan_or_inf():
    w = np.ones(3)
    assert weighted_mean([1.0, 2.0, 3.0], w) == 2.0
    assert math.isnan(weighted_mean([1.0, math.nan, 3.0], w))
    assert weighted_mean([1.0, math.inf, 3.0], w) == math.inf
    assert math.isnan(weighted_mean([-math.inf, math.inf, 3.0], w))
    assert weighted_mean([1.7e308, 1.7e308], [1.0, 1.0]) == math.inf  # the exact sum overflows
    assert weighted_mean([], []) is None


def test_a_diverging_fit_goes_on_and_shows_nan():
    learn = tiny_learner(metrics=[accuracy])
    learn.fit(2, 1e6)
    assert len(learn.recorder.val_losses) == 2 and not math.isfinite(learn.recorder.val_losses[-1])
    assert len(learn.recorder.metrics) == 2


def test_a_non_finite_metric_is_recorded_and_the_table_shows_it(capsys):
    def always_nan(out, targ):
        return torch.tensor(math.nan)

    def always_inf(out, targ):
        return torch.tensor(math.inf)

    learn = tiny_learner(metrics=[always_nan, always_inf, accuracy], silent=False)
    learn.fit(2, 1e-3)
    assert [[math.isnan(m[0]), m[1]] for m in learn.recorder.metrics] == [[True, math.inf]] * 2
    assert "nan" in capsys.readouterr().out


def test_terminate_on_nan_stops_a_diverging_fit():
    from fastcb import TerminateOnNaNCallback

    calls = []

    def loss_func(out, targ):
        calls.append(1)
        loss = torch.nn.functional.cross_entropy(out, targ)
        return loss * math.nan if len(calls) == 3 else loss

    learn = tiny_learner(n_train=64, bs=8, loss_func=loss_func)
    learn.fit(3, 1e-3)  # without it: the fit goes on
    assert len(learn.recorder.nb_batches) == 3 and math.isnan(learn.recorder.losses[-1])
    calls.clear()
    learn = tiny_learner(n_train=64, bs=8, loss_func=loss_func)
    learn.fit(3, 1e-3, callbacks=[TerminateOnNaNCallback()])
    assert learn.recorder.nb_batches == [3] and len(learn.recorder.losses) == 3  # stopped at the NaN


def test_an_error_raised_by_a_metric_names_the_metric():
    def broken_metric(out, targ):
        raise ZeroDivisionError("boom")

    learn = tiny_learner(metrics=[broken_metric])
    with pytest.raises(ZeroDivisionError, match="boom") as info:
        learn.fit(1, 1e-3)
    assert "raised by the metric 'broken_metric'" in info.value.__notes__


def test_weighted_mean_over_ranks_keeps_non_finite_values(monkeypatch):
    from fastcb import callback
    from fastcb import distributed as fdist

    others = []

    def gather(rows, row):  # two ranks: this one and one that saw `others`
        rows[0].copy_(row)
        rows[1].copy_(fdist.pack_partials(*others[0]))

    others.append(_partial([3.0, 5.0], [1.0, 1.0]))
    others.append(_partial([math.inf], [2.0]))
    monkeypatch.setattr(callback, "is_distributed", lambda: True)
    monkeypatch.setattr(fdist, "is_distributed", lambda: True)
    monkeypatch.setattr(fdist, "world_size", lambda: 2)
    monkeypatch.setattr(fdist, "_collective_device", lambda: torch.device("cpu"))
    monkeypatch.setattr(fdist.dist, "all_gather", gather)
    assert weighted_mean([1.0], [2.0]) == pytest.approx((2.0 + 3.0 + 5.0) / 4.0)
    others.pop(0)
    assert weighted_mean([1.0], [2.0]) == math.inf, "a non-finite value on another rank is the result everywhere"
    others[0] = _partial([-math.inf], [1.0])
    assert math.isnan(weighted_mean([math.inf, 1.0], [1.0, 1.0]))
    others[0] = _partial([], [])
    assert weighted_mean([], []) is None


def _partial(values, weights):
    """What one rank contributes to the gather in `weighted_mean`: `(acc, bad, n)`."""
    from fastcb.anneal import WeightedMean

    values, weights = np.asarray(values, dtype=np.float64), np.asarray(weights, dtype=np.float64)
    acc, finite = WeightedMean(), np.isfinite(values)
    if finite.any():
        acc.extend(values[finite], weights[finite])
    bad = float(np.sum(values[~finite] * weights[~finite])) if not finite.all() else None
    return acc, bad, values.size


def test_optim_wrapper_of_an_optimizer_without_lr_loads_without_adding_one():
    class NoLr(torch.optim.Optimizer):
        def __init__(self, params):
            super().__init__(params, {"momentum": 0.9})

        def step(self, closure=None):
            return None

    w = OptimWrapper(NoLr(torch.nn.Linear(2, 2).parameters()))
    w.load_state_dict(w.state_dict())
    assert "lr" not in w.opt.param_groups[0]


def test_optim_wrapper_load_keeps_hyper_parameter_tensors_in_place():
    model = torch.nn.Linear(3, 3)
    opt = torch.optim.Adam(model.parameters(), lr=torch.tensor(0.01), betas=(torch.tensor(0.9), torch.tensor(0.99)))
    w = OptimWrapper(opt)
    lr, beta1 = opt.param_groups[0]["lr"], opt.param_groups[0]["betas"][0]
    sd = copy.deepcopy(w.state_dict())
    sd["param_groups"][0]["lr"] = torch.tensor(0.5)
    sd["fastcb"]["lr"] = [0.5]
    sd["fastcb"]["mom"] = [0.8]
    w.load_state_dict(sd)
    g = opt.param_groups[0]
    assert g["lr"] is lr and float(lr) == 0.5, "the same tensor, holding the loaded value"
    assert g["betas"][0] is beta1 and float(beta1) == pytest.approx(0.8) and float(g["betas"][1]) == pytest.approx(0.99)
