"""`Learner`: a model, its data, optimizer and loss, trained by `fit` with callbacks."""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from . import checkpoint
from . import distributed as fdist
from ._utils import bn_types, check_number, even_mults, flatten_model, listify
from .callback import Callback, CallbackHandler
from .callbacks.distributed import DistributedTrainer
from .callbacks.lr_finder import LRFinder
from .callbacks.one_cycle import OneCycleScheduler
from .callbacks.recorder import Recorder
from .data import DatasetType
from .fit_v2 import FitV2Mixin
from .inference import InferenceMixin, loss_func2activ
from .learner_callback import LearnerCallback
from .lifecycle import LifecycleMixin
from .loop import fit, get_preds, loss_batch, validate
from .optim import OptimWrapper
from .settings import DEFAULT_LR, DEFAULT_WD, defaults
from .train import TrainMixin

if TYPE_CHECKING:
    from torch.types import Device

    from .data import DataBunch, DeviceDataLoader
    from .inference import Activation

__all__ = ["fit", "loss_batch", "validate", "get_preds", "Learner", "LearnerCallback", "AdamW", "DEFAULT_LR", "DEFAULT_WD"]

#: fastai v1's default optimizer: Adam with betas (0.9, 0.99) (decoupled decay comes from `true_wd`).
AdamW = partial(torch.optim.Adam, betas=(0.9, 0.99))


