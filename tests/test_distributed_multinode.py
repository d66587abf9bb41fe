"""Two "nodes" of one rank each on localhost, joined by torchrun's c10d rendezvous (two torchrun
processes, as two machines would run them; the README's multi-node command lines)."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import torch

SCRIPT = Path(__file__).with_name("torchrun_fit.py")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_nodes_rendezvous_through_c10d_and_train_together(tmp_path):
    endpoint = f"127.0.0.1:{free_port()}"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[1] / "python"),
                                                        os.environ.get("PYTHONPATH", "")]), "OMP_NUM_THREADS": "1"}
    nodes = []
    for node_rank in range(2):
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes=2", "--nproc-per-node=1",
               f"--node-rank={node_rank}", "--rdzv-backend=c10d", f"--rdzv-endpoint={endpoint}",
               "--rdzv-id=fastcb-test", "--max-restarts=0", str(SCRIPT), str(tmp_path)]
        nodes.append(subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    outputs = []
    try:
        for p in nodes:
            outputs.append(p.communicate(timeout=240)[0])
    finally:
        for p in nodes:
            if p.poll() is None:
                p.kill()
                p.wait(10)
    assert [p.returncode for p in nodes] == [0, 0], "\n".join(outputs)[-3000:]
    r0, r1 = (torch.load(tmp_path / f"{r}.pt") for r in range(2))
    assert (r0["world"], r1["world"]) == (2, 2) and (r0["local_rank"], r1["local_rank"]) == (0, 0)
    assert sorted((r0["node_rank"], r1["node_rank"])) == [0, 1]  # one rank on each "node"
    assert r0["metrics"] == r1["metrics"] and len(r0["metrics"]) == 2
    for k, v in r0["state"].items():
        assert torch.equal(v, r1["state"][k]), k  # trained together (DDP)
