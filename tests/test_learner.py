"""The loop (`fit`, `loss_batch`, `validate`), `DataBunch`, `Learner`, `LearnerCallback`."""

import gc
import inspect
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from loop_helpers import tiny_data, tiny_learner
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from fastcb import (
    AverageMetric,
    CallbackHandler,
    DataBunch,
    Learner,
    LearnerCallback,
    OptimWrapper,
    accuracy,
    fit,
    loss_batch,
    validate,
)
from fastcb.data import DatasetType


def test_learner_signature_matches_fastai_v1():
    params = inspect.signature(Learner).parameters
    expected = ["data", "model", "opt_func", "loss_func", "metrics", "true_wd", "bn_wd", "wd", "train_bn", "path",
                "model_dir", "callback_fns", "callbacks", "layer_groups"]
    assert list(params)[: len(expected)] == expected
    assert (params["true_wd"].default, params["bn_wd"].default, params["wd"].default, params["model_dir"].default) == (
        True, True, 1e-2, "models")
    fo = inspect.signature(Learner.fit_one_cycle).parameters
    assert [(n, fo[n].default) for n in ("moms", "div_factor", "pct_start", "final_div")] == [
        ("moms", (0.95, 0.85)), ("div_factor", 25.0), ("pct_start", 0.3), ("final_div", None)]
    lf = inspect.signature(Learner.lr_find).parameters
    assert [lf[n].default for n in ("start_lr", "end_lr", "num_it", "stop_div")] == [1e-7, 10, 100, True]


def test_fit_learns_the_tiny_problem():
    learn = tiny_learner(n_train=64, n_valid=32, metrics=[accuracy])
    learn.fit(6, 3e-2)
    assert float(learn.recorder.val_losses[-1]) < float(learn.recorder.val_losses[0])
    assert learn.recorder.metrics[-1][0] >= 0.8


def test_validate_is_the_batch_size_weighted_mean():
    learn = tiny_learner(n_valid=20, bs=8, metrics=[accuracy])  # batches of 8, 8, 4
    x, y = learn.data.valid_ds.tensors
    with torch.no_grad():
        out = learn.model(x)
    loss, acc = learn.validate()
    assert loss == pytest.approx(float(F.cross_entropy(out, y)), rel=1e-6)
    assert acc == pytest.approx(float((out.argmax(1) == y).double().mean()), abs=1e-12)
    per_batch = validate(learn.model, learn.data.valid_dl, learn.loss_func, average=False, quiet=True)
    assert len(per_batch) == 3 and per_batch[0].shape == ()


def test_loss_batch_without_handler_or_optimizer():
    model = nn.Linear(10, 2)
    xb, yb = torch.randn(4, 10), torch.tensor([0, 1, 0, 1])
    out, y = loss_batch(model, xb, yb)
    assert out.shape == (4, 2) and not out.requires_grad and torch.equal(y, yb)
    loss = loss_batch(model, xb, yb, F.cross_entropy)
    with torch.no_grad():
        assert not loss.requires_grad and loss == pytest.approx(float(F.cross_entropy(model(xb), yb)))
    before = model.weight.detach().clone()
    loss_batch(model, xb, yb, F.cross_entropy, torch.optim.SGD(model.parameters(), lr=1.0))
    assert not torch.equal(before, model.weight) and model.weight.grad is None


