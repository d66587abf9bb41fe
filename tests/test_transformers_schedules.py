"""The transformers factories of fastcb.lr_scheduler against transformers' formulas:
transformers itself where installed, else its documented formulas (transformers 5.x
`optimization.py`), written out independently here."""

import math
import pickle
import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import fastcb.lr_scheduler as F
from fastcb import _core

try:  # pragma: no cover - transformers is not a dependency
    import transformers.optimization as HF
except ImportError:
    HF = None


def ramp(step, w):
    return float(step) / float(max(1, w))


def ref_constant(step):
    return 1


def ref_constant_warmup(step, w):
    return float(step) / float(max(1.0, w)) if step < w else 1.0


def ref_linear(step, w, total):
    if step < w:
        return ramp(step, w)
    return max(0.0, float(total - step) / float(max(1, total - w)))


def ref_cosine(step, w, total, cycles=0.5):
    if step < w:
        return ramp(step, w)
    progress = float(step - w) / float(max(1, total - w))
    factor = 0.5 * (1.0 + math.cos(math.pi * float(cycles) * 2.0 * progress))
    return max(0, factor * (1 - 0.0) + 0.0)


def ref_hard(step, w, total, cycles=1):
    if step < w:
        return ramp(step, w)
    progress = float(step - w) / float(max(1, total - w))
    if progress >= 1.0:
        return 0.0
    return max(0.0, 0.5 * (1.0 + math.cos(math.pi * ((float(cycles) * progress) % 1.0))))


def ref_poly(step, w, total, lr_end, power, lr_init):
    if step < w:
        return ramp(step, w)
    if step > total:
        return lr_end / lr_init
    decay = (lr_init - lr_end) * (1 - (step - w) / (total - w)) ** power + lr_end
    return decay / lr_init


def ref_inv_sqrt(step, w, timescale):
    if step < w:
        return ramp(step, w)
    return 1.0 / math.sqrt((step + timescale - w) / timescale)


def ref_wsd(step, w, stable, decay, up, down, ratio, cycles):
    if step < w:
        p = ramp(step, w)
        f = {"linear": p, "cosine": 0.5 * (1.0 - math.cos(math.pi * p)), "1-sqrt": 1.0 - math.sqrt(1.0 - p)}[up]
        return max(0.0, f * (1.0 - ratio) + ratio)
    if step < w + stable:
        return 1.0
    if step < w + stable + decay:
        p = float(step - w - stable) / float(max(1, decay))
        f = {"linear": 1.0 - p, "cosine": 0.5 * (1.0 + math.cos(math.pi * float(cycles) * 2.0 * p)),
             "1-sqrt": 1.0 - math.sqrt(p)}[down]
        return max(0.0, f * (1.0 - ratio) + ratio)
    return ratio


def opt(groups=2):
    params = [{"params": [torch.nn.Parameter(torch.zeros(1))], "lr": 0.1 * (i + 1)} for i in range(groups)]
    return torch.optim.AdamW(params, lr=0.1)


def check(sched, ref, n, oracle=None):
    """Steps `sched` `n` times; every lr is base_lr * ref(step) (and equals `oracle`'s)."""
    base = [g["initial_lr"] for g in sched.optimizer.param_groups]
    sched.optimizer.step()
    if oracle is not None:
        oracle.optimizer.step()
    for step in range(n + 1):
        if step:
            sched.step()
            if oracle is not None:
                oracle.step()
        want = [b * ref(step) for b in base]
        got = [g["lr"] for g in sched.optimizer.param_groups]
        assert all(math.isclose(a, b, rel_tol=1e-12, abs_tol=0.0) or a == b for a, b in zip(got, want)), (step, got, want)
        if oracle is not None:
            assert got == [g["lr"] for g in oracle.optimizer.param_groups]


FACTORIES = [
    ("get_constant_schedule", (), ref_constant),
    ("get_constant_schedule_with_warmup", (50,), ref_constant_warmup),
    ("get_linear_schedule_with_warmup", (50, 1000), ref_linear),
    ("get_cosine_schedule_with_warmup", (50, 1000), ref_cosine),
    ("get_cosine_schedule_with_warmup", (0, 1000, 1.5), ref_cosine),
    ("get_cosine_with_hard_restarts_schedule_with_warmup", (50, 1000, 3), ref_hard),
    ("get_polynomial_decay_schedule_with_warmup", (50, 1000, 1e-4, 2.0), None),
    ("get_inverse_sqrt_schedule", (50,), lambda s, w: ref_inv_sqrt(s, w, w)),
    ("get_inverse_sqrt_schedule", (0,), lambda s, w: ref_inv_sqrt(s, w, 10_000)),
    ("get_wsd_schedule", (50, 300, 1000), None),
]


