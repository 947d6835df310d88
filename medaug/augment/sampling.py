"""Weighted random sampling (WRS) and epoch orders.

Seed 000 (a0b936cfc9f1546b) trains with and without weighted random sampling:
PyTorch's `WeightedRandomSampler` with inverse class-frequency weights, drawing
with replacement as many samples per epoch as the training set holds, so that
classes are seen about equally often. `epoch_indices` reproduces those semantics
(`torch.multinomial(weights, n, replacement=True)`) on a seeded generator, and is a
plain shuffle without weights.
"""

from __future__ import annotations

import numpy as np
import torch

from medaug.errors import MedaugError


def class_balanced_weights(labels: np.ndarray | torch.Tensor, num_classes: int) -> torch.Tensor:
    """Per-sample weight 1 / (number of training samples of its class), float64 (N,).

    Every class present in `labels` then carries the same total weight (1); a class
    absent from the set carries none (no sample has it, so nothing divides by
    zero). Labels may be (N,) or MedMNIST's (N, 1). Multi-label labels (N, L) are
    refused: class frequency, and hence WRS, is defined for single-label tasks only.
    """
    y = torch.as_tensor(np.asarray(labels) if not isinstance(labels, torch.Tensor) else labels)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise MedaugError(
            f"weighted random sampling: labels of shape {tuple(y.shape)} are multi-label; "
            "WRS is defined for single-label tasks (labels of shape (N,))"
        )
    if y.numel() == 0:
        raise MedaugError("weighted random sampling: the training set is empty")
    if y.is_floating_point() or y.dtype == torch.bool:
        raise MedaugError(f"weighted random sampling: labels must be integers, got {y.dtype}")
    y = y.to(torch.int64).cpu()
    low, high = int(y.min()), int(y.max())
    if low < 0 or high >= num_classes:
        raise MedaugError(
            f"weighted random sampling: labels range {low}..{high}; expected 0..{num_classes - 1}"
        )
    counts = torch.bincount(y, minlength=num_classes).to(torch.float64)
    return 1.0 / counts[y]


def epoch_indices(n: int, generator: torch.Generator, weights: torch.Tensor | None = None) -> torch.Tensor:
    """The int64 sample order for one epoch, on the generator's device.

    Without weights: a random permutation of range(n). With weights (length n,
    non-negative, not all zero): n draws with replacement, each index with
    probability proportional to its weight (WeightedRandomSampler semantics, epoch
    length = training-set size).
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    device = generator.device
    if weights is None:
        return torch.randperm(n, generator=generator, device=device)
    weights = torch.as_tensor(weights, dtype=torch.float64)
    if weights.shape != (n,):
        raise ValueError(f"expected {n} weights, got shape {tuple(weights.shape)}")
    if n == 0:
        return torch.empty(0, dtype=torch.int64, device=device)
    if not bool(torch.isfinite(weights).all()) or bool((weights < 0).any()) or not bool(weights.sum() > 0):
        raise ValueError("weights must be finite, non-negative and not all zero")
    return torch.multinomial(weights.to(device), n, replacement=True, generator=generator)
