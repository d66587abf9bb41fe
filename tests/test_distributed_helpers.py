"""The process-group helpers, on CPU with the gloo backend and two processes."""

import os
import socket

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from fastcb import WeightedMean
from fastcb import distributed as fdist
from fastcb.callback import weighted_mean


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _merge_worker(rank, world, port, values, out):
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    with fdist.distributed(backend="gloo") as device:
        def no_pickles(*args, **kwargs):
            raise AssertionError("partial sums cross ranks as a tensor, not a pickle")

        torch.distributed.all_gather_object = no_pickles
        acc = WeightedMean()
        acc.extend(values[rank::world])
        merged = fdist.all_merge(acc)
        loss = fdist.all_mean(torch.tensor(float(rank + 1)))
        mine = values[rank::world]
        with_inf = weighted_mean(np.append(mine, np.inf) if rank else mine, np.ones(len(mine) + rank))
        torch.save({"mean": merged.mean, "count": merged.count, "loss": loss, "device": str(device),
                    "with_inf": float(with_inf), "plain": float(weighted_mean(mine, np.ones(len(mine)))),
                    "main": fdist.is_main_process(), "rank": fdist.rank(), "world": fdist.world_size()},
                   os.path.join(out, f"{rank}.pt"))


def test_two_ranks_merge_exactly(tmp_path):
    values = np.random.default_rng(1).normal(size=1001) * 1e10
    mp.spawn(_merge_worker, args=(2, free_port(), values, str(tmp_path)), nprocs=2, join=True)
    one = WeightedMean()
    one.extend(values)
    results = [torch.load(tmp_path / f"{r}.pt") for r in range(2)]
    for r, res in enumerate(results):
        assert res["mean"] == one.mean and res["count"] == 1001
        assert res["plain"] == one.mean and res["with_inf"] == np.inf
        assert res["loss"].item() == 1.5 and res["device"] == "cpu"
        assert (res["rank"], res["world"], res["main"]) == (r, 2, r == 0)


def test_outside_a_process_group_everything_is_local(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    acc = WeightedMean()
    acc.add(2.0)
    assert fdist.all_merge(acc) is acc
    t = torch.tensor(3.0)
    assert fdist.all_mean(t) is t
    assert (fdist.rank(), fdist.world_size(), fdist.is_main_process(), fdist.is_distributed()) == (0, 1, True, False)
    assert fdist.setup().type in ("cpu", "cuda")
    fdist.barrier()


def test_a_partial_environment_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.delenv("MASTER_ADDR", raising=False)
    with pytest.raises(RuntimeError, match="setup: WORLD_SIZE is set but"):
        fdist.setup()
