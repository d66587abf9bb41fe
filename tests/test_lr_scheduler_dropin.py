"""What makes fastcb.lr_scheduler a drop-in for torch.optim.lr_scheduler beyond the values:
nothing in the instance that torch's has not, no reference cycles, subclasses and in-place
edits honoured, warnings at the caller's line, every regular step compiled (counted), and
a LambdaLR state refused whole. torch's own classes are the oracle."""

import gc
import pickle
import warnings
import weakref
from collections import Counter

import pytest
import torch
import torch.optim.lr_scheduler as T
from torch.utils._python_dispatch import TorchDispatchMode

import fastcb.lr_scheduler as F
from fastcb import _core


def make_opt(groups=2, tensor=False, adam=False):
    def lr(i):
        v = 0.1 / (i + 1)
        return torch.tensor(v, dtype=torch.float64) if tensor else v

    params = [{"params": [torch.nn.Parameter(torch.zeros(2))], "lr": lr(i)} for i in range(groups)]
    if adam:
        return torch.optim.AdamW(params, lr=0.1)
    return torch.optim.SGD(params, lr=0.1, momentum=0.9)


# name -> (builder over a module, the rule it runs compiled)
BUILDERS = {
    "StepLR": (lambda m, o: m.StepLR(o, step_size=3, gamma=0.5), "step"),
    "MultiStepLR": (lambda m, o: m.MultiStepLR(o, milestones=[3, 6, 6, 9], gamma=0.5), "multistep"),
    "ConstantLR": (lambda m, o: m.ConstantLR(o, factor=0.5, total_iters=4), "constant"),
    "LinearLR": (lambda m, o: m.LinearLR(o, start_factor=0.2, total_iters=8), "linear"),
    "ExponentialLR": (lambda m, o: m.ExponentialLR(o, gamma=0.9), "exponential"),
    "PolynomialLR": (lambda m, o: m.PolynomialLR(o, total_iters=15, power=2.0), "polynomial"),
    "CosineAnnealingLR": (lambda m, o: m.CosineAnnealingLR(o, T_max=7, eta_min=0.001), "cosine"),
    "CosineAnnealingWarmRestarts": (lambda m, o: m.CosineAnnealingWarmRestarts(o, T_0=4, T_mult=2), "warmrestarts"),
    "CyclicLR": (lambda m, o: m.CyclicLR(o, base_lr=0.01, max_lr=0.1, step_size_up=3), "cyclic"),
    "OneCycleLR": (lambda m, o: m.OneCycleLR(o, max_lr=[0.5, 0.3], total_steps=40), "onecycle"),
    "SequentialLR": (lambda m, o: m.SequentialLR(o, [m.ConstantLR(o, factor=0.5, total_iters=2),
                                                     m.ExponentialLR(o, gamma=0.9)], milestones=[3]), "sequential"),
    "LambdaLR": (lambda m, o: (F if m is F else _hf()).get_linear_schedule_with_warmup(o, 3, 30), "lambda"),
}


def _hf():
    return pytest.importorskip("transformers.optimization")


def lrs(opt):
    return [float(g["lr"]) for g in opt.param_groups]


def run(*scheds, n=20):
    """Steps every scheduler `n` times (optimizer first) and returns the lrs after each step."""
    out = []
    for s in scheds:
        s.optimizer.step()
    for _ in range(n):
        for s in scheds:
            s.step()
        out.append([lrs(s.optimizer) for s in scheds])
    return out


def counts(rule):
    return _core.torch_compiled_counts()[rule][0]


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_nothing_in_the_instance_that_torchs_has_not(name):
    build, _ = BUILDERS[name]
    ours, theirs = build(F, make_opt()), build(T, make_opt())
    run(ours, theirs, n=12)
    assert sorted(vars(ours)) == sorted(vars(theirs))
    state = {k: v for k, v in vars(ours).items() if k != "optimizer"}
    pickle.dumps(state)  # torch's definition of a scheduler's state pickles
    # round trip through state_dict: every attribute equal
    copy = build(F, make_opt())
    copy.load_state_dict(ours.state_dict())
    for key, value in vars(ours).items():
        if key not in ("optimizer", "_schedulers", "lr_lambdas"):
            assert vars(copy)[key] == value, key


