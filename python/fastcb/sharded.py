"""Sharded checkpoints of FSDP2 models, through `torch.distributed.checkpoint` (DCP).

A sharded checkpoint is a folder `<name>.dcp`: DCP's files (each rank writes its shards; no
rank gathers the model) holding the tensors of the model's and the optimizer's state dicts,
and `fastcb.pth`, written by rank 0, holding the rest of a `fastcb.checkpoint` (epoch, the
callbacks' state, every rank's loss smoothing and random states, the optimizer's param groups
and hyper-parameters, with each optimizer tensor replaced by its DCP key). It loads into any
number of ranks, sharded or not (DCP reshards): 2 ranks -> 1 process, 1 rank -> 2 ranks.

The folder is untrusted data, as a `.pth` checkpoint is. `fastcb.pth` is read with
`weights_only=True` and checked by `fastcb.checkpoint`; DCP's `.metadata` is unpickled with
only DCP's own metadata classes allowed (`pickle.load` would run any code it names), its file
names must be plain names inside the folder (the file chooses no path), and the tensors it
describes must have the model's and optimizer's names, shapes and dtypes before any is read.
They are read into new tensors, then assigned only when all of them are in.
"""

from __future__ import annotations

import enum
import io
import os
import pickle
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint import DefaultLoadPlanner, FileSystemReader
from torch.distributed.checkpoint.metadata import TensorStorageMetadata

from . import checkpoint
from . import distributed as fdist
from .errors import CheckpointError

if TYPE_CHECKING:
    from torch.distributed.checkpoint.metadata import Metadata
    from torch.distributed.checkpoint.planner import ReadItem

    from .learner import Learner

__all__ = ["folder_of", "save", "read"]

SIDE = "fastcb.pth"
_DCP_CLASSES = {
    "torch.distributed.checkpoint.metadata": {"Metadata", "MetadataIndex", "ChunkStorageMetadata",
                                              "TensorStorageMetadata", "BytesStorageMetadata", "TensorProperties",
                                              "StorageMeta", "_MEM_FORMAT_ENCODING"},
    "torch.distributed.checkpoint.filesystem": {"_StorageInfo"},
    "torch.serialization": {"_get_layout"},
    "torch": {"Size"},
    "pathlib": {"PosixPath", "WindowsPath", "PurePosixPath"},
}


def folder_of(target: str | os.PathLike[str]) -> Path:
    """The sharded checkpoint folder for the `.pth` path `target`."""
    return Path(target).with_suffix(".dcp")


def save(learn: Learner, target: str | os.PathLike[str], epoch: int | None = None) -> Path:
    """Write `learn`'s sharded checkpoint to `folder_of(target)` (every rank calls it); returns
    the path of its `fastcb.pth`."""
    folder = folder_of(target)
    if fdist.is_main_process():
        folder.mkdir(parents=True, exist_ok=True)
    fdist.barrier()
    tensors = {f"model.{k}": v for k, v in learn.model.state_dict().items()}
    state = checkpoint.state_of(learn, epoch, with_tensors=False)
    opt = learn.opt.state_dict()
    marked: dict = {}
    for i, st in opt["state"].items():
        marked[i] = {}
        for k, v in st.items():
            if isinstance(v, torch.Tensor):
                tensors[f"opt.{i}.{k}"] = v
                marked[i][k] = {"__dcp__": f"opt.{i}.{k}"}
            else:
                marked[i][k] = v
    state["opt"] = checkpoint.encode({**opt, "state": marked}, "opt")
    state["model"] = {k: [list(v.shape), str(v.dtype)] for k, v in learn.model.state_dict().items()}
    with warnings.catch_warnings():  # a checkpoint saved again under its name replaces the old one
        warnings.filterwarnings("ignore", "Detected an existing checkpoint", UserWarning)
        dcp.save(tensors, storage_writer=dcp.FileSystemWriter(folder, overwrite=True))
    side = folder / SIDE
    if fdist.is_main_process():
        checkpoint.write(state, side)
    fdist.barrier()
    return side


def _enum_member(owner: Any, name: Any) -> Any:
    """What some Python versions' enum pickling asks `getattr` for (a member as
    `getattr(cls, name)`): a member of an enum the unpickler allowed, and nothing else."""
    if isinstance(owner, type) and issubclass(owner, enum.Enum) and isinstance(name, str) and name in owner.__members__:
        return owner[name]
    raise CheckpointError(f"metadata: getattr of {name!r} on {owner!r}, which is not a member of a DCP enum")


class _MetadataUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if name in _DCP_CLASSES.get(module, ()):
            return super().find_class(module, name)
        if (module, name) == ("builtins", "getattr"):
            return _enum_member
        if module == "torch" and isinstance(getattr(torch, name, None), torch.dtype):
            return getattr(torch, name)
        raise CheckpointError(f"metadata: names {module}.{name}, which is not DCP metadata")


