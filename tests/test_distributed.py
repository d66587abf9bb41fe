"""`Learner.fit` under DDP: CPU, gloo, two processes (mp.spawn), against one process on the same data.

Each spawned run costs several seconds of torch import, so each one checks many things.
"""

import contextlib
import dataclasses
import datetime
import io
import os
import shutil
import socket
import time

import pytest
import torch
import torch.multiprocessing as mp
from loop_helpers import tiny_data, tiny_learner
from torch import nn
from torch.utils.data import DataLoader, IterableDataset, TensorDataset

from fastcb import Callback, CSVLogger, DistributedTrainer, SaveModelCallback, accuracy
from fastcb import distributed as fdist

N_TRAIN, N_VALID, BS, EPOCHS = 64, 19, 4, 3  # 5 validation batches: 3 on rank 0, 2 on rank 1 (4+4+3, 4+4)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def prob_margin(out, targ):
    """A metric with values that are not short binary fractions (exactness shows)."""
    p = out.softmax(-1)
    return (p.gather(1, targ[:, None]) - p.max(-1, keepdim=True).values).mean() + p[:, 0].pow(3).mean() / 3


def model():
    # BatchNorm: buffers that DDP syncs only before each forward, and that validation must agree on;
    # Dropout: each rank's random stream shapes the weights (a resume must restore every rank's)
    return nn.Sequential(nn.Linear(10, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.25), nn.Linear(16, 2))


def learner(path, silent=True, seed=0):
    return tiny_learner(path, model=model(), seed=seed, n_train=N_TRAIN, n_valid=N_VALID, bs=BS, shuffle=True,
                        metrics=[accuracy, prob_margin], silent=silent)


def _env(rank, world, port):
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    torch.set_num_threads(1)


class Probe(Callback):
    """Notes the model's type during training, the samples each epoch trains on, and what train end saw."""

    def __init__(self):
        self.wrapped, self.train_ids, self.exception = set(), [], None

    def on_epoch_begin(self, **kwargs):
        self.train_ids.append([])

    def on_batch_begin(self, last_input, train, **kwargs):
        if train:
            self.train_ids[-1] += (last_input[:, -1] * 1000).round().int().tolist()  # the sample's id (see _ided)

    def on_train_end(self, exception, **kwargs):
        self.exception = exception


def _ided(learn):
    """Replace the last input feature (not used by the labels) by the sample's index / 1000."""
    ds = learn.data.train_ds
    ds.tensors[0][:, -1] = torch.arange(len(ds), dtype=torch.float32) / 1000


def _train_worker(rank, world, port, out):
    _env(rank, world, port)
    with fdist.distributed(backend="gloo", timeout=datetime.timedelta(seconds=60)):
        path = os.path.join(out, f"rank{rank}")
        learn = learner(path, silent=False)
        _ided(learn)
        torch.manual_seed(100 + rank)  # each rank its own random stream (dropout masks)
        probe = Probe()
        wrapped = []

        class SeeModel(Callback):
            def on_batch_begin(self, train, **kwargs):
                wrapped.append(type(learn.model).__name__)

        text = io.StringIO()
        with contextlib.redirect_stdout(text):
            learn.fit_one_cycle(EPOCHS, 1e-2, callbacks=[probe, SeeModel(), CSVLogger(learn),
                                                         SaveModelCallback(learn, every="epoch", name="ck")])
        rec = learn.recorder
        torch.save({
            "state": learn.model.state_dict(),
            "model_after": type(learn.model).__name__,
            "wrapped": sorted(set(wrapped)),
            "val_losses": [float(v) for v in rec.val_losses],
            "metrics": [[float(m) for m in ms] for ms in rec.metrics],
            "losses": [float(v) for v in rec.losses],
            "lrs": [float(v) for v in rec.lrs],
            "train_ids": probe.train_ids,
            "stdout": text.getvalue(),
            "exception": repr(probe.exception),
            "n_train_batches": rec.nb_batches,
        }, os.path.join(out, f"{rank}.pt"))


