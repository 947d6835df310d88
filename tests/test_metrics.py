"""medaug.metrics: hand-computed cases per MedMNIST task, MedMNIST's own ACC/AUC, degenerate inputs."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from medmnist.evaluator import getACC, getAUC
from sklearn.metrics import roc_auc_score

from medaug.errors import MedaugError
from medaug.metrics import ClassificationMetrics, binary_rates, evaluate
from medaug.store.results import COLUMN_NAMES

# Binary: p(class 1) = [.1, .6, .4, .8, .9] -> predictions 0 1 0 1 1.
BIN_TRUE = np.array([0, 0, 1, 1, 1])
BIN_P1 = np.array([0.1, 0.6, 0.4, 0.8, 0.9])
BIN_SCORE = np.stack([1 - BIN_P1, BIN_P1], axis=1)

# Three classes: predictions 0 2 2 2 1 1.
MC_TRUE = np.array([0, 1, 2, 2, 1, 0])
MC_SCORE = np.array([
    [0.7, 0.2, 0.1],
    [0.1, 0.3, 0.6],
    [0.2, 0.2, 0.6],
    [0.1, 0.1, 0.8],
    [0.2, 0.5, 0.3],
    [0.3, 0.6, 0.1],
])

# Three labels: predictions [1,0,0] [0,1,1] [1,0,0] [0,1,0].
ML_TRUE = np.array([[1, 0, 1], [0, 1, 1], [1, 1, 0], [0, 0, 0]])
ML_SCORE = np.array([[0.9, 0.2, 0.4], [0.3, 0.7, 0.8], [0.6, 0.4, 0.1], [0.2, 0.6, 0.3]])


def test_binary_by_hand():
    m = evaluate("binary-class", BIN_TRUE, BIN_SCORE)
    assert isinstance(m, ClassificationMetrics)
    assert (m.n, m.num_classes) == (5, 2)
    assert m.acc == pytest.approx(3 / 5)
    # positive scores {.4, .8, .9} beat negatives {.1, .6} in 5 of 6 pairs
    assert m.auc == pytest.approx(5 / 6)
    assert m.auc == pytest.approx(roc_auc_score(BIN_TRUE, BIN_P1))
    assert m.confusion == [[1, 1], [1, 2]]
    assert m.precision == pytest.approx([1 / 2, 2 / 3])
    assert m.recall == pytest.approx([1 / 2, 2 / 3])
    assert m.f1 == pytest.approx([1 / 2, 2 / 3])
    assert m.support == [2, 3]
    assert m.balanced_acc == pytest.approx((1 / 2 + 2 / 3) / 2)
    assert m.macro_f1 == pytest.approx((1 / 2 + 2 / 3) / 2)
    assert m.notes == ()
    assert binary_rates(m.confusion) == pytest.approx({"tpr": 2 / 3, "tnr": 1 / 2, "fpr": 1 / 2, "fnr": 1 / 3})


@pytest.mark.parametrize("task", ["multi-class", "ordinal-regression"])
def test_multi_class_and_ordinal_by_hand(task):
    m = evaluate(task, MC_TRUE, MC_SCORE)
    assert m.acc == pytest.approx(4 / 6)
    # one-vs-rest AUCs by hand: class 0: 1, class 1: 6/8, class 2: 7.5/8 (one tie at .6)
    assert m.auc == pytest.approx((1 + 6 / 8 + 7.5 / 8) / 3)
    assert m.auc == pytest.approx(roc_auc_score(MC_TRUE, MC_SCORE, multi_class="ovr", average="macro"))
    assert m.confusion == [[1, 1, 0], [0, 1, 1], [0, 0, 2]]
    assert m.precision == pytest.approx([1, 1 / 2, 2 / 3])
    assert m.recall == pytest.approx([1 / 2, 1 / 2, 1])
    assert m.f1 == pytest.approx([2 / 3, 1 / 2, 4 / 5])
    assert m.support == [2, 2, 2]
    assert m.balanced_acc == pytest.approx((1 / 2 + 1 / 2 + 1) / 3)
    assert m.macro_f1 == pytest.approx((2 / 3 + 1 / 2 + 4 / 5) / 3)
    # one-vs-rest rates of class 2 from the 3 x 3 matrix: tp 2, fn 0, fp 1, tn 3
    assert binary_rates(m.confusion, positive=2) == pytest.approx({"tpr": 1, "tnr": 3 / 4, "fpr": 1 / 4, "fnr": 0})


def test_multi_label_by_hand():
    m = evaluate("multi-label, binary-class", ML_TRUE, ML_SCORE)
    # per-label accuracies 1, 1/2, 3/4
    assert m.acc == pytest.approx(0.75)
    assert m.auc == pytest.approx((1 + 3 / 4 + 1) / 3)
    assert m.confusion == [[2, 0, 0, 2], [1, 1, 1, 1], [2, 0, 1, 1]]  # [tn, fp, fn, tp] per label
    assert m.precision == pytest.approx([1, 1 / 2, 1])
    assert m.recall == pytest.approx([1, 1 / 2, 1 / 2])
    assert m.f1 == pytest.approx([1, 1 / 2, 2 / 3])
    assert m.support == [2, 2, 2]
    assert m.balanced_acc == pytest.approx((1 + 1 / 2 + 3 / 4) / 3)
    assert binary_rates(m.confusion[2]) == pytest.approx({"tpr": 1 / 2, "tnr": 1, "fpr": 0, "fnr": 1 / 2})


@pytest.mark.parametrize("task,classes", [
    ("binary-class", 2), ("multi-class", 5), ("ordinal-regression", 4), ("multi-label, binary-class", 6),
])
def test_acc_and_auc_equal_medmnist(task, classes):
    rng = np.random.default_rng(7)
    n = 300
    if task.startswith("multi-label"):
        y_true = (rng.random((n, classes)) < 0.4).astype(np.int64)
        y_score = rng.random((n, classes))
        y_true_mm = y_true
    else:
        y_true = rng.integers(0, classes, n)
        logits = rng.normal(size=(n, classes)) + 1.5 * np.eye(classes)[y_true]
        y_score = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
        y_true_mm = y_true[:, None]  # MedMNIST's (N, 1) label shape
    m = evaluate(task, y_true_mm, y_score)
    assert m.acc == getACC(y_true_mm, y_score, task)
    assert m.auc == pytest.approx(getAUC(y_true_mm, y_score, task))
    assert 0.5 < m.acc < 1 or task.startswith("multi-label")


def test_row_keys_are_result_columns():
    row = evaluate("binary-class", BIN_TRUE, BIN_SCORE).as_row("test_")
    assert set(row) <= set(COLUMN_NAMES)
    assert row["test_acc"] == pytest.approx(0.6)
    assert row["test_confusion"] == [[1, 1], [1, 2]]


def test_absent_class_gives_nan_auc_with_reason_and_zero_division_zero():
    y_true = np.array([0, 1, 0, 1])  # class 2 never occurs
    y_score = np.array([[0.8, 0.1, 0.1], [0.1, 0.2, 0.7], [0.6, 0.3, 0.1], [0.2, 0.7, 0.1]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # and nothing noisy leaks out
        m = evaluate("multi-class", y_true, y_score)
    assert math.isnan(m.auc)
    assert any("class(es) [2]" in note for note in m.notes)
    assert m.acc == pytest.approx(3 / 4)
    assert m.confusion == [[2, 0, 0], [0, 1, 1], [0, 0, 0]]
    assert m.precision == pytest.approx([1, 1, 0])  # class 2: predicted once, wrongly
    assert m.recall == pytest.approx([1, 1 / 2, 0])  # class 2: 0/0 -> 0
    assert m.support == [2, 2, 0]
    with warnings.catch_warnings():  # MedMNIST's own AUC is NaN here too (scikit-learn >= 1.6)
        warnings.simplefilter("ignore")
        assert math.isnan(getAUC(y_true[:, None], y_score, "multi-class"))


def test_degenerate_inputs_do_not_crash():
    one = evaluate("binary-class", np.array([1]), np.array([[0.2, 0.8]]))
    assert one.acc == 1.0 and math.isnan(one.auc) and one.confusion == [[0, 0], [0, 1]]
    all_one_label = evaluate("multi-label, binary-class", np.array([[1, 0], [1, 1]]), np.array([[0.9, 0.1], [0.2, 0.8]]))
    assert math.isnan(all_one_label.auc) and "label(es) [0]" in all_one_label.notes[0]
    assert all_one_label.acc == pytest.approx(0.75)
    diverged = evaluate("multi-class", MC_TRUE, np.full_like(MC_SCORE, np.nan))
    assert math.isnan(diverged.auc) and "NaN" in diverged.notes[0]
    assert binary_rates([[0, 0], [0, 0]]) == {"tpr": 0.0, "tnr": 0.0, "fpr": 0.0, "fnr": 0.0}


@pytest.mark.parametrize("task,y_true,y_score,match", [
    ("regression", BIN_TRUE, BIN_SCORE, "task"),
    ("binary-class", BIN_TRUE, MC_SCORE[:5], "expected 2"),
    ("multi-class", np.array([0, 1, 3, 2, 1, 0]), MC_SCORE, "out of range"),
    ("multi-class", MC_TRUE[:5], MC_SCORE, "y_true of shape"),
    ("multi-label, binary-class", ML_TRUE[:, :2], ML_SCORE, "expected"),
    ("multi-label, binary-class", ML_TRUE * 2, ML_SCORE, "only 0 and 1"),
    ("multi-class", MC_TRUE, MC_SCORE[:, 0], "y_score of shape"),
    ("multi-class", MC_TRUE + 0.5, MC_SCORE, "integer labels"),
])
def test_bad_input_is_refused(task, y_true, y_score, match):
    with pytest.raises(MedaugError, match=match):
        evaluate(task, y_true, y_score)


def test_binary_rates_refuses_bad_shapes():
    with pytest.raises(MedaugError):
        binary_rates([1, 2, 3])
    with pytest.raises(MedaugError):
        binary_rates([[1, 2], [3, 4]], positive=2)


def test_binary_predictions_follow_medmnist_threshold_even_for_unnormalised_scores():
    # [.3, .4]: argmax says 1, MedMNIST's score[:, 1] > .5 says 0; confusion must agree with acc
    m = evaluate("binary-class", np.array([0, 1]), np.array([[0.3, 0.4], [0.1, 0.9]]))
    assert m.acc == getACC(np.array([[0], [1]]), np.array([[0.3, 0.4], [0.1, 0.9]]), "binary-class") == 1.0
    assert m.confusion == [[1, 0], [0, 1]]
