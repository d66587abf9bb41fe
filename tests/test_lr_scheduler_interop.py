"""State dicts cross both ways between torch's or transformers' schedulers and fastcb's —
under plain torch.save, transformers' Trainer (resume from a checkpoint folder) and
Lightning (Trainer.fit(ckpt_path=...)) — and Ignite's wrapper gets the compiled get_lr.
Each test skips, saying why, where its library is not installed."""

import io
import logging
import os
import warnings

import pytest
import torch
import torch.optim.lr_scheduler as T

import fastcb.lr_scheduler as F
from fastcb import _core

CLASSES = {
    "StepLR": lambda m, o: m.StepLR(o, step_size=3, gamma=0.5),
    "MultiStepLR": lambda m, o: m.MultiStepLR(o, milestones=[3, 9], gamma=0.5),
    "ConstantLR": lambda m, o: m.ConstantLR(o, factor=0.5, total_iters=4),
    "LinearLR": lambda m, o: m.LinearLR(o, start_factor=0.2, total_iters=8),
    "ExponentialLR": lambda m, o: m.ExponentialLR(o, gamma=0.9),
    "PolynomialLR": lambda m, o: m.PolynomialLR(o, total_iters=15, power=2.0),
    "CosineAnnealingLR": lambda m, o: m.CosineAnnealingLR(o, T_max=7, eta_min=0.001),
    "CosineAnnealingWarmRestarts": lambda m, o: m.CosineAnnealingWarmRestarts(o, T_0=4, T_mult=2),
    "CyclicLR": lambda m, o: m.CyclicLR(o, base_lr=0.01, max_lr=0.1, step_size_up=3),
    "OneCycleLR": lambda m, o: m.OneCycleLR(o, max_lr=0.5, total_steps=40),
    "SequentialLR": lambda m, o: m.SequentialLR(o, [m.ConstantLR(o, factor=0.5, total_iters=2),
                                                    m.ExponentialLR(o, gamma=0.9)], milestones=[3]),
}


def make_opt():
    params = [{"params": [torch.nn.Parameter(torch.zeros(2))], "lr": 0.1 / (i + 1)} for i in range(2)]
    return torch.optim.SGD(params, lr=0.1, momentum=0.9)


def lrs(opt):
    return [(g["lr"], g.get("momentum")) for g in opt.param_groups]


def saved(state):
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)


def resumed_equals_uninterrupted(build, ref_lib, src, dst, after):
    """Run `build(src)` 12 steps, save it (scheduler and optimizer, through `torch.save`), load
    that into `build(dst)` and step it `after` times: its lrs equal those of `build(ref_lib)` run
    without a break."""
    ref, a = build(ref_lib), build(src)
    for s in (ref, a):
        s.optimizer.step()
    for _ in range(12):
        ref.step()
        a.step()
    ckpt = saved({"sched": a.state_dict(), "opt": a.optimizer.state_dict()})
    b = build(dst)
    b.optimizer.load_state_dict(ckpt["opt"])
    b.load_state_dict(ckpt["sched"])
    for i in range(after):
        ref.step()
        b.step()
        assert lrs(b.optimizer) == lrs(ref.optimizer), i


@pytest.mark.parametrize("direction", ["torch->fastcb", "fastcb->torch"])
@pytest.mark.parametrize("name", sorted(CLASSES))
def test_torch_save_crosses_both_ways(name, direction):
    src, dst = (T, F) if direction == "torch->fastcb" else (F, T)
    build = CLASSES[name]
    resumed_equals_uninterrupted(lambda lib: build(lib, make_opt()), T, src, dst, after=20)


@pytest.mark.parametrize("direction", ["transformers->fastcb", "fastcb->transformers"])
def test_transformers_factory_state_crosses_both_ways(direction):
    hf = pytest.importorskip("transformers.optimization", reason="transformers is not installed")
    src, dst = (hf, F) if direction.startswith("transformers") else (F, hf)
    for name, args in [("get_cosine_schedule_with_warmup", (5, 50)), ("get_constant_schedule", ()),
                       ("get_wsd_schedule", (5, 10, 50))]:
        resumed_equals_uninterrupted(lambda lib, name=name, args=args: getattr(lib, name)(make_opt(), *args),
                                     hf, src, dst, after=40)


# --- transformers' Trainer --------------------------------------------------------------


