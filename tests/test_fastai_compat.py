"""fastai v1 behaviour users rely on: what fastai 1.0.61's own tests exercise (test_callback, test_train,
test_basic_train, test_basic_data, test_callbacks_misc, test_metrics), ported as our own checks."""

import io
import pickle

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from loop_helpers import tiny_data, tiny_learner
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import fastcb
from fastcb import (
    Callback,
    DataBunch,
    DatasetType,
    DeviceDataLoader,
    ExportError,
    Learner,
    LearnerCallback,
    StopAfterNBatches,
    defaults,
    exp_rmspe,
    fit_one_cycle,
    load_data,
    load_learner,
    lr_find,
)


class Tag(LearnerCallback):
    """Adds a column to the metrics (before the Recorder reads them)."""

    _order = -20

    def on_train_begin(self, **kwargs):
        self.learn.recorder.add_metric_names(["tag"])

    def on_epoch_end(self, last_metrics, **kwargs):
        return {"last_metrics": last_metrics + [7.0]}


def test_a_list_appended_to_callbacks_raises_as_in_fastai():
    learn = tiny_learner()
    learn.callbacks.append([Tag(learn)])
    with pytest.raises(TypeError, match="'list' object has no attribute 'on_train_begin'"):
        learn.fit(1)


def test_callback_fns_single_or_list_and_appended_callbacks_all_run():
    for kw in ({"callback_fns": Tag}, {"callback_fns": [Tag]}):
        learn = tiny_learner(**kw)
        learn.fit_one_cycle(1)
        assert learn.recorder.metrics[-1][-1] == 7.0
    learn = tiny_learner()
    learn.callbacks.append(Tag(learn))
    learn.fit(1)
    assert "tag" in learn.recorder.names


def test_module_level_lr_find_and_fit_one_cycle():
    learn = tiny_learner(n_train=64, bs=4)
    lr_find(learn, start_lr=1e-6, end_lr=10, num_it=12, stop_div=False, wd=0.002)
    rec = learn.recorder
    assert len(rec.lrs) == 12 and rec.lrs[0] == 1e-6 and rec.moms[0] == 0.9
    assert learn.opt.wd == 0.002
    # fastai: after the search, opt.lr reads the last scheduled lr (one step past the last recorded)
    assert rec.lrs[-1] < learn.opt.lr
    np.testing.assert_allclose(learn.opt.lr, 1e-6 * (10 / 1e-6) ** (12 / 12))
    fit_one_cycle(learn, 2, 1e-2)
    lrs, moms = np.array(learn.recorder.lrs), np.array(learn.recorder.moms)
    assert lrs.argmax() == moms.argmin()


def test_defaults_extra_callbacks_and_callback_fns(monkeypatch):
    monkeypatch.setattr(defaults, "extra_callbacks", [StopAfterNBatches(n_batches=2)])
    learn = tiny_learner(n_train=40, bs=4)
    learn.fit_one_cycle(3, 1e-2)
    assert len(learn.recorder.losses) == 2
    monkeypatch.setattr(defaults, "extra_callbacks", None)
    monkeypatch.setattr(defaults, "extra_callback_fns", [Tag])
    learn = tiny_learner()
    learn.fit(1)
    assert learn.recorder.metrics[-1][-1] == 7.0
    assert defaults.lr == slice(3e-3) and defaults.wd == 1e-2


def test_dataloaders_keep_their_arguments():
    ds = TensorDataset(torch.randn(12, 3))
    dl = DataLoader(ds, batch_size=5, shuffle=True, drop_last=True, timeout=3)
    assert dl.init_kwargs["batch_size"] == 5 and dl.init_kwargs["shuffle"] is True
    assert dl.init_kwargs["drop_last"] is True and dl.init_kwargs["timeout"] == 3
    assert DataLoader.__init__ is fastcb.intercept_args
    new = DeviceDataLoader(dl, "cpu").new(batch_size=2, shuffle=False)
    assert new.batch_size == 2 and new.dl.drop_last is not False and len(new) == 6


