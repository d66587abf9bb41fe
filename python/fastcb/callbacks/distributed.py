"""`DistributedTrainer`: a `Learner`'s fit under `torch.distributed` (DDP), launched by `torchrun` or `mp.spawn`."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import torch
from torch.nn.parallel import DistributedDataParallel

from .. import distributed as fdist
from .. import watchdog
from .._utils import check_number
from ..data import DeviceDataLoader
from ..learner_callback import LearnerCallback

if TYPE_CHECKING:
    from ..learner import Learner

__all__ = ["DistributedTrainer"]


def _swap(wrapped: DeviceDataLoader | Iterable[Any] | None, new_dl: Any) -> Any:
    """`wrapped` (a `DeviceDataLoader` or a plain loader) around `new_dl` instead."""
    if isinstance(wrapped, DeviceDataLoader):
        return DeviceDataLoader(new_dl, wrapped.device, wrapped.tfms)
    return new_dl


def _raw(dl: DeviceDataLoader | Iterable[Any] | None) -> Any:
    return dl.dl if isinstance(dl, DeviceDataLoader) else dl


class DistributedTrainer(LearnerCallback):
    """For the length of a fit under a process group of more than one rank:

    - `learn.model` is wrapped in `DistributedDataParallel` (`ddp_kwargs`; `device_ids` is the
      model's GPU), which starts every rank from rank 0's weights and averages the gradients;
      a model sharded with FSDP2 (`Learner.to_distributed(strategy="fsdp")`) stays as it is;
    - the training loader gets a `DistributedSampler` (`shuffle` defaults to the loader's, `seed`
      must be the same on every rank), with `set_epoch(epoch)` at each epoch begin;
    - after an epoch's last training batch the buffers (batchnorm statistics) are broadcast from
      rank 0 when DDP broadcasts buffers (its default): DDP does so before each forward only, so
      without it the ranks would validate, and save, with different statistics;
    - the validation loader gives each rank every `world_size`-th batch (no padding, so the
      merged loss and metrics equal one process's; unsharded when it has fewer batches than
      ranks); the loss and `AverageMetric`s are merged across ranks once per epoch;
    - the epoch's smoothed training losses are averaged across ranks (one collective per epoch)
      before the Recorder records them, so every rank records the same history;
    - on a failure the rank leaves the process group (`fastcb.distributed.abort`): its later
      code makes no collective the others can't match, and theirs fail when its process ends
      (at once) or at the group's timeout; their `on_train_end` sees that error;
    - a `fastcb.watchdog.Watchdog` follows each rank's progress (epoch, batch, phase): a rank
      alive but stuck (a Python loop, a dead-locked data loader) for `FASTCB_DIST_TIMEOUT`
      seconds ends the fit on every rank with a `RankStalledError` naming it, where it stopped
      and its stack (`watchdog_timeout` overrides the variable).

    At the end the model and loaders are the learner's own again. Outside a process group it
    does nothing. `Learner.fit` adds one by itself; `Learner.to_distributed` sets the options.
    """

    _order = -20  # before the Recorder: the model, the data and the losses are ready when it looks

    def __init__(self, learn: Learner, shuffle: bool | None = None, seed: int = 0, watchdog_timeout: float | None = None,
                 **ddp_kwargs: Any) -> None:
        super().__init__(learn)
        self.shuffle, self.seed, self.ddp_kwargs = shuffle, seed, ddp_kwargs
        self.watchdog_timeout = watchdog.dist_timeout() if watchdog_timeout is None else \
            float(check_number("watchdog_timeout", watchdog_timeout, positive=True, like_float=True))
        self.active = False
        self._saved: tuple[Any, Any, Any] | None = None  # the learner's model and loaders during a fit
        self.watchdog: watchdog.Watchdog | None = None
        self._valid_batch = self._valid_max = 0
        self.sharded = False

    def get_state(self, minimal: bool = True) -> dict[str, Any]:
        """Nothing to checkpoint: everything is rebuilt at train begin."""
        return {}

    def on_train_begin(self, **kwargs: Any) -> None:
        """Wrap the model and shard the data."""
        self.active = fdist.is_distributed()
        if not self.active:
            return
        learn, data = self.learn, self.learn.data
        self._saved = (learn.model, data.train_dl, data.valid_dl)
        self.sharded = fdist.is_sharded(learn.model)  # FSDP2 (`to_distributed(strategy="fsdp")`): no DDP
        if not (self.sharded or isinstance(learn.model, DistributedDataParallel)):
            kw = dict(self.ddp_kwargs)
            p = next(learn.model.parameters(), None)
            if p is not None and p.device.type == "cuda":
                kw.setdefault("device_ids", [p.device.index])
            learn.model = DistributedDataParallel(learn.model, **kw)
        data.train_dl = _swap(data.train_dl, fdist.train_loader(_raw(data.train_dl), self.shuffle, self.seed))
        valid = _raw(data.valid_dl)
        self._valid_max = 0
        if valid is not None and len(valid) >= fdist.world_size():
            data.valid_dl = _swap(data.valid_dl, fdist.valid_loader(valid))
            self._valid_max = len(range(0, len(valid), fdist.world_size()))  # rank 0 has the most batches
        store = torch.distributed.distributed_c10d._get_default_store()
        self.watchdog = watchdog.Watchdog(store, fdist.rank(), fdist.world_size(), self.watchdog_timeout).start()

    def _beat(self, key: tuple[int, ...], where: str) -> None:
        if self.watchdog is not None:
            self.watchdog.beat(key, where)

    def on_epoch_begin(self, epoch: int, **kwargs: Any) -> None:
        """Reshuffle the training shards for this epoch."""
        if not self.active:
            return
        self._valid_batch = 0
        self._beat((epoch, 0, 0, 0), f"epoch {epoch}, loading training batch 0")
        sampler: Any = getattr(_raw(self.learn.data.train_dl), "sampler", None)
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(epoch)

    def on_batch_begin(self, epoch: int, train: bool, num_batch: int, **kwargs: Any) -> None:
        """Progress: the batch is loaded."""
        if not self.active:
            return
        if train:
            self._beat((epoch, 1, num_batch, 1), f"epoch {epoch}, training batch {num_batch}: forward")
        else:
            self._beat((epoch, 2, self._valid_batch, 1), f"epoch {epoch}, validation batch {self._valid_batch}: forward")

    def _phase(self, epoch: int, num_batch: int, step: int, what: str) -> None:
        self._beat((epoch, 1, num_batch, step), f"epoch {epoch}, training batch {num_batch}: {what}")

    def on_loss_begin(self, epoch: int, num_batch: int, train: bool, **kwargs: Any) -> None:
        """Progress: the forward pass is done."""
        if self.active and train:
            self._phase(epoch, num_batch, 2, "loss")

    def on_backward_begin(self, epoch: int, num_batch: int, **kwargs: Any) -> None:
        """Progress: the loss is computed."""
        if self.active:
            self._phase(epoch, num_batch, 3, "backward")

    def on_backward_end(self, epoch: int, num_batch: int, **kwargs: Any) -> None:
        """Progress: the gradients are computed (and averaged)."""
        if self.active:
            self._phase(epoch, num_batch, 4, "optimizer step")

    def on_step_end(self, epoch: int, num_batch: int, **kwargs: Any) -> None:
        """Progress: the optimizer stepped."""
        if self.active:
            self._phase(epoch, num_batch, 5, "after the optimizer step")

    def on_batch_end(self, epoch: int, train: bool, num_batch: int, **kwargs: Any) -> None:
        """Progress; after the epoch's last training batch, give every rank rank 0's buffers."""
        if not self.active:
            return
        if not train:
            self._valid_batch += 1
            n = len(self.learn.data.valid_dl)  # type: ignore[arg-type]  # validating: there is one
            if self._valid_batch == n and self.sharded and n < self._valid_max:
                self._pad_forward(kwargs["last_input"], self._valid_max - n)
            if self._valid_batch >= n:
                self._beat((epoch, 3, 0, 0), f"epoch {epoch}, after validation: merging the results across ranks")
            else:
                self._beat((epoch, 2, self._valid_batch, 0), f"epoch {epoch}, loading validation batch "
                                                             f"{self._valid_batch}")
            return
        if num_batch != len(self.learn.data.train_dl) - 1:
            self._beat((epoch, 1, num_batch + 1, 0), f"epoch {epoch}, loading training batch {num_batch + 1}")
            return
        self._valid_batch = 0
        self._beat((epoch, 2, 0, 0), f"epoch {epoch}, after training: loading validation batch 0")
        model = self.learn.model
        if self.sharded or (isinstance(model, DistributedDataParallel) and model.broadcast_buffers):
            with torch.no_grad():
                for b in fdist.unwrap(model).buffers():  # FSDP shards parameters only: buffers stay per rank
                    torch.distributed.broadcast(b, 0)

    def _pad_forward(self, xb: Any, n: int) -> None:
        """FSDP gathers the parameters in each forward, on every rank: a rank with fewer validation
        batches runs `n` more forwards (results unused) to match the others."""
        xb = xb if isinstance(xb, (list, tuple)) else [xb]
        with torch.no_grad():
            for _ in range(n):
                self.learn.model(*xb)

    def on_epoch_end(self, epoch: int, smooth_losses: list[float], **kwargs: Any) -> dict[str, Any] | None:
        """Average the epoch's smoothed training losses across ranks (one collective), so every rank
        records and reports the same history (the average is linear: it commutes with smoothing)."""
        if not self.active:
            return None
        self._beat((epoch, 3, 1, 0), f"epoch {epoch}, epoch end")
        if not smooth_losses:
            return None
        on_gpu = torch.distributed.get_backend() == "nccl"
        local = torch.tensor(smooth_losses, dtype=torch.float64, device="cuda" if on_gpu else "cpu")
        torch.distributed.all_reduce(local)
        mean = (local / fdist.world_size()).tolist()
        return {"smooth_losses": mean, "smooth_loss": mean[-1]}

    def on_train_end(self, exception: bool | BaseException, **kwargs: Any) -> None:
        """Give the learner its own model and loaders back; after a failure, leave the process group."""
        if not self.active:
            return
        self.active = False
        if self.watchdog is not None:
            self.watchdog.stop("finished" if exception is False else f"failed: {type(exception).__name__}")
            self.watchdog = None
        learn, data = self.learn, self.learn.data
        learn.model, data.train_dl, data.valid_dl = self._saved  # type: ignore[misc]  # saved at train begin
        self._saved = None
        if exception is not False:
            fdist.abort()
