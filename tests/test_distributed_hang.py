"""A rank that stays alive but stops making progress ends the whole 2-rank job (gloo, CPU).

Two jobs run at once (each costs a few seconds of torch import per process): in one, rank 1
loops forever in a callback; in the other, its data loader dead-locks (in the dataset). Each rank's
`on_train_end` and the error its fit raised are saved; the test checks the message names the
rank and where it stopped, that both ranks ended, and that no process is left.
"""

import datetime
import os
import threading
import time

import torch
import torch.multiprocessing as mp
from loop_helpers import tiny_learner
from test_distributed import _env, free_port
from torch.utils.data import DataLoader, Dataset

from fastcb import Callback
from fastcb import distributed as fdist
from fastcb.errors import RankStalledError

TIMEOUT = 3  # seconds without progress before the watchdog acts


class Tensors(Dataset):
    """`(x[i], y[i])`; with `hang_at`, the `hang_at`-th item read in a process never comes (a dead lock)."""

    def __init__(self, x, y, hang_at=None):
        self.x, self.y, self.hang_at, self.reads = x, y, hang_at, 0

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        self.reads += 1
        if self.hang_at is not None and self.reads >= self.hang_at:
            lock = threading.Lock()
            lock.acquire()
            lock.acquire()  # never returns
        return self.x[i], self.y[i]


def _hang_worker(rank, world, port, out, case):
    _env(rank, world, port)
    os.environ["FASTCB_DIST_TIMEOUT"] = str(TIMEOUT)
    seen = {}
    with fdist.distributed(backend="gloo", timeout=datetime.timedelta(seconds=60)):
        learn = tiny_learner(out, model=torch.nn.Linear(10, 2), n_train=32, n_valid=8, bs=4)
        if case == "loader":
            ds = learn.data.train_dl.dl.dataset
            hang = Tensors(*ds.tensors, hang_at=10 if rank == 1 else None)
            learn.data.train_dl.dl = DataLoader(hang, batch_size=4)

        class Stuck(Callback):
            def on_batch_begin(self, epoch, num_batch, train, **kwargs):
                if case == "loop" and rank == 1 and epoch == 0 and num_batch == 2 and train:
                    n = 0
                    while True:  # a rank alive but stuck
                        n += 1

            def on_train_end(self, exception, **kwargs):
                seen["train_end"] = (type(exception).__name__, str(exception))
                seen["distributed"] = fdist.is_distributed()

        try:
            learn.fit(3, 1e-2, callbacks=[Stuck()])
        except Exception as e:
            seen["raised"] = (type(e).__name__, str(e), type(e.__cause__).__name__)
        seen["at"] = time.time()
        torch.save(seen, os.path.join(out, f"{case}{rank}.pt"))


def _alive(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            return "\nState:\tZ" not in f.read()  # a zombie has ended
    except FileNotFoundError:
        return False


def test_a_stuck_rank_ends_the_job_with_a_message_naming_it(tmp_path):
    jobs = {}
    for case in ("loop", "loader"):
        (tmp_path / case).mkdir()
        jobs[case] = mp.start_processes(_hang_worker, args=(2, free_port(), str(tmp_path / case), case), nprocs=2,
                                        join=False, start_method="spawn")
    procs = [p for ctx in jobs.values() for p in ctx.processes]
    deadline = time.time() + 240  # a guard against a hang of the test itself, not a timing assertion
    for p in procs:
        p.join(max(1.0, deadline - time.time()))
    alive = [p.is_alive() for p in procs]
    for p in procs:
        if p.is_alive():
            p.kill()
    assert alive == [False] * 4
    for case, where in (("loop", "epoch 0, training batch 2: forward"), ("loader", "epoch 0, loading training batch")):
        r0, r1 = (torch.load(tmp_path / case / f"{case}{r}.pt") for r in range(2))
        for r in (r0, r1):
            kind, message = r["train_end"]
            assert kind == "RankStalledError", (case, r)  # on_train_end ran, on the healthy rank too
            assert message.startswith(f"rank 1 stopped making progress at {where}"), (case, message)
            assert f"no rank moved for {TIMEOUT} s" in message and "Others: rank 0 at" in message
            assert r["raised"][:2] == ("RankStalledError", message)
            assert not r["distributed"]  # both left the process group
        assert r0["raised"][2] in ("RuntimeError", "DistBackendError")  # rank 0's collective failed
        assert "Rank 1's main thread:" in r1["raised"][1]
        stack = r0["raised"][1].split("Rank 1's main thread:")[1]  # the stuck rank's stack, on the healthy rank
        assert ("in on_batch_begin\n    while True" if case == "loop" else "lock.acquire()  # never returns") in stack
    assert not any(_alive(p.pid) for p in procs)


def test_the_timeout_setting_is_checked(monkeypatch):
    from fastcb import watchdog

    monkeypatch.setenv("FASTCB_DIST_TIMEOUT", "0")
    import pytest

    with pytest.raises(ValueError, match="FASTCB_DIST_TIMEOUT"):
        watchdog.dist_timeout()
    monkeypatch.setenv("FASTCB_DIST_TIMEOUT", "2.5")
    assert watchdog.dist_timeout() == 2.5
    assert issubclass(RankStalledError, RuntimeError)
