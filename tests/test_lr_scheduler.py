"""fastcb.lr_scheduler against torch.optim.lr_scheduler itself, the oracle: same values
(learning rates and cycled momenta) over 10^4 steps, same errors, same state dicts."""

import copy
import io
import math
import pickle
from functools import partial

import pytest
import torch
import torch.optim.lr_scheduler as T
from hypothesis import given, settings
from hypothesis import strategies as st

import fastcb.lr_scheduler as F
from fastcb import _core
from fastcb.lr_scheduler import _transformers as HF

REL = 1e-12


def make_opt(kind="sgd", groups=3, tensor=False):
    """An optimizer with `groups` param groups of different learning rates: floats, or
    0-dim tensors of dtype `tensor` (`True`: float64)."""
    def lr(i):
        v = 0.1 / (i + 1)
        return torch.tensor(v, dtype=torch.float64 if tensor is True else tensor) if tensor else v

    params = [{"params": [torch.nn.Parameter(torch.zeros(2))], "lr": lr(i)} for i in range(groups)]
    if kind == "sgd":
        return torch.optim.SGD(params, lr=0.1, momentum=0.9)
    return torch.optim.AdamW(params, lr=0.1)


def snapshot(opt):
    """The learning rates and momenta of every group, as floats."""
    out = []
    for g in opt.param_groups:
        mom = g["betas"][0] if "betas" in g else g.get("momentum")
        out.append((float(g["lr"]), None if mom is None else float(mom)))
    return out


def close(a, b):
    if a is None or b is None:
        return a is b
    return a == b or math.isclose(a, b, rel_tol=REL, abs_tol=0.0)


def assert_same(step, ours, theirs):
    for (la, ma), (lb, mb) in zip(ours, theirs, strict=True):
        assert close(la, lb), f"step {step}: lr {la!r} != torch {lb!r}"
        assert close(ma, mb), f"step {step}: momentum {ma!r} != torch {mb!r}"


def twin(build, kind="sgd", groups=3, tensor=False):
    """The same scheduler built over two identical optimizers: (ours, torch's)."""
    o1, o2 = make_opt(kind, groups, tensor), make_opt(kind, groups, tensor)
    return build(F, o1), build(T, o2)


def run_both(ours, theirs, n, metric=None):
    """Steps both `n` times (optimizer first, as torch wants) and compares every step."""
    assert_same(0, snapshot(ours.optimizer), snapshot(theirs.optimizer))
    ours.optimizer.step()  # once: torch only checks the order at the first step
    theirs.optimizer.step()
    for i in range(1, n + 1):
        if metric is None:
            ours.step()
            theirs.step()
        else:
            ours.step(metric(i))
            theirs.step(metric(i))
        assert_same(i, snapshot(ours.optimizer), snapshot(theirs.optimizer))
        a, b = ours.get_last_lr(), theirs.get_last_lr()
        assert all(close(float(x), float(y)) for x, y in zip(a, b, strict=True))
    assert getattr(ours, "last_epoch", None) == getattr(theirs, "last_epoch", None)


N = 10_000

