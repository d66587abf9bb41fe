"""fastai v1's standard callbacks."""

from . import (
    accumulate,
    csv_logger,
    distributed,
    flat_cos_anneal,
    fp16,
    general_sched,
    hooks,
    loss_metrics,
    lr_finder,
    misc,
    mixup,
    one_cycle,
    param_sched,
    recorder,
    sampling,
    track_epoch,
    tracker,
)
from .accumulate import *  # noqa: F403
from .csv_logger import *  # noqa: F403
from .distributed import *  # noqa: F403
from .flat_cos_anneal import *  # noqa: F403
from .fp16 import *  # noqa: F403
from .general_sched import *  # noqa: F403
from .hooks import *  # noqa: F403
from .loss_metrics import *  # noqa: F403
from .lr_finder import *  # noqa: F403
from .misc import *  # noqa: F403
from .mixup import *  # noqa: F403
from .one_cycle import *  # noqa: F403
from .param_sched import *  # noqa: F403
from .recorder import *  # noqa: F403
from .sampling import *  # noqa: F403
from .track_epoch import *  # noqa: F403
from .tracker import *  # noqa: F403

__all__ = [
    *recorder.__all__,
    *one_cycle.__all__,
    *lr_finder.__all__,
    *general_sched.__all__,
    *tracker.__all__,
    *csv_logger.__all__,
    *fp16.__all__,
    *misc.__all__,
    *distributed.__all__,
    *param_sched.__all__,
    *flat_cos_anneal.__all__,
    *hooks.__all__,
    *loss_metrics.__all__,
    *mixup.__all__,
    *accumulate.__all__,
    *sampling.__all__,
    *track_epoch.__all__,
]

# The optional-package callbacks import their package only when instantiated.
from .mlflow import MLFlowTracker
from .tensorboard import LearnerTensorboardWriter

__all__ += ["MLFlowTracker", "LearnerTensorboardWriter"]