@pytest.mark.parametrize("name,args,ref", FACTORIES, ids=[f"{n}{a}" for n, a, _ in FACTORIES])
def test_factories_match_transformers(name, args, ref):
    if name == "get_polynomial_decay_schedule_with_warmup":
        ref = lambda s, *a: ref_poly(s, 50, 1000, 1e-4, 2.0, 0.1)  # noqa: E731
    if name == "get_wsd_schedule":
        ref = lambda s, *a: ref_wsd(s, 50, 1000 - 350, 300, "linear", "cosine", 0, 0.5)  # noqa: E731
    sched = getattr(F, name)(opt(), *args)
    oracle = getattr(HF, name)(opt(), *args) if HF is not None else None
    assert isinstance(sched, F.LambdaLR)
    before = _core.torch_compiled_counts()["lambda"][0]
    check(sched, lambda s: ref(s, *args), 1200, oracle)
    assert _core.torch_compiled_counts()["lambda"][0] - before >= 1199, "every regular step ran compiled"


@settings(max_examples=30)
@given(
    w=st.integers(0, 60), stable=st.integers(0, 60), decay=st.integers(0, 60),
    up=st.sampled_from(["linear", "cosine", "1-sqrt"]), down=st.sampled_from(["linear", "cosine", "1-sqrt"]),
    ratio=st.floats(0, 0.5), cycles=st.floats(0.1, 2.0),
)
def test_wsd_property(w, stable, decay, up, down, ratio, cycles):
    sched = F.get_wsd_schedule(opt(), w, decay, num_stable_steps=stable, warmup_type=up, decay_type=down,
                               min_lr_ratio=ratio, num_cycles=cycles)
    check(sched, lambda s: ref_wsd(s, w, stable, decay, up, down, ratio, cycles), w + stable + decay + 3)


@settings(max_examples=30)
@given(w=st.integers(0, 50), extra=st.integers(1, 300), cycles=st.floats(0.1, 4.0), power=st.floats(0.2, 3.0))
def test_warmup_decay_property(w, extra, cycles, power):
    total = w + extra
    check(F.get_cosine_schedule_with_warmup(opt(), w, total, cycles), lambda s: ref_cosine(s, w, total, cycles), total + 2)
    check(F.get_linear_schedule_with_warmup(opt(), w, total), lambda s: ref_linear(s, w, total), total + 2)
    check(F.get_cosine_with_hard_restarts_schedule_with_warmup(opt(), w, total, int(cycles) + 1),
          lambda s: ref_hard(s, w, total, int(cycles) + 1), total + 2)
    check(F.get_polynomial_decay_schedule_with_warmup(opt(), w, total, 1e-3, power),
          lambda s: ref_poly(s, w, total, 1e-3, power, 0.1), total + 2)


def test_factory_errors_as_transformers():
    with pytest.raises(ValueError, match=r"lr_end \(1\.0\) must be smaller than initial lr \(0\.1\)"):
        F.get_polynomial_decay_schedule_with_warmup(opt(), 1, 10, lr_end=1.0)
    with pytest.raises(ValueError, match="Either num_training_steps or num_stable_steps"):
        F.get_wsd_schedule(opt(), 1, 10)
    with pytest.raises(ValueError, match="Unknown warmup type: exp"):
        F.get_wsd_schedule(opt(), 1, 10, 100, warmup_type="exp")
    with pytest.raises(ValueError, match="Unknown decay type: exp"):
        F.get_wsd_schedule(opt(), 1, 10, 100, decay_type="exp")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        F.get_wsd_schedule(opt(), 1, 10, 100, num_stable_steps=5)
    assert "num_stable_steps will be used" in str(caught[0].message)


def test_factories_pickle_and_resume():
    sched = F.get_cosine_schedule_with_warmup(opt(), 10, 100)
    factor = pickle.loads(pickle.dumps(sched.lr_lambdas[0]))
    assert [factor(s) for s in range(120)] == [sched.lr_lambdas[0](s) for s in range(120)]
    sched.optimizer.step()
    for _ in range(30):
        sched.step()
    sd = sched.state_dict()
    assert sd["lr_lambdas"] == [{}, {}], "a partial's (empty) __dict__, as transformers saves it"
    resumed = F.get_cosine_schedule_with_warmup(opt(), 10, 100)
    resumed.load_state_dict(sd)
    for _ in range(20):
        sched.step()
        resumed.step()
        assert sched.get_last_lr() == resumed.get_last_lr()


def test_factor_errors_are_pythons():
    with pytest.raises(ZeroDivisionError):
        F.get_inverse_sqrt_schedule(opt(), 0, timescale=0)
    sched = F.get_inverse_sqrt_schedule(opt(), 0, timescale=-1)  # step 0: sqrt(1)
    sched.optimizer.step()
    for _ in range(3):  # the compiled step defers to Python's errors: 1 / sqrt(-0.0)
        with pytest.raises(ZeroDivisionError):
            sched.step()
        sched.last_epoch = 0
    sched.last_epoch = 1
    with pytest.raises(ValueError, match="math domain"):  # sqrt(-1)
        sched.step()


# --- all of transformers' schedule API ------------------------------------------------

import inspect  # noqa: E402


def _hf_or_skip():
    return pytest.importorskip("transformers.optimization")


