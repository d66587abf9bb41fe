"""OptimWrapper: optimizer key mappings, per-layer-group values, true_wd vs L2, bn_wd, resume."""

import copy
import pickle

import numpy as np
import pytest
import torch
from torch import nn

from fastcb import OptimWrapper


def two_groups():
    torch.manual_seed(0)
    body = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    head = nn.Sequential(nn.Linear(4, 2))
    return nn.Sequential(body, head), [body, head]


@pytest.mark.parametrize(
    "opt_func, mom_key, beta_key",
    [
        (torch.optim.SGD, "momentum", None),
        (torch.optim.Adam, "betas0", "betas1"),
        (torch.optim.AdamW, "betas0", "betas1"),
        (torch.optim.RMSprop, "momentum", "alpha"),
        (torch.optim.Adagrad, None, None),
    ],
)
def test_hyper_parameters_map_onto_each_optimizers_keys(opt_func, mom_key, beta_key):
    _, groups = two_groups()
    opt = OptimWrapper.create(opt_func, [1e-3, 1e-2], groups, wd=0.1, true_wd=False, bn_wd=False)
    assert len(opt.opt.param_groups) == 4
    assert [pg["lr"] for pg in opt.opt.param_groups] == [1e-3, 1e-3, 1e-2, 1e-2]
    assert opt.lr == 1e-2 and opt._lr == [1e-3, 1e-2]
    opt.mom, opt.beta = 0.8, 0.7

    def read(pg, key):
        if key is None:
            return None
        return pg["betas"][int(key[-1])] if key.startswith("betas") else pg[key]

    for pg in opt.opt.param_groups:
        assert read(pg, mom_key) == (0.8 if mom_key else None)
        assert read(pg, beta_key) == (0.7 if beta_key else None)
    assert opt.mom == (0.8 if mom_key else None)
    assert opt.beta == (0.7 if beta_key else None)


def test_one_param_group_per_layer_group_unless_norm_and_bias_are_spared():
    model, groups = two_groups()
    merged = OptimWrapper.create(torch.optim.SGD, [0.1, 0.2], groups, bn_wd=True)
    split = OptimWrapper.create(torch.optim.SGD, [0.1, 0.2], groups, bn_wd=False)
    assert [len(pg["params"]) for pg in merged.opt.param_groups] == [4, 2]
    assert [len(pg["params"]) for pg in split.opt.param_groups] == [1, 3, 1, 1]
    assert {id(p) for pg in merged.opt.param_groups for p in pg["params"]} == {id(p) for p in model.parameters()}
    assert merged._lr == split._lr == [0.1, 0.2]
    with pytest.raises(ValueError, match="bn_wd"):
        merged.bn_wd = False
    split.bn_wd = True


def test_mom_and_beta_lists_per_layer_group():
    _, groups = two_groups()
    opt = OptimWrapper.create(torch.optim.Adam, 1e-3, groups)
    opt.mom, opt.beta = [0.9, 0.8], np.array([0.99, 0.98])
    assert [pg["betas"] for pg in opt.opt.param_groups] == [(0.9, 0.99), (0.8, 0.98)]
    assert all(type(b) is float for pg in opt.opt.param_groups for b in pg["betas"])
    with pytest.raises(ValueError, match="expected 2 values"):
        opt.lr = [1e-3, 1e-3, 1e-3]


def test_wrapping_any_optimizer_directly_gives_one_layer_group_per_param_group():
    model = nn.Linear(3, 2)
    opt = OptimWrapper(torch.optim.SGD([{"params": [model.weight], "lr": 0.1}, {"params": [model.bias], "lr": 0.2}],
                                       momentum=0.5))
    assert opt._lr == [0.1, 0.2] and opt.mom == 0.5
    opt.lr = 0.3
    assert [pg["lr"] for pg in opt.param_groups] == [0.3, 0.3]  # __getattr__ passthrough
    assert opt.state is opt.opt.state
    with pytest.raises(TypeError, match="opt"):
        OptimWrapper(opt)
    with pytest.raises(TypeError, match="opt"):
        OptimWrapper(model)
    with pytest.raises(AttributeError):
        opt.no_such_attribute


