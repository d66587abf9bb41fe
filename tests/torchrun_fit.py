"""A script for `torchrun` (used by test_distributed_multinode.py): a short fit on every rank,
whose results rank by rank go to `<out>/<rank>.pt`. Usage: torchrun ... torchrun_fit.py OUT"""

import os
import sys

import torch

sys.path.insert(0, os.path.dirname(__file__))
from loop_helpers import tiny_learner

from fastcb import accuracy
from fastcb import distributed as fdist

if __name__ == "__main__":
    out = sys.argv[1]
    torch.set_num_threads(1)
    with fdist.distributed(backend="gloo"):
        learn = tiny_learner(out, n_train=32, n_valid=8, bs=4, shuffle=True, metrics=[accuracy])
        learn.fit(2, 1e-2)
        torch.save({"rank": fdist.rank(), "world": fdist.world_size(), "local_rank": int(os.environ["LOCAL_RANK"]),
                    "node_rank": int(os.environ.get("GROUP_RANK", -1)), "metrics": [[float(m) for m in ms] for ms in learn.recorder.metrics],
                    "state": learn.model.state_dict()}, os.path.join(out, f"{fdist.rank()}.pt"))
