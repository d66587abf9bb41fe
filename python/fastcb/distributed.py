"""Process-group helpers for running fastcb under `torchrun` (or `torch.multiprocessing`).

`setup()` reads the environment `torchrun` provides (RANK, WORLD_SIZE, LOCAL_RANK,
MASTER_ADDR, MASTER_PORT), starts the process group and picks this rank's device;
`teardown()` ends it. Metrics are reduced exactly: each rank's `WeightedMean` partial sums
are gathered once per epoch and merged, so a multi-rank result equals a one-process one.

Data: `train_loader` gives each rank its part of the training set through a
`DistributedSampler` (padded by repetition, so that every rank runs the same number of
steps, as DDP needs); `valid_loader` gives each rank every `world_size`-th batch of the
validation loader (`BatchShard`): no sample is dropped or repeated and each batch is the one
a single process would see, so merged validation results equal the one-process ones.
"""

import contextlib
import datetime
import gc
import itertools
import os
from collections.abc import Iterable, Iterator
from typing import Any, TypeGuard, TypeVar, overload

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler, IterableDataset, RandomSampler, Sampler

from .anneal import WeightedMean

_M = TypeVar("_M", bound=nn.Module)


#: How long a collective waits for the other ranks before failing (instead of hanging).
DEFAULT_TIMEOUT = datetime.timedelta(seconds=float(os.environ.get("FASTCB_DIST_TIMEOUT", 120)))


def is_distributed() -> bool:
    """True inside an initialised process group of more than one rank."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    """This process's rank (0 outside a process group)."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def world_size() -> int:
    """The number of ranks (1 outside a process group)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def is_main_process() -> bool:
    """True on rank 0: the rank that logs, prints and saves."""
    return rank() == 0


def setup(backend: str | None = None, timeout: datetime.timedelta = DEFAULT_TIMEOUT) -> torch.device:
    """Start the process group from torchrun's environment; returns this rank's device.

    `backend` defaults to NCCL when CUDA is available and gloo otherwise. Without a
    distributed environment (no WORLD_SIZE), nothing is started and the default device is
    returned, so the same script runs with `python` and with `torchrun`.
    """
    if "WORLD_SIZE" not in os.environ:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    missing = [k for k in ("RANK", "MASTER_ADDR", "MASTER_PORT") if k not in os.environ]
    if missing:
        raise RuntimeError(f"setup: WORLD_SIZE is set but {', '.join(missing)} is not: launch with torchrun")
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    use_cuda = torch.cuda.is_available() and backend in (None, "nccl")
    if use_cuda:
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    if not dist.is_initialized():
        dist.init_process_group(backend=backend or ("nccl" if use_cuda else "gloo"), timeout=timeout)
    return device


def teardown() -> None:
    """End the process group, if one was started.

    Garbage (a finished `DistributedDataParallel` wrapper, say) that still holds the group is
    collected first: destroyed later, at interpreter exit, gloo's threads can abort the process.
    """
    if dist.is_available() and dist.is_initialized():
        gc.collect()
        dist.destroy_process_group()


@contextlib.contextmanager
def distributed(backend: str | None = None, timeout: datetime.timedelta = DEFAULT_TIMEOUT) -> Iterator[torch.device]:
    """`with distributed() as device:` — `setup()` on entry, `teardown()` on exit (`abort()` after an error)."""
    device = setup(backend, timeout)
    try:
        yield device
    except BaseException:
        abort()  # the other ranks may be inside a collective: an orderly teardown could wait on them
        raise
    teardown()


def barrier() -> None:
    """Wait for every rank (a no-op outside a process group)."""
    if is_distributed():
        dist.barrier()


#: Room for the partial sums of one float64 sum (non-overlapping partials: at most about 40
#: span float64's exponent range), per sum in the fixed-size row `all_merge` gathers.
_PARTIALS = 64
#: The row: [n_sum, n_weight, count, n, has_bad, bad, sum partials..., weight partials...].
_ROW = 6 + 2 * _PARTIALS


def _collective_device() -> torch.device:
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


@overload
def all_merge(acc: WeightedMean, bad: float | None = None, n: None = None) -> WeightedMean: ...


@overload
def all_merge(acc: WeightedMean, bad: float | None, n: int) -> tuple[WeightedMean, float | None, int]: ...


def all_merge(acc: WeightedMean, bad: float | None = None,
              n: int | None = None) -> WeightedMean | tuple[WeightedMean, float | None, int | None]:
    """A `WeightedMean` holding every rank's values, the same on every rank; exact.

    One collective of a fixed-size float64 tensor per rank (no pickling): each rank's partial
    sums are gathered and merged in rank order, so the result equals one accumulator fed all
    values. With `bad` (the sum of a rank's non-finite terms, or None) and `n` (a rank's count
    of values), returns `(merged, bad summed over the ranks or None, n summed)` instead.
    """
    with_extra = n is not None
    if not is_distributed():
        return (acc, bad, n) if with_extra else acc
    device = _collective_device()
    rows = [torch.empty(_ROW, dtype=torch.float64, device=device) for _ in range(world_size())]
    dist.all_gather(rows, pack_partials(acc, bad, n or 0).to(device))
    merged, bad, n = unpack_partials(torch.stack(rows).cpu())  # once per epoch
    return (merged, bad, n) if with_extra else merged


def pack_partials(acc: WeightedMean, bad: float | None = None, n: int = 0) -> torch.Tensor:
    """One rank's part of `all_merge`: the exact state of `acc`, `bad` and `n` in a fixed-size
    float64 row (counts are exact below 2**53)."""
    state = acc.state_dict()
    sums, weights = list(state["sum"]), list(state["total_weight"])
    if len(sums) > _PARTIALS or len(weights) > _PARTIALS:
        raise ValueError(f"acc: {max(len(sums), len(weights))} partial sums, more than a float64 sum needs")
    row = torch.zeros(_ROW, dtype=torch.float64)
    row[:6] = torch.tensor([len(sums), len(weights), state["count"], n, bad is not None,
                            0.0 if bad is None else bad], dtype=torch.float64)
    row[6:6 + len(sums)] = torch.tensor(sums, dtype=torch.float64)
    row[6 + _PARTIALS:6 + _PARTIALS + len(weights)] = torch.tensor(weights, dtype=torch.float64)
    return row


def unpack_partials(rows: torch.Tensor) -> tuple[WeightedMean, float | None, int]:
    """`(merged WeightedMean, bad summed or None, n summed)` from the ranks' `pack_partials` rows, in rank order."""
    merged, bads, total = WeightedMean(), [], 0
    for r in rows.tolist():
        n_sum, n_weight = int(r[0]), int(r[1])
        part = WeightedMean()
        part.load_state_dict({"sum": r[6:6 + n_sum], "total_weight": r[6 + _PARTIALS:6 + _PARTIALS + n_weight],
                              "count": int(r[2])})
        merged.merge(part)
        total += int(r[3])
        if r[4]:
            bads.append(r[5])  # each inf, -inf or nan
    return merged, (sum(bads) if bads else None), total