def _one_sgd_step(true_wd, bn_wd, wd=0.1, lr=0.5):
    model, groups = two_groups()
    opt = OptimWrapper.create(torch.optim.SGD, lr, groups, wd=wd, true_wd=true_wd, bn_wd=bn_wd)
    params = {n: p.detach().clone() for n, p in model.named_parameters()}
    for p in model.parameters():
        p.grad = torch.full_like(p, 0.25)
    opt.step()
    return params, dict(model.named_parameters())


@pytest.mark.parametrize("bn_wd", [True, False])
def test_true_wd_decays_before_the_step(bn_wd):
    lr, wd, g = 0.5, 0.1, 0.25
    before, after = _one_sgd_step(True, bn_wd, wd, lr)
    decayed = {"0.0.weight"} | ({"0.0.bias", "0.1.weight", "0.1.bias", "1.0.bias"} if bn_wd else set())
    decayed |= {"1.0.weight"}
    for name, p0 in before.items():
        factor = (1 - lr * wd) if name in decayed else 1.0
        assert torch.allclose(after[name], p0 * factor - lr * g), name


@pytest.mark.parametrize("bn_wd", [True, False])
def test_l2_adds_wd_to_the_gradient(bn_wd):
    lr, wd, g = 0.5, 0.1, 0.25
    before, after = _one_sgd_step(False, bn_wd, wd, lr)
    decayed = {"0.0.weight", "1.0.weight"} | ({"0.0.bias", "0.1.weight", "0.1.bias", "1.0.bias"} if bn_wd else set())
    for name, p0 in before.items():
        grad = g + (wd * p0 if name in decayed else 0)
        assert torch.allclose(after[name], p0 - lr * grad), name


def test_true_wd_keeps_the_optimizers_own_weight_decay_at_zero():
    _, groups = two_groups()
    opt = OptimWrapper.create(torch.optim.AdamW, 1e-3, groups, wd=0.3, true_wd=True)
    assert opt.wd == 0.3 and all(pg["weight_decay"] == 0 for pg in opt.opt.param_groups)
    opt = OptimWrapper.create(torch.optim.AdamW, 1e-3, groups, wd=0.3, true_wd=False, bn_wd=False)
    assert [pg["weight_decay"] for pg in opt.opt.param_groups] == [0.3, 0.0, 0.3, 0.0]


def test_true_wd_skips_parameters_without_gradient():
    model, groups = two_groups()
    opt = OptimWrapper.create(torch.optim.SGD, 0.5, groups, wd=0.1, true_wd=True)
    frozen = model[0][0].weight.detach().clone()
    for n, p in model.named_parameters():
        p.grad = None if n == "0.0.weight" else torch.zeros_like(p)
    opt.step()
    assert torch.equal(model[0][0].weight, frozen)
    assert torch.allclose(model[1][0].weight.grad, torch.zeros(2, 4))


def test_decoupled_decay_uses_foreach_ops(monkeypatch):
    calls = []
    real = torch._foreach_mul_
    monkeypatch.setattr(torch, "_foreach_mul_", lambda ts, s: (calls.append((len(ts), s)), real(ts, s)))
    _one_sgd_step(True, True, wd=0.1, lr=0.5)
    assert calls == [(4, 1 - 0.05), (2, 1 - 0.05)]


def test_tensor_learning_rate_is_filled_in_place():
    model = nn.Linear(3, 2)
    lr = torch.tensor(0.01)
    opt = OptimWrapper(torch.optim.Adam(model.parameters(), lr=lr, fused=True))
    held = opt.opt.param_groups[0]["lr"]
    opt.lr = 0.05
    assert opt.opt.param_groups[0]["lr"] is held and float(held) == pytest.approx(0.05)
    assert opt.lr == 0.05


def test_tensor_learning_rates_are_not_shared_between_groups():
    _, groups = two_groups()
    opt = OptimWrapper.create(lambda pgs: torch.optim.SGD(pgs, lr=torch.tensor(0.1)), [0.1, 0.2], groups)
    assert [float(pg["lr"]) for pg in opt.opt.param_groups] == pytest.approx([0.1, 0.2])


