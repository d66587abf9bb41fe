"""`DistributedTrainer`: a `Learner`'s fit under `torch.distributed` (DDP), launched by `torchrun` or `mp.spawn`."""

import torch
from torch.nn.parallel import DistributedDataParallel

from .. import distributed as fdist
from ..data import DeviceDataLoader
from ..learner_callback import LearnerCallback

__all__ = ["DistributedTrainer"]


def _swap(wrapped, new_dl):
    """`wrapped` (a `DeviceDataLoader` or a plain loader) around `new_dl` instead."""
    if isinstance(wrapped, DeviceDataLoader):
        return DeviceDataLoader(new_dl, wrapped.device, wrapped.tfms)
    return new_dl


def _raw(dl):
    return dl.dl if isinstance(dl, DeviceDataLoader) else dl


class DistributedTrainer(LearnerCallback):
    """For the length of a fit under a process group of more than one rank:

    - `learn.model` is wrapped in `DistributedDataParallel` (`ddp_kwargs`; `device_ids` is the
      model's GPU), which starts every rank from rank 0's weights and averages the gradients;
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
      (at once) or at the group's timeout; their `on_train_end` sees that error.

    At the end the model and loaders are the learner's own again. Outside a process group it
    does nothing. `Learner.fit` adds one by itself; `Learner.to_distributed` sets the options.
    """

    _order = -20  # before the Recorder: the model, the data and the losses are ready when it looks

    def __init__(self, learn, shuffle=None, seed=0, **ddp_kwargs):
        super().__init__(learn)
        self.shuffle, self.seed, self.ddp_kwargs = shuffle, seed, ddp_kwargs
        self.active = False
        self._saved = None

    def get_state(self, minimal=True):
        """Nothing to checkpoint: everything is rebuilt at train begin."""
        return {}

    def on_train_begin(self, **kwargs):
        """Wrap the model and shard the data."""
        self.active = fdist.is_distributed()
        if not self.active:
            return
        learn, data = self.learn, self.learn.data
        self._saved = (learn.model, data.train_dl, data.valid_dl)
        if not isinstance(learn.model, DistributedDataParallel):
            kw = dict(self.ddp_kwargs)
            p = next(learn.model.parameters(), None)
            if p is not None and p.device.type == "cuda":
                kw.setdefault("device_ids", [p.device.index])
            learn.model = DistributedDataParallel(learn.model, **kw)
        data.train_dl = _swap(data.train_dl, fdist.train_loader(_raw(data.train_dl), self.shuffle, self.seed))
        valid = _raw(data.valid_dl)
        if valid is not None and len(valid) >= fdist.world_size():
            data.valid_dl = _swap(data.valid_dl, fdist.valid_loader(valid))

    def on_epoch_begin(self, epoch, **kwargs):
        """Reshuffle the training shards for this epoch."""
        if not self.active:
            return
        sampler = getattr(_raw(self.learn.data.train_dl), "sampler", None)
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(epoch)

    def on_batch_end(self, train, num_batch, **kwargs):
        """After the epoch's last training batch, give every rank rank 0's buffers."""
        if not (self.active and train) or num_batch != len(self.learn.data.train_dl) - 1:
            return
        model = self.learn.model
        if isinstance(model, DistributedDataParallel) and model.broadcast_buffers:
            with torch.no_grad():
                for b in model.module.buffers():
                    torch.distributed.broadcast(b, 0)

    def on_epoch_end(self, smooth_losses, **kwargs):
        """Average the epoch's smoothed training losses across ranks (one collective), so every rank
        records and reports the same history (the average is linear: it commutes with smoothing)."""
        if not self.active or not smooth_losses:
            return None
        on_gpu = torch.distributed.get_backend() == "nccl"
        local = torch.tensor(smooth_losses, dtype=torch.float64, device="cuda" if on_gpu else "cpu")
        torch.distributed.all_reduce(local)
        mean = (local / fdist.world_size()).tolist()
        return {"smooth_losses": mean, "smooth_loss": mean[-1]}

    def on_train_end(self, exception, **kwargs):
        """Give the learner its own model and loaders back; after a failure, leave the process group."""
        if not self.active:
            return
        self.active = False
        learn, data = self.learn, self.learn.data
        learn.model, data.train_dl, data.valid_dl = self._saved
        self._saved = None
        if exception is not False:
            fdist.abort()