@pytest.mark.parametrize("name", sorted(BUILDERS) + ["factories"])
def test_freed_by_reference_counting_alone(name):
    def make():
        opt = make_opt()
        if name == "factories":
            made = [getattr(F, f)(opt, 2, 20) for f in ("get_linear_schedule_with_warmup",
                                                         "get_cosine_schedule_with_warmup",
                                                         "get_cosine_with_hard_restarts_schedule_with_warmup")]
            made.append(F.get_scheduler("warmup_stable_decay", opt, 2, 20, {"num_decay_steps": 5}))
        else:
            made = [BUILDERS[name][0](F, opt)]
        opt.step()
        for s in made:
            for _ in range(5):
                s.step()
        return [weakref.ref(s) for s in made] + [weakref.ref(opt)]

    gc.collect()
    gc.disable()
    try:
        refs = make()
        assert all(r() is None for r in refs), "a reference cycle keeps the scheduler alive"
    finally:
        gc.enable()


@pytest.mark.parametrize("name", sorted(set(BUILDERS) - {"SequentialLR", "LambdaLR"}))
def test_every_regular_step_runs_compiled(name):
    build, rule = BUILDERS[name]
    s = build(F, make_opt())
    s.optimizer.step()
    s.step()  # torch's first step: it checks the call order
    before = counts(rule)
    for _ in range(25):
        s.step()
    assert counts(rule) - before == 25


def test_subclass_overriding_step_runs_every_step():
    calls = []

    class Mine(F.StepLR):
        def step(self, epoch=None):
            calls.append(self.last_epoch)
            super().step(epoch)

    s = Mine(make_opt(), step_size=2, gamma=0.5)
    calls.clear()
    s.optimizer.step()
    for _ in range(10):
        s.step()
    assert len(calls) == 10 and Mine._fastcb_rule is None


@pytest.mark.parametrize("method", ["get_lr", "_get_closed_form_lr"])
def test_subclass_overriding_get_lr_gets_torchs_semantics(method):
    def override(base):
        class Mine(base):
            def get_lr(self):
                return [0.5 * lr for lr in super().get_lr()]

            def _get_closed_form_lr(self):
                return [0.25 for _ in self.base_lrs]

        if method == "_get_closed_form_lr":
            del Mine.get_lr
        return Mine

    ours = override(F.ExponentialLR)(make_opt(), gamma=0.9)
    theirs = override(T.ExponentialLR)(make_opt(), gamma=0.9)
    assert type(ours)._fastcb_rule is None
    for step, (a, b) in enumerate(run(ours, theirs)):
        assert a == b, step


def test_subclass_adding_init_logic_keeps_the_compiled_step():
    class Mine(F.CosineAnnealingLR):
        def __init__(self, optimizer, **kwargs):
            self.note = "mine"
            super().__init__(optimizer, **kwargs)

    ours, theirs = Mine(make_opt(), T_max=10), T.CosineAnnealingLR(make_opt(), T_max=10)
    before = counts("cosine")
    for a, b in run(ours, theirs):
        assert a[0] == b[0]
    assert counts("cosine") - before == 19


def test_registering_a_class_needs_its_rule():
    # fastcb's own classes are registered when made; a class without a rule (torch's) is
    # refused, never taken for a compiled one
    with pytest.raises(ValueError, match="cls"):
        _core.torch_register_class(T.StepLR)
    _core.torch_register_class(F.StepLR)  # again: a no-op
    s = F.StepLR(make_opt(), step_size=2, gamma=0.5)
    s.optimizer.step()
    s.step()
    before = counts("step")
    s.step()
    assert counts("step") - before == 1


# more groups than a step keeps on the stack (16): the per-group numbers on the heap
MANY = {
    "OneCycleLR": lambda m, o: m.OneCycleLR(o, max_lr=0.5, total_steps=40, three_phase=True),
    "CyclicLR": lambda m, o: m.CyclicLR(o, base_lr=0.01, max_lr=0.1, step_size_up=3),
    **{n: b for n, (b, _) in BUILDERS.items() if n not in ("OneCycleLR", "CyclicLR")},
}