class _Tiny(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.layer = torch.nn.Linear(2, 1)

    def forward(self, x, labels=None):
        out = self.layer(x).squeeze(-1)
        return {"loss": ((out - labels) ** 2).mean(), "logits": out}


def _hf_run(tmp, steps, fastcb_scheduler, resume=None):
    tr = pytest.importorskip("transformers", reason="transformers is not installed")
    pytest.importorskip("accelerate", reason="transformers' Trainer needs accelerate")

    class FastcbTrainer(tr.Trainer):
        def create_scheduler(self, num_training_steps, optimizer=None):
            if self.lr_scheduler is None:
                self.lr_scheduler = F.get_scheduler(
                    self.args.lr_scheduler_type,
                    optimizer=self.optimizer if optimizer is None else optimizer,
                    num_warmup_steps=self.args.get_warmup_steps(num_training_steps),
                    num_training_steps=num_training_steps,
                    scheduler_specific_kwargs=self.args.lr_scheduler_kwargs,
                )
                self._created_lr_scheduler = True
            return self.lr_scheduler

    torch.manual_seed(0)
    data = [{"x": torch.randn(2), "labels": torch.randn(())} for _ in range(64)]
    args = tr.TrainingArguments(
        output_dir=str(tmp), per_device_train_batch_size=4, max_steps=steps, save_steps=8, save_strategy="steps",
        report_to=[], use_cpu=True, logging_strategy="no", learning_rate=0.1, lr_scheduler_type="cosine",
        warmup_steps=3, seed=0, dataloader_num_workers=0, disable_tqdm=True,
    )
    cls = FastcbTrainer if fastcb_scheduler else tr.Trainer
    trainer = cls(model=_Tiny(), args=args, train_dataset=data)
    logging.getLogger("transformers").setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.train(resume_from_checkpoint=resume)
    return trainer


@pytest.mark.parametrize("first,second", [(False, True), (True, False)], ids=["transformers->fastcb",
                                                                               "fastcb->transformers"])
def test_transformers_trainer_resumes_across_the_import(tmp_path, first, second):
    ref = _hf_run(tmp_path / "ref", 16, fastcb_scheduler=False)
    _hf_run(tmp_path / "a", 16, fastcb_scheduler=first)
    ckpt = tmp_path / "a" / "checkpoint-8"
    assert (ckpt / "scheduler.pt").exists()
    resumed = _hf_run(tmp_path / "b", 16, fastcb_scheduler=second, resume=str(ckpt))
    assert isinstance(resumed.lr_scheduler, F.LambdaLR) == second
    assert resumed.lr_scheduler.last_epoch == ref.lr_scheduler.last_epoch == 16
    assert resumed.lr_scheduler.get_last_lr() == ref.lr_scheduler.get_last_lr()
    assert lrs(resumed.optimizer) == lrs(ref.optimizer)


# --- Lightning --------------------------------------------------------------------------


def _lightning_fit(module, steps, ckpt_in=None, ckpt_out=None):
    L = pytest.importorskip("lightning", reason="lightning is not installed")

    class Model(L.LightningModule):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.layer = torch.nn.Linear(2, 1)

        def training_step(self, batch, batch_idx):
            x, y = batch
            return ((self.layer(x).squeeze(-1) - y) ** 2).mean()

        def configure_optimizers(self):
            opt = torch.optim.SGD(self.parameters(), lr=0.1, momentum=0.9)
            sched = module.OneCycleLR(opt, max_lr=0.5, total_steps=40)
            return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    torch.manual_seed(0)
    data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.randn(64, 2), torch.randn(64)),
                                       batch_size=4)
    trainer = L.Trainer(max_steps=steps, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)
    model = Model()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        logging.getLogger("lightning").setLevel(logging.ERROR)
        logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
        trainer.fit(model, data, ckpt_path=ckpt_in)
    if ckpt_out is not None:
        trainer.save_checkpoint(ckpt_out)
    return trainer


@pytest.mark.parametrize("first,second", [(T, F), (F, T)], ids=["torch->fastcb", "fastcb->torch"])
def test_lightning_fit_resumes_across_the_import(tmp_path, first, second):
    ref = _lightning_fit(T, 30)
    ckpt = os.path.join(tmp_path, "mid.ckpt")
    _lightning_fit(first, 12, ckpt_out=ckpt)
    resumed = _lightning_fit(second, 30, ckpt_in=ckpt)
    sched, ref_sched = resumed.lr_scheduler_configs[0].scheduler, ref.lr_scheduler_configs[0].scheduler
    assert isinstance(sched, F.OneCycleLR) == (second is F)
    assert sched.last_epoch == ref_sched.last_epoch
    assert lrs(resumed.optimizers[0]) == lrs(ref.optimizers[0])


# --- Ignite -------------------------------------------------------------------------------


def test_ignite_wrapper_gets_the_compiled_get_lr():
    pytest.importorskip("ignite", reason="pytorch-ignite is not installed")
    from ignite.engine import Engine, Events
    from ignite.handlers.param_scheduler import LRScheduler

    def record(module):
        opt = make_opt()
        sched = module.CosineAnnealingLR(opt, T_max=9, eta_min=0.001)
        engine = Engine(lambda e, b: None)
        engine.add_event_handler(Events.ITERATION_COMPLETED, LRScheduler(sched))
        seen = []
        engine.add_event_handler(Events.ITERATION_COMPLETED, lambda e: seen.append(lrs(opt)))
        engine.run([0] * 30, max_epochs=1)
        return seen

    before = _core.torch_compiled_counts()["cosine"][1]
    assert record(F) == record(T)
    assert _core.torch_compiled_counts()["cosine"][1] - before >= 29