def test_stats_other_hyper_parameters():
    _, groups = two_groups()
    opt = OptimWrapper.create(torch.optim.Adam, 1e-3, groups)
    opt.set_stat("eps", 1e-5)
    assert opt.get_stat("eps") == 1e-5 and all(pg["eps"] == 1e-5 for pg in opt.opt.param_groups)
    opt.set_stat("lr", 0.2)
    assert opt.get_stat("lr") == 0.2
    with pytest.raises(KeyError, match="nope"):
        opt.set_stat("nope", 1)


def test_new_and_new_with_params_keep_the_hyper_parameters():
    model, groups = two_groups()
    opt = OptimWrapper.create(torch.optim.Adam, 1e-3, groups, wd=0.2, true_wd=True, bn_wd=False)
    opt.mom, opt.beta = 0.7, 0.9
    opt.set_stat("eps", 1e-6)
    new = opt.new([model])
    assert (new.lr, new.mom, new.beta, new.wd, new.true_wd, new.bn_wd) == (1e-3, 0.7, 0.9, 0.2, True, False)
    assert new.get_stat("eps") == 1e-6 and len(new.opt.param_groups) == 2
    flat = opt.new([model], split_no_wd=False)
    assert len(flat.opt.param_groups) == 1 and flat.mom == 0.7
    same = opt.new_with_params([[p] for p in model.parameters()][:4])
    assert same._lr == [1e-3, 1e-3] and same.mom == 0.7 and same.opt_func is torch.optim.Adam


def test_clear_resets_the_inner_state_only():
    model, groups = two_groups()
    opt = OptimWrapper.create(torch.optim.Adam, 1e-3, groups)
    model(torch.randn(4, 3)).sum().backward()
    opt.step()
    assert len(opt.opt.state) > 0
    opt.clear()
    assert len(opt.opt.state) == 0 and opt.lr == 1e-3


def _train(opt, model, steps, seed):
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        model(torch.randn(8, 3, generator=g)).pow(2).mean().backward()
        opt.step()
        opt.zero_grad()


@pytest.mark.parametrize("opt_func", [torch.optim.SGD, torch.optim.Adam, torch.optim.RMSprop])
def test_resume_from_state_dict_gives_identical_weights(opt_func):
    model_a, groups_a = two_groups()
    opt_a = OptimWrapper.create(opt_func, [0.01, 0.02], groups_a, wd=0.1, true_wd=True)
    opt_a.mom = 0.5
    _train(opt_a, model_a, 3, seed=1)
    saved = (copy.deepcopy(model_a.state_dict()), copy.deepcopy(opt_a.state_dict()))
    _train(opt_a, model_a, 3, seed=2)

    model_b, groups_b = two_groups()
    opt_b = OptimWrapper.create(opt_func, 1.0, groups_b, wd=0.0, true_wd=False)
    model_b.load_state_dict(saved[0])
    opt_b.load_state_dict(saved[1])
    assert (opt_b._lr, opt_b.wd, opt_b.true_wd, opt_b.mom) == ([0.01, 0.02], 0.1, True, 0.5)
    _train(opt_b, model_b, 3, seed=2)
    for a, b in zip(model_a.parameters(), model_b.parameters()):
        assert torch.equal(a, b)


def test_plain_torch_state_dict_loads_too():
    model, groups = two_groups()
    opt = OptimWrapper.create(torch.optim.SGD, 0.1, groups, wd=0.1, true_wd=True)
    plain = torch.optim.SGD([{"params": pg["params"], "lr": 0.3, "momentum": 0.2} for pg in opt.opt.param_groups])
    opt.load_state_dict(plain.state_dict())
    assert opt.lr == 0.3 and opt.mom == 0.2 and opt.wd == 0.1


def test_pickle_round_trip():
    _, groups = two_groups()
    opt = OptimWrapper.create(torch.optim.Adam, [1e-3, 2e-3], groups, wd=0.1)
    back = pickle.loads(pickle.dumps(opt))
    assert back._lr == [1e-3, 2e-3] and back.wd == 0.1 and type(back.opt) is torch.optim.Adam