@pytest.mark.parametrize("name", sorted(MANY))
def test_more_groups_than_the_stack_holds_step_as_torchs(name):
    ours = MANY[name](F, make_opt(groups=19))
    # transformers' own factory is the oracle of the LambdaLR case
    theirs = _hf().get_linear_schedule_with_warmup(make_opt(groups=19), 3, 30) if name == "LambdaLR" else (
        MANY[name](T, make_opt(groups=19)))
    rule = BUILDERS[name][1]
    before = counts(rule)
    for step, (a, b) in enumerate(run(ours, theirs, n=25)):
        assert a == b, step
    assert counts(rule) - before >= 20
    moms = [[g.get("momentum") for g in s.optimizer.param_groups] for s in (ours, theirs)]
    assert moms[0] == moms[1]


EDITS = [
    ("StepLR", lambda s: setattr(s, "gamma", 0.1)),
    ("StepLR", lambda s: setattr(s, "step_size", 5)),
    ("ExponentialLR", lambda s: s.base_lrs.__setitem__(0, 0.5)),
    ("CosineAnnealingLR", lambda s: setattr(s, "T_max", 20)),
    ("CosineAnnealingLR", lambda s: setattr(s, "eta_min", 0.01)),
    ("CosineAnnealingLR", lambda s: s.base_lrs.__setitem__(0, 0.5)),
    ("MultiStepLR", lambda s: setattr(s, "milestones", Counter([12, 14]))),
    ("MultiStepLR", lambda s: s.milestones.update([13])),
    ("LinearLR", lambda s: setattr(s, "end_factor", 0.5)),
    ("PolynomialLR", lambda s: setattr(s, "power", 1.0)),
    ("ConstantLR", lambda s: setattr(s, "total_iters", 12)),
    ("CosineAnnealingWarmRestarts", lambda s: setattr(s, "eta_min", 0.02)),
    ("CosineAnnealingWarmRestarts", lambda s: setattr(s, "T_mult", 1)),
    ("CyclicLR", lambda s: s.max_lrs.__setitem__(0, 0.3)),
    ("CyclicLR", lambda s: s.base_lrs.__setitem__(1, 0.02)),
    # momentum lists of another length than the groups': torch's strict zip raises
    ("CyclicLR", lambda s: s.base_momentums.append(0.8)),
    ("CyclicLR", lambda s: s.max_momentums.pop()),
    ("OneCycleLR", lambda s: s.optimizer.param_groups[0].__setitem__("max_lr", 0.2)),
    ("OneCycleLR", lambda s: s.optimizer.param_groups[1].__setitem__("min_lr", 1e-3)),
    ("OneCycleLR", lambda s: s.optimizer.param_groups[0].__setitem__("initial_lr", 0.05)),
    ("OneCycleLR", lambda s: s.optimizer.param_groups[0].__setitem__("base_momentum", 0.5)),
    ("OneCycleLR", lambda s: s.optimizer.param_groups[1].__setitem__("max_momentum", 0.99)),
    ("OneCycleLR", lambda s: setattr(s, "total_steps", 15)),
]


@pytest.mark.parametrize("name,edit", EDITS, ids=[f"{n}-{i}" for i, (n, _) in enumerate(EDITS)])
def test_in_place_edits_are_honoured_at_the_next_step(name, edit):
    build, _ = BUILDERS[name]
    ours, theirs = build(F, make_opt()), build(T, make_opt())
    for a, b in run(ours, theirs, n=10):
        assert a[0] == b[0]
    edit(ours)
    edit(theirs)
    for s in (ours, theirs):
        s.optimizer.step()
    for i in range(30):
        errors = []
        for s in (ours, theirs):
            try:
                s.step()
                errors.append(None)
            except ValueError as e:  # OneCycleLR past its (edited) total_steps
                errors.append(str(e))
        assert errors[0] == errors[1]
        if errors[0]:
            break
        assert lrs(ours.optimizer) == lrs(theirs.optimizer), i
        mom = [(g.get("momentum"), g.get("betas")) for g in ours.optimizer.param_groups]
        assert mom == [(g.get("momentum"), g.get("betas")) for g in theirs.optimizer.param_groups]


