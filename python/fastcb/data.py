"""`DataBunch`: the training and validation `DataLoader`s, bound to a device."""

from __future__ import annotations

import functools
import inspect
import os
from collections.abc import Callable, Iterable, Iterator
from enum import Enum
from pathlib import Path
from typing import IO, Any, cast

import torch
import torch.nn.functional as F
from torch.types import Device
from torch.utils.data import DataLoader, RandomSampler, SequentialSampler

from ._utils import GetAttr, check_number, to_detach, to_device

__all__ = ["DataBunch", "DeviceDataLoader", "DatasetType", "default_device", "load_data", "intercept_args"]

DatasetType = Enum("DatasetType", "Train Valid Test Single Fix")

#: A map-style dataset: torch's `Dataset` with `__len__`, or fastai's `LabelList` (whose `x`,
#: `y`, `set_item`... are read when present).
SizedDataset = Any
#: A batch transform: a batch in, a batch out.
BatchTfm = Callable[[Any], Any]

_dl_init = getattr(DataLoader.__init__, "__wrapped__", DataLoader.__init__)
_dl_sig = inspect.signature(_dl_init)


def _dl_binding(sig: inspect.Signature) -> tuple[tuple[str, ...], dict[str, Any]] | None:
    """The names that can be passed by position after `(self, dataset)`, and every other
    parameter's default in the signature's order, when `sig` is that plain (each parameter
    after the first two has a default, no `*args`, `**kwargs` or positional-only ones); else None."""
    params = list(sig.parameters.values())[2:]
    if any(p.default is p.empty or p.kind not in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) for p in params):
        return None
    return tuple(p.name for p in params if p.kind == p.POSITIONAL_OR_KEYWORD), {p.name: p.default for p in params}


_dl_bind = _dl_binding(_dl_sig)


def _dl_arguments(self: DataLoader[Any], dataset: SizedDataset, args: tuple[Any, ...],
                  kwargs: dict[str, Any]) -> dict[str, Any]:
    """`DataLoader.__init__`'s arguments but `self` and `dataset`, defaults included, in its
    signature's order: what `Signature.bind` and `apply_defaults` give, without their cost (a
    tenth of a millisecond per loader) where the arguments plainly fit; else theirs, with their
    `TypeError` for arguments that don't."""
    if _dl_bind is not None:
        positional, defaults = _dl_bind
        if len(args) <= len(positional) and kwargs.keys() <= defaults.keys() and \
                not any(name in kwargs for name in positional[:len(args)]):
            out = dict(defaults)
            out.update(zip(positional, args))
            out.update(kwargs)
            return out
    bound = _dl_sig.bind(self, dataset, *args, **kwargs)
    bound.apply_defaults()
    return {k: v for k, v in bound.arguments.items() if k not in ("self", "dataset")}


@functools.wraps(_dl_init)
def intercept_args(self: DataLoader[Any], dataset: SizedDataset, *args: Any, **kwargs: Any) -> None:
    """`DataLoader.__init__`, keeping its arguments in `self.init_kwargs` (fastai v1's `intercept_args`).

    Installed on `torch.utils.data.DataLoader` when fastcb is imported, as fastai does, so that
    `DeviceDataLoader.new` and the `batch_size` setter can rebuild a loader. It passes every
    argument through unchanged (fastai's version also changed `pin_memory`'s default).
    """
    self.init_kwargs = _dl_arguments(self, dataset, args, kwargs)
    _dl_init(self, dataset, *args, **kwargs)


DataLoader.__init__ = intercept_args  # type: ignore[method-assign]