def _bunch(n_train=18, n_valid=9, bs=5):
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(n_train + n_valid, 3, generator=g), torch.randint(0, 2, (n_train + n_valid,), generator=g)
    valid = TensorDataset(x[n_train:], y[n_train:]) if n_valid else None
    return DataBunch.create(TensorDataset(x[:n_train], y[:n_train]), valid, bs=bs, device="cpu")


def test_databunch_loaders_as_fastai():
    data = _bunch()
    assert len(data.dls) == 4 and len(data.train_dl) == 3 and len(data.valid_dl) == 2
    assert len(data.fix_ds) == 18 and len(data.fix_dl) == 4  # in order, keeping the last partial batch
    assert [b[0] for b in data.fix_dl][0].equal(data.train_ds.tensors[0][:5])
    assert data.single_dl.batch_size == 1 and data.single_ds is data.valid_ds
    assert data.dl(DatasetType.Fix) is data.fix_dl and data.dl(DatasetType.Single) is data.single_dl
    no_valid = _bunch(n_valid=0)
    assert len(no_valid.dls) == 3 and no_valid.valid_dl is None and no_valid.single_ds is no_valid.train_ds
    data.batch_size = 3
    assert data.train_dl.batch_size == data.valid_dl.batch_size == 3 and len(data.valid_dl) == 3
    assert not data.is_empty and data.loss_func is F.nll_loss


def test_databunch_one_item_show_batch_add_test(capsys):
    data = _bunch()
    x, y = data.one_item(torch.ones(3))
    assert x.shape == (1, 3) and y.tolist() == [0]
    x, y = data.one_batch(DatasetType.Valid)
    assert x.shape == (5, 3) and y.shape == (5,)
    data.show_batch(rows=2)
    out = capsys.readouterr().out
    assert out.count("x: tensor") == 2 and out.count("y: tensor") == 2
    data.add_test(torch.zeros(7, 3))
    assert len(data.test_ds) == 7 and data.test_dl.batch_size == 5
    xb, yb = next(iter(data.test_dl))
    assert xb.shape == (5, 3) and yb.tolist() == [0] * 5


def test_databunch_save_load_data_and_export_load_empty(tmp_path):
    data = _bunch()
    data.path = tmp_path
    data.classes = ["a", "b"]
    data.save("d.pkl")
    loaded = load_data(tmp_path, "d.pkl", bs=6)
    assert torch.equal(loaded.train_ds.tensors[0], data.train_ds.tensors[0])
    assert torch.equal(loaded.valid_ds.tensors[1], data.valid_ds.tensors[1])
    assert loaded.one_batch()[0].shape == (6, 3) and loaded.classes == ["a", "b"]
    buf = io.BytesIO()
    data.save(buf)
    assert load_data(tmp_path, io.BytesIO(buf.getvalue()), bs=6).one_batch()[0].shape == (6, 3)
    data.export()
    empty = DataBunch.load_empty(tmp_path)
    assert empty.is_empty and empty.classes == ["a", "b"]


def test_device_data_loader_create_collates_dicts():
    class Dicts(torch.utils.data.Dataset):
        def __len__(self):
            return 10

        def __getitem__(self, i):
            return {"a": np.ones(3), "b": np.zeros(2)}

    b = next(iter(DeviceDataLoader.create(Dicts(), bs=4, device="cpu")))
    assert b["a"].shape == (4, 3) and b["b"].shape == (4, 2)