def test_warnings_point_at_the_callers_line():
    s = F.StepLR(make_opt(), step_size=2)
    with pytest.warns(UserWarning, match="before `optimizer.step\\(\\)`") as caught:
        s.step()  # before the optimizer's: torch's order warning
    assert caught[0].filename == __file__
    with pytest.warns(UserWarning, match="epoch parameter") as caught:
        s.step(3)
    assert caught[0].filename == __file__
    with pytest.warns(UserWarning, match="get_last_lr") as caught:
        s.get_lr()
    assert caught[0].filename == __file__


def test_get_lr_is_compiled_for_ignite_style_callers():
    # Ignite's LRScheduler wrapper: last_epoch += 1, then get_lr() inside the "within step" flag
    ours, theirs = F.OneCycleLR(make_opt(), max_lr=0.5, total_steps=50), T.OneCycleLR(make_opt(), max_lr=0.5,
                                                                                      total_steps=50)
    before = _core.torch_compiled_counts()["onecycle"][1]
    for _ in range(20):
        got = []
        for s in (ours, theirs):
            s.last_epoch += 1
            s._get_lr_called_within_step = True
            got.append(s.get_lr())
            s._get_lr_called_within_step = False
        assert got[0] == got[1]
        assert lrs(ours.optimizer) == lrs(theirs.optimizer)  # get_lr sets no lr
        assert [g["momentum"] for g in ours.optimizer.param_groups] == [g["momentum"] for g in
                                                                         theirs.optimizer.param_groups]
    assert _core.torch_compiled_counts()["onecycle"][1] - before == 20


def test_lambda_lr_refuses_a_bad_state_whole():
    s = F.get_linear_schedule_with_warmup(make_opt(), 3, 30)
    run(s, n=5)
    before = dict(vars(s))
    good = s.state_dict()
    bad_states = [
        dict(good, lr_lambdas=[{}]),  # one entry for two groups
        dict(good, lr_lambdas=[{}, 3]),
        dict(good, last_epoch="7"),
        dict(good, base_lrs=[0.1]),
        dict(good, _step_count=-1),
        "not a dict",
    ]
    for bad in bad_states:
        with pytest.raises((ValueError, TypeError)):
            s.load_state_dict(bad)
        assert vars(s) == before, "nothing assigned before the error"
    s.load_state_dict(good)
    m = F.MultiplicativeLR(make_opt(), lambda e: 0.9)
    with pytest.raises(ValueError, match="lr_lambdas"):
        m.load_state_dict(dict(m.state_dict(), lr_lambdas=[None]))


def test_tensor_lrs_keep_their_tensors_and_torchs_values():
    for name in sorted(set(BUILDERS) - {"LambdaLR"}):
        build, _ = BUILDERS[name]
        ours, theirs = build(F, make_opt(tensor=True)), build(T, make_opt(tensor=True))
        held = [g["lr"] for g in ours.optimizer.param_groups]
        for step, (a, b) in enumerate(run(ours, theirs)):
            assert a[0] == b[0], (name, step)
        assert all(g["lr"] is t for g, t in zip(ours.optimizer.param_groups, held, strict=True)), name


