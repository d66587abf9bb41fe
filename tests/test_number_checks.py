"""Number arguments go through the one validator (`fastcb._utils.check_number`): one message
style, the exception type each bad input raised before (a `ValueError` for a value out of range,
a `TypeError` for a value that is no number), and every input accepted before still accepted."""

import copy
from decimal import Decimal
from fractions import Fraction

import numpy as np
import pytest
import torch
from loop_helpers import tiny_learner
from torch.utils.data import TensorDataset

from fastcb._utils import check_number
from fastcb.callbacks.distributed import DistributedTrainer
from fastcb.callbacks.flat_cos_anneal import FlatCosAnnealScheduler
from fastcb.callbacks.fp16 import MixedPrecision
from fastcb.callbacks.misc import GradientClipping, StopAfterNBatches
from fastcb.callbacks.mixup import MixUpCallback
from fastcb.callbacks.tracker import EarlyStoppingCallback, ReduceLROnPlateauCallback
from fastcb.data import DataBunch
from fastcb.errors import ArgumentError, ArgumentTypeError, StateError
from fastcb.one_cycle import check_lr
from fastcb.optim import OptimWrapper
from fastcb.preview import schedule_trace

NAN, INF = float("nan"), float("inf")


@pytest.fixture(scope="module")
def learn():
    return tiny_learner(n_train=16, n_valid=8)


#: (name, build(learn, value), values accepted, values out of range, values of a wrong type)
CASES = {
    "loss_scale": (lambda l, v: MixedPrecision(l, loss_scale=v),
                   [1, 0.5, INF, "512", np.float32(2.0), torch.tensor(8.0), True], [0, -1.0, NAN, "-2"], [[1.0]]),
    "alpha": (lambda l, v: MixUpCallback(l, alpha=v),
              [0.4, 2, INF, np.float64(0.1), torch.tensor(0.5), Decimal("0.3"), Fraction(1, 3), True],
              [0, -0.1, NAN], ["0.4", None, [0.4]]),
    "patience": (lambda l, v: EarlyStoppingCallback(l, patience=v),
                 [0, 3, 2.5, INF, np.int64(2), torch.tensor(1), False], [-1, -0.5, NAN], ["3", None]),
    "factor": (lambda l, v: ReduceLROnPlateauCallback(l, factor=v),
               [0.2, 0.999, np.float32(0.5), torch.tensor(0.5), Fraction(1, 2)], [0, 1, 2, -0.5, NAN, INF, True],
               ["0.5", None]),
    "clip": (lambda l, v: GradientClipping(l, clip=v),
             [0, 0.0, 1.5, INF, np.float64(0.1), torch.tensor(1.0), True], [-1, -1e-9, NAN], ["1", None]),
    "n_batches": (lambda l, v: StopAfterNBatches(n_batches=v),
                  [1, 2, 2.5, INF, np.int64(3), torch.tensor(2), True], [0, -3, 0.5, NAN, False], ["2", None]),
    "start_pct": (lambda l, v: FlatCosAnnealScheduler(l, start_pct=v),
                  [0, 0.72, 1, np.float64(0.5), torch.tensor(0.5), True], [-0.1, 1.5, NAN, INF], ["0.5", None]),
    "pct_start": (lambda l, v: l.fit_flat_cos(0, pct_start=v),
                  [0.5, 0.75, np.float64(0.3), torch.tensor(0.5)], [0, 1, 1.5, NAN, INF], ["0.5", None]),
    "watchdog_timeout": (lambda l, v: DistributedTrainer(l, watchdog_timeout=v),
                         [1, 0.5, 120, np.float64(3.0), np.int64(5), True], [0, -1, NAN, INF],
                         ["abc", [1], object()]),
}
#: Where a wrong type was a ValueError before (an isinstance check, not a failed comparison).
WRONG_TYPE_IS_VALUE_ERROR = {"watchdog_timeout"}


@pytest.mark.parametrize("name", CASES)
def test_accepts_what_it_accepted_before(learn, name):
    build, good, _, _ = CASES[name]
    for v in good:
        build(learn, v)


@pytest.mark.parametrize("name", CASES)
def test_values_out_of_range_are_value_errors_naming_the_argument(learn, name):
    build, _, bad, _ = CASES[name]
    for v in bad:
        with pytest.raises(ValueError, match=rf"^{name}: expected a") as e:
            build(learn, v)
        if not isinstance(v, str):  # (loss_scale's strings are read by float(), as before)
            assert isinstance(e.value, ArgumentError), v


@pytest.mark.parametrize("name", CASES)
def test_wrong_types_raise_the_type_they_raised_before(learn, name):
    build, _, _, wrong = CASES[name]
    expected = ValueError if name in WRONG_TYPE_IS_VALUE_ERROR else TypeError
    for v in wrong:
        with pytest.raises(expected) as e:
            build(learn, v)
        if name != "loss_scale":  # float() itself refuses a list there, as before
            assert str(e.value).startswith(f"{name}: expected a"), str(e.value)
            assert isinstance(e.value, ArgumentTypeError if expected is TypeError else ArgumentError)


