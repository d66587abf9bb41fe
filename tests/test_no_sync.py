"""No host synchronisation per training step: Recorder, OneCycleScheduler, metrics and the progress bar
never read a per-step tensor on the host; losses and metrics are read once per epoch."""

import contextlib
import io
import os
import sys

import pytest
import torch
from loop_helpers import tiny_learner
from torch.overrides import TorchFunctionMode

from fastcb import Callback, accuracy
from fastcb.callbacks.recorder import RecordedFloat

_OPTIM_DIR = os.path.join("torch", "optim", "")
SYNCS = {"item", "cpu", "__float__", "__int__", "__bool__", "tolist", "numpy", "__format__", "__repr__", "__str__"}


class SyncSpy(TorchFunctionMode):
    """Counts tensor methods that copy a value to the host, and where they happened."""

    def __init__(self):
        super().__init__()
        self.in_step, self.step_calls, self.total = False, [], 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", "")
        # torch's Adam reads its step counter with .item(): a host tensor unless `capturable`, so no device sync.
        from_optim = _OPTIM_DIR in sys._getframe(1).f_code.co_filename
        if name in SYNCS and not from_optim:
            self.total += 1
            if self.in_step:
                self.step_calls.append(name)
        return func(*args, **(kwargs or {}))


class Window(Callback):
    """Opens the spy window before anything else at batch begin, closes it after everything at batch end."""

    def __init__(self, spy, order):
        self.spy, self._order = spy, order

    def on_batch_begin(self, **kwargs):
        if self._order < 0:
            self.spy.in_step = True

    def on_batch_end(self, **kwargs):
        if self._order > 0:
            self.spy.in_step = False


def run(n_train, silent=True, epochs=2):
    learn = tiny_learner(n_train=n_train, n_valid=n_train // 2, bs=8, metrics=[accuracy], silent=silent)
    spy = SyncSpy()
    with spy, contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        learn.fit_one_cycle(epochs, 1e-2, callbacks=[Window(spy, -1000), Window(spy, 1000)])
    return spy, learn


@pytest.mark.parametrize("silent", [True, False])
def test_no_sync_inside_training_and_validation_steps(silent):
    spy, learn = run(32, silent=silent)
    assert len(learn.recorder.losses) == 8  # the window did see the steps
    assert spy.step_calls == []


@pytest.mark.parametrize("silent", [True, False])
def test_host_reads_do_not_grow_with_the_number_of_batches(silent):
    few, _ = run(16, silent=silent)
    many, learn = run(96, silent=silent)
    assert len(learn.recorder.losses) == 24
    assert many.total == few.total  # once per epoch, whatever the number of batches


def test_the_spy_does_see_a_sync():
    spy = SyncSpy()
    with spy:
        spy.in_step = True
        float(torch.tensor(1.0))
        f"{torch.tensor(2.0):.2f}"
        torch.tensor(3.0).item()
    assert spy.step_calls == ["__float__", "__format__", "item"]


def test_recorder_values_are_on_the_host_after_each_epoch():
    _, learn = run(16)
    rec = learn.recorder
    assert all(type(v) is RecordedFloat for v in rec.losses)
    assert all(v is None or type(v) is RecordedFloat for v in rec.val_losses)
    assert all(isinstance(v, float) for v in rec.lrs)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.filterwarnings("ignore:Synchronization debug mode is a prototype feature")
def test_cuda_train_steps_run_under_sync_debug_mode_error():
    from fastcb import DataBunch, Learner

    class DebugWindow(Callback):
        def __init__(self, order):
            self._order = order

        def on_batch_begin(self, train, **kwargs):
            if self._order < 0 and train:
                torch.cuda.set_sync_debug_mode("error")

        def on_batch_end(self, **kwargs):
            if self._order > 0:
                torch.cuda.set_sync_debug_mode("default")

    g = torch.Generator().manual_seed(0)
    x = torch.randn(96, 10, generator=g).cuda()
    y = (x[:, 0] > 0).long()
    ds = torch.utils.data.TensorDataset(x, y)
    dl = torch.utils.data.DataLoader(ds, batch_size=8)
    learn = Learner(DataBunch(dl, dl, device="cuda"), torch.nn.Linear(10, 2), loss_func=torch.nn.functional.cross_entropy,
                    metrics=[accuracy], silent=True)
    try:
        learn.fit_one_cycle(2, 1e-2, callbacks=[DebugWindow(-1000), DebugWindow(1000)])
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert len(learn.recorder.losses) == 24 and isinstance(learn.recorder.losses[-1], float)
    assert 0 <= learn.recorder.metrics[-1][0] <= 1