class _Ops(TorchDispatchMode):
    """Records the name of every tensor operation run under it."""

    def __init__(self):
        super().__init__()
        self.ops = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops.append(func.overloadpacket.__name__)
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_tensor_lrs_written_with_fill_and_not_read(name, dtype):
    build, rule = BUILDERS[name]

    def opt():
        o = make_opt()
        for i, g in enumerate(o.param_groups):
            g["lr"] = torch.tensor(0.1 / (i + 1), dtype=dtype)
        return o

    ours, theirs = build(F, opt()), build(T, opt())
    held = [g["lr"] for g in ours.optimizer.param_groups]
    run(ours, theirs, n=5)  # past SequentialLR's milestone
    before = _core.torch_compiled_counts()[rule][2]
    with _Ops() as mode:
        ours.step()
        ours.step()
    theirs.step()
    theirs.step()
    # torch's writes (fill_) and torch's copies in _last_lr (clone), nothing else: no item()
    # (a write of the value the tensor provably holds already is skipped, and so is its copy)
    assert set(mode.ops) <= {"fill_", "clone"}, mode.ops
    assert _core.torch_compiled_counts()[rule][2] - before == 2
    # a write from outside (a version bump) is seen at the next step
    for s in (ours, theirs):
        s.optimizer.param_groups[0]["lr"].fill_(0.0625)
    for step, (a, b) in enumerate(run(ours, theirs, n=12)):
        assert a == b, (step, a, b)
    # so is a storage swapped under it (`.data =` leaves `_version` alone)
    for s in (ours, theirs):
        s.optimizer.param_groups[1]["lr"].data = torch.tensor(0.03125, dtype=dtype)
    for step, (a, b) in enumerate(run(ours, theirs, n=5)):
        assert a == b, (step, a, b)
    assert all(g["lr"] is t for g, t in zip(ours.optimizer.param_groups, held, strict=True))
    got, want = ours.get_last_lr(), theirs.get_last_lr()
    assert all(type(x) is torch.Tensor and x.dtype == dtype and x.item() == y.item() for x, y in zip(got, want))
    assert not any(x is g["lr"] for x, g in zip(got, ours.optimizer.param_groups)), "copies, as torch keeps"


def test_warnings_are_not_errors_of_ours():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s = F.CosineAnnealingLR(make_opt(), T_max=5)
        run(s, n=10)


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_step_takes_torchs_arguments(name):
    """`step` is a method written in Rust: every way torch's takes its arguments steps
    compiled where torch's regular step runs, and what torch refuses raises torch's error."""
    build, rule = BUILDERS[name]
    ours, theirs = build(F, make_opt()), build(T, make_opt())
    run(ours, theirs, n=4)
    calls = [(), (None,), {"epoch": None}] if name != "SequentialLR" else [()]
    before = counts(rule)
    for args in calls:
        for s in (ours, theirs):
            s.step(**args) if isinstance(args, dict) else s.step(*args)
        assert lrs(ours.optimizer) == lrs(theirs.optimizer)
    assert counts(rule) - before == len(calls)
    bad = [(1, 2), {"when": 1}] + ([(None,), {"epoch": None}] if name == "SequentialLR" else [])
    for args in bad:
        for s in (ours, theirs):
            with pytest.raises(TypeError):
                s.step(**args) if isinstance(args, dict) else s.step(*args)
    assert lrs(ours.optimizer) == lrs(theirs.optimizer) and ours.last_epoch == theirs.last_epoch
    assert type(ours).step.__name__ == "step" and ours.step.__self__ is ours
    with pytest.raises(TypeError):
        type(ours).step(object())


def _tensor_opt(dtype=torch.float64):
    o = make_opt()
    for i, g in enumerate(o.param_groups):
        g["lr"] = torch.tensor(0.1 / (i + 1), dtype=dtype)
    return o


def _last(s):
    return [float(x) for x in s.get_last_lr()]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_an_unchanged_tensor_lr_is_neither_written_nor_copied_again(dtype):
    """Where the new learning rate is the value a tensor provably holds (written by the
    previous step, `_version` and `data_ptr()` unchanged since), its `fill_` is skipped, and
    `_last_lr` keeps the previous step's copy (itself untouched since): no tensor operation."""
    ours = F.ConstantLR(_tensor_opt(dtype), factor=0.5, total_iters=3)
    theirs = T.ConstantLR(_tensor_opt(dtype), factor=0.5, total_iters=3)
    run(ours, theirs, n=6)  # past total_iters: the factor is 1 from now on
    before = _core.torch_compiled_counts()["constant"][2]
    with _Ops() as mode:
        ours.step()
        kept = ours.get_last_lr()
        ours.step()
    theirs.step()
    theirs.step()
    assert mode.ops == [] and _core.torch_compiled_counts()["constant"][2] - before == 2
    assert lrs(ours.optimizer) == lrs(theirs.optimizer) and _last(ours) == _last(theirs)
    # the one difference: consecutive lists share the unchanged copies
    assert all(a is b for a, b in zip(kept, ours.get_last_lr(), strict=True))
    assert all(t is not g["lr"] for t, g in zip(ours.get_last_lr(), ours.optimizer.param_groups, strict=True))