class _SafeReader(FileSystemReader):
    """DCP's file reader with its metadata read as data (see the module doc)."""

    def read_metadata(self, *args: Any, **kwargs: Any) -> Metadata:
        path = Path(self.path) / ".metadata"
        try:
            with open(path, "rb") as f:
                md = _MetadataUnpickler(io.BytesIO(f.read())).load()
        except FileNotFoundError:
            raise
        except CheckpointError:
            raise
        except Exception as e:
            raise CheckpointError(f"metadata: {path} is not DCP metadata ({type(e).__name__}: {e})") from None
        from torch.distributed.checkpoint.metadata import Metadata, StorageMeta

        if not isinstance(md, Metadata) or not isinstance(md.state_dict_metadata, dict) or \
                not isinstance(md.storage_data, dict):
            raise CheckpointError(f"metadata: {path} is not DCP metadata")
        for info in md.storage_data.values():
            rel = getattr(info, "relative_path", None)
            if not isinstance(rel, str) or not rel or os.path.basename(rel) != rel or rel in (".", "..") or \
                    not (Path(self.path) / rel).is_file():
                raise CheckpointError(f"metadata: the data file {str(rel)[:80]!r} is not a file of the folder")
        meta = md.storage_meta
        if meta is None:
            meta = StorageMeta()
        meta.load_id = self.load_id
        md.storage_meta = meta
        return md


class _TensorsOnly(DefaultLoadPlanner):
    """Loads tensors only: a non-tensor item would be unpickled by `torch.load(weights_only=False)`."""

    def load_bytes(self, read_item: ReadItem, value: io.BytesIO) -> None:
        raise CheckpointError(f"{read_item.dest_index.fqn}: not a tensor")


def _check_meta(md: Metadata, key: str, want: torch.Tensor, where: str) -> None:
    meta = md.state_dict_metadata.get(key)
    if not isinstance(meta, TensorStorageMetadata):
        raise CheckpointError(f"{where}: not in the checkpoint's tensors")
    if tuple(meta.size) != tuple(want.shape) or meta.properties.dtype != want.dtype:
        raise CheckpointError(f"{where}: {tuple(meta.size)} {meta.properties.dtype} in the checkpoint, "
                              f"{tuple(want.shape)} {want.dtype} here")


def read(learn: Learner, folder: str | os.PathLike[str], strict: bool = True,
         with_opt: bool = True) -> tuple[dict[str, torch.Tensor], dict[str, Any] | None, checkpoint.Checkpoint]:
    """`(model_state, opt_state or None, Checkpoint)` from a sharded checkpoint folder, checked whole
    against `learn` and read into new tensors (sharded like `learn.model`'s); nothing is assigned."""
    folder = Path(folder)
    ck = checkpoint.read_checkpoint(folder / SIDE, "cpu", sharded=True)
    reader = _SafeReader(folder)
    md = reader.read_metadata()
    own = learn.model.state_dict()
    names = set(own)
    theirs = {k[len("model."):] for k in md.state_dict_metadata if k.startswith("model.")}
    if strict and names != theirs:
        raise CheckpointError(f"model: the checkpoint doesn't match the model: missing keys {sorted(names - theirs)[:5]}, "
                              f"unexpected keys {sorted(theirs - names)[:5]}")
    target = {}
    for k, v in own.items():
        if k in theirs:
            _check_meta(md, f"model.{k}", v, f"model[{k!r}]")
            target[f"model.{k}"] = torch.empty_like(v)
    opt_sd = None
    if with_opt and ck.opt is not None:
        index = {i: p for g, og in zip(ck.opt["param_groups"], learn.opt.opt.param_groups)
                 for i, p in zip(g["params"], og["params"])} if len(ck.opt["param_groups"]) == \
            len(learn.opt.opt.param_groups) else {}
        for i, st in ck.opt["state"].items():
            for k, v in st.items():
                if isinstance(v, dict) and "__dcp__" in v:
                    key = v["__dcp__"]
                    meta = md.state_dict_metadata.get(key)
                    p = index.get(i)
                    if not isinstance(meta, TensorStorageMetadata) or key != f"opt.{i}.{k}":
                        raise CheckpointError(f"opt['state'][{i!r}][{k!r}]: not in the checkpoint's tensors")
                    if p is not None and tuple(meta.size) == tuple(p.shape):
                        like = torch.empty_like(p, dtype=meta.properties.dtype)
                    else:  # a replicated value (Adam's step count)
                        like = torch.empty(tuple(meta.size), dtype=meta.properties.dtype)
                    target[key] = like
        opt_sd = ck.opt
    with warnings.catch_warnings():  # one process reading a checkpoint of several: what we mean
        warnings.filterwarnings("ignore", "torch.distributed is disabled", UserWarning)
        dcp.load(target, storage_reader=reader, planner=_TensorsOnly(),
                 no_dist=not (torch.distributed.is_available() and torch.distributed.is_initialized()))
    model_state = {k[len("model."):]: v for k, v in target.items() if k.startswith("model.")}
    if opt_sd is not None:
        opt_sd = {**opt_sd, "state": {i: {k: target[v["__dcp__"]] if isinstance(v, dict) and "__dcp__" in v else v
                                          for k, v in st.items()} for i, st in opt_sd["state"].items()}}
    return model_state, opt_sd, ck