def test_messages_have_the_one_style(learn):
    with pytest.raises(ArgumentError, match=r"^factor: expected a number in \(0, 1\), got 2$"):
        ReduceLROnPlateauCallback(learn, factor=2)
    with pytest.raises(ArgumentTypeError, match=r"^patience: expected a number >= 0, got str$"):
        EarlyStoppingCallback(learn, patience="3")
    with pytest.raises(ArgumentError, match=r"^loss_scale: expected a positive number, got -1.0$"):
        MixedPrecision(learn, loss_scale=-1)
    with pytest.raises(ArgumentError, match=r"^start_pct: expected a number in \[0, 1\], got 1.5$"):
        FlatCosAnnealScheduler(learn, start_pct=1.5)


def test_databunch_counts():
    ds = TensorDataset(torch.zeros(8, 2), torch.zeros(8))
    data = DataBunch.create(ds, ds, bs=np.int64(4), val_bs=2, num_workers=np.int64(0))
    assert data.train_dl.batch_size == 4 and type(data.train_dl.batch_size) is int
    for kwargs in [{"bs": 0}, {"bs": 2.0}, {"bs": True}, {"bs": "4"}, {"val_bs": 0}, {"num_workers": -1}]:
        with pytest.raises(ArgumentError, match=rf"^{next(iter(kwargs))}: expected (a positive int|an int >= 0)"):
            DataBunch.create(ds, ds, **kwargs)


def test_preview_steps_and_lr():
    assert schedule_trace(lambda opt: torch.optim.lr_scheduler.StepLR(opt, 1), "3")["lr"].shape[0] == 3
    for bad in [None, 0, -2]:
        with pytest.raises(ArgumentError, match="^n_steps: expected a positive int"):
            schedule_trace(lambda opt: torch.optim.lr_scheduler.StepLR(opt, 1), bad)
    assert check_lr(np.float32(0.5), "lr_max") == 0.5
    for bad in [0, -1.0, NAN, INF]:
        with pytest.raises(ArgumentError, match="^lr_max: expected a finite positive number"):
            check_lr(bad, "lr_max")
    with pytest.raises(TypeError, match="^lr_max: expected a number, a slice or an array"):
        check_lr("0.1", "lr_max")


def test_validator_options():
    assert check_number("x", torch.tensor(0.5), positive=True, below=1, like_float=True) == torch.tensor(0.5)
    with pytest.raises(ArgumentError, match=r"^x: expected a number in \(0, 1\), got 'a'$"):
        check_number("x", "a", positive=True, below=1)
    with pytest.raises(ArgumentTypeError, match=r"^x: expected a number in \[0, 1\), got str$"):
        check_number("x", "0.5", minimum=0, below=1, like_float=True, type_error=ArgumentTypeError)
    with pytest.raises(ArgumentTypeError, match="got Tensor"):  # several numbers are no number
        check_number("x", torch.ones(2), like_float=True, type_error=ArgumentTypeError)
    with pytest.raises(ArgumentError, match=r"^x: expected a finite number < 3, got 3$"):
        check_number("x", 3, below=3)
    with pytest.raises(ArgumentError, match=r"^x: expected an int >= 2, got 1$"):
        check_number("x", 1, integer=True, minimum=2)


def test_optimizer_state_numbers_are_state_errors():
    model = torch.nn.Linear(3, 2)
    opt = OptimWrapper.create(torch.optim.SGD, 0.1, [model])
    good = copy.deepcopy(opt.state_dict())
    for bad in [-0.1, NAN, INF, "0.1", True, None]:
        sd = copy.deepcopy(good)
        sd["param_groups"][0]["lr"] = bad
        with pytest.raises(StateError, match=r"^sd\['param_groups'\]\[\.\.\.\]\['lr'\]: expected a finite number >= 0"):
            opt.load_state_dict(sd)
    for bad in [torch.tensor(-1.0), torch.tensor(NAN)]:
        sd = copy.deepcopy(good)
        sd["param_groups"][0]["lr"] = bad
        with pytest.raises(StateError, match="expected a finite number >= 0"):
            opt.load_state_dict(sd)
    sd = copy.deepcopy(good)
    sd["param_groups"][0]["lr"] = torch.ones(2)
    with pytest.raises(StateError, match="expected one number, got a tensor of shape"):
        opt.load_state_dict(sd)
    for ok in [np.float32(0.5), 1, torch.tensor(0.25)]:
        sd = copy.deepcopy(good)
        sd["param_groups"][0]["lr"] = ok
        opt.load_state_dict(sd)  # accepted, as before