def all_mean(tensor: torch.Tensor) -> torch.Tensor:
    """The mean of `tensor` over ranks, on its device, without a host sync (for reporting)."""
    if not is_distributed():
        return tensor
    out = tensor.detach().clone()
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out / world_size()


def all_gather_object(obj: Any) -> list[Any]:
    """`[obj of rank 0, obj of rank 1, ...]` on every rank (`[obj]` outside a process group)."""
    if not is_distributed():
        return [obj]
    out = [None] * world_size()
    dist.all_gather_object(out, obj)
    return out


def abort() -> None:
    """Leave the process group after a failure, without waiting for the other ranks.

    What this rank runs afterwards (callbacks' `on_train_end`, `save`/`load`, `teardown()`)
    then runs locally instead of entering collectives the others will never match. The other
    ranks' pending collectives fail as soon as this process exits (its connections close), and
    at the latest after the group's timeout (`FASTCB_DIST_TIMEOUT`, seconds) if it lives on.
    NCCL communicators are aborted (destroying them could wait for the other ranks forever).
    """
    if not (dist.is_available() and dist.is_initialized()):
        return
    gc.collect()  # a dropped DDP wrapper still holding the group would keep its connections open
    with contextlib.suppress(Exception):
        if dist.get_backend() == "nccl":
            dist.distributed_c10d._abort_process_group()
        else:
            dist.destroy_process_group()


def unwrap(model: nn.Module) -> nn.Module:
    """The module inside a `DistributedDataParallel` wrapper (`model` itself otherwise)."""
    return model.module if isinstance(model, DistributedDataParallel) else model


def is_sharded(model: nn.Module) -> bool:
    """True when `model` (or one of its modules) is sharded by FSDP2's `fully_shard`."""
    from torch.distributed.fsdp import FSDPModule

    return any(isinstance(m, FSDPModule) for m in unwrap(model).modules())