def _dl_kwargs(dl: DataLoader[Any]) -> dict[str, Any]:
    """The arguments that rebuild `dl` (its `init_kwargs`, or read back from its attributes)."""
    kw = getattr(dl, "init_kwargs", None)
    if kw is not None:
        return dict(kw)
    custom_sampler = not isinstance(dl.sampler, (RandomSampler, SequentialSampler))
    return dict(batch_size=dl.batch_size, shuffle=isinstance(dl.sampler, RandomSampler),
                sampler=dl.sampler if custom_sampler else None, num_workers=dl.num_workers,
                collate_fn=dl.collate_fn, pin_memory=dl.pin_memory, drop_last=dl.drop_last, timeout=dl.timeout,
                worker_init_fn=dl.worker_init_fn)


def default_device() -> torch.device:
    """CUDA when available, else the CPU."""
    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")


class DeviceDataLoader(GetAttr):
    """A `DataLoader` whose batches are moved to `device` and passed through `tfms`."""

    _default = "dl"  # unknown attributes are the dl's

    def __init__(self, dl: DataLoader[Any], device: torch.device | str | int, tfms: Iterable[BatchTfm] | None = None) -> None:
        if not hasattr(dl, "__iter__"):
            raise TypeError(f"dl: expected a DataLoader, got {type(dl).__name__}")
        self.dl, self.device = dl, torch.device(device)
        self.tfms = tfms if isinstance(tfms, list) else list(tfms or [])  # a DataBunch shares its list

    def __len__(self) -> int:
        return len(self.dl)

    @classmethod
    def create(cls, dataset: SizedDataset, bs: int = 64, shuffle: bool = False, device: Device = None,
               tfms: Iterable[BatchTfm] | None = None, num_workers: int = 0,
               collate_fn: Callable[[list[Any]], Any] | None = None, **kwargs: Any) -> DeviceDataLoader:
        """A `DeviceDataLoader` over a new `DataLoader(dataset, bs, shuffle, num_workers, **kwargs)`."""
        if collate_fn is not None:
            kwargs["collate_fn"] = collate_fn
        dl = DataLoader(dataset, batch_size=bs, shuffle=shuffle, num_workers=num_workers, **kwargs)
        return cls(dl, default_device() if device is None else device, tfms)

    def new(self, **kwargs: Any) -> DeviceDataLoader:
        """A copy over a new `DataLoader` of the same dataset, with `kwargs` replacing its arguments."""
        kw = {**_dl_kwargs(self.dl), **kwargs}
        if kw.get("sampler") is not None or kw.get("batch_sampler") is not None:
            kw.pop("shuffle", None)
        return DeviceDataLoader(type(self.dl)(self.dl.dataset, **kw), self.device, self.tfms)

    @property
    def batch_size(self) -> int | None:
        """The loader's batch size; setting it rebuilds the `DataLoader`."""
        return self.dl.batch_size

    @batch_size.setter
    def batch_size(self, v: int | None) -> None:
        self.dl = self.new(batch_size=v).dl
        if hasattr(self.dl.dataset, "bs"):
            self.dl.dataset.bs = v

    @property
    def num_workers(self) -> int:
        """The loader's number of worker processes (settable)."""
        return self.dl.num_workers

    @num_workers.setter
    def num_workers(self, v: int) -> None:
        self.dl.num_workers = v

    def add_tfm(self, tfm: BatchTfm) -> None:
        """Apply `tfm` to every batch."""
        self.tfms.append(tfm)

    def remove_tfm(self, tfm: BatchTfm) -> None:
        """Stop applying `tfm`."""
        if tfm in self.tfms:
            self.tfms.remove(tfm)

    def proc_batch(self, b: Any) -> Any:
        """Move batch `b` to the device and apply the transforms."""
        b = to_device(b, self.device)
        for f in self.tfms:
            b = f(b)
        return b

    def __iter__(self) -> Iterator[Any]:
        if self.device.type == "cpu" and not self.tfms:
            return iter(self.dl)  # nothing to do per batch: hand out the DataLoader's own iterator
        return (self.proc_batch(b) for b in self.dl)


