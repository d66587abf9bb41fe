"""fastai's one-cycle policy, defined once: its argument rules and its two phases of `Stepper`s.

`OneCycleScheduler` trains with these phases; `fastcb.preview.one_cycle_trace` (and `fastcb
plot one-cycle`) evaluates the same phases without a model.
"""

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from ._utils import check_number
from .anneal import Stepper, annealing_cos

__all__ = ["check_lr", "check_one_cycle", "one_cycle_phases"]


LearningRates = float | Sequence[float] | npt.NDArray[np.float64]


def check_lr(lr: LearningRates, name: str) -> float | npt.NDArray[np.float64]:
    """`lr` as a positive float or a float64 array of positive values; ValueError naming `name` otherwise."""
    if isinstance(lr, (list, tuple, np.ndarray)):
        arr = np.asarray(lr, dtype=np.float64)
        if arr.ndim != 1 or arr.size == 0 or not np.all(np.isfinite(arr)) or np.any(arr <= 0):
            raise ValueError(f"{name}: expected positive finite learning rates, got {lr!r}")
        return arr
    if isinstance(lr, bool) or not isinstance(lr, (int, float, np.floating, np.integer)):
        raise TypeError(f"{name}: expected a number, a slice or an array of numbers, got {type(lr).__name__}")
    return float(check_number(name, lr, positive=True))


def check_one_cycle(
    lr_max: LearningRates, moms: float | list[float] | tuple[float, ...] = (0.95, 0.85), div_factor: float = 25.0,
    pct_start: float = 0.3, final_div: float | None = None,
) -> tuple[float | npt.NDArray[np.float64], tuple[float, ...], float, float, float]:
    """The one-cycle policy's arguments checked (ValueError/TypeError naming the argument) and
    completed: `(lr_max, moms as a pair, div_factor, pct_start, final_div)`."""
    lr_max = check_lr(lr_max, "lr_max")
    div_factor = float(check_number("div_factor", div_factor, positive=True, finite=False))
    check_number("pct_start", pct_start, minimum=0, maximum=1)
    final_div = div_factor * 1e4 if final_div is None else float(check_number("final_div", final_div, positive=True,
                                                                                 finite=False))
    pair = tuple(moms) if isinstance(moms, (list, tuple)) else (moms, moms)
    if len(pair) != 2:
        raise ValueError(f"moms: expected one momentum or a pair, got {pair!r}")
    return lr_max, pair, div_factor, pct_start, final_div


def one_cycle_phases(n_steps: int, lr_max: float | npt.NDArray[np.float64], moms: Sequence[float], div_factor: float,
                     pct_start: float, final_div: float) -> list[dict[str, Stepper]]:
    """The policy over `n_steps` batches (arguments as `check_one_cycle` returns them): a warm-up
    phase of `int(n_steps * pct_start)` batches, cosine from `lr_max/div_factor` to `lr_max`
    (momentum `moms[0]` to `moms[1]`), then cosine annealing to `lr_max/final_div` (momentum
    back to `moms[0]`). Two `{"lr": Stepper, "mom": Stepper}` dicts, as fastai builds them."""
    warm = int(n_steps * pct_start)
    up = {"lr": Stepper((lr_max / div_factor, lr_max), warm, annealing_cos),
          "mom": Stepper(moms, warm, annealing_cos)}
    down = {"lr": Stepper((lr_max, lr_max / final_div), n_steps - warm, annealing_cos),
            "mom": Stepper((moms[1], moms[0]), n_steps - warm, annealing_cos)}
    return [up, down]
