"""fastcb: fastai v1's callback system for PyTorch training loops, with a compiled Rust core.

`from fastcb import *` gives the names of `from fastai.callback import *` (and the loop
around them); the drop-in schedulers live in `fastcb.lr_scheduler`.
"""

from . import anneal
from .anneal import *  # noqa: F403

__version__ = "0.1.0"

__all__ = [*anneal.__all__]
