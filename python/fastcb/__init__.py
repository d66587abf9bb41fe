"""fastcb: fastai v1's callback system for PyTorch training loops, with a compiled Rust core.

`from fastcb import *` gives the names of `from fastai.callback import *` (and the loop
around them); the drop-in schedulers live in `fastcb.lr_scheduler`.
"""

from . import anneal
from .anneal import *  # noqa: F403
from . import callback, optim, data, learner, callbacks, metrics, progress
from . import schedules
from .callback import *  # noqa: F403
from .optim import *  # noqa: F403
from .data import *  # noqa: F403
from .learner import *  # noqa: F403
from .callbacks import *  # noqa: F403
from .metrics import *  # noqa: F403

__version__ = "0.1.0"

__all__ = [*anneal.__all__, *callback.__all__, *optim.__all__, *data.__all__, *learner.__all__, *callbacks.__all__,
           *metrics.__all__]
