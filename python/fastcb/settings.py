"""`defaults`: fastai v1's global settings object (the training-related part of `fastai.core.defaults`)."""

from types import SimpleNamespace

__all__ = ["defaults"]

#: `lr` / `wd`: fastai's default learning rate and weight decay (read when the signatures were
#: defined, as in fastai). `extra_callbacks`: callback objects every new `Learner` adds to its
#: `callbacks`; `extra_callback_fns`: callback factories every `fit` instantiates.
#: `silent`: the default of `Learner(silent=None)`; `return_fig`: plots return their figure.
defaults = SimpleNamespace(lr=slice(3e-3), wd=1e-2, extra_callbacks=None, extra_callback_fns=None, silent=False,
                           return_fig=False)