@pytest.fixture(scope="module")
def two_rank_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp")
    mp.spawn(_train_worker, args=(2, free_port(), str(out)), nprocs=2, join=True)
    return out, [torch.load(out / f"{r}.pt") for r in range(2)]


def test_two_ranks_train_on_disjoint_shards_and_agree_on_the_weights(two_rank_run):
    _, (r0, r1) = two_rank_run
    assert r0["exception"] == r1["exception"] == "False"
    assert r0["wrapped"] == r1["wrapped"] == ["DistributedDataParallel"]  # during training
    assert r0["model_after"] == r1["model_after"] == "Sequential"  # the learner's own model afterwards
    for k, v in r0["state"].items():  # weights and batchnorm buffers, bit for bit
        assert torch.equal(v, r1["state"][k]), k
    # each rank trained on its half of the training set, reshuffled each epoch
    assert r0["n_train_batches"] == r1["n_train_batches"] == [N_TRAIN // 2 // BS] * EPOCHS
    for e in range(EPOCHS):
        ids0, ids1 = r0["train_ids"][e], r1["train_ids"][e]
        assert sorted(ids0 + ids1) == list(range(N_TRAIN))
    assert r0["train_ids"][0] != r0["train_ids"][1]


def test_two_rank_metrics_equal_one_process_over_the_same_validation_data(two_rank_run, tmp_path):
    out, (r0, r1) = two_rank_run
    assert r0["val_losses"] == r1["val_losses"] and r0["metrics"] == r1["metrics"]
    for epoch in range(EPOCHS):
        one = learner(tmp_path)
        with open(out / "rank0" / "models" / f"ck_{epoch}.pth", "rb") as f:
            one.load(f)  # rank 0's weights after that epoch
        val_loss, acc, margin = (float(v) for v in one.validate())
        assert abs(val_loss - r0["val_losses"][epoch]) <= 1e-12
        assert abs(acc - r0["metrics"][epoch][0]) <= 1e-12
        assert abs(margin - r0["metrics"][epoch][1]) <= 1e-12
    assert r0["metrics"][0][1] != r0["metrics"][-1][1]  # the metric moves: the comparison means something


def test_smoothed_losses_are_averaged_across_ranks_where_reported(two_rank_run):
    out, (r0, r1) = two_rank_run
    assert r0["losses"] == r1["losses"] and len(r0["losses"]) == EPOCHS * N_TRAIN // 2 // BS
    rows = (out / "rank0" / "history.csv").read_text().splitlines()
    assert rows[0].split(",")[:5] == ["epoch", "train_loss", "valid_loss", "accuracy", "prob_margin"]
    per_epoch = N_TRAIN // 2 // BS
    for epoch, row in enumerate(rows[1:]):
        cells = row.split(",")
        assert cells[1] == f"{r0['losses'][(epoch + 1) * per_epoch - 1]:.6f}"
        assert cells[2] == f"{r0['val_losses'][epoch]:.6f}"


def test_only_rank_zero_logs_and_saves(two_rank_run):
    out, (r0, r1) = two_rank_run
    assert "valid_loss" in r0["stdout"] and r1["stdout"] == ""
    assert sorted(p.name for p in (out / "rank0" / "models").iterdir()) == [f"ck_{e}.pth" for e in range(EPOCHS)]
    assert (out / "rank0" / "history.csv").is_file()
    assert not (out / "rank1").exists()


def _resume_worker(rank, world, port, out):
    """A fresh launch continuing the run of `two_rank_run` from its checkpoint after epoch 1 (copied to `out`)."""
    _env(rank, world, port)
    seen = {}
    with fdist.distributed(backend="gloo", timeout=datetime.timedelta(seconds=60)):
        for run in ("resumed", "rank0_rng"):
            learn = learner(out)
            _ided(learn)
            torch.manual_seed(1000 + rank)  # this launch's own random state: not the interrupted run's
            probe = Probe()
            if run == "resumed":  # what a user writes: the callback loads ck_1 and the fit continues it
                cbs = [probe, SaveModelCallback(learn, every="epoch", name="ck")]
            else:  # the negative control: every rank resumes with rank 0's random state
                learn.load("ck_1")
                learn._resume = dataclasses.replace(learn._resume, rng=[learn._resume.rng[0]] * world)
                cbs = [probe]
            learn.fit_one_cycle(EPOCHS, 1e-2, callbacks=cbs, start_epoch=2)
            rec = learn.recorder
            seen[run] = {"state": learn.model.state_dict(), "train_ids": probe.train_ids,
                         "val_losses": [float(v) for v in rec.val_losses],
                         "metrics": [[float(m) for m in ms] for ms in rec.metrics],
                         "losses": [float(v) for v in rec.losses]}
    torch.save(seen, os.path.join(out, f"resume{rank}.pt"))


def test_a_fresh_launch_resumes_a_two_rank_run_exactly(two_rank_run, tmp_path):
    out, full = two_rank_run
    (tmp_path / "models").mkdir()
    shutil.copy(out / "rank0" / "models" / "ck_1.pth", tmp_path / "models" / "ck_1.pth")
    mp.spawn(_resume_worker, args=(2, free_port(), str(tmp_path)), nprocs=2, join=True)
    for rank in range(2):
        seen = torch.load(tmp_path / f"resume{rank}.pt")
        res, ref = seen["resumed"], full[rank]
        assert res["train_ids"] == ref["train_ids"][2:]  # the same data order on this rank
        for k, v in ref["state"].items():
            assert torch.equal(res["state"][k], v), k  # bit for bit
        for k in ("val_losses", "metrics", "losses"):
            assert res[k] == ref[k], k
        # the control: with rank 0's random state on every rank, rank 1's dropout masks differ
        assert seen["rank0_rng"]["train_ids"] == ref["train_ids"][2:]
        assert not all(torch.equal(seen["rank0_rng"]["state"][k], v) for k, v in ref["state"].items())


def _failing_worker(rank, world, ports, out):
    """Two runs in which rank 1 fails at epoch 1: (a) it lives on after the error, (b) its process ends."""
    _env(rank, world, ports[0])

    class Boom(Callback):
        def on_batch_end(self, epoch, num_batch, train, **kwargs):
            if rank == 1 and train and epoch == 1 and num_batch == 2:
                raise ValueError("boom on rank 1")

    def run(name):
        learn = learner(os.path.join(out, f"rank{rank}"))
        probe = Probe()

        class Note(Callback):  # runs after the DistributedTrainer's on_train_end
            def on_train_end(self, exception, **kwargs):
                torch.save({"seen": repr(exception), "at": time.time(), "model": type(learn.model).__name__,
                            "distributed": fdist.is_distributed()}, os.path.join(out, f"{name}{rank}.pt"))

        learn.fit(3, 1e-2, callbacks=[probe, Boom(), Note()])

    # (a) the group's timeout bounds the wait of rank 0 while rank 1 stays alive
    with fdist.distributed(backend="gloo", timeout=datetime.timedelta(seconds=TIMEOUT)):
        try:
            run("a")
        except Exception:
            pass
        if rank == 1:
            deadline = time.time() + 40
            while not os.path.exists(os.path.join(out, "a0.pt")) and time.time() < deadline:
                time.sleep(0.05)
    # (b) the error ends rank 1's process, as under torchrun: rank 0's collective fails at once
    os.environ["MASTER_PORT"] = str(ports[1])
    with fdist.distributed(backend="gloo", timeout=datetime.timedelta(seconds=60)):
        run("b")


TIMEOUT = 5


def test_a_failure_on_one_rank_ends_the_run_on_all_ranks(tmp_path):
    ctx = mp.start_processes(_failing_worker, args=(2, (free_port(), free_port()), str(tmp_path)), nprocs=2,
                             join=False, start_method="spawn")
    for p in ctx.processes:
        p.join(120)
    alive = [p.is_alive() for p in ctx.processes]
    for p in ctx.processes:
        if p.is_alive():
            p.kill()
    assert alive == [False, False]
    assert ctx.processes[0].exitcode != 0 and ctx.processes[1].exitcode != 0  # both runs (b) raised
    # The bounds separate "ended by the timeout / the peer's exit" from "waited for the other side" (rank 1
    # waits up to 40 s in (a); the group's timeout is 60 s in (b)), with room for a loaded machine.
    for run, bound in (("a", 30), ("b", 30)):
        r0, r1 = (torch.load(tmp_path / f"{run}{r}.pt") for r in range(2))
        assert r1["seen"] == "ValueError('boom on rank 1')"  # on_train_end saw the error
        assert r0["seen"].split("(")[0] in ("RuntimeError", "DistBackendError")  # rank 0's collective failed
        assert r0["at"] - r1["at"] < bound, run
        for r in (r0, r1):
            assert r["model"] == "Sequential" and not r["distributed"]  # unwrapped, out of the group


# -- in one process: the sharding helpers ---------------------------------------------------------------
def test_batch_shards_cover_every_batch_once_unchanged():
    data = TensorDataset(torch.arange(23.0))
    dl = DataLoader(data, batch_size=4)
    whole = [b[0].tolist() for b in dl]
    for world in (1, 2, 3, 4, 7):
        shards = [[b[0].tolist() for b in fdist.valid_loader(dl, rank=r, world=world)] for r in range(world)]
        assert [len(s) for s in shards] == [len(fdist.valid_loader(dl, rank=r, world=world)) for r in range(world)]
        interleaved = [shards[i % world][i // world] for i in range(len(whole))]
        assert interleaved == whole  # every batch once, as one process has it
    with pytest.raises(ValueError, match="rank"):
        fdist.BatchShard(dl.batch_sampler, rank=2, world=2)


def test_train_loader_gives_each_rank_a_part_with_the_same_batch_size():
    data = tiny_data(n_train=30, bs=4, shuffle=True)
    dl = data.train_dl.dl
    parts = [fdist.train_loader(dl, rank=r, world=2, seed=3) for r in range(2)]
    for p in parts:
        p.sampler.set_epoch(0)
    assert all(p.batch_size == 4 and p.drop_last == dl.drop_last and p.sampler.shuffle for p in parts)
    seen = [torch.cat([x for x, _ in p]) for p in parts]
    assert len(seen[0]) == len(seen[1]) == 15  # padded to the same number of samples per rank
    assert fdist.train_loader(tiny_data(bs=4).train_dl.dl, rank=0, world=2).sampler.shuffle is False
    assert fdist.train_loader(parts[0], rank=0, world=2) is parts[0]  # already distributed

    class Stream(IterableDataset):
        def __iter__(self):
            return iter(range(3))

    stream = DataLoader(Stream(), batch_size=2)
    assert fdist.train_loader(stream, rank=0, world=2) is stream and fdist.valid_loader(stream, 0, 2) is stream
    custom = DataLoader(TensorDataset(torch.zeros(4)), batch_sampler=[[0, 1], [2, 3]])
    with pytest.raises(ValueError, match="batch_sampler"):
        fdist.train_loader(custom, rank=0, world=2)


def test_outside_a_process_group_the_distributed_trainer_does_nothing(tmp_path):
    learn = learner(tmp_path)
    assert learn.to_distributed(find_unused_parameters=True) is learn
    learn.to_distributed(seed=4)
    assert [getattr(f, "func", None) for f in learn.callback_fns].count(DistributedTrainer) == 1
    dl = learn.data.train_dl
    learn.fit(1, 1e-2)
    assert learn.distributed_trainer.seed == 4 and not learn.distributed_trainer.active
    assert isinstance(learn.model, nn.Sequential) and learn.data.train_dl is dl
