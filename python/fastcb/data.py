"""`DataBunch`: the training and validation `DataLoader`s, bound to a device."""

from enum import Enum
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from ._utils import GetAttr, to_detach, to_device

__all__ = ["DataBunch", "DeviceDataLoader", "DatasetType", "default_device"]

DatasetType = Enum("DatasetType", "Train Valid Test")


def default_device():
    """CUDA when available, else the CPU."""
    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")


class DeviceDataLoader(GetAttr):
    """A `DataLoader` whose batches are moved to `device` and passed through `tfms`."""

    _default = "dl"  # unknown attributes are the dl's

    def __init__(self, dl, device, tfms=None):
        if not hasattr(dl, "__iter__"):
            raise TypeError(f"dl: expected a DataLoader, got {type(dl).__name__}")
        self.dl, self.device = dl, torch.device(device)
        self.tfms = tfms if isinstance(tfms, list) else list(tfms or [])  # a DataBunch shares its list

    def __len__(self):
        return len(self.dl)


    def add_tfm(self, tfm):
        """Apply `tfm` to every batch."""
        self.tfms.append(tfm)

    def remove_tfm(self, tfm):
        """Stop applying `tfm`."""
        if tfm in self.tfms:
            self.tfms.remove(tfm)

    def proc_batch(self, b):
        """Move batch `b` to the device and apply the transforms."""
        b = to_device(b, self.device)
        for f in self.tfms:
            b = f(b)
        return b

    def __iter__(self):
        if self.device.type == "cpu" and not self.tfms:
            return iter(self.dl)  # nothing to do per batch: hand out the DataLoader's own iterator
        return (self.proc_batch(b) for b in self.dl)


class DataBunch(GetAttr):
    """Bind `train_dl`, `valid_dl` (and optionally `test_dl`) to `device`."""

    _default = "train_dl"  # unknown attributes are the train_dl's

    def __init__(self, train_dl, valid_dl=None, fix_dl=None, test_dl=None, device=None, dl_tfms=None, path=".",
                 collate_fn=None, no_check=False):
        if isinstance(train_dl, DeviceDataLoader):
            train_dl = train_dl.dl
        if train_dl is None or not hasattr(train_dl, "__iter__"):
            raise TypeError(f"train_dl: expected a DataLoader, got {type(train_dl).__name__}")
        self.device = default_device() if device is None else torch.device(device)
        self.dl_tfms = list(dl_tfms or [])

        def wrap(dl):
            if dl is None:
                return None
            if isinstance(dl, DeviceDataLoader):
                dl = dl.dl
            if collate_fn is not None:
                dl.collate_fn = collate_fn
            return DeviceDataLoader(dl, self.device, self.dl_tfms)

        self.train_dl, self.valid_dl, self.fix_dl, self.test_dl = map(wrap, (train_dl, valid_dl, fix_dl, test_dl))
        self.path = Path(path)
        if not no_check:
            self.sanity_check()

    @classmethod
    def create(cls, train_ds, valid_ds, test_ds=None, path=".", bs=64, val_bs=None, num_workers=0, dl_tfms=None,
               device=None, collate_fn=None, no_check=False, **dl_kwargs):
        """`DataLoader`s over the datasets: training shuffled (dropping the last partial batch), the rest in order."""
        for name, v in (("bs", bs), ("val_bs", val_bs), ("num_workers", num_workers)):
            if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < (0 if name == "num_workers" else 1)):
                raise ValueError(f"{name}: expected a {'non-negative' if name == 'num_workers' else 'positive'} int, got {v!r}")
        val_bs = bs if val_bs is None else val_bs
        extra = dict(dl_kwargs, num_workers=num_workers)
        if collate_fn is not None:
            extra["collate_fn"] = collate_fn
        train_dl = DataLoader(train_ds, bs, shuffle=True, drop_last=len(train_ds) >= bs, **extra)
        valid_dl = None if valid_ds is None else DataLoader(valid_ds, val_bs, shuffle=False, **extra)
        test_dl = None if test_ds is None else DataLoader(test_ds, val_bs, shuffle=False, **extra)
        return cls(train_dl, valid_dl, test_dl=test_dl, device=device, dl_tfms=dl_tfms, path=path, no_check=no_check)


    def __repr__(self):
        return f"{type(self).__name__}(train={len(self.train_ds)}, valid={0 if self.empty_val else len(self.valid_ds)})"

    def sanity_check(self):
        """Fail early when the training set has no batch."""
        if len(self.train_dl) == 0:
            raise ValueError("train_dl: has no batch (dataset smaller than the batch size with drop_last?)")

    def dl(self, ds_type=DatasetType.Valid):
        """The `DeviceDataLoader` for `ds_type`."""
        return {DatasetType.Train: self.train_dl, DatasetType.Valid: self.valid_dl, DatasetType.Test: self.test_dl}[ds_type]

    @property
    def dls(self):
        """All the data loaders that exist."""
        return [d for d in (self.train_dl, self.valid_dl, self.fix_dl, self.test_dl) if d is not None]

    def add_tfm(self, tfm):
        """Apply `tfm` to the batches of every data loader."""
        self.dl_tfms.append(tfm)

    def remove_tfm(self, tfm):
        """Stop applying `tfm`."""
        if tfm in self.dl_tfms:
            self.dl_tfms.remove(tfm)

    @property
    def train_ds(self):
        """The training dataset."""
        return self.train_dl.dataset

    @property
    def valid_ds(self):
        """The validation dataset (None without one)."""
        return None if self.valid_dl is None else self.valid_dl.dataset

    @property
    def empty_val(self):
        """True when there is nothing to validate on."""
        return self.valid_dl is None or len(self.valid_dl) == 0

    @property
    def loss_func(self):
        """The training dataset's `loss_func`, else cross-entropy."""
        return getattr(self.train_ds, "loss_func", F.cross_entropy)

    def one_batch(self, ds_type=DatasetType.Train, detach=True, cpu=True):
        """One batch of `ds_type`, on the device (detached and on the CPU by default)."""
        x, y = next(iter(self.dl(ds_type)))
        if detach:
            x, y = to_detach(x, cpu=cpu), to_detach(y, cpu=cpu)
        return x, y
