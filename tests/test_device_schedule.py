"""Schedules on the device: a Schedule on torch tensors, inside torch.compile, and
DeviceSchedule writing an optimizer's hyper-parameter tensors in place."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings

import fastcb.schedules as S
from fastcb.device_schedule import DeviceSchedule, cos_pi, torch_schedule
from fastcb.testing import composite_schedules

EVERY_KIND = {
    "no": S.SchedNo(0.5),
    "linear": S.SchedLin(0.1, 2.0),
    "cos": S.SchedCos(1.0, 1e-5),
    "exp": S.SchedExp(1e-7, 10.0),
    "poly_v1": S.Schedule.anneal("poly", 1.0, 0.0, 2.0),
    "poly_v2": S.SchedPoly(1.0, 0.1, 0.5),
    "combine": S.combine_scheds([0.2, 0.3, 0.5], [S.SchedLin(0, 1), S.SchedNo(1), S.SchedCos(1, 0)]),
    "combined_cos": S.combined_cos(0.25, 1e-4, 1e-2, 1e-7),
    "join": S.join_scheds([0, 10, 100], [S.SchedLin(0, 1), S.SchedCos(1, 0)]),
    "warmup_decay": S.warmup_decay(0.1, 0.0, 1.0, 0.0),
    "one_cycle": S.one_cycle(3e-3),
    "wsd": S.wsd(0.1, 0.2, peak=2.0, end=0.2),
    "sgdr": S.sgdr(1.0, 0.01, 10, mult=2),
    "sgdr_flat": S.sgdr(1.0, 0.0, 7),
    "sgdr_frac": S.sgdr(1.0, 0.0, 3.3, mult=1.7),
}


def positions(name):
    if name in ("sgdr", "sgdr_flat", "sgdr_frac", "join"):
        return np.concatenate([np.arange(0, 400, dtype=np.float64), [10.0, 30.0, 70.0, 150.0]])
    return np.concatenate([np.linspace(0, 1, 1001), [0.2, 0.5, 0.25, 0.1, 0.9, 1.0, -0.1, 1.2]])


def close(got, want, rtol):
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    return np.all(np.abs(got - want) <= rtol * np.abs(want))


@pytest.mark.parametrize("name", sorted(EVERY_KIND))
def test_a_schedule_on_a_tensor_is_a_tensor_equal_to_the_numpy_values(name):
    sched = EVERY_KIND[name]
    pos = positions(name)
    if name == "poly_v2":
        pos = pos[pos >= 0]
    want = sched(pos)
    got = sched(torch.from_numpy(pos))
    assert isinstance(got, torch.Tensor) and got.dtype == torch.float64 and got.shape == pos.shape
    assert close(got.numpy(), want, 1e-12), name
    grid = torch.from_numpy(pos[:100].reshape(10, 10))
    assert sched(grid).shape == (10, 10)
    f32 = sched(torch.from_numpy(pos).float())
    assert f32.dtype == torch.float32


@settings(max_examples=40, deadline=None)
@given(composite_schedules())
def test_every_composite_schedule_on_tensors_equals_numpy(sched):
    pos = np.linspace(0, 1, 257) if sched.spec[0] != "restarts" else np.arange(300, dtype=np.float64)
    assert close(sched(torch.from_numpy(pos)).numpy(), sched(pos), 1e-12)


def test_cos_pi_is_cos_of_pi_x():
    x = np.linspace(-3, 3, 100_001)
    got = cos_pi(torch.from_numpy(x)).numpy()
    assert np.all(np.abs(got - np.cos(np.pi * x)) <= 2.5e-16 + np.abs(np.pi * x) * 2.0**-52)
    assert cos_pi(torch.tensor([0.0, 0.5, 1.0, 2.0], dtype=torch.float64)).tolist() == [1.0, 0.0, -1.0, 1.0]


def test_integer_positions_are_evaluated_in_float64():
    s = S.sgdr(1.0, 0.0, 10)
    got = s(torch.arange(25))
    assert got.dtype == torch.float64 and got.tolist() == s(np.arange(25.0)).tolist()


class CountingBackend:
    """A torch.compile backend that counts the graphs it is given and runs them eagerly."""

    def __init__(self):
        self.graphs = 0

    def __call__(self, gm, example_inputs):
        self.graphs += 1
        return gm.forward


def test_compiled_schedule_is_one_graph_for_any_positions():
    torch._dynamo.reset()
    backend = CountingBackend()
    sched = S.one_cycle(1e-2)
    f = torch.compile(lambda p: sched(p) * 2.0, backend=backend, fullgraph=True)
    for start in [0.0, 0.3, 0.31, 0.9]:
        p = torch.linspace(start, 1.0, 17, dtype=torch.float64)
        assert close(f(p).numpy(), 2.0 * sched(p.numpy()), 1e-12)
    scalar = torch.tensor(0.0, dtype=torch.float64)
    g = torch.compile(lambda p: sched(p), backend=backend, fullgraph=True)
    for k in range(5):
        scalar.fill_(k / 4)
        assert close(g(scalar).item(), sched(k / 4), 1e-12)
    assert backend.graphs == 2  # one per function, none recompiled for new values


def test_compiled_torch_schedule_function_too():
    torch._dynamo.reset()
    backend = CountingBackend()
    fn = torch_schedule(S.sgdr(1.0, 0.0, 10, 2))
    f = torch.compile(fn, backend=backend, fullgraph=True)
    for k in range(0, 100, 7):
        p = torch.tensor(float(k), dtype=torch.float64)
        assert close(f(p).item(), S.sgdr(1.0, 0.0, 10, 2)(float(k)), 1e-12)
    assert backend.graphs == 1


# --- DeviceSchedule ------------------------------------------------------------------------

def make_opt(n_groups=1, lr=0.1, momentum=0.9, cls=torch.optim.SGD, **kw):
    torch.manual_seed(0)
    model = torch.nn.Sequential(*[torch.nn.Linear(3, 3) for _ in range(n_groups)])
    groups = [{"params": m.parameters(), "lr": torch.tensor(lr)} for m in model]
    if cls is torch.optim.SGD:
        for g in groups:
            g["momentum"] = torch.tensor(momentum)
    return model, cls(groups, foreach=False, **kw)


def lrs(opt, key="lr"):
    return [float(g[key]) for g in opt.param_groups]


@pytest.mark.parametrize("mode", ["table", "formula"])
def test_device_schedule_follows_the_eager_schedule(mode):
    model, opt = make_opt(n_groups=3)
    sched = S.one_cycle(1e-2)
    n = 50
    ds = DeviceSchedule(opt, n, lr=sched, mom=S.combined_cos(0.3, 0.95, 0.85, 0.95), mode=mode)
    for step in range(n + 1):
        want = sched(step / n)
        assert all(abs(v - want) <= 1e-6 * want for v in lrs(opt)), step
        assert abs(lrs(opt, "momentum")[0] - S.combined_cos(0.3, 0.95, 0.85, 0.95)(step / n)) <= 1e-6
        model(torch.randn(2, 3)).sum().backward()
        opt.step()
        ds.step()


@pytest.mark.parametrize("mode", ["table", "formula"])
def test_per_group_values_discriminative_lrs(mode):
    _, opt = make_opt(n_groups=3)
    lr_max = np.array([1e-4, 1e-3, 1e-2])
    sched = S.one_cycle(lr_max)
    ds = DeviceSchedule(opt, 10, lr=sched, mode=mode)
    for step in range(11):
        assert close(lrs(opt), sched(step / 10), 1e-6)
        ds.step()
    with pytest.raises(ValueError, match="lr: expected one schedule per param group"):
        DeviceSchedule(opt, 10, lr=S.one_cycle(np.array([1.0, 2.0])), mode=mode)


def test_groups_sharing_one_tensor_must_share_the_schedule():
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Linear(2, 2))
    opt = torch.optim.SGD([{"params": m.parameters()} for m in model], lr=torch.tensor(0.1), foreach=False)
    assert opt.param_groups[0]["lr"] is opt.param_groups[1]["lr"]
    DeviceSchedule(opt, 5, lr=S.SchedLin(0.1, 0.0)).step()
    assert lrs(opt) == pytest.approx([0.08, 0.08])
    with pytest.raises(ValueError, match="lr: param groups 0 and 1 share one tensor"):
        DeviceSchedule(opt, 5, lr=S.SchedLin(np.array([0.1, 0.2]), 0.0))


@pytest.mark.parametrize("mode", ["table", "formula"])
def test_steps_unit_for_sgdr(mode):
    _, opt = make_opt()
    sched = S.sgdr(0.1, 0.0, 4, 2)
    ds = DeviceSchedule(opt, 40, lr=sched, unit="step", mode=mode)
    for step in range(41):
        assert abs(lrs(opt)[0] - sched(float(step))) <= 1e-6 * 0.1
        ds.step()


def test_adam_betas_and_weight_decay():
    model = torch.nn.Linear(2, 2)
    opt = torch.optim.Adam(model.parameters(), lr=torch.tensor(1e-3), betas=(torch.tensor(0.9), torch.tensor(0.99)),
                           weight_decay=torch.tensor(0.0), foreach=False)
    ds = DeviceSchedule(opt, 4, lr=S.SchedLin(1e-3, 0), mom=S.SchedLin(0.95, 0.85), wd=S.SchedNo(0.01))
    ds.step()
    ds.step()
    g = opt.param_groups[0]
    assert abs(float(g["betas"][0]) - 0.9) < 1e-6 and abs(float(g["lr"]) - 5e-4) < 1e-9
    assert abs(float(g["weight_decay"]) - 0.01) < 1e-9 and float(g["betas"][1]) == pytest.approx(0.99)
    model(torch.randn(3, 2)).sum().backward()
    opt.step()


def test_a_float_lr_is_a_clear_error():
    model = torch.nn.Linear(2, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(TypeError, match=r"lr: opt.param_groups\[0\]\['lr'\] is a float.*tensor"):
        DeviceSchedule(opt, 10, lr=S.SchedLin(0.1, 0))
    _, opt = make_opt()
    for bad, match in [(dict(total_steps=0), "total_steps"), (dict(unit="epoch"), "unit"),
                       (dict(lr=lambda p: p), "lr: expected a fastcb Schedule"), (dict(lr=None), "lr"),
                       (dict(wd=S.SchedNo(0.1)), "wd: opt.param_groups")]:
        kw = dict(total_steps=10, lr=S.SchedLin(0.1, 0.0))
        kw.update(bad)
        with pytest.raises((TypeError, ValueError), match=match):
            DeviceSchedule(opt, **kw)


def test_a_run_that_leaves_the_finite_floats_is_refused_when_built():
    _, opt = make_opt()
    with pytest.raises(ValueError, match="^pos"):
        DeviceSchedule(opt, 10, lr=S.SchedExp(2.2e-311, 1.0))


@pytest.mark.parametrize("mode", ["table", "formula"])
def test_state_dict_resumes_exactly(mode):
    _, opt = make_opt()
    sched = S.one_cycle(0.1)
    ds = DeviceSchedule(opt, 30, lr=sched, mode=mode)
    for _ in range(12):
        ds.step()
    state = ds.state_dict()
    assert state["step"] == 12
    _, opt2 = make_opt()
    ds2 = DeviceSchedule(opt2, 30, lr=sched, mode=mode)
    ds2.load_state_dict(state)
    for _ in range(18):
        assert lrs(opt2) == lrs(opt)
        ds.step()
        ds2.step()
    with pytest.raises(ValueError, match="state"):
        ds2.load_state_dict({"step": -1})


@pytest.mark.parametrize("mode", ["table", "formula"])
def test_compiled_step_is_one_graph_for_the_whole_run(mode):
    torch._dynamo.reset()
    backend = CountingBackend()
    _, opt = make_opt(n_groups=2)
    sched = S.one_cycle(np.array([1e-3, 1e-2]))
    ds = DeviceSchedule(opt, 100, lr=sched, mom=S.combined_cos(0.3, 0.95, 0.85, 0.95), mode=mode)
    step = torch.compile(ds.step, backend=backend, fullgraph=True)
    for k in range(1, 101):
        step()
        assert close(lrs(opt), sched(k / 100), 1e-6), k
    assert backend.graphs == 1


@pytest.mark.filterwarnings("ignore:The .grad attribute of a Tensor that is not a leaf:UserWarning")  # Dynamo's own
@pytest.mark.parametrize("mode", ["table", "formula"])
def test_compiled_training_step_with_the_optimizer_does_not_recompile(mode):
    torch._dynamo.reset()
    backend = CountingBackend()
    model, opt = make_opt(n_groups=2)
    sched = S.one_cycle(1e-2)
    ds = DeviceSchedule(opt, 40, lr=sched, mode=mode)
    x, y = torch.randn(8, 3), torch.randn(8, 3)

    def train_step():
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        opt.step()
        opt.zero_grad()
        ds.step()
        return loss.detach()

    compiled = torch.compile(train_step, backend=backend)
    compiled()
    after_first = backend.graphs
    for k in range(2, 41):
        compiled()
        assert close(lrs(opt), sched(k / 40), 1e-6), k
    assert backend.graphs == after_first


# --- the drop-ins' device equivalents -------------------------------------------------------

def twin(build, n_groups=2, momentum=0.9, steps=60):
    """The drop-in stepping an optimizer with float lrs, and its DeviceSchedule stepping one
    with tensor lrs: the lrs (and momenta) agree at every step."""
    from fastcb.device_schedule import to_device_schedule

    def groups(tensors):
        ps = [torch.nn.Parameter(torch.zeros(2)) for _ in range(n_groups)]
        conv = (lambda v: torch.tensor(v)) if tensors else (lambda v: v)
        return [{"params": [p], "lr": conv(0.1 * (i + 1)), "momentum": conv(momentum)} for i, p in enumerate(ps)]

    host = torch.optim.SGD(groups(False), foreach=False)
    dev = torch.optim.SGD(groups(True), foreach=False)
    sched = build(host)
    ds = to_device_schedule(build(dev))
    for step in range(steps):
        assert close(lrs(dev), lrs(host), 1e-6), step
        assert close(lrs(dev, "momentum"), lrs(host, "momentum"), 1e-6), step
        host.step()
        sched.step()
        ds.step()


@pytest.mark.parametrize("build", [
    lambda o: __import__("fastcb.lr_scheduler").lr_scheduler.OneCycleLR(o, max_lr=[0.5, 1.0], total_steps=60),
    lambda o: torch.optim.lr_scheduler.OneCycleLR(o, max_lr=1.0, total_steps=60, anneal_strategy="linear",
                                                  three_phase=True),
    lambda o: __import__("fastcb.lr_scheduler").lr_scheduler.CosineAnnealingLR(o, T_max=25, eta_min=1e-3),
    lambda o: __import__("fastcb.lr_scheduler").lr_scheduler.LinearLR(o, start_factor=0.1, total_iters=20),
    lambda o: __import__("fastcb.lr_scheduler").lr_scheduler.get_linear_schedule_with_warmup(o, 10, 50),
    lambda o: __import__("fastcb.lr_scheduler").lr_scheduler.get_cosine_schedule_with_warmup(o, 10, 50),
    lambda o: __import__("fastcb.lr_scheduler").lr_scheduler.get_constant_schedule_with_warmup(o, 7),
    lambda o: __import__("fastcb.lr_scheduler").lr_scheduler.get_wsd_schedule(o, 10, num_decay_steps=20, min_lr_ratio=0.1, num_stable_steps=15),
], ids=["onecycle", "onecycle3_linear", "cosine", "linear", "hf_linear", "hf_cosine", "hf_constant_warmup", "hf_wsd"])
def test_drop_ins_have_a_device_equivalent(build):
    twin(build)


def test_a_scheduler_without_an_equivalent_is_a_clear_error():
    from fastcb.device_schedule import to_device_schedule

    _, opt = make_opt()
    with pytest.raises(ValueError, match="scheduler: StepLR has no Schedule equivalent"):
        to_device_schedule(torch.optim.lr_scheduler.StepLR(opt, 5))
    with pytest.raises(TypeError, match="scheduler"):
        to_device_schedule(object())


def test_table_mode_gives_the_numpy_values_and_holds_the_last_past_the_end():
    p = torch.nn.Parameter(torch.zeros(2))
    opt = torch.optim.SGD([{"params": [p], "lr": torch.tensor(0.0, dtype=torch.float64)}], foreach=False)
    sched = S.one_cycle(1e-2)
    ds = DeviceSchedule(opt, 20, lr=sched)
    want = sched(np.arange(21) / 20)
    got = []
    for _ in range(25):
        got.append(float(opt.param_groups[0]["lr"]))
        ds.step()
    assert got[:21] == want.tolist() and got[21:] == [want[-1]] * 4
    with pytest.raises(ValueError, match="mode"):
        DeviceSchedule(opt, 20, lr=sched, mode="lookup")