def test_every_schedule_function_of_transformers_exists_with_its_signature():
    hf = _hf_or_skip()
    names = [n for n in dir(hf) if n.startswith("get_") and "schedule" in n] + ["get_scheduler"]
    assert len(names) >= 14
    for name in names:
        ours, theirs = inspect.signature(getattr(F, name)), inspect.signature(getattr(hf, name))
        assert [(p.name, p.kind, p.default) for p in ours.parameters.values()] == [
            (p.name, p.kind, p.default) for p in theirs.parameters.values()], name


def _scheduler_kwargs(name):
    return {
        "cosine_with_restarts": {"num_cycles": 3},
        "polynomial": {"lr_end": 1e-4, "power": 2.0},
        "inverse_sqrt": {"timescale": 7},
        "cosine_with_min_lr": {"min_lr": 1e-3},
        "cosine_warmup_with_min_lr": {"min_lr_rate": 0.05, "warmup_lr_rate": 0.1},
        "warmup_stable_decay": {"num_decay_steps": 30, "warmup_type": "cosine", "decay_type": "1-sqrt"},
        "reduce_lr_on_plateau": {"patience": 1},
    }.get(name, {})


@pytest.mark.parametrize("tensor", [False, True])
@pytest.mark.parametrize("name", [t.value for t in F.SchedulerType if t.value != "greedy"])
def test_get_scheduler_by_every_name_gives_transformers_values(name, tensor):
    hf = _hf_or_skip()

    def make():
        lr = torch.tensor(0.1, dtype=torch.float64) if tensor else 0.1
        return torch.optim.AdamW([{"params": [torch.nn.Parameter(torch.zeros(1))], "lr": lr},
                                  {"params": [torch.nn.Parameter(torch.zeros(1))], "lr": lr * 0.5}], lr=0.1)

    by = name if name != "cosine" else F.SchedulerType.COSINE  # by name and by SchedulerType
    ours = F.get_scheduler(by, make(), num_warmup_steps=10, num_training_steps=100,
                           scheduler_specific_kwargs=_scheduler_kwargs(name))
    theirs = hf.get_scheduler(name, make(), num_warmup_steps=10, num_training_steps=100,
                              scheduler_specific_kwargs=_scheduler_kwargs(name))
    assert type(ours).__name__ == type(theirs).__name__
    for s in (ours, theirs):
        s.optimizer.step()
    before = _core.torch_compiled_counts()["lambda"][0]
    for step in range(120):
        for s in (ours, theirs):
            s.step(1.0) if name == "reduce_lr_on_plateau" else s.step()
        got = [float(g["lr"]) for g in ours.optimizer.param_groups]
        want = [float(g["lr"]) for g in theirs.optimizer.param_groups]
        assert got == want, (step, got, want)
    if isinstance(ours, F.LambdaLR) and not tensor:
        assert _core.torch_compiled_counts()["lambda"][0] - before >= 119
    if isinstance(ours, F.LambdaLR):
        f, g = ours.lr_lambdas[0], theirs.lr_lambdas[0]
        assert getattr(f, "keywords", None) == getattr(g, "keywords", None)
        assert getattr(f, "func", f).__name__ == getattr(g, "func", g).__name__


def test_get_scheduler_errors_as_transformers():
    hf = _hf_or_skip()
    for args in [("nope", opt()), ("linear", opt()), ("linear", opt(), 10), ("cosine", opt(), 10)]:
        with pytest.raises(ValueError) as theirs:
            hf.get_scheduler(*args)
        with pytest.raises(ValueError) as ours:
            F.get_scheduler(*args)
        assert str(ours.value).split(",")[0] == str(theirs.value).split(",")[0]


@pytest.mark.parametrize("steps", [10.0, np.float64(10.0)])
def test_float_step_counts_are_accepted_as_transformers_accepts_them(steps):
    hf = _hf_or_skip()
    for name in ("get_linear_schedule_with_warmup", "get_cosine_schedule_with_warmup",
                 "get_polynomial_decay_schedule_with_warmup"):
        ours, theirs = getattr(F, name)(opt(), steps, 10 * steps), getattr(hf, name)(opt(), steps, 10 * steps)
        for s in (ours, theirs):
            s.optimizer.step()
        for _ in range(120):
            ours.step()
            theirs.step()
            assert [g["lr"] for g in ours.optimizer.param_groups] == [g["lr"] for g in theirs.optimizer.param_groups]


def test_min_lr_cosines_against_their_formulas():
    # transformers' own formulas, written out: cosine to min_lr_rate, and the lr_rate variant
    sched = F.get_cosine_with_min_lr_schedule_with_warmup(opt(), 5, 50, min_lr_rate=0.1)
    ref = [ramp(s, 5) if s < 5 else max(0, (0.5 * (1 + math.cos(math.pi * 0.5 * 2 * (s - 5) / 45))) * 0.9 + 0.1)
           for s in range(60)]
    check(sched, lambda s: ref[s], 59)
    sched = F.get_cosine_with_min_lr_schedule_with_warmup_lr_rate(opt(), 5, 50, min_lr_rate=0.1)
    ref = [(s + 1.0) / 5 if s < 5 else max(0, 0.5 * (1 + math.cos(math.pi * 0.5 * 2 * (s - 4) / 45)) * 0.9 + 0.1)
           for s in range(60)]
    check(sched, lambda s: ref[s], 59)
