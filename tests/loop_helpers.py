"""Tiny data and learners shared by the callback-layer tests."""

import random

import matplotlib

matplotlib.use("Agg")

import torch
from torch.utils.data import DataLoader, TensorDataset

from fastcb import Callback, DataBunch, Learner


def tiny_data(n_train=48, n_valid=20, bs=8, seed=0, shuffle=False, path="."):
    """A linearly separable 2-class problem in 10 dimensions, on the CPU."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n_train + n_valid, 10, generator=g)
    y = (x[:, 0] - x[:, 1] > 0).long()
    train = DataLoader(TensorDataset(x[:n_train], y[:n_train]), batch_size=bs, shuffle=shuffle)
    valid = DataLoader(TensorDataset(x[n_train:], y[n_train:]), batch_size=bs) if n_valid else None
    return DataBunch(train, valid, device="cpu", path=path)


def tiny_learner(tmp_path=None, model=None, seed=0, **kwargs):
    """A quiet `Learner` over `tiny_data` with a Linear(10, 2) model."""
    torch.manual_seed(seed)
    data_kwargs = {k: kwargs.pop(k) for k in ("n_train", "n_valid", "bs", "shuffle") if k in kwargs}
    data = tiny_data(path=tmp_path or ".", **data_kwargs)
    kwargs.setdefault("silent", True)
    kwargs.setdefault("loss_func", torch.nn.functional.cross_entropy)  # fastai's default is nll_loss
    return Learner(data, model if model is not None else torch.nn.Linear(10, 2), **kwargs)


class Score(Callback):
    """A metric callback reporting preset values, one per epoch (drives the trackers the same
    way in every run)."""

    name = "score"

    def __init__(self, values):
        self.values = list(values)

    def on_epoch_end(self, epoch, last_metrics, **kwargs):
        return {"last_metrics": list(last_metrics) + [self.values[epoch]]}


class StopAfter(Callback):
    """Interrupt the run after epoch `k` (after the callbacks before it, a checkpoint included, ran)."""

    _order = 100

    def __init__(self, k):
        self.k = k

    def on_epoch_end(self, epoch, **kwargs):
        if epoch == self.k:
            return {"stop_training": True}
        return None


class EventLog:
    """Collects `(event, kwargs)` pairs from `LogCallback`s."""

    def __init__(self):
        self.events = []

    def names(self):
        return [e for e, _ in self.events]


class Meddler(Callback):
    """Defines the hooks of `events`; at each, logs `self.seen(event, state)` and returns
    `self.reply(event, state, r)` for a seeded random `r` in [0, 1): a subclass says what it logs
    and what it returns (what fastai v1 lets a hook return there)."""

    def __init__(self, events, seed, log):
        self.rng, self.log = random.Random(seed), log
        for ev in events:
            setattr(self, "on_" + ev, self._make(ev))

    def _make(self, ev):
        def hook(**kw):
            self.log.append(self.seen(ev, kw))
            return self.reply(ev, kw, self.rng.random())

        return hook

    def seen(self, event, state):
        """What the log keeps of one call."""
        raise NotImplementedError

    def reply(self, event, state, r):
        """What the hook returns, given `r`."""
        raise NotImplementedError