class DataBunch(GetAttr):
    """Bind `train_dl`, `valid_dl` (and optionally `test_dl`) to `device`.

    As in fastai, `fix_dl` (the training set in order, without dropping the last batch) and
    `single_dl` (batches of one item, for `one_item`) are made when not given.
    """

    _default = "train_dl"  # unknown attributes are the train_dl's

    def __init__(self, train_dl: DataLoader[Any] | DeviceDataLoader,
                 valid_dl: DataLoader[Any] | DeviceDataLoader | None = None,
                 fix_dl: DataLoader[Any] | DeviceDataLoader | None = None,
                 test_dl: DataLoader[Any] | DeviceDataLoader | None = None, device: Device = None,
                 dl_tfms: Iterable[BatchTfm] | None = None, path: str | os.PathLike[str] = ".",
                 collate_fn: Callable[[list[Any]], Any] | None = None, no_check: bool = False) -> None:
        if isinstance(train_dl, DeviceDataLoader):
            train_dl = train_dl.dl
        if train_dl is None or not hasattr(train_dl, "__iter__"):
            raise TypeError(f"train_dl: expected a DataLoader, got {type(train_dl).__name__}")
        self.device = default_device() if device is None else torch.device(device)
        self.dl_tfms = list(dl_tfms or [])

        def wrap(dl: DataLoader[Any] | DeviceDataLoader | None) -> DeviceDataLoader | None:
            if dl is None:
                return None
            if isinstance(dl, DeviceDataLoader):
                dl = dl.dl
            if collate_fn is not None:
                dl.collate_fn = collate_fn
            return DeviceDataLoader(dl, self.device, self.dl_tfms)

        # (train_dl is not None: checked above)
        self.train_dl: DeviceDataLoader = cast(DeviceDataLoader, wrap(train_dl))
        self.valid_dl, self.fix_dl, self.test_dl = wrap(valid_dl), wrap(fix_dl), wrap(test_dl)
        if self.fix_dl is None and isinstance(self.train_dl.dl, DataLoader):
            self.fix_dl = self.train_dl.new(shuffle=False, drop_last=False, sampler=None, batch_sampler=None)
        single_src = self.valid_dl if self.valid_dl is not None else self.train_dl
        self.single_dl = (wrap(DataLoader(single_src.dl.dataset, batch_size=1, num_workers=0,
                                          collate_fn=single_src.dl.collate_fn))
                          if isinstance(single_src.dl, DataLoader) else None)
        self.path = Path(path)
        if not no_check:
            self.sanity_check()

    @classmethod
    def create(cls, train_ds: SizedDataset, valid_ds: SizedDataset | None, test_ds: SizedDataset | None = None,
               path: str | os.PathLike[str] = ".", bs: int = 64, val_bs: int | None = None, num_workers: int = 0,
               dl_tfms: Iterable[BatchTfm] | None = None, device: Device = None,
               collate_fn: Callable[[list[Any]], Any] | None = None, no_check: bool = False,
               **dl_kwargs: Any) -> DataBunch:
        """`DataLoader`s over the datasets: training shuffled (dropping the last partial batch), the rest in order."""
        # Python ints for torch's DataLoader, which takes no NumPy int (None is left to torch, as it was).
        if bs is not None:
            bs = int(check_number("bs", bs, integer=True, positive=True))
        if num_workers is not None:
            num_workers = int(check_number("num_workers", num_workers, integer=True, minimum=0))
        val_bs = bs if val_bs is None else int(check_number("val_bs", val_bs, integer=True, positive=True))
        extra = dict(dl_kwargs, num_workers=num_workers)
        if collate_fn is not None:
            extra["collate_fn"] = collate_fn
        train_dl = DataLoader(train_ds, bs, shuffle=True, drop_last=len(train_ds) >= bs, **extra)
        valid_dl = None if valid_ds is None else DataLoader(valid_ds, val_bs, shuffle=False, **extra)
        test_dl = None if test_ds is None else DataLoader(test_ds, val_bs, shuffle=False, **extra)
        return cls(train_dl, valid_dl, test_dl=test_dl, device=device, dl_tfms=dl_tfms, path=path, no_check=no_check)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(train={len(self.train_ds)}, valid={0 if self.empty_val else len(self.valid_ds)})"

    def sanity_check(self) -> None:
        """Fail early when the training set has no batch."""
        if len(self.train_dl) == 0:
            raise ValueError("train_dl: has no batch (dataset smaller than the batch size with drop_last?)")

    def dl(self, ds_type: DatasetType = DatasetType.Valid) -> DeviceDataLoader | None:
        """The `DeviceDataLoader` for `ds_type`."""
        return {DatasetType.Train: self.train_dl, DatasetType.Valid: self.valid_dl, DatasetType.Test: self.test_dl,
                DatasetType.Single: self.single_dl, DatasetType.Fix: self.fix_dl}[ds_type]

    @property
    def dls(self) -> list[DeviceDataLoader]:
        """The data loaders that exist, in fastai's order: train, valid, fix, single, test."""
        return [d for d in (self.train_dl, self.valid_dl, self.fix_dl, self.single_dl, self.test_dl) if d is not None]

    def add_tfm(self, tfm: BatchTfm) -> None:
        """Apply `tfm` to the batches of every data loader."""
        self.dl_tfms.append(tfm)

    def remove_tfm(self, tfm: BatchTfm) -> None:
        """Stop applying `tfm`."""
        if tfm in self.dl_tfms:
            self.dl_tfms.remove(tfm)

    @staticmethod
    def _ds(dl: DeviceDataLoader | None) -> SizedDataset:
        return None if dl is None else dl.dataset

    @property
    def train_ds(self) -> SizedDataset:
        """The training dataset."""
        return self.train_dl.dataset

    @property
    def valid_ds(self) -> SizedDataset:
        """The validation dataset (None without one)."""
        return self._ds(self.valid_dl)

    @property
    def fix_ds(self) -> SizedDataset:
        """The dataset of `fix_dl` (the training set)."""
        return self._ds(self.fix_dl)

    @property
    def single_ds(self) -> SizedDataset:
        """The dataset of `single_dl` (the validation set, else the training set)."""
        return self._ds(self.single_dl)

    @property
    def test_ds(self) -> SizedDataset:
        """The test dataset (None without one)."""
        return self._ds(self.test_dl)

    @property
    def empty_val(self) -> bool:
        """True when there is nothing to validate on."""
        return self.valid_dl is None or len(self.valid_dl) == 0

    @property
    def is_empty(self) -> bool:
        """True when no dataset has any item (a `Learner` from `load_learner` before `add_test`)."""
        return not any(d is not None and len(d.dataset) for d in (self.train_dl, self.valid_dl, self.test_dl))

    @property
    def batch_size(self) -> int | None:
        """The training batch size; setting it sets the validation and test ones too."""
        return self.train_dl.batch_size

    @batch_size.setter
    def batch_size(self, v: int | None) -> None:
        for d in (self.train_dl, self.valid_dl, self.test_dl):
            if d is not None:
                d.batch_size = v

    @property
    def loss_func(self) -> Any:
        """The training labels' `loss_func` (`train_ds.y.loss_func`, or `train_ds.loss_func`), else fastai's
        default `F.nll_loss`."""
        ds = self.train_ds
        return getattr(getattr(ds, "y", None), "loss_func", None) or getattr(ds, "loss_func", F.nll_loss)

    def one_batch(self, ds_type: DatasetType = DatasetType.Train, detach: bool = True, denorm: bool = True,
                  cpu: bool = True) -> tuple[Any, Any]:
        """One batch of `ds_type` (loaded in this process), detached and on the CPU by default.

        With `denorm`, a bunch that has fastai's `norm`/`denorm` (a normalising transform) undoes it.
        """
        dl = self.dl(ds_type)
        if dl is None:
            raise ValueError(f"ds_type: this DataBunch has no {ds_type.name} data loader")
        workers = dl.num_workers if isinstance(dl.dl, DataLoader) else 0
        if workers:
            dl.num_workers = 0
        try:
            x, y = next(iter(dl))
        finally:
            if workers:
                dl.num_workers = workers
        if detach:
            x, y = to_detach(x, cpu=cpu), to_detach(y, cpu=cpu)
        norm = getattr(self, "norm", False)
        if denorm and norm and hasattr(self, "denorm"):
            x = self.denorm(x)
            if getattr(norm, "keywords", {}).get("do_y", False):
                y = self.denorm(y, do_x=True)
        return x, y

    def one_item(self, item: Any, detach: bool = False, denorm: bool = False, cpu: bool = False) -> tuple[Any, Any]:
        """`item` as a batch of one, through `single_dl`'s collate function, device and transforms.

        The target is 0, as in fastai. Datasets with fastai's `set_item` process the item first.
        """
        ds = self.single_ds
        if hasattr(ds, "set_item"):
            with ds.set_item(item):
                return self.one_batch(ds_type=DatasetType.Single, detach=detach, denorm=denorm, cpu=cpu)
        dl = self.single_dl
        batch = dl.proc_batch(dl.dl.collate_fn([(item, 0)]))  # type: ignore[union-attr]  # None: AttributeError
        x, y = batch
        if detach:
            x, y = to_detach(x, cpu=cpu), to_detach(y, cpu=cpu)
        return x, y

    def show_batch(self, rows: int = 5, ds_type: DatasetType = DatasetType.Train, reverse: bool = False,
                   **kwargs: Any) -> Any:
        """Show `rows` items of a batch of `ds_type`.

        Datasets with fastai's item-list API (`x.reconstruct`, `x.show_xys`) draw themselves;
        otherwise each input and target is printed.
        """
        x, y = self.one_batch(ds_type, True, True)
        if reverse:
            x, y = x.flip(0), y.flip(0)
        n = min(rows, len(y))
        ds = self.train_ds
        if hasattr(getattr(ds, "x", None), "show_xys"):
            bs = self.dl(ds_type).batch_size  # type: ignore[union-attr]  # a missing loader: AttributeError
            n = min(rows**2 if getattr(ds.x, "_square_show", False) else rows, bs)  # type: ignore[type-var,assignment]
            xs = [ds.x.reconstruct(x[i]) for i in range(n)]
            ys = [ds.y.reconstruct(y[i]) for i in range(n)]
            return ds.x.show_xys(xs, ys, **kwargs)
        for i in range(n):
            print(f"x: {x[i]!r}\ny: {y[i]!r}")

    def add_test(self, items: Any, label: Any = None, tfms: Any = None, tfm_y: bool | None = None) -> None:
        """Use `items` (a dataset, or a sequence of inputs labelled `label`, default 0) as the test set.

        Datasets with fastai's `label_list` add to it; `tfms`/`tfm_y` only apply there.
        """
        if hasattr(self, "label_list"):
            self.label_list.add_test(items, label=label, tfms=tfms, tfm_y=tfm_y)
            ds = self.label_list.test
        elif isinstance(items, torch.utils.data.Dataset):
            ds = items
        else:
            ds = _Labelled(items, 0 if label is None else label)
        vdl = self.valid_dl if self.valid_dl is not None else self.train_dl
        dl = DataLoader(ds, vdl.batch_size, shuffle=False, drop_last=False, num_workers=vdl.num_workers,
                        collate_fn=vdl.dl.collate_fn)
        self.test_dl = DeviceDataLoader(dl, self.device, self.dl_tfms)

    def save(self, file: str | os.PathLike[str] | IO[bytes] = "data_save.pkl") -> None:
        """Save the data (as collated tensors) to `path/file` or the file-like `file`, for `load_data`.

        Every item of each dataset goes through the loader's collate function: what is saved is
        plain tensors, which `load_data` reads back with `weights_only=True`.
        """
        from . import distributed as fdist

        if not fdist.is_main_process():
            return
        state: dict[str, Any] = {"extra": {k: getattr(self, k) for k in ("classes", "c")
                           if isinstance(getattr(self, k, None), (list, tuple, int))}}
        for name in ("train", "valid", "test"):
            d = getattr(self, f"{name}_dl")
            state[name] = None if d is None else _materialize(d.dl.dataset, d.dl.collate_fn, name)
        torch.save(state, self.path / file if isinstance(file, (str, Path)) else file)

    def export(self, file: str | os.PathLike[str] | IO[bytes] = "export.pkl") -> None:
        """Save what inference needs of the data (`classes`, `c`) to `path/file`, for `load_empty`."""
        state = {k: getattr(self, k) for k in ("classes", "c") if isinstance(getattr(self, k, None), (list, tuple, int))}
        torch.save(state, self.path / file if isinstance(file, (str, Path)) else file)

    @classmethod
    def load_empty(cls, path: str | os.PathLike[str], fname: str | os.PathLike[str] | IO[bytes] = "export.pkl") -> DataBunch:
        """An empty `DataBunch` with what `export` saved (`classes`, `c`), e.g. to add a test set to."""
        path = Path(path)
        state = torch.load(path / fname if isinstance(fname, (str, Path)) else fname, weights_only=True)
        empty = _Labelled([], 0)
        data = cls(DataLoader(empty, 1), DataLoader(empty, 1), path=path, no_check=True)
        for k, v in state.items():
            setattr(data, k, v)
        return data