def test_get_preds_applies_the_loss_activation():
    learn = tiny_learner()
    raw, y = fastcb.get_preds(learn.model, learn.data.valid_dl)
    preds, targs = learn.get_preds()
    torch.testing.assert_close(preds, F.softmax(raw, dim=-1))
    assert torch.equal(targs, y)
    preds, targs, losses = learn.get_preds(with_loss=True, n_batch=1)
    assert len(preds) == learn.data.valid_dl.batch_size
    torch.testing.assert_close(losses, F.cross_entropy(raw[:len(preds)], y[:len(preds)], reduction="none"))
    assert torch.equal(learn.get_preds(activ=lambda t: t)[0], raw)
    learn.loss_func = nn.BCEWithLogitsLoss()
    assert fastcb.loss_func2activ(learn.loss_func) is torch.sigmoid
    assert fastcb.loss_func2activ(F.nll_loss) is torch.exp
    assert fastcb.loss_func2activ(F.mse_loss) is None


def test_purge_keeps_the_model_and_drops_the_optimizer(tmp_path):
    learn = tiny_learner(tmp_path)
    learn.fit(1)
    w = learn.model.weight.detach().clone()
    learn.purge(clear_opt=False)
    assert learn.opt is not None and not hasattr(learn, "cb_handler")
    learn.purge()
    assert learn.opt is None and torch.equal(learn.model.weight, w) and learn.recorder.losses
    learn.fit(1)  # still trains
    learn.model_dir = tmp_path / "file"
    (tmp_path / "file").write_text("")
    with pytest.raises(OSError, match="model_dir"):
        learn.purge()


def test_load_with_purge_drops_the_last_fits_cache_first(tmp_path):
    learn = tiny_learner(tmp_path)
    learn.fit(1)
    learn.save("w")
    assert hasattr(learn, "cb_handler")
    learn.load("w", purge=True)
    assert not hasattr(learn, "cb_handler") and learn.opt is not None
    learn.fit(1)
    learn.load("w")  # without purge, the cache stays
    assert hasattr(learn, "cb_handler")


def test_destroy_leaves_a_shell(capsys):
    learn = tiny_learner()
    learn.destroy()
    assert "self-destroyed" in capsys.readouterr().out
    learn.fit(1)
    assert learn.data is None
    assert capsys.readouterr().out.count("this object has been destroyed") == 2
    fresh = tiny_learner()
    fresh.fit(1)
    assert fresh.recorder.losses


def test_export_load_learner_predicts_identically(tmp_path):
    learn = tiny_learner(tmp_path, model=nn.Sequential(nn.Linear(10, 8), nn.ReLU(), nn.Dropout(0.2), nn.Linear(8, 2)),
                         metrics=[fastcb.accuracy])
    learn.fit(1)
    learn.data.classes = ["neg", "pos"]
    x = torch.randn(10)
    want = learn.predict(x)
    learn.export()
    loaded = load_learner(tmp_path)
    assert loaded.data.is_empty and loaded.data.classes == ["neg", "pos"]
    got = loaded.predict(x)
    torch.testing.assert_close(got[2], want[2], rtol=0, atol=0)
    assert loaded.metrics == [fastcb.accuracy] and loaded.loss_func is F.cross_entropy
    with pytest.raises(ValueError, match="empty `Learner`"):
        loaded.summary()
    buf = io.BytesIO()
    learn.export(buf, destroy=True)
    again = load_learner(tmp_path, io.BytesIO(buf.getvalue()), test=TensorDataset(torch.randn(6, 10),
                                                                                   torch.zeros(6).long()))
    assert len(again.data.test_ds) == 6
    preds, _ = again.get_preds(DatasetType.Test)
    assert preds.shape == (6, 2)


