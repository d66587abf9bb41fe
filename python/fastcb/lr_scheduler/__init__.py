"""Drop-in replacements for ``torch.optim.lr_scheduler`` and transformers' schedule
factories, with a compiled ``step()``.

Change one import — ``from fastcb.lr_scheduler import OneCycleLR`` — and get the same
learning rates (and momenta) as torch's class, at a fraction of the per-step cost.

Each class is a subclass of torch's class of the same name: torch's constructor, attributes,
``state_dict()`` and ``load_state_dict()``, nothing added to the instance. A regular
``step()`` (and ``get_lr()``) runs in Rust (``fastcb._core.torch_step_method``), which reads the
schedule's parameters from the scheduler at every step — so editing ``gamma``, ``T_max``,
``base_lrs[i]`` or a group's ``max_lr`` in place is honoured at the next step, as torch
honours it — and writes what torch's step writes: a tensor learning rate (0-dim
float32/float64) with its ``fill_``, valued with torch's tensor arithmetic and not read back
(a CPU tensor is read once when first seen; a ``fill_`` of the value the tensor provably holds
already is skipped, see docs/DESIGN.md). Whatever it does not cover runs torch's
own code: the first step (torch's ordering warnings, raised at the caller's line),
``step(epoch)``, Python lambdas and ``scale_fn``, parameters that are not plain numbers,
tensors on an accelerator that fastcb has not written, every error torch raises, and any subclass that overrides ``step``,
``get_lr`` or another method the compiled step stands in for.

The transformers factories (``get_linear_schedule_with_warmup``, ``get_scheduler``, …) have
transformers' names, signatures and values; their ``LambdaLR`` holds ``functools.partial``
factors like transformers' (``.func``, ``.keywords``), which the compiled step recognises.
State dicts cross both ways between torch's or transformers' classes and these.
"""

from ._compiled import (
    EPOCH_DEPRECATION_WARNING,  # noqa: F401 - torch.optim.lr_scheduler has it too
    ChainedScheduler,
    ConstantLR,
    CosineAnnealingLR,
    CosineAnnealingWarmRestarts,
    CyclicLR,
    ExponentialLR,
    LambdaLR,
    LinearLR,
    LRScheduler,
    MultiplicativeLR,
    MultiStepLR,
    OneCycleLR,
    PolynomialLR,
    ReduceLROnPlateau,
    SequentialLR,
    StepLR,
)
from ._transformers import (
    SchedulerType,
    get_adafactor_schedule,
    get_constant_schedule,
    get_constant_schedule_with_warmup,
    get_cosine_schedule_with_warmup,
    get_cosine_with_hard_restarts_schedule_with_warmup,
    get_cosine_with_min_lr_schedule_with_warmup,
    get_cosine_with_min_lr_schedule_with_warmup_lr_rate,
    get_greedy_schedule,
    get_inverse_sqrt_schedule,
    get_linear_schedule_with_warmup,
    get_polynomial_decay_schedule_with_warmup,
    get_reduce_on_plateau_schedule,
    get_scheduler,
    get_wsd_schedule,
)

__all__ = [
    "LRScheduler",
    "LambdaLR",
    "MultiplicativeLR",
    "StepLR",
    "MultiStepLR",
    "ConstantLR",
    "LinearLR",
    "ExponentialLR",
    "PolynomialLR",
    "CosineAnnealingLR",
    "CosineAnnealingWarmRestarts",
    "CyclicLR",
    "OneCycleLR",
    "SequentialLR",
    "ChainedScheduler",
    "ReduceLROnPlateau",
    "get_constant_schedule",
    "get_constant_schedule_with_warmup",
    "get_linear_schedule_with_warmup",
    "get_cosine_schedule_with_warmup",
    "get_cosine_with_hard_restarts_schedule_with_warmup",
    "get_polynomial_decay_schedule_with_warmup",
    "get_inverse_sqrt_schedule",
    "get_cosine_with_min_lr_schedule_with_warmup",
    "get_cosine_with_min_lr_schedule_with_warmup_lr_rate",
    "get_wsd_schedule",
    "get_reduce_on_plateau_schedule",
    "get_greedy_schedule",
    "get_adafactor_schedule",
    "get_scheduler",
    "SchedulerType",
]
