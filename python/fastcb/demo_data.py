"""The demo's embedded data set: interleaved 2-D spirals, made on the spot (no download).

Each class is one arm of a spiral with Gaussian noise; the arms interleave, so a linear
model fails and a small MLP learns it in a few epochs: a fair show of `lr_find` and
`fit_one_cycle` in seconds on a CPU.
"""

import numpy as np
import torch
from torch import nn
from torch.utils.data import TensorDataset

__all__ = ["spirals", "spiral_datasets", "demo_model"]


def spirals(n: int, n_classes: int = 3, noise: float = 0.2, turns: float = 1.25,
            seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """`n` points `(x, y)` as float32/int64 arrays: `x` of shape (n, 2), `y` class labels in order."""
    if n < 1 or n_classes < 2:
        raise ValueError(f"n and n_classes: need n >= 1 and n_classes >= 2, got {n} and {n_classes}")
    rng = np.random.default_rng(seed)
    y = np.arange(n) % n_classes
    t = rng.uniform(0.05, 1.0, n)  # position along the arm; the radius grows with it
    angle = 2 * np.pi * (turns * t + y / n_classes)
    x = np.stack([t * np.cos(angle), t * np.sin(angle)], axis=1) * 2.0
    x += rng.normal(0.0, noise * 0.2, x.shape)
    return x.astype(np.float32), y.astype(np.int64)


def spiral_datasets(n_train: int = 4096, n_valid: int = 1024, n_classes: int = 3, noise: float = 0.2,
                    seed: int = 0) -> tuple[TensorDataset, TensorDataset]:
    """Training and validation `TensorDataset`s of spirals (drawn independently)."""
    xt, yt = spirals(n_train, n_classes, noise, seed=seed)
    xv, yv = spirals(n_valid, n_classes, noise, seed=seed + 1)
    return (TensorDataset(torch.from_numpy(xt), torch.from_numpy(yt)),
            TensorDataset(torch.from_numpy(xv), torch.from_numpy(yv)))


def demo_model(n_classes: int = 3, hidden: int = 64) -> nn.Sequential:
    """A small MLP for 2-D points: two hidden layers with batch norm."""
    return nn.Sequential(
        nn.Linear(2, hidden), nn.ReLU(), nn.BatchNorm1d(hidden),
        nn.Linear(hidden, hidden), nn.ReLU(), nn.BatchNorm1d(hidden),
        nn.Linear(hidden, n_classes),
    )