def test_bad_inputs_name_the_argument():
    _, groups = two_groups()
    with pytest.raises(TypeError, match="opt_func"):
        OptimWrapper.create(3, 1e-3, groups)
    with pytest.raises(ValueError, match="paired"):
        OptimWrapper(torch.optim.SGD(nn.Linear(2, 2).parameters()), paired=True)
    with pytest.raises(ValueError, match="wd"):
        OptimWrapper(torch.optim.LBFGS(nn.Linear(2, 2).parameters()), wd=0.1)
    assert "True weight decay: False" in repr(OptimWrapper(torch.optim.SGD(nn.Linear(2, 2).parameters())))


@pytest.mark.parametrize("opt_func", [torch.optim.SGD, torch.optim.Adam])
def test_hyper_parameters_written_into_the_param_groups_are_what_the_wrapper_reports(opt_func):
    # a torch scheduler (or the user) writes the param groups directly: the wrapper can't disagree
    model, groups = two_groups()
    kw = {"momentum": 0.9} if opt_func is torch.optim.SGD else {}
    opt = OptimWrapper.create(lambda p: opt_func(p, lr=0.1, **kw), 0.1, groups, wd=0.01, true_wd=False, bn_wd=False)
    for i, pg in enumerate(opt.opt.param_groups):
        pg["lr"], pg["weight_decay"] = 0.5 + i, 0.02
        if "momentum" in pg:
            pg["momentum"] = 0.8
        else:
            pg["betas"] = (0.8, 0.95)
    assert opt.lr == 2.5 and opt.wd == 0.02 and opt.mom == 0.8  # the last layer group's (decayed) param group
    assert opt.beta == (0.95 if opt_func is torch.optim.Adam else None)
    extra = opt.state_dict()["fastcb"]
    assert extra["lr"] == [0.5, 2.5] and extra["mom"] == [0.8, 0.8] and extra["wd"] == [0.02, 0.02]
    fresh = OptimWrapper.create(lambda p: opt_func(p, lr=0.1, **kw), 0.1, two_groups()[1], wd=0.01,
                                true_wd=False, bn_wd=False)
    fresh.load_state_dict(opt.state_dict())
    assert fresh.lr == 2.5 and [pg["lr"] for pg in fresh.opt.param_groups][::2] == [0.5, 2.5]


def test_decoupled_decay_uses_the_learning_rate_the_optimizer_steps_with():
    model, groups = two_groups()
    opt = OptimWrapper.create(torch.optim.SGD, 0.1, groups, wd=0.1, true_wd=True)
    for pg in opt.opt.param_groups:
        pg["lr"] = 0.5  # written past the wrapper
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    before = [p.detach().clone() for p in model.parameters()]
    opt.step()
    for p, p0 in zip(model.parameters(), before):
        torch.testing.assert_close(p.detach(), p0 * (1 - 0.5 * 0.1))


def test_fastai_get_state_loads_with_weights_only_and_rebuilds_the_wrapper():
    import io

    from fastcb.learner import AdamW
    from fastcb.lifecycle import default_safe_globals

    model, groups = two_groups()
    opt = OptimWrapper.create(AdamW, 0.01, groups, wd=0.1, true_wd=True)
    model(torch.randn(4, 3)).sum().backward()
    opt.step()
    buf = io.BytesIO()
    torch.save(opt.get_state(), buf)
    buf.seek(0)
    with torch.serialization.safe_globals(default_safe_globals()):  # what load_learner allows
        state = torch.load(buf, weights_only=True)
    new = OptimWrapper.load_with_state_and_layer_group(state, two_groups()[1])
    assert (new.lr, new.mom, new.beta, new.wd, new.true_wd) == (opt.lr, opt.mom, opt.beta, opt.wd, True)
    sd, nsd = opt.opt.state_dict()["state"], new.opt.state_dict()["state"]
    assert all(torch.equal(sd[i][k], nsd[i][k]) for i in sd for k in sd[i])