def shard(model: _M, units: Iterable[nn.Module | list[nn.Module] | tuple[nn.Module, ...]],
          **fully_shard_kwargs: Any) -> _M:
    """Shard `model` in place with FSDP2 (`torch.distributed.fsdp.fully_shard`), under the process group.

    Each of `units` (a module, or a list of modules gathered together) becomes one FSDP unit,
    then the root; `fully_shard_kwargs` (`mp_policy`, `reshard_after_forward`, ...) go to every
    call. First every rank gets rank 0's parameters and buffers (as DDP does when it wraps), so
    the shards come from one model. Returns `model`.
    """
    from torch.distributed.fsdp import fully_shard

    if not (dist.is_available() and dist.is_initialized()):
        raise RuntimeError("strategy='fsdp': needs an initialised process group (torchrun, `fastcb.distributed.setup`)")
    if is_sharded(model):
        return model
    with torch.no_grad():
        for t in itertools.chain(model.parameters(), model.buffers()):
            dist.broadcast(t, 0)
    for unit in units:
        mods = [m for m in (unit if isinstance(unit, (list, tuple)) else [unit])
                if any(True for _ in m.parameters())]
        if len(mods) > 1:
            fully_shard(mods, **fully_shard_kwargs)
        elif mods:
            fully_shard(mods[0], **fully_shard_kwargs)
    fully_shard(model, **fully_shard_kwargs)
    return model


class BatchShard(Sampler[list[int]]):
    """Batches `rank`, `rank + world`, `rank + 2*world`, ... of `batch_sampler`.

    Every batch goes to exactly one rank, unchanged: nothing dropped, nothing repeated (unlike
    `DistributedSampler`, which pads by repeating samples). Ranks may get one batch more
    than others, which is fine where no collective runs per batch (validation).
    """

    def __init__(self, batch_sampler: Iterable[list[int]], rank: int | None = None,
                 world: int | None = None) -> None:
        self.batch_sampler = batch_sampler
        self.rank, self.world = _place(rank, world)
        if not 0 <= self.rank < self.world:
            raise ValueError(f"rank: expected 0 <= rank < world ({self.world}), got {self.rank}")

    def __iter__(self) -> Iterator[list[int]]:
        return itertools.islice(iter(self.batch_sampler), self.rank, None, self.world)

    def __len__(self) -> int:
        # torch types a loader's batch_sampler as an Iterable; a batch sampler has a length
        return len(range(self.rank, len(self.batch_sampler), self.world))  # type: ignore[arg-type]


def _place(r: int | None, w: int | None) -> tuple[int, int]:
    """(rank, world size): the given ones, else this process's."""
    return (rank() if r is None else r, world_size() if w is None else w)


def _loader_kwargs(dl: DataLoader[Any]) -> dict[str, Any]:
    """What to pass to `DataLoader` to rebuild `dl` around a new sampler."""
    kw = {"num_workers": dl.num_workers, "collate_fn": dl.collate_fn, "pin_memory": dl.pin_memory,
          "timeout": dl.timeout, "worker_init_fn": dl.worker_init_fn, "generator": dl.generator,
          "persistent_workers": dl.persistent_workers}
    if dl.num_workers > 0:
        kw["multiprocessing_context"] = dl.multiprocessing_context
        kw["prefetch_factor"] = dl.prefetch_factor
    for k in ("pin_memory_device", "in_order"):
        if hasattr(dl, k):
            kw[k] = getattr(dl, k)
    return kw


def _shardable(dl: object) -> TypeGuard[DataLoader[Any]]:
    return isinstance(dl, DataLoader) and not isinstance(dl.dataset, IterableDataset)


def train_loader(dl: Iterable[Any], shuffle: bool | None = None, seed: int = 0, rank: int | None = None,
                 world: int | None = None) -> Iterable[Any]:
    """`dl` rebuilt with a `DistributedSampler` (this rank's part of the data, same batch size).

    `shuffle` defaults to whether `dl` shuffles; `seed` must be the same on every rank (the
    sampler shuffles with `seed + epoch`: call `sampler.set_epoch(epoch)` each epoch).
    Loaders over an iterable dataset, or already distributed, are returned as they are.
    """
    if not _shardable(dl) or isinstance(dl.sampler, DistributedSampler):
        return dl
    if dl.batch_size is None:
        raise ValueError("train_dl: has a custom batch_sampler; give it a DistributedSampler yourself")
    shuffle = isinstance(dl.sampler, RandomSampler) if shuffle is None else shuffle
    rank, world = _place(rank, world)
    sampler: DistributedSampler[Any] = DistributedSampler(dl.dataset, num_replicas=world, rank=rank, shuffle=shuffle, seed=seed)
    return DataLoader(dl.dataset, batch_size=dl.batch_size, sampler=sampler, drop_last=dl.drop_last,
                      **_loader_kwargs(dl))


def valid_loader(dl: Iterable[Any], rank: int | None = None, world: int | None = None) -> Iterable[Any]:
    """`dl` rebuilt to yield this rank's `BatchShard` of its batches (no padding, no repeats)."""
    if not _shardable(dl) or dl.batch_sampler is None or isinstance(dl.batch_sampler, BatchShard):
        return dl
    return DataLoader(dl.dataset, batch_sampler=BatchShard(dl.batch_sampler, rank, world), **_loader_kwargs(dl))