class MyNet(nn.Module):
    """A user model class: needs to be allow-listed to load."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(10, 2)

    def forward(self, x):
        return self.lin(x)


def test_load_learner_refuses_unlisted_globals_and_never_runs_file_code(tmp_path):
    learn = tiny_learner(tmp_path, model=MyNet())
    learn.export()
    with pytest.raises(pickle.UnpicklingError, match="test_fastai_compat.MyNet"):
        load_learner(tmp_path)
    loaded = load_learner(tmp_path, safe_globals=[MyNet])
    assert isinstance(loaded.model, MyNet)

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    torch.save({"model": Evil(), "cls": Learner, "cb_state": {}}, tmp_path / "evil.pkl")
    with pytest.raises(pickle.UnpicklingError):
        load_learner(tmp_path, "evil.pkl")


def test_export_names_what_cannot_be_pickled(tmp_path):
    learn = tiny_learner(tmp_path, loss_func=lambda out, y: F.cross_entropy(out, y))
    with pytest.raises(ExportError, match="loss_func: .*lambda"):
        learn.export()
    assert not (tmp_path / "export.pkl").exists()


def test_summary_lists_layers_and_totals():
    learn = tiny_learner(model=nn.Sequential(nn.Linear(10, 4), nn.ReLU(), nn.Linear(4, 2)))
    s = learn.summary()
    assert "Linear               [4]                  44" in s and "Total params: 54" in s
    assert s == learn.summary() and repr(s) == str(s)


def test_size_mismatch_is_a_value_error_and_an_assertion_error():
    with pytest.raises(AssertionError):
        exp_rmspe(torch.ones(5, 5), torch.ones(5))
    with pytest.raises(ValueError, match="same number of elements"):
        exp_rmspe(torch.ones(5, 5), torch.ones(5))


def test_recipes_as_methods_and_functions():
    learn = tiny_learner()
    assert learn.mixup() is learn and learn.clip_grad(0.5) is learn
    assert learn.callback_fns[-1].keywords == {"clip": 0.5}
    learn.to_fp16()
    assert isinstance(learn.mp_cb, fastcb.MixedPrecision) and learn.mp_cb in learn.callbacks
    learn.to_fp32()
    assert not any(isinstance(c, fastcb.MixedPrecision) for c in learn.callbacks)


def test_fit_fc_is_flat_then_annealed():
    learn = tiny_learner(n_train=40, bs=4)
    learn.fit_fc(2, lr=1e-2, start_pct=0.5)
    lrs = np.array(learn.recorder.lrs)
    assert len(lrs) == 20 and np.all(lrs[:10] == 1e-2)
    expected = [1e-2 * (1 + np.cos(np.pi * i / 10)) / 2 for i in range(10)]
    np.testing.assert_allclose(lrs[10:], expected, rtol=1e-12)
    assert learn.recorder.moms[0] == 0.95 and learn.recorder.moms[-1] == 0.85


def test_predict_and_pred_batch_and_backward():
    learn = tiny_learner(model=nn.Sequential(nn.Linear(10, 6), nn.Dropout(0.5), nn.Linear(6, 2)))
    xb, yb = learn.data.one_batch(DatasetType.Valid)
    torch.testing.assert_close(learn.pred_batch(), F.softmax(learn.model.eval()(xb), dim=-1))
    y, pred, raw = learn.predict(xb[0])
    torch.testing.assert_close(raw, F.softmax(learn.model(xb[:1]), dim=-1)[0])
    mc = learn.predict_with_mc_dropout(xb[0], n_times=4)
    assert len(mc) == 4 and not all(torch.equal(mc[0][2], m[2]) for m in mc[1:])
    learn.model.zero_grad()
    loss = learn.backward(xb[0])
    assert loss.shape == () and learn.model[0].weight.grad is not None
    torch.testing.assert_close(loss, F.cross_entropy(learn.model.eval()(xb[:1]), torch.zeros(1).long()))


def test_show_results_prints_inputs_targets_predictions(capsys):
    learn = tiny_learner()
    learn.show_results(rows=3)
    out = capsys.readouterr().out
    assert out.count("input:") == 3 and out.count("prediction:") == 3
    assert not any(isinstance(c, fastcb.RecordOnCPU) for c in learn.callbacks)


def test_tiny_data_default_loss_is_fastais_nll():
    data = tiny_data()
    assert data.loss_func is F.nll_loss
    data.train_ds.loss_func = F.mse_loss
    assert data.loss_func is F.mse_loss
    assert Callback is fastcb.callback.Callback