# name -> builder over a module (torch's or ours) and an optimizer
CASES = {
    "LambdaLR-hf": lambda m, o: m.LambdaLR(o, partial(HF._get_cosine_schedule_with_warmup_lr_lambda,
                                                       num_warmup_steps=300, num_training_steps=N, num_cycles=0.5)),
    "LambdaLR-py": lambda m, o: m.LambdaLR(o, lambda e: 0.5 ** (e / 1000)),
    "MultiplicativeLR": lambda m, o: m.MultiplicativeLR(o, lambda e: 0.9999),
    "StepLR": lambda m, o: m.StepLR(o, step_size=7, gamma=0.97),
    "MultiStepLR": lambda m, o: m.MultiStepLR(o, milestones=[10, 500, 500, 3000], gamma=0.3),
    "ConstantLR": lambda m, o: m.ConstantLR(o, factor=0.3, total_iters=20),
    "LinearLR": lambda m, o: m.LinearLR(o, start_factor=0.1, end_factor=0.9, total_iters=5000),
    "ExponentialLR": lambda m, o: m.ExponentialLR(o, gamma=0.9995),
    "PolynomialLR": lambda m, o: m.PolynomialLR(o, total_iters=7000, power=1.7),
    "CosineAnnealingLR": lambda m, o: m.CosineAnnealingLR(o, T_max=777, eta_min=1e-4),
    "CosineAnnealingWarmRestarts": lambda m, o: m.CosineAnnealingWarmRestarts(o, T_0=50, T_mult=2, eta_min=1e-5),
    "CyclicLR-triangular2": lambda m, o: m.CyclicLR(o, base_lr=0.01, max_lr=0.1, step_size_up=300, step_size_down=200,
                                                    mode="triangular2"),
    "CyclicLR-exp_range": lambda m, o: m.CyclicLR(o, base_lr=[0.01, 0.02, 0.03], max_lr=0.2, step_size_up=123,
                                                  mode="exp_range", gamma=0.9997),
    "CyclicLR-scale_fn": lambda m, o: m.CyclicLR(o, base_lr=0.01, max_lr=0.1, step_size_up=50,
                                                 scale_fn=lambda x: 0.99 ** x, cycle_momentum=False),
    "OneCycleLR": lambda m, o: m.OneCycleLR(o, max_lr=[1.0, 0.5, 0.25], total_steps=N),
    "OneCycleLR-three-linear": lambda m, o: m.OneCycleLR(o, max_lr=0.3, epochs=10, steps_per_epoch=N // 10,
                                                         three_phase=True, anneal_strategy="linear"),
    "SequentialLR": lambda m, o: m.SequentialLR(
        o, [m.LinearLR(o, start_factor=0.01, total_iters=500), m.CosineAnnealingLR(o, T_max=N - 500)], milestones=[500]
    ),
    "ChainedScheduler": lambda m, o: m.ChainedScheduler([m.ConstantLR(o, factor=0.5, total_iters=30),
                                                         m.ExponentialLR(o, gamma=0.9998)]),
}


#: the rule each compiled case runs (`_core.torch_compiled_counts()` counts its steps)
RULE = {
    "LambdaLR-hf": "lambda", "StepLR": "step", "MultiStepLR": "multistep", "ConstantLR": "constant",
    "LinearLR": "linear", "ExponentialLR": "exponential", "PolynomialLR": "polynomial", "CosineAnnealingLR": "cosine",
    "CosineAnnealingWarmRestarts": "warmrestarts", "CyclicLR-triangular2": "cyclic", "CyclicLR-exp_range": "cyclic",
    "OneCycleLR": "onecycle", "OneCycleLR-three-linear": "onecycle", "SequentialLR": "sequential",
}


def compiled_steps(rule, tensor=False):
    """Regular steps `rule` ran compiled: with float learning rates, or with tensor ones."""
    return _core.torch_compiled_counts()[rule][2 if tensor else 0]


@pytest.mark.parametrize("kind,groups,tensor", [("sgd", 3, False), ("adamw", 3, True), ("sgd", 3, torch.float32)])
@pytest.mark.parametrize("name", sorted(CASES))
def test_same_values_as_torch_over_ten_thousand_steps(name, kind, groups, tensor):
    ours, theirs = twin(CASES[name], kind, groups, tensor)
    assert isinstance(ours, T.LRScheduler)
    before = compiled_steps(RULE[name], tensor) if name in RULE else None
    run_both(ours, theirs, N)
    if name in RULE:
        # every regular step but torch's first (and, in SequentialLR, a milestone and the next
        # scheduler's first) ran compiled, with float and with tensor lrs: no silent fallback
        assert compiled_steps(RULE[name], tensor) - before >= N - 3