class _StartAt(Callback):
    """Start the fit at epoch `epoch` (`Learner.fit(..., start_epoch=epoch)`)."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_train_begin(self, **kwargs: Any) -> dict[str, Any]:
        """Set the epoch the handler starts from (then `fit` resumes there)."""
        return {"epoch": self.epoch}


class Learner(FitV2Mixin, InferenceMixin, LifecycleMixin, TrainMixin):
    """Train `model` on `data` with `opt_func` to minimise `loss_func`, reporting `metrics`.

    `silent=None` reads `defaults.silent`; `defaults.extra_callbacks` are added to `callbacks`.
    """

    #: set by the `Recorder` each `fit` creates (a `LearnerCallback` is an attribute of its learner)
    recorder: Recorder
    #: the handler of the running (or last) fit, set by `fit` (what `save` checkpoints)
    cb_handler: CallbackHandler

    def __init__(self, data: DataBunch, model: nn.Module, opt_func: Callable[..., torch.optim.Optimizer] = AdamW,
                 loss_func: Callable[..., Any] | None = None, metrics: Any = None, true_wd: bool = True,
                 bn_wd: bool = True, wd: Any = DEFAULT_WD, train_bn: bool = True,
                 path: str | os.PathLike[str] | None = None, model_dir: str | os.PathLike[str] = "models",
                 callback_fns: Any = None, callbacks: Any = None, layer_groups: Sequence[nn.Module] | None = None,
                 add_time: bool = True, silent: bool | None = None) -> None:
        if not hasattr(data, "train_dl"):
            raise TypeError(f"data: expected a DataBunch, got {type(data).__name__}")
        if not isinstance(model, nn.Module):
            raise TypeError(f"model: expected a torch.nn.Module, got {type(model).__name__}")
        if not callable(opt_func):
            raise TypeError(f"opt_func: expected an optimizer class or factory, got {type(opt_func).__name__}")
        self.data, self.opt_func, self.metrics = data, opt_func, listify(metrics)
        self.model = model.to(data.device)
        self.loss_func = loss_func or data.loss_func
        self.true_wd, self.bn_wd, self.wd, self.train_bn = true_wd, bn_wd, wd, train_bn
        self.path = Path(path if path is not None else getattr(data, "path", "."))
        silent = defaults.silent if silent is None else silent
        self.model_dir, self.add_time, self.silent = model_dir, add_time, silent
        self.layer_groups = list(layer_groups) if layer_groups else [nn.Sequential(*flatten_model(self.model))]
        self.callbacks = listify(callbacks)
        if defaults.extra_callbacks is not None:
            self.callbacks += defaults.extra_callbacks
        self.callback_fns = [partial(Recorder, add_time=add_time, silent=silent)] + listify(callback_fns)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(model={type(self.model).__name__}, opt_func={self.opt_func!r})"

    def lr_range(self, lr: Any) -> Any:
        """Per-layer-group learning rates from `lr` (a `slice` spreads over the groups geometrically)."""
        if not isinstance(lr, slice):
            return lr
        n = len(self.layer_groups)
        if lr.start:
            return even_mults(lr.start, lr.stop, n)
        return np.array([lr.stop / 10] * (n - 1) + [lr.stop])

    def create_opt(self, lr: Any, wd: Any = 0.0) -> None:
        """Create `self.opt` with `lr` and `wd` over the layer groups."""
        self.opt = OptimWrapper.create(self.opt_func, lr, self.layer_groups, wd=wd, true_wd=self.true_wd,
                                       bn_wd=self.bn_wd)

    def fit(self, epochs: int, lr: Any = DEFAULT_LR, wd: Any = None, callbacks: Sequence[Callback] | None = None,
            start_epoch: int | None = None) -> None:
        """Fit for `epochs` epochs at learning rate `lr` (number, slice or per-group array) and weight decay `wd`.

        With `start_epoch=k`, run epochs k to `epochs - 1` of that run: the callbacks jump to
        epoch k, and a checkpoint saved after epoch k-1 (`load`, or `SaveModelCallback`'s
        `name_<k-1>`) is continued exactly: schedules, trackers, the Recorder, random states.

        Under a process group of more than one rank (`torchrun`, or `mp.spawn` with
        `init_process_group`), the model is wrapped in `DistributedDataParallel` for the fit, as
        Lightning's Trainer does; `to_distributed` sets the options.
        """
        if start_epoch is not None:
            check_number("start_epoch", start_epoch, integer=True, minimum=0, maximum=epochs)
        lr = self.lr_range(lr)
        wd = self.wd if wd is None else wd
        if getattr(self, "opt", None) is None:
            self.create_opt(lr, wd)
        else:
            self.opt.lr, self.opt.wd = lr, wd
        callbacks = [cb(self) for cb in self.callback_fns + listify(defaults.extra_callback_fns)] + listify(callbacks)
        if start_epoch:
            callbacks.append(_StartAt(start_epoch))
        if fdist.is_distributed() and not any(isinstance(c, DistributedTrainer) for c in self.callbacks + callbacks):
            callbacks.append(DistributedTrainer(self))
        fit(epochs, self, metrics=self.metrics, callbacks=self.callbacks + callbacks)

    def to_distributed(self, shuffle: bool | None = None, seed: int = 0, strategy: str = "ddp",
                       modules: Sequence[str | nn.Module] | None = None, **kwargs: Any) -> Learner:
        """Train under the initialised process group with `DistributedDataParallel` (`strategy="ddp"`,
        `kwargs` go to it) or FSDP2 (`strategy="fsdp"`, `kwargs` go to `fully_shard`).

        `fit` does DDP by itself with the defaults; call it to pass options. Each rank trains
        on its `DistributedSampler` part of the training set (`shuffle` defaults to the loader's,
        with `seed`, the same on every rank) and validates on every `world_size`-th batch;
        losses and metrics are merged across ranks once per epoch; rank 0 logs and saves.

        FSDP shards the model now, in place (`fastcb.distributed.shard`): each layer group is one
        unit, or each of `modules` (names of submodules, or modules), then the root; the
        parameters become DTensors, the optimizer is created over them at the next `fit`, and
        `save`/`load` write and read sharded checkpoints (`torch.distributed.checkpoint`).
        """
        if strategy not in ("ddp", "fsdp"):
            raise ValueError(f"strategy: expected 'ddp' or 'fsdp', got {strategy!r}")
        if strategy == "fsdp":
            units = self.layer_groups if modules is None else \
                [self.model.get_submodule(m) if isinstance(m, str) else m for m in modules]
            fdist.shard(self.model, [list(g.children()) or [g] if g in self.layer_groups else g for g in units],
                        **kwargs)
            self.opt, kwargs = None, {}  # its parameters were replaced by the shards
        elif modules is not None:
            raise ValueError("modules: only with strategy='fsdp'")
        self.callback_fns = [f for f in self.callback_fns if getattr(f, "func", f) is not DistributedTrainer]
        self.callback_fns.append(partial(DistributedTrainer, shuffle=shuffle, seed=seed, **kwargs))
        return self

    def fit_one_cycle(self, cyc_len: int, max_lr: Any = DEFAULT_LR,
                      moms: float | list[float] | tuple[float, ...] = (0.95, 0.85), div_factor: float = 25.0,
                      pct_start: float = 0.3, final_div: float | None = None, wd: Any = None,
                      callbacks: Sequence[Callback] | None = None, tot_epochs: int | None = None,
                      start_epoch: int | None = None, on_device: bool = False) -> None:
        """Fit for `cyc_len` epochs following the 1cycle policy (`OneCycleScheduler`); `start_epoch` as in `fit`;
        `on_device=True` steps the schedule on the device (no host write of hyper-parameters per batch)."""
        max_lr = self.lr_range(max_lr)
        callbacks = listify(callbacks)
        callbacks.append(OneCycleScheduler(self, max_lr, moms=moms, div_factor=div_factor, pct_start=pct_start,
                                           final_div=final_div, tot_epochs=tot_epochs, start_epoch=start_epoch,
                                           on_device=on_device))
        self.fit(cyc_len, max_lr, wd=wd, callbacks=callbacks, start_epoch=start_epoch)

    def lr_find(self, start_lr: Any = 1e-7, end_lr: Any = 10, num_it: int = 100, stop_div: bool = True,
                wd: Any = None) -> None:
        """Train with an exponentially growing learning rate for `num_it` batches (`LRFinder`), then restore the weights."""
        start_lr, end_lr = self.lr_range(start_lr), self.lr_range(end_lr)
        start_lr = np.array(start_lr) if isinstance(start_lr, (list, tuple)) else start_lr
        end_lr = np.array(end_lr) if isinstance(end_lr, (list, tuple)) else end_lr
        cb = LRFinder(self, start_lr, end_lr, num_it, stop_div)
        epochs = int(math.ceil(num_it / len(self.data.train_dl)))
        self.fit(epochs, start_lr, callbacks=[cb], wd=wd)

    def split(self, split_on: Callable[[nn.Module], Sequence[Any]] | Sequence[Any]) -> Learner:
        """Split the model into layer groups at `split_on` (modules, or a function of the model returning them)."""
        if callable(split_on) and not isinstance(split_on, nn.Module):
            split_on = split_on(self.model)
        if not isinstance(split_on, (list, tuple)) or not split_on:
            raise TypeError("split_on: expected a non-empty list of modules or layer groups")
        self.layer_groups = [g if isinstance(g, nn.Module) else nn.Sequential(*g) for g in split_on]
        return self

    def freeze_to(self, n: int) -> None:
        """Freeze the layer groups before `n` (norm layers stay trainable when `train_bn`)."""
        for g in self.layer_groups[:n]:
            for layer in g.modules():
                if not (self.train_bn and isinstance(layer, bn_types)):
                    for p in layer.parameters(recurse=False):
                        p.requires_grad_(False)
        for g in self.layer_groups[n:]:
            g.requires_grad_(True)
        self.create_opt(DEFAULT_LR, self.wd)

    def freeze(self) -> None:
        """Freeze all the layer groups but the last."""
        if len(self.layer_groups) < 2:
            raise ValueError("layer_groups: need at least two layer groups to freeze (see `split`)")
        self.freeze_to(-1)

    def unfreeze(self) -> None:
        """Make every layer group trainable."""
        self.freeze_to(0)

    def dl(self, ds_type: DatasetType = DatasetType.Valid) -> DeviceDataLoader | None:
        """The data loader for `ds_type`."""
        return self.data.dl(ds_type)

    def _target(self, file: str | Path | IO[bytes] | None, create: bool = False) -> Path | IO[bytes]:
        if isinstance(file, (str, Path)):
            folder = self.path / self.model_dir
            if create:
                folder.mkdir(parents=True, exist_ok=True)
            return folder / f"{file}.pth"
        if file is None:
            raise ValueError("file: give a name (saved as path/model_dir/<file>.pth) or a file-like object")
        return file

    def save(self, file: str | Path | IO[bytes] | None = None, return_path: bool = False, with_opt: bool = True,
             epoch: int | None = None) -> Path | IO[bytes] | None:
        """Save to `path/model_dir/<file>.pth` (or a file-like object): the model's weights, or with
        `with_opt` a checkpoint to resume from exactly (see `fastcb.checkpoint`): model,
        optimizer, the running fit's schedulers and stateful callbacks, the Recorder, random states.

        `epoch` is the last epoch completed (pass it when saving from `on_epoch_end`). Under a
        process group call it on every rank: rank 0 writes the file. A sharded (FSDP) model is
        saved, with its optimizer, as the folder `<file>.dcp` (`fastcb.sharded`): each rank writes its shards.
        """
        target = self._target(file, create=fdist.is_main_process())
        if isinstance(target, Path) and fdist.is_sharded(self.model):  # FSDP: each rank writes its shards
            from . import sharded

            if getattr(self, "opt", None) is None:
                self.create_opt(self.lr_range(DEFAULT_LR), self.wd)
            side = sharded.save(self, target, epoch)
            return side if return_path else None
        if with_opt and getattr(self, "opt", None) is not None:
            state = checkpoint.state_of(self, epoch)
        else:
            state = fdist.unwrap(self.model).state_dict()
        if fdist.is_main_process():
            checkpoint.write(state, target)
        return target if return_path else None

    def load(self, file: str | Path | IO[bytes] | None = None, device: Device = None, strict: bool = True,
             with_opt: bool | None = None, purge: bool = False, remove_module: bool = False, *,
             resume: bool = True) -> Learner:
        """Load what `save` wrote: the model, and the optimizer unless `with_opt=False`.

        Everything is checked against this learner before anything is assigned: a truncated or
        mismatched file raises `CheckpointError` (a `ValueError`) and leaves the model and the
        optimizer as they were. With `resume`, the rest of a checkpoint (callbacks, Recorder,
        random states) is kept for the next `fit(..., start_epoch=epoch + 1)`. With `purge`, what the
        last fit cached is dropped first (`purge`; the optimizer is the loaded one). Under a process
        group call it on every rank (it waits for rank 0 to have written the file).
        """
        source = self._target(file)
        fdist.barrier()
        if isinstance(source, Path) and (folder := source.with_suffix(".dcp")).is_dir() and \
                (fdist.is_sharded(self.model) or not source.exists()):
            return self._load_sharded(folder, strict, with_opt, resume)
        device = self.data.device if device is None else device
        ck = checkpoint.read_checkpoint(source, device)  # the whole file, checked: CheckpointError if malformed
        model_state = ck.model
        if remove_module:
            model_state = {k.removeprefix("module."): v for k, v in model_state.items()}
        model = fdist.unwrap(self.model)
        checkpoint.check_model(model, model_state, strict)
        opt_state = None if with_opt is False else ck.opt
        if opt_state is not None:
            fresh = getattr(self, "opt", None) is None
            if fresh:
                self.create_opt(self.lr_range(DEFAULT_LR), self.wd)
            try:
                checkpoint.check_opt(self.opt, opt_state)
            except checkpoint.CheckpointError:
                if fresh:
                    self.opt = None
                raise
        # everything fits: assign
        if purge:
            self.purge(clear_opt=False)
        model.load_state_dict(model_state, strict=strict)
        if opt_state is not None:
            self.opt.load_state_dict(opt_state)
        self._resume = ck if resume and opt_state is not None and ck.resumable else None
        return self

    def _load_sharded(self, folder: Path, strict: bool, with_opt: bool | None, resume: bool) -> Learner:
        """`load` from a sharded checkpoint folder (`fastcb.sharded`): checked whole, then assigned."""
        from . import sharded

        fresh = getattr(self, "opt", None) is None
        if fresh:
            self.create_opt(self.lr_range(DEFAULT_LR), self.wd)
        try:
            model_state, opt_state, ck = sharded.read(self, folder, strict, with_opt is not False)
            if opt_state is not None:
                checkpoint.check_opt(self.opt, opt_state)
        except BaseException:
            if fresh:
                self.opt = None
            raise
        self.model.load_state_dict(model_state, strict=strict)
        if opt_state is not None:
            self.opt.load_state_dict(opt_state)
        # the optimizer's tensors, read from DCP's files, replace their keys for the resume
        self._resume = dataclasses.replace(ck, opt=opt_state) if resume and opt_state is not None and ck.resumable \
            else None
        return self

    def validate(self, dl: Any = None, callbacks: Sequence[Callback] | None = None,
                 metrics: Any = None) -> list[Any] | None:
        """`[valid_loss, *metrics]` of the model on `dl` (the validation set by default)."""
        dl = self.data.valid_dl if dl is None else dl
        metrics = self.metrics if metrics is None else metrics
        cb_handler = CallbackHandler(self.callbacks + listify(callbacks), metrics)
        cb_handler.on_train_begin(1, None, metrics)
        cb_handler.on_epoch_begin()
        val_loss = validate(self.model, dl, self.loss_func, cb_handler, quiet=self.silent)
        cb_handler.on_epoch_end(val_loss)
        return cb_handler.state_dict["last_metrics"]

    def get_preds(self, ds_type: DatasetType = DatasetType.Valid, activ: Activation | None = None, with_loss: bool = False,
                  n_batch: int | None = None, pbar: Any = None) -> list[torch.Tensor]:
        """Predictions and targets (and per-item losses if `with_loss`) on `ds_type`, at most `n_batch` batches.

        The predictions go through `activ`, by default the loss function's activation as in
        fastai (softmax for cross-entropy, sigmoid for BCE-with-logits, exp for NLL; none otherwise).
        """
        loss_func = self.loss_func if with_loss else None
        activ = loss_func2activ(self.loss_func) if activ is None else activ
        # (no such loader: an error, as before)
        return get_preds(self.model, self.dl(ds_type), pbar=pbar, cb_handler=CallbackHandler(self.callbacks),  # type: ignore[arg-type]
                         activ=activ, loss_func=loss_func, n_batch=n_batch, quiet=self.silent)