def _edits():
    def lr_in_place(s):
        s.optimizer.param_groups[0]["lr"].mul_(2)

    def lr_swapped(s):
        s.optimizer.param_groups[0]["lr"] = torch.tensor(0.3, dtype=torch.float64)

    def lr_storage_swapped(s):
        s.optimizer.param_groups[1]["lr"].data = torch.tensor(0.02, dtype=torch.float64)

    def copy_in_place(s):
        s.get_last_lr()[0].fill_(9.0)

    def copy_storage_swapped(s):
        s.get_last_lr()[1].data = torch.tensor(7.0, dtype=torch.float64)

    def copy_replaced(s):
        s._last_lr = [torch.tensor(5.0, dtype=torch.float64), s.optimizer.param_groups[1]["lr"]]

    def state_loaded(s):
        s.load_state_dict(dict(s.state_dict(), _last_lr=[torch.tensor(4.0, dtype=torch.float64)] * 2))

    return [lr_in_place, lr_swapped, lr_storage_swapped, copy_in_place, copy_storage_swapped, copy_replaced,
            state_loaded]


@pytest.mark.parametrize("edit", _edits(), ids=lambda f: f.__name__)
@pytest.mark.parametrize("name", ["ConstantLR", "StepLR", "MultiStepLR"])
def test_a_skipped_write_or_copy_never_hides_an_edit(name, edit):
    """Whatever changed a tensor learning rate or a `_last_lr` copy (in place, by a new tensor
    or storage, by a loaded state) is seen at the next step: torch's values, and `_last_lr`
    holds copies, never the learning rate itself."""
    build, _ = BUILDERS[name]
    ours, theirs = build(F, _tensor_opt()), build(T, _tensor_opt())
    run(ours, theirs, n=10)
    for s in (ours, theirs):
        edit(s)
    for step, (a, b) in enumerate(run(ours, theirs, n=8)):
        assert a == b, (step, a, b)
        assert _last(ours) == _last(theirs), step
        groups = ours.optimizer.param_groups
        assert all(t is not g["lr"] for t, g in zip(ours.get_last_lr(), groups, strict=True))


def _write_through_data(t):
    t.data.fill_(0.5)


def _write_through_numpy(t):
    t.numpy()[()] = 0.7


@pytest.mark.parametrize("write", [_write_through_data, _write_through_numpy], ids=lambda f: f.__name__)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name", ["ConstantLR", "StepLR", "MultiStepLR", "constant LambdaLR"])
def test_a_write_that_leaves_version_alone_is_seen_on_the_cpu(name, dtype, write):
    """`.data` and NumPy views write a CPU tensor without moving its `_version`: a skipped
    `fill_` or a kept copy would then hide the write. torch's next step reads (or, for a
    schedule of its own values, overwrites) it; ours does the same."""
    def build(m, o):
        if name == "constant LambdaLR":
            return m.LambdaLR(o, lr_lambda=lambda epoch: 1.0)
        return BUILDERS[name][0](m, o)

    ours, theirs = build(F, _tensor_opt(dtype)), build(T, _tensor_opt(dtype))
    run(ours, theirs, n=7)
    for s in (ours, theirs):
        write(s.optimizer.param_groups[0]["lr"])
    for step, (a, b) in enumerate(run(ours, theirs, n=4)):
        assert a == b, (step, a, b)
    for s in (ours, theirs):
        write(s.get_last_lr()[1])
    assert _last(ours) == _last(theirs)
    for step, (a, b) in enumerate(run(ours, theirs, n=4)):
        assert a == b, (step, a, b)
        assert _last(ours) == _last(theirs), step


