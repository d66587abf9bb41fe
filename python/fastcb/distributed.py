"""Process-group helpers for running fastcb under `torchrun` (or `torch.multiprocessing`).

`setup()` reads the environment `torchrun` provides (RANK, WORLD_SIZE, LOCAL_RANK,
MASTER_ADDR, MASTER_PORT), starts the process group and picks this rank's device;
`teardown()` ends it. Metrics are reduced exactly: each rank's `WeightedMean` partial sums
are gathered once per epoch and merged, so a multi-rank result equals a one-process one.
"""

import contextlib
import datetime
import os

import torch
import torch.distributed as dist

from .anneal import WeightedMean

__all__ = [
    "is_distributed",
    "rank",
    "world_size",
    "is_main_process",
    "setup",
    "teardown",
    "distributed",
    "all_merge",
    "all_mean",
    "barrier",
]

#: How long a collective waits for the other ranks before failing (instead of hanging).
DEFAULT_TIMEOUT = datetime.timedelta(seconds=float(os.environ.get("FASTCB_DIST_TIMEOUT", 120)))


def is_distributed():
    """True inside an initialised process group of more than one rank."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank():
    """This process's rank (0 outside a process group)."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def world_size():
    """The number of ranks (1 outside a process group)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def is_main_process():
    """True on rank 0: the rank that logs, prints and saves."""
    return rank() == 0


def setup(backend=None, timeout=DEFAULT_TIMEOUT):
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


def teardown():
    """End the process group, if one was started."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


@contextlib.contextmanager
def distributed(backend=None, timeout=DEFAULT_TIMEOUT):
    """`with distributed() as device:` — `setup()` on entry, `teardown()` on exit."""
    device = setup(backend, timeout)
    try:
        yield device
    finally:
        teardown()


def barrier():
    """Wait for every rank (a no-op outside a process group)."""
    if is_distributed():
        dist.barrier()


def all_merge(acc):
    """A `WeightedMean` holding every rank's values, the same on every rank; exact.

    One collective: each rank's partial sums (a few floats) are gathered and merged in rank
    order, so the result equals one accumulator fed all values.
    """
    if not is_distributed():
        return acc
    states = [None] * world_size()
    dist.all_gather_object(states, acc.state_dict())
    merged = WeightedMean()
    for state in states:
        part = WeightedMean()
        part.load_state_dict(state)
        merged.merge(part)
    return merged


def all_mean(tensor):
    """The mean of `tensor` over ranks, on its device, without a host sync (for reporting)."""
    if not is_distributed():
        return tensor
    out = tensor.detach().clone()
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out / world_size()