def test_reduce_on_plateau_same_as_torch():
    ours, theirs = twin(lambda m, o: m.ReduceLROnPlateau(o, patience=2, cooldown=1, factor=0.5, min_lr=[1e-4, 0, 0]))
    run_both(ours, theirs, 300, metric=lambda i: 1.0 / (1 + (i % 17)) + (i // 50))


def test_one_cycle_end_and_past_end():
    ours, theirs = twin(lambda m, o: m.OneCycleLR(o, max_lr=1.0, total_steps=50))
    run_both(ours, theirs, 50)  # step number total_steps is allowed
    for s in (ours, theirs):
        s.optimizer.step()
    with pytest.raises(ValueError) as theirs_err:
        theirs.step()
    with pytest.raises(ValueError) as ours_err:
        ours.step()
    assert str(ours_err.value) == str(theirs_err.value)


def test_tensor_lr_updated_in_place():
    opt = make_opt("sgd", 2, tensor=True)
    lrs = [g["lr"] for g in opt.param_groups]
    s = F.CosineAnnealingLR(opt, T_max=10)
    opt.step()
    s.step()
    s.step()
    assert all(g["lr"] is t for g, t in zip(opt.param_groups, lrs))
    assert float(lrs[0]) < 0.1


def test_mixes_with_torch_schedulers():
    def build(outer, inner1, inner2, o):
        return outer.SequentialLR(o, [inner1.LinearLR(o, start_factor=0.1, total_iters=20),
                                      inner2.CosineAnnealingLR(o, T_max=100)], milestones=[20])

    for a, b, c in [(F, T, F), (T, F, F), (F, F, T), (T, F, T)]:
        o1, o2 = make_opt(), make_opt()
        run_both(build(a, b, c, o1), build(T, T, T, o2), 150)
    o1, o2 = make_opt(), make_opt()
    ours = T.ChainedScheduler([F.ExponentialLR(o1, gamma=0.99), T.StepLR(o1, step_size=5, gamma=0.5)])
    theirs = T.ChainedScheduler([T.ExponentialLR(o2, gamma=0.99), T.StepLR(o2, step_size=5, gamma=0.5)])
    run_both(ours, theirs, 100)


STATEFUL = ["StepLR", "MultiStepLR", "LinearLR", "CosineAnnealingLR", "CosineAnnealingWarmRestarts",
            "CyclicLR-triangular2", "OneCycleLR", "SequentialLR", "LambdaLR-hf"]


@pytest.mark.parametrize("name", STATEFUL)
def test_state_dict_round_trip_resumes_exactly(name):
    build = CASES[name]
    ours, theirs = twin(build)
    run_both(ours, theirs, 123)
    buf = io.BytesIO()
    torch.save({"sched": ours.state_dict(), "opt": ours.optimizer.state_dict()}, buf)
    buf.seek(0)
    saved = torch.load(buf, weights_only=True)
    opt = make_opt()
    resumed = build(F, opt)
    opt.load_state_dict(saved["opt"])
    resumed.load_state_dict(saved["sched"])
    assert resumed.last_epoch == theirs.last_epoch
    run_both(resumed, theirs, 200)


def test_torch_state_dict_loads_into_ours():
    ours, theirs = twin(CASES["CosineAnnealingLR"])
    run_both(ours, theirs, 10)
    sd, osd = theirs.state_dict(), theirs.optimizer.state_dict()
    for s in (ours, theirs):
        for _ in range(5):
            s.optimizer.step()
            s.step()
        s.optimizer.load_state_dict(osd)
        s.load_state_dict(sd)
    assert ours.last_epoch == 10
    before = compiled_steps("cosine")
    run_both(ours, theirs, 10)
    assert compiled_steps("cosine") - before == 10


def test_pickle_and_deepcopy_of_transformers_factors():
    s = F.get_cosine_schedule_with_warmup(make_opt(), 10, 100)
    f = pickle.loads(pickle.dumps(s.lr_lambdas[0]))
    assert f(50) == s.lr_lambdas[0](50)
    assert f.func is HF._get_cosine_schedule_with_warmup_lr_lambda
    assert f.keywords == {"num_warmup_steps": 10, "num_training_steps": 100, "num_cycles": 0.5}
    assert copy.deepcopy(s.state_dict())["lr_lambdas"] == [{}, {}, {}]


BAD = [
    ("OneCycleLR", dict(max_lr=1.0, total_steps=0)),
    ("OneCycleLR", dict(max_lr=1.0)),
    ("OneCycleLR", dict(max_lr=1.0, total_steps=10, pct_start=1.5)),
    ("OneCycleLR", dict(max_lr=1.0, total_steps=10, anneal_strategy="exp")),
    ("OneCycleLR", dict(max_lr=[1.0], total_steps=10)),
    ("ConstantLR", dict(factor=2.0)),
    ("LinearLR", dict(start_factor=0.0)),
    ("LinearLR", dict(end_factor=1.5)),
    ("CosineAnnealingWarmRestarts", dict(T_0=0)),
    ("CosineAnnealingWarmRestarts", dict(T_0=5, T_mult=0)),
    ("CyclicLR", dict(base_lr=0.1, max_lr=1.0, mode="square")),
    ("ReduceLROnPlateau", dict(factor=1.0)),
    ("ReduceLROnPlateau", dict(mode="best")),
    ("LambdaLR", dict(lr_lambda=[lambda e: 1.0])),
]


@pytest.mark.parametrize("name,kwargs", BAD, ids=[f"{n}-{sorted(k)}" for n, k in BAD])
def test_same_errors_as_torch(name, kwargs):
    with pytest.raises(Exception) as theirs:
        getattr(T, name)(make_opt(), **kwargs)
    with pytest.raises(type(theirs.value)) as ours:
        getattr(F, name)(make_opt(), **kwargs)
    assert str(ours.value) == str(theirs.value)


def test_sequential_errors_as_torch():
    o = make_opt()
    for m in (T, F):
        with pytest.raises(ValueError, match="number of milestone"):
            m.SequentialLR(o, [T.StepLR(o, 3)], milestones=[1])
        with pytest.raises(TypeError):
            T.StepLR(object(), 3)


@settings(max_examples=25)
@given(
    name=st.sampled_from(sorted(set(CASES) - {"MultiplicativeLR", "LambdaLR-py", "CyclicLR-scale_fn"})),
    kind=st.sampled_from(["sgd", "adamw"]),
    groups=st.integers(1, 4),
    n=st.integers(1, 400),
)
def test_property_same_as_torch(name, kind, groups, n):
    build = CASES[name]
    if name in ("OneCycleLR", "CyclicLR-exp_range") and groups != 3:
        return  # these configurations give one value per group of three
    ours, theirs = twin(build, kind, groups)
    run_both(ours, theirs, n)


@settings(max_examples=25)
@given(
    t_max=st.integers(1, 300),
    eta_min=st.floats(0, 0.05),
    gamma=st.floats(0.5, 1.0),
    step_size=st.integers(1, 50),
    total=st.integers(1, 300),
    power=st.floats(0.1, 3.0),
)
def test_property_chainable_parameters(t_max, eta_min, gamma, step_size, total, power):
    for build in (
        lambda m, o: m.CosineAnnealingLR(o, T_max=t_max, eta_min=eta_min),
        lambda m, o: m.StepLR(o, step_size=step_size, gamma=gamma),
        lambda m, o: m.PolynomialLR(o, total_iters=total, power=power),
        lambda m, o: m.LinearLR(o, start_factor=gamma, end_factor=1.0, total_iters=total),
    ):
        ours, theirs = twin(build, groups=2)
        run_both(ours, theirs, 2 * t_max + 5)




def test_every_rule_of_the_registry_has_its_class_and_a_case():
    """The Rust registry (`core::torch_sched::RULES`) and the Python classes name the same
    rules, and every rule is exercised above (values and compiled counts)."""
    rules = set(_core.torch_compiled_counts())
    named = {getattr(getattr(F, n), "_fastcb_rule", None) for n in F.__all__} - {None}
    assert named == rules
    assert set(RULE.values()) == rules
