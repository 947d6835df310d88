"""Weighted random sampling (seed 000's WRS) and epoch orders."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medaug.augment.sampling import class_balanced_weights, epoch_indices
from medaug.errors import MedaugError


def _imbalanced(n_major: int = 900, n_minor: int = 100) -> np.ndarray:
    labels = np.array([0] * n_major + [1] * n_minor, dtype=np.int64)
    np.random.default_rng(0).shuffle(labels)
    return labels


def test_weights_are_inverse_class_frequency():
    labels = _imbalanced()
    w = class_balanced_weights(labels, 2)
    assert w.shape == (1000,) and w.dtype == torch.float64
    assert torch.allclose(w[torch.as_tensor(labels) == 0], torch.tensor(1 / 900, dtype=torch.float64))
    assert torch.allclose(w[torch.as_tensor(labels) == 1], torch.tensor(1 / 100, dtype=torch.float64))
    # every present class carries the same total weight; an absent class (2) none, and no division by 0
    w3 = class_balanced_weights(torch.as_tensor(labels)[:, None], 3)  # MedMNIST's (N, 1) and a tensor
    assert torch.isfinite(w3).all()
    assert torch.allclose(w3[torch.as_tensor(labels) == 0].sum(), w3[torch.as_tensor(labels) == 1].sum())


def test_weights_refuse_multi_label_and_bad_labels():
    with pytest.raises(MedaugError, match="single-label"):
        class_balanced_weights(np.zeros((10, 14), dtype=np.int64), 14)
    with pytest.raises(MedaugError, match="0..1"):
        class_balanced_weights(np.array([0, 1, 2]), 2)
    with pytest.raises(MedaugError, match="empty"):
        class_balanced_weights(np.array([], dtype=np.int64), 2)


def test_unweighted_epoch_is_a_seeded_permutation():
    idx = epoch_indices(500, torch.Generator().manual_seed(0))
    assert idx.dtype == torch.int64
    assert torch.equal(idx.sort().values, torch.arange(500))
    assert not torch.equal(idx, torch.arange(500))
    assert torch.equal(idx, epoch_indices(500, torch.Generator().manual_seed(0)))


def test_wrs_draws_classes_near_uniformly_with_replacement():
    labels = _imbalanced()
    w = class_balanced_weights(labels, 2)
    g = torch.Generator().manual_seed(1)
    draws = torch.cat([epoch_indices(1000, g, w) for _ in range(20)])  # 20 epochs = 20k draws
    assert draws.dtype == torch.int64 and draws.shape == (20_000,)
    minority = (torch.as_tensor(labels)[draws] == 1).double().mean().item()
    assert abs(minority - 0.5) < 0.03, minority  # unweighted it would be 0.10
    one_epoch = epoch_indices(1000, torch.Generator().manual_seed(2), w)
    assert len(one_epoch) == 1000 and len(one_epoch.unique()) < 1000  # with replacement
    assert torch.equal(one_epoch, epoch_indices(1000, torch.Generator().manual_seed(2), w))


def test_zero_weight_is_never_drawn_and_bad_weights_refused():
    w = torch.ones(50, dtype=torch.float64)
    w[:25] = 0
    assert (epoch_indices(50, torch.Generator().manual_seed(0), w) >= 25).all()
    with pytest.raises(ValueError, match="50 weights"):
        epoch_indices(50, torch.Generator(), torch.ones(49))
    with pytest.raises(ValueError, match="non-negative"):
        epoch_indices(3, torch.Generator(), torch.tensor([1.0, -1.0, 1.0]))