def test_an_unchanged_float_lr_keeps_its_object_as_torchs_step_does():
    """torch's StepLR hands back `group["lr"]` itself between milestones: the group and
    `_last_lr` keep that very float; so do ours."""
    ours, theirs = F.StepLR(make_opt(), step_size=5, gamma=0.5), T.StepLR(make_opt(), step_size=5, gamma=0.5)
    run(ours, theirs, n=6)
    for s in (ours, theirs):
        held = [g["lr"] for g in s.optimizer.param_groups]
        s.step()
        now = [g["lr"] for g in s.optimizer.param_groups]
        assert all(a is b for a, b in zip(held, now, strict=True))
        assert all(a is b for a, b in zip(s.get_last_lr(), now, strict=True))
    assert lrs(ours.optimizer) == lrs(theirs.optimizer)


class _CountFill:
    """Counts the calls of `torch.Tensor.fill_` (the compiled step's own, not a direct write)."""

    def __init__(self, monkeypatch):
        self.calls = 0
        fill = torch.Tensor.fill_

        def counted(t, *args, **kwargs):
            self.calls += 1
            return fill(t, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, "fill_", counted)


def _bits(s):
    """Every group's learning rate as written (value, dtype, `_version`) and `_last_lr`'s values."""
    groups = s.optimizer.param_groups
    return [(g["lr"].item(), g["lr"].dtype, g["lr"]._version) for g in groups], _last(s)


#: classes whose learning rates change at every step (so that torch's `fill_` runs every step)
CHANGING = ["ExponentialLR", "PolynomialLR", "CosineAnnealingLR", "CyclicLR", "OneCycleLR"]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name", CHANGING)
def test_a_direct_write_is_torchs_fill_exactly(name, dtype, monkeypatch):
    """A 0-dim CPU learning rate is written in place, without `fill_`: the same value (float32
    rounded as `fill_` rounds), the same `_version` as torch's step leaves, step after step."""
    build, _ = BUILDERS[name]
    ours, theirs = build(F, _tensor_opt(dtype)), build(T, _tensor_opt(dtype))
    run(ours, theirs, n=3)
    assert _bits(ours) == _bits(theirs)
    fills = _CountFill(monkeypatch)
    for step in range(8):
        ours.step()
        theirs.step()
        assert _bits(ours) == _bits(theirs), step
    assert fills.calls == 8 * 2, "torch's own step fills; ours wrote in place"


def _fill_cases():
    def under_function_mode(build, dtype):
        class Mode(torch.overrides.TorchFunctionMode):
            def __torch_function__(self, func, types, args=(), kwargs=None):
                return func(*args, **(kwargs or {}))
        return build, Mode, _tensor_opt(dtype)

    def one_element_not_0_dim(build, dtype):
        o = _tensor_opt(dtype)
        for g in o.param_groups:
            g["lr"] = g["lr"].reshape(1)
        return build, None, o

    def a_view(build, dtype):
        o = _tensor_opt(dtype)
        base = torch.tensor([g["lr"].item() for g in o.param_groups], dtype=dtype)
        for i, g in enumerate(o.param_groups):
            g["lr"] = base[i]
        return build, None, o

    def a_negative_bit(build, dtype):
        o = _tensor_opt(dtype)
        for g in o.param_groups:
            t = -g["lr"]
            t.data = t.data._neg_view()  # reads as the lr; its memory holds minus that
            g["lr"] = t
        return build, None, o

    return [under_function_mode, one_element_not_0_dim, a_view, a_negative_bit]


