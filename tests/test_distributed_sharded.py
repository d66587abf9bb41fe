"""Sharded checkpoints (FSDP2, `torch.distributed.checkpoint`): written by each rank, loaded into
another world size (1 rank -> 2 ranks -> 1 process), an exact FSDP resume, and a folder that is
data only (a pickled call in DCP's metadata, a path leaving the folder, a wrong shape: refused,
nothing changed)."""

import datetime
import io
import os
import pickle
import shutil
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from test_distributed import _env, free_port
from test_distributed_fsdp import _full_state, learner

from fastcb import SaveModelCallback
from fastcb import distributed as fdist
from fastcb.errors import CheckpointError


def _worker(rank, world, port, out):
    _env(rank, world, port)
    seen = {}
    with fdist.distributed(backend="gloo", timeout=datetime.timedelta(seconds=60)):
        torch.manual_seed(rank)
        learn = learner(out).to_distributed(strategy="fsdp")
        learn.fit(2, 1e-2, callbacks=[SaveModelCallback(learn, every="epoch", name="ck")])
        seen["full"] = {"state": _full_state(learn.model), "val_losses": [float(v) for v in learn.recorder.val_losses]}
        learn = learner(out).to_distributed(strategy="fsdp")  # resumed: loads ck_0, goes on
        torch.manual_seed(100 + rank)
        learn.fit(2, 1e-2, callbacks=[SaveModelCallback(learn, every="epoch", name="ck")], start_epoch=1)
        seen["resumed"] = {"state": _full_state(learn.model),
                           "val_losses": [float(v) for v in learn.recorder.val_losses]}
        learn = learner(out).to_distributed(strategy="fsdp")
        learn.load("one")  # written by one rank
        seen["one"] = _full_state(learn.model)
    torch.save(seen, os.path.join(out, f"{rank}.pt"))


def _one_rank_checkpoint(path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=0, world_size=1)
    try:
        learn = learner(path).to_distributed(strategy="fsdp")
        learn.fit(1, 1e-2)
        learn.save("one")
        return _full_state(learn.model)
    finally:
        dist.destroy_process_group()


def test_sharded_checkpoints_change_world_size_and_resume_exactly(tmp_path):
    one = _one_rank_checkpoint(tmp_path)
    assert (tmp_path / "models" / "one.dcp" / "fastcb.pth").is_file()
    mp.spawn(_worker, args=(2, free_port(), str(tmp_path)), nprocs=2, join=True)
    r0, r1 = (torch.load(tmp_path / f"{r}.pt") for r in range(2))
    for r in (r0, r1):
        for k, v in one.items():
            assert torch.equal(r["one"][k], v), k  # 1 rank -> 2 ranks
        for k, v in r0["full"]["state"].items():
            assert torch.equal(r["resumed"]["state"][k], v), k  # FSDP resume: bit for bit here
        assert r["resumed"]["val_losses"] == r0["full"]["val_losses"]
    files = sorted(p.name for p in (tmp_path / "models" / "ck_1.dcp").iterdir())
    assert files == [".metadata", "__0_0.distcp", "__1_0.distcp", "fastcb.pth"]  # a shard per rank
    plain = learner(tmp_path)  # no process group: 2 ranks -> 1 process
    plain.load("ck_1")
    for k, v in plain.model.state_dict().items():
        assert torch.equal(v, r0["full"]["state"][k]), k
    assert plain._resume is not None and plain._resume.epoch == 1
    assert set(plain.opt.opt.state_dict()["state"]) == set(range(6))  # Adam's moments of the 6 tensors

    # -- the folder is data ----------------------------------------------------------------------
    before = {k: v.clone() for k, v in plain.model.state_dict().items()}
    md = tmp_path / "models" / "ck_1.dcp" / ".metadata"
    good = md.read_bytes()

    class Evil:
        def __reduce__(self):
            return (os.system, ("touch " + str(tmp_path / "pwned"),))

    md.write_bytes(pickle.dumps(Evil()))
    with pytest.raises(CheckpointError, match="posix.system|os.system|not DCP metadata"):
        plain.load("ck_1")
    assert not (tmp_path / "pwned").exists()
    meta = pickle.loads(good)
    for info in meta.storage_data.values():
        info.relative_path = "../../" + info.relative_path
    md.write_bytes(pickle.dumps(meta))
    with pytest.raises(CheckpointError, match="not a file of the folder"):
        plain.load("ck_1")
    md.write_bytes(good)
    shutil.copytree(tmp_path / "models" / "ck_1.dcp", tmp_path / "models" / "wide.dcp")
    other = learner(tmp_path)
    other.model[0] = torch.nn.Linear(10, 16, bias=True)
    other.model[2] = torch.nn.Linear(16, 8)
    with pytest.raises(CheckpointError, match="model"):
        other.load("wide")
    for k, v in plain.model.state_dict().items():
        assert torch.equal(v, before[k]), k  # nothing was assigned


def test_metadata_getattr_gives_only_members_of_allowed_enums():
    """Some Python versions pickle an enum member as `getattr(cls, name)` (3.11.2 does, for DCP's
    memory-format enum): that loads, and a `getattr` for anything else is refused."""
    from torch.distributed.checkpoint.metadata import _MEM_FORMAT_ENCODING

    from fastcb.sharded import _MetadataUnpickler

    class AsGetattr:
        def __reduce__(self):
            return (getattr, (_MEM_FORMAT_ENCODING, "TORCH_CONTIGUOUS_FORMAT"))

    member = _MetadataUnpickler(io.BytesIO(pickle.dumps(AsGetattr()))).load()
    assert member is _MEM_FORMAT_ENCODING.TORCH_CONTIGUOUS_FORMAT

    class Hostile:
        def __reduce__(self):
            return (getattr, (_MEM_FORMAT_ENCODING, "__class__"))

    with pytest.raises(CheckpointError, match="getattr"):
        _MetadataUnpickler(io.BytesIO(pickle.dumps(Hostile()))).load()
