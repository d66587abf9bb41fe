"""FSDP2 (`to_distributed(strategy="fsdp")`): 2 gloo ranks on CPU against DDP and one process.

One spawned job (2 processes) trains the same model on the same data with FSDP, then with
DDP; the test process trains it alone on batches that are the two ranks' batches together.
The one-process run is the same computation in another order of float32 sums (a mean over 8
samples against the mean of two means over 4, reduced across ranks), so the comparisons hold
within TOL, not bit for bit.
"""

import datetime
import os

import torch
import torch.multiprocessing as mp
from loop_helpers import tiny_learner
from test_distributed import _env, free_port, prob_margin
from torch import nn
from torch.utils.data import DataLoader, Sampler

from fastcb import accuracy
from fastcb import distributed as fdist

N_TRAIN, N_VALID, BS, EPOCHS, LR = 32, 12, 4, 2, slice(1e-3, 1e-2)
#: Losses, metrics and weights of runs that differ only in the order of float32 sums (each step's
#: gradient differs in its last bits; Adam divides by sqrt(v), which keeps the gap near float32's
#: epsilon times the number of steps instead of letting it grow).
TOL = 2e-5


def model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(10, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 2))


def learner(path, bs=BS):
    learn = tiny_learner(path, model=model(), n_train=N_TRAIN, n_valid=N_VALID, bs=bs, shuffle=True,
                         metrics=[accuracy, prob_margin], wd=1e-2, true_wd=True, bn_wd=False)
    return learn.split(lambda m: [m[:2], m[2:]])  # two layer groups: per-group lr, decay kept off biases


def _record(learn):
    rec = learn.recorder
    return {"losses": [float(v) for v in rec.losses], "val_losses": [float(v) for v in rec.val_losses],
            "metrics": [[float(m) for m in ms] for ms in rec.metrics]}


def _full_state(model):
    from torch.distributed.tensor import DTensor

    return {k: (v.full_tensor() if isinstance(v, DTensor) else v).detach().clone() for k, v in model.state_dict().items()}


def _worker(rank, world, port, out):
    _env(rank, world, port)
    seen = {}
    with fdist.distributed(backend="gloo", timeout=datetime.timedelta(seconds=60)):
        learn = learner(out).to_distributed(strategy="fsdp")
        p = next(learn.model.parameters())
        seen["fsdp_param"] = (type(p).__name__, tuple(p.to_local().shape), tuple(p.shape))
        learn.fit(EPOCHS, LR)
        seen["fsdp"] = {**_record(learn), "state": _full_state(learn.model),
                        "opt_groups": len(learn.opt.opt.param_groups)}
        learn = learner(out)
        learn.fit(EPOCHS, LR)
        seen["ddp"] = {**_record(learn), "state": _full_state(learn.model)}
    torch.save(seen, os.path.join(out, f"{rank}.pt"))


class RankBatches(Sampler):
    """The batches of one process that sees, in each batch, the two ranks' batches together
    (`DistributedSampler(shuffle=True, seed=0)` orders, epoch after epoch)."""

    def __init__(self, n, bs, world):
        self.n, self.bs, self.world, self.epoch = n, bs, world, 0

    def __iter__(self):
        g = torch.Generator().manual_seed(self.epoch)
        self.epoch += 1
        order = torch.randperm(self.n, generator=g).tolist()
        parts = [order[r::self.world] for r in range(self.world)]
        for i in range(0, len(parts[0]), self.bs):
            yield [j for p in parts for j in p[i:i + self.bs]]

    def __len__(self):
        return self.n // self.world // self.bs


def test_fsdp_matches_ddp_and_one_process(tmp_path):
    mp.spawn(_worker, args=(2, free_port(), str(tmp_path)), nprocs=2, join=True)
    r0, r1 = (torch.load(tmp_path / f"{r}.pt") for r in range(2))
    assert r0["fsdp_param"] == ("DTensor", (8, 10), (16, 10))  # each rank holds half of each weight
    assert r0["fsdp"]["opt_groups"] == 4  # 2 layer groups x (decayed, not decayed)
    one = learner(tmp_path / "one")
    ds = one.data.train_dl.dl.dataset
    one.data.train_dl.dl = DataLoader(ds, batch_sampler=RankBatches(N_TRAIN, BS, 2))
    one.fit(EPOCHS, LR)
    ref = {**_record(one), "state": {k: v.detach() for k, v in one.model.state_dict().items()}}
    for name in ("fsdp", "ddp"):
        for r in (r0, r1):
            run = r[name]
            assert run["metrics"] == r0[name]["metrics"] and run["losses"] == r0[name]["losses"]
            for k in ("losses", "val_losses"):
                assert torch.allclose(torch.tensor(run[k]), torch.tensor(ref[k]), rtol=0, atol=TOL), (name, k)
            assert torch.allclose(torch.tensor(run["metrics"]), torch.tensor(ref["metrics"]), rtol=0, atol=TOL)
            for k, v in ref["state"].items():
                assert torch.allclose(run["state"][k], v, rtol=0, atol=TOL), (name, k)
    for k in ("losses", "val_losses", "metrics"):
        assert torch.allclose(torch.tensor(r0["fsdp"][k]), torch.tensor(r0["ddp"][k]), rtol=0, atol=TOL), k
    gaps = [(r0["fsdp"]["state"][k] - v).abs().max().item() for k, v in ref["state"].items()]
    moved = [(v - model().state_dict()[k]).abs().max().item() for k, v in ref["state"].items()]
    print(f"largest FSDP vs one-process weight gap {max(gaps):.2e}; smallest move {min(moved):.2e}")
    assert max(gaps) <= TOL < min(moved) / 100  # the weights moved far more than the runs differ