@pytest.mark.parametrize("case", _fill_cases(), ids=lambda f: f.__name__)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_what_a_direct_write_cannot_prove_the_same_goes_through_fill(case, dtype, monkeypatch):
    """Under a torch function mode (which sees a `fill_`), a learning rate that is not 0-dim,
    and a view (whose base's autograd state decides what `fill_` may do) are written by
    `fill_`, as torch's step writes them: the same values and `_version`s."""
    build, _ = BUILDERS["ExponentialLR"]

    def make(m):
        b, mode, o = case(build, dtype)
        return b(m, o), mode

    (ours, mode), (theirs, _) = make(F), make(T)
    run(ours, theirs, n=3)
    fills = _CountFill(monkeypatch)
    for step in range(4):
        before = fills.calls
        if mode is None:
            ours.step()
        else:
            with mode():
                ours.step()
        # one `fill_` a group (a mode sees it, and may call it again)
        assert fills.calls - before >= 2 if mode else fills.calls - before == 2, step
        theirs.step()
        assert _bits(ours) == _bits(theirs), step


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name", ["ExponentialLR", "OneCycleLR"])
def test_groups_written_in_place_and_by_fill_in_one_step(name, dtype, monkeypatch):
    """One group's learning rate a view (written by `fill_`), one written in place, and a float
    one, in the same step: torch's values, `_version`s and momenta, step after step."""
    def opt():
        o = make_opt(groups=3)
        base = torch.tensor([0.1, 0.0], dtype=dtype)
        o.param_groups[0]["lr"] = base[0]
        o.param_groups[1]["lr"] = torch.tensor(0.05, dtype=dtype)
        return o

    build = BUILDERS[name][0] if name != "OneCycleLR" else (lambda m, o: m.OneCycleLR(o, max_lr=0.5, total_steps=40))
    ours, theirs = build(F, opt()), build(T, opt())
    run(ours, theirs, n=3)

    def state(s):
        groups = s.optimizer.param_groups
        tensors = [(g["lr"].item(), g["lr"]._version) for g in groups[:2]]
        return tensors, groups[2]["lr"], [g["momentum"] for g in groups], _last(s)

    fills = _CountFill(monkeypatch)
    for step in range(6):
        before = fills.calls
        ours.step()
        assert fills.calls - before == 1, step  # the view's
        theirs.step()
        assert state(ours) == state(theirs), step


def test_a_tensor_lrs_own_attributes_do_not_steer_its_write():
    """What a step asks of a tensor learning rate (its address, its negative bit, whether it is
    a view) is torch's `Tensor` type's answer: a method set on the tensor itself (which torch's
    step never calls) changes nothing, and is never trusted for a write in place."""
    build, _ = BUILDERS["ExponentialLR"]
    ours, theirs = build(F, _tensor_opt()), build(T, _tensor_opt())
    run(ours, theirs, n=3)
    for s in (ours, theirs):
        for g in s.optimizer.param_groups:
            g["lr"].data_ptr = lambda: 4096
            g["lr"].is_neg = lambda: False
            g["lr"]._is_view = lambda: False
    for step in range(4):
        ours.step()
        theirs.step()
        assert _bits(ours) == _bits(theirs), step


@pytest.mark.parametrize("name", ["ExponentialLR", "StepLR"])
def test_a_step_under_inference_mode_runs_compiled_with_torchs_values(name):
    """Under `torch.inference_mode()` a step's new copies for `_last_lr` are inference tensors,
    which have no version counter (torch's `clone()`s are too): the step still runs compiled,
    with torch's values."""
    build, rule = BUILDERS[name]
    ours, theirs = build(F, _tensor_opt()), build(T, _tensor_opt())
    run(ours, theirs, n=3)
    before = _core.torch_compiled_counts()[rule][2]
    with torch.inference_mode():
        for step in range(7):
            ours.step()
            theirs.step()
            assert lrs(ours.optimizer) == lrs(theirs.optimizer) and _last(ours) == _last(theirs), step
    assert _core.torch_compiled_counts()[rule][2] - before == 7
    for step, (a, b) in enumerate(run(ours, theirs, n=4)):
        assert a == b and _last(ours) == _last(theirs), step


def test_an_inference_tensor_lr_runs_torchs_step():
    """An inference tensor has no `_version`: torch's own step runs, and does what torch's
    does (writes it in inference mode, raises outside)."""
    def make(m):
        with torch.inference_mode():
            s = m.ExponentialLR(_tensor_opt(), gamma=0.5)
            s.optimizer.step()
        return s

    ours, theirs = make(F), make(T)
    with torch.inference_mode():
        for _ in range(3):  # the first step is torch's in any case (it warns there)
            ours.step()
            theirs.step()
    assert lrs(ours.optimizer) == lrs(theirs.optimizer) == [0.0125, 0.00625]
    for s in (ours, theirs):
        with pytest.raises(RuntimeError, match="[Ii]nference"):
            s.step()
