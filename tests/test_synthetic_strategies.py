"""Strategy counts: seed 000's eight totals, inverse-scarcity allotment, per-class, ratio, errors."""

from __future__ import annotations

import numpy as np
import pytest

from medaug.errors import MedaugError
from medaug.generators.strategies import (
    SEED000_FRACTIONS,
    Strategy,
    inverse_scarcity,
    labels_for_counts,
    per_class,
    ratio,
    scaled_total,
)

SEED000_ORDER = ["pathmnist", "dermamnist", "octmnist", "pneumoniamnist", "breastmnist", "organamnist",
                 "organcmnist", "organsmnist"]


def test_seed000_totals_from_official_split_sizes():
    # Seed 000, section "Data Augmentation Setup": 4,10,4,10,10,5,10,10 % -> these totals.
    fractions = [0.04, 0.10, 0.04, 0.10, 0.10, 0.05, 0.10, 0.10]
    train_sizes = [89_996, 7_007, 97_477, 4_708, 546, 34_581, 13_000, 13_940]  # seed 000 Table 1
    expected = [3599, 700, 3899, 470, 54, 1729, 1300, 1394]
    assert [scaled_total(n, f) for n, f in zip(train_sizes, fractions)] == expected
    assert [SEED000_FRACTIONS[k] for k in SEED000_ORDER] == list(zip(fractions, train_sizes, expected))


@pytest.mark.parametrize("name", SEED000_ORDER)
def test_seed000_totals_through_the_allotment(name):
    fraction, n_train, expected = SEED000_FRACTIONS[name]
    # An imbalanced class split of the official train size (9 classes at most in these sets).
    weights = np.array([1, 2, 3, 5, 8, 13, 21, 34, 55], dtype=float)
    counts = np.floor(weights / weights.sum() * n_train).astype(np.int64)
    counts[-1] += n_train - counts.sum()
    out = inverse_scarcity(counts, fraction)
    assert out.sum() == expected
    assert (np.diff(out) <= 0).all()  # rarer classes get at least as many


def test_fraction_is_read_as_written_decimal():
    assert scaled_total(100, 0.29) == 29  # 0.29 * 100 = 28.999999999999996 in binary floating point
    assert scaled_total(13_000, 0.1) == 1300
    assert scaled_total(89_996, 0.04) == 3599  # 3599.84 floored
    assert scaled_total(546, 0.1) == 54  # 54.6 floored


def test_inverse_scarcity_allotment_exact():
    # total 40 split 1/300 : 1/100 = 1 : 3
    assert inverse_scarcity([300, 100], 0.1).tolist() == [10, 30]
    # total floor(0.5 * 111) = 55; shares 0.495, 4.95, 49.5 -> largest remainders get the 2 left
    assert inverse_scarcity([100, 10, 1], 0.5).tolist() == [0, 5, 50]
    # a class with no real image gets none
    assert inverse_scarcity([0, 50, 50], 0.2).tolist() == [0, 10, 10]
    assert inverse_scarcity([20, 20, 10], 0.1).tolist() == [1, 1, 3]
    # total 2, shares 0.5 and 1.5: the tied remainder goes to the rarer class
    assert inverse_scarcity([3, 1], 0.5).tolist() == [0, 2]


def test_per_class_seed002_and_names_or_indices():
    names = ["MEL", "NV", "BCC", "AK", "BKL", "DF", "VASC", "SCC"]
    out = per_class(names, ["AK", "DF", "VASC", "SCC"], 128)
    assert out.tolist() == [0, 0, 0, 128, 0, 128, 128, 128]
    assert per_class(names, ["3", 5], 2).tolist() == [0, 0, 0, 2, 0, 2, 0, 0]
    assert per_class(["malignant", "normal, benign"], ["normal, benign"], 4).tolist() == [0, 4]


@pytest.mark.parametrize("classes, count, message", [
    (["AK", "XX"], 5, "unknown class"),
    (["AK", "AK"], 5, "named twice"),
    (["0", "1", "2"], 5, "only 2"),
    (["7"], 5, "out of range"),
    (["AK"], -3, "--count"),
    (["AK"], 0, "--count"),
    ([], 5, "at least one"),
])
def test_per_class_refuses(classes, count, message):
    names = ["MEL", "AK"]
    with pytest.raises(MedaugError, match=message):
        per_class(names, classes, count)


def test_ratio():
    assert ratio([5, 2, 0], 3).tolist() == [15, 6, 0]
    with pytest.raises(MedaugError, match="synthetic-per-real"):
        ratio([5, 2], -1)
    with pytest.raises(MedaugError, match="synthetic-per-real"):
        ratio([5, 2], 0)


@pytest.mark.parametrize("fraction", [-0.1, 0.0, 1.5, float("nan"), float("inf")])
def test_bad_fraction(fraction):
    with pytest.raises(MedaugError, match="--fraction"):
        inverse_scarcity([10, 10], fraction)


def test_negative_class_counts_refused():
    with pytest.raises(MedaugError, match=">= 0"):
        inverse_scarcity([10, -1], 0.1)


def test_strategy_validation_and_params():
    s = Strategy("inverse-scarcity", fraction=0.04)
    assert s.params() == {"fraction": 0.04}
    assert s.counts([30, 10], ["a", "b"]).tolist() == [0, 1]
    assert Strategy("per-class", classes=("b",), count=3).counts([30, 10], ["a", "b"]).tolist() == [0, 3]
    assert Strategy("ratio", synthetic_per_real=2).counts([3, 1], ["a", "b"]).tolist() == [6, 2]
    interleave = Strategy("interleave-reconstructions")
    assert interleave.reconstructs and interleave.counts([3, 1], ["a", "b"]).tolist() == [3, 1]
    with pytest.raises(MedaugError, match="unknown strategy"):
        Strategy("oversample")
    with pytest.raises(MedaugError, match="needs --fraction"):
        Strategy("inverse-scarcity")
    with pytest.raises(MedaugError, match="does not take --count"):
        Strategy("ratio", synthetic_per_real=1, count=3)
    with pytest.raises(MedaugError, match="--count"):
        Strategy("per-class", classes=("a",), count=-1)


def test_labels_for_counts():
    assert labels_for_counts([2, 0, 3]).tolist() == [0, 0, 2, 2, 2]
    assert labels_for_counts([2, 0, 3]).dtype == np.int64
