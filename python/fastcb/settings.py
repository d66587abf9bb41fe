"""`defaults`: fastai v1's global settings object (the training-related part of `fastai.core.defaults`)."""

from types import SimpleNamespace

__all__ = ["defaults"]

#: fastai v1's default learning rate (spread over the layer groups) and weight decay.
DEFAULT_LR = slice(3e-3)
DEFAULT_WD = 1e-2

#: `lr` / `wd`: fastai's default learning rate and weight decay (read when the signatures were
#: defined, as in fastai). `extra_callbacks`: callback objects every new `Learner` adds to its
#: `callbacks`; `extra_callback_fns`: callback factories every `fit` instantiates.
#: `silent`: the default of `Learner(silent=None)`; `return_fig`: plots return their figure.
defaults = SimpleNamespace(lr=DEFAULT_LR, wd=DEFAULT_WD, extra_callbacks=None, extra_callback_fns=None, silent=False,
                           return_fig=False)