class _Labelled(torch.utils.data.Dataset):
    """`(item, label)` pairs over a sequence of inputs (a test set added by `add_test`)."""

    def __init__(self, items: Any, label: Any) -> None:
        self.items, self.label = items, label

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> tuple[Any, Any]:
        return self.items[i], self.label


def _materialize(ds: SizedDataset, collate_fn: Callable[[list[Any]], Any] | None, name: str) -> list[torch.Tensor]:
    """`ds` collated into a list of tensors (one per field), for `DataBunch.save`."""
    if len(ds) == 0:
        return []
    try:
        batches = list(DataLoader(ds, batch_size=256, shuffle=False, collate_fn=collate_fn))
        fields = zip(*batches)
        return [torch.cat(list(f)) for f in fields]
    except (TypeError, RuntimeError) as e:
        raise ValueError(f"{name}_ds: its items don't collate into tensors, so it can't be saved ({e})") from e


def load_data(path: str | os.PathLike[str], file: str | os.PathLike[str] | IO[bytes] = "data_save.pkl", bs: int = 64,
              val_bs: int | None = None, num_workers: int = 0, dl_tfms: Iterable[BatchTfm] | None = None,
              device: Device = None, collate_fn: Callable[[list[Any]], Any] | None = None, no_check: bool = False,
              **kwargs: Any) -> DataBunch:
    """The `DataBunch` that `DataBunch.save` wrote to `path/file` (or the file-like `file`), with batch size `bs`.

    Read with `weights_only=True` (the file holds tensors only); `kwargs` go to `DataBunch.create`.
    """
    source = Path(path) / file if isinstance(file, (str, Path)) else file
    state = torch.load(source, map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or "train" not in state:
        raise ValueError(f"file: {source} is not a file written by DataBunch.save")
    ds = {k: None if state[k] is None else torch.utils.data.TensorDataset(*state[k]) for k in ("train", "valid", "test")}
    data = DataBunch.create(ds["train"], ds["valid"], ds["test"], path=path, bs=bs, val_bs=val_bs,
                            num_workers=num_workers, dl_tfms=dl_tfms, device=device, collate_fn=collate_fn,
                            no_check=no_check, **kwargs)
    for k, v in state.get("extra", {}).items():
        setattr(data, k, v)
    return data
