"""The loop's errors for user mistakes: they name the culprit, and the end-of-training hooks still run."""

import pytest
import torch
from loop_helpers import tiny_learner
from torch import nn

from fastcb import Callback, CallbackHandler, fit, loss_batch


class CountBatches(Callback):
    def __init__(self):
        self.batches = 0

    def on_batch_begin(self, **kwargs):
        self.batches += 1


@pytest.mark.parametrize("loss_func, name", [
    (nn.CrossEntropyLoss(reduction="none"), "CrossEntropyLoss() with reduction='none'"),
    (lambda out, y: nn.functional.cross_entropy(out, y, reduction="none"), "<lambda>"),
])
def test_a_per_sample_loss_fails_at_the_first_batch_naming_the_loss(tmp_path, loss_func, name):
    learn = tiny_learner(tmp_path, loss_func=loss_func)
    counter = CountBatches()
    with pytest.raises(ValueError) as err:
        learn.fit(1, 0.1, callbacks=[counter])
    message = str(err.value)
    assert message.startswith("loss_func: ") and "shape [8], not a scalar" in message
    assert any(n in message for n in name.split("|")), message
    assert counter.batches == 1


def test_a_scalar_loss_of_shape_one_is_accepted():
    model = nn.Linear(3, 1)
    loss = loss_batch(model, torch.ones(2, 3), torch.zeros(2, 1),
                      lambda out, y: ((out - y) ** 2).mean().reshape(1), cb_handler=CallbackHandler())
    assert loss.shape == (1,)


def test_validation_with_a_per_sample_loss_names_it_too(tmp_path):
    with pytest.raises(ValueError, match=r"^loss_func: .*not a scalar"):
        loss_batch(nn.Linear(3, 2), torch.ones(4, 3), torch.zeros(4, dtype=torch.long),
                   nn.CrossEntropyLoss(reduction="none"))


class Boom(Callback):
    def on_train_begin(self, **kwargs):
        raise RuntimeError("boom in on_train_begin")


class Ends(Callback):
    _order = -20  # runs before Boom, so its on_train_begin started

    def __init__(self):
        self.ended = None

    def on_train_end(self, exception, **kwargs):
        self.ended = exception


def test_on_train_end_runs_when_an_on_train_begin_hook_raises(tmp_path):
    learn = tiny_learner(tmp_path)
    ends = Ends()
    with pytest.raises(RuntimeError, match="boom in on_train_begin"):
        learn.fit(1, 0.1, callbacks=[ends, Boom()])
    assert isinstance(ends.ended, RuntimeError) and "boom" in str(ends.ended)


def test_fit_with_the_handler_directly_also_ends(tmp_path):
    learn = tiny_learner(tmp_path)
    learn.create_opt(0.1, 0.0)
    ends = Ends()
    with pytest.raises(RuntimeError):
        fit(1, learn, callbacks=[ends, Boom()])
    assert isinstance(ends.ended, RuntimeError)