def test_multiple_inputs_and_targets_flow_through():
    class Two(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(10, 2)

        def forward(self, a, b):
            return self.lin(a + b)

    x = torch.randn(16, 10)
    y = (x[:, 0] > 0).long()
    ds = TensorDataset(x, x, y, y)
    dl = DataLoader(ds, batch_size=8, collate_fn=lambda b: ([torch.stack([o[0] for o in b]), torch.stack([o[1] for o in b])],
                                                            [torch.stack([o[2] for o in b]), torch.stack([o[3] for o in b])]))
    data = DataBunch(dl, dl, device="cpu")

    def loss2(out, y1, y2):
        return F.cross_entropy(out, y1) + F.cross_entropy(out, y2)

    def acc2(out, y1, y2):
        return accuracy(out, y1) * 0 + accuracy(out, y2)

    learn = Learner(data, Two(), loss_func=loss2, metrics=[acc2], silent=True)
    learn.fit(1, 1e-2)
    assert len(learn.recorder.metrics) == 1 and 0 <= learn.recorder.metrics[0][0] <= 1


def test_fit_function_with_a_basic_learner():
    class Basic:
        pass

    b = Basic()
    b.data, b.model = tiny_data(), nn.Linear(10, 2)
    b.loss_func = F.cross_entropy
    b.opt = OptimWrapper(torch.optim.SGD(b.model.parameters(), lr=0.1))
    b.silent = True
    before = b.model.weight.detach().clone()
    fit(1, b, metrics=[accuracy])
    assert not torch.equal(before, b.model.weight)
    with pytest.raises(ValueError, match="epochs"):
        fit(-1, b)


def test_discriminative_learning_rates_over_layer_groups():
    model = nn.Sequential(nn.Linear(10, 8), nn.ReLU(), nn.Linear(8, 2))
    learn = tiny_learner(model=model, layer_groups=[model[0], model[2]])
    assert np.allclose(learn.lr_range(slice(1e-4, 1e-2)), [1e-4, 1e-2])
    assert np.allclose(learn.lr_range(slice(1e-2)), [1e-3, 1e-2])
    assert learn.lr_range(0.1) == 0.1
    learn.fit(1, slice(1e-4, 1e-2))
    assert learn.opt._lr == pytest.approx([1e-4, 1e-2])
    assert [pg["lr"] for pg in learn.opt.opt.param_groups] == pytest.approx([1e-4, 1e-2])
    learn.split([nn.Sequential(model[0]), nn.Sequential(model[1], model[2])])
    assert len(learn.layer_groups) == 2
    learn.fit_one_cycle(1, slice(1e-3, 1e-1))
    lrs = np.array(learn.recorder.lrs)  # the last group's, as fastai v1 records
    assert lrs.shape == (6,) and lrs.max() == pytest.approx(1e-1)
    assert learn.opt._lr[1] / learn.opt._lr[0] == pytest.approx(100)


def test_freeze_and_unfreeze():
    model = nn.Sequential(nn.Linear(10, 8), nn.BatchNorm1d(8), nn.Linear(8, 2))
    learn = tiny_learner(model=model, layer_groups=[nn.Sequential(model[0], model[1]), nn.Sequential(model[2])])
    learn.freeze()
    assert not model[0].weight.requires_grad and model[1].weight.requires_grad and model[2].weight.requires_grad
    learn.unfreeze()
    assert model[0].weight.requires_grad
    with pytest.raises(ValueError, match="layer_groups"):
        tiny_learner().freeze()


def test_save_and_load_round_trip(tmp_path):
    learn = tiny_learner(tmp_path)
    learn.fit(1, 1e-2)
    path = learn.save("stage1", return_path=True)
    assert path == tmp_path / "models" / "stage1.pth" and path.is_file()
    weights = [p.detach().clone() for p in learn.model.parameters()]
    lrs = list(learn.opt._lr)
    learn.fit(1, 5e-2)
    learn.load("stage1")
    assert all(torch.equal(a, b) for a, b in zip(weights, learn.model.parameters()))
    assert learn.opt._lr == lrs
    learn.save("weights_only", with_opt=False)
    other = tiny_learner(tmp_path, seed=3)
    other.load("weights_only")
    assert all(torch.equal(a, b) for a, b in zip(weights, other.model.parameters()))
    with pytest.raises(ValueError, match="file"):
        learn.save()


def test_learner_callback_is_reachable_and_weak():
    class MyTracker(LearnerCallback):
        pass

    learn = tiny_learner()
    cb = MyTracker(learn)
    assert learn.my_tracker is cb and cb.cb_name == "my_tracker"
    assert cb.data is learn.data  # attribute passthrough to the learner
    assert cb.get_state() == {}
    del learn
    gc.collect()
    with pytest.raises(ReferenceError):
        cb.learn


def test_callback_fns_get_the_learner():
    made = []

    class Probe(LearnerCallback):
        def __init__(self, learn, tag="x"):
            super().__init__(learn)
            made.append((learn, tag))

    from functools import partial

    learn = tiny_learner(callback_fns=[partial(Probe, tag="y")])
    learn.fit(1, 1e-3)
    assert made == [(learn, "y")] and learn.probe is not None


def test_databunch_create_and_bad_input():
    x, y = torch.randn(50, 10), torch.zeros(50, dtype=torch.long)
    data = DataBunch.create(TensorDataset(x, y), TensorDataset(x[:10], y[:10]), bs=16, val_bs=4, device="cpu")
    assert len(data.train_dl) == 3 and data.train_dl.batch_size == 16 and data.valid_dl.batch_size == 4
    assert data.train_dl.dl.drop_last and not data.empty_val and data.loss_func is F.nll_loss  # fastai's default
    assert data.dl(DatasetType.Train) is data.train_dl and data.one_batch()[0].shape == (16, 10)
    assert inspect.signature(DataBunch.create).parameters["num_workers"].default == 0
    with pytest.raises(ValueError, match="bs"):
        DataBunch.create(TensorDataset(x, y), None, bs=0)
    with pytest.raises(TypeError, match="train_dl"):
        DataBunch(None, None)
    with pytest.raises(ValueError, match="train_dl"):
        DataBunch(DataLoader(TensorDataset(x[:3], y[:3]), batch_size=4, drop_last=True), None)
    assert DataBunch.create(TensorDataset(x, y), None, device="cpu").empty_val


def test_device_transforms_apply_per_batch():
    data = tiny_data(n_valid=0)
    data.add_tfm(lambda b: [b[0] * 0, b[1]])
    xb, _ = next(iter(data.train_dl))
    assert torch.count_nonzero(xb) == 0


def test_learner_bad_input():
    data = tiny_data()
    with pytest.raises(TypeError, match="data"):
        Learner(None, nn.Linear(10, 2))
    with pytest.raises(TypeError, match="model"):
        Learner(data, lambda x: x)
    with pytest.raises(TypeError, match="opt_func"):
        Learner(data, nn.Linear(10, 2), opt_func=1)


def test_get_preds_and_validate_with_handler_metrics():
    learn = tiny_learner(n_valid=20)
    preds, targs, losses = learn.get_preds(with_loss=True)
    assert preds.shape == (20, 2) and targs.shape == (20,) and losses.shape == (20,)
    assert float(losses.mean()) == pytest.approx(float(learn.validate()[0]), rel=1e-6)
    h = CallbackHandler(metrics=[accuracy])
    h.on_train_begin(1, None, [accuracy])
    h.on_epoch_begin()
    val = validate(learn.model, learn.data.valid_dl, learn.loss_func, h, quiet=True)
    h.on_epoch_end(val)
    assert isinstance(h.metrics[0], AverageMetric)
    assert h.state_dict["last_metrics"][1] == pytest.approx(float((preds.argmax(1) == targs).double().mean()))
    assert not math.isnan(val)
