"""Classification metrics with MedMNIST's semantics, plus the per-class tables the seeds report.

`evaluate(task, y_true, y_score)` gives, for one split:

- `acc`, `auc`: MedMNIST's own numbers, from `medmnist.evaluator.getACC` / `getAUC`
  with the task string (seed 000 Tables 2-5 and seed 004 report these). Note their
  rules: binary ACC thresholds the last column at 0.5; multi-label ACC and AUC are
  means over labels; multi-class and ordinal AUC are the mean of one-vs-rest AUCs.
- `balanced_acc`, `macro_f1`, per-class `precision` / `recall` / `f1` / `support`
  (seed 002 Table 2) and the `confusion` matrix, from scikit-learn.
- `binary_rates(confusion)` derives TPR / TNR / FPR / FNR (seed 003 reports them).

Predictions (for everything but AUC): argmax of the scores for multi-class and
ordinal tasks; MedMNIST's `score[:, 1] > 0.5` for binary tasks (the same as argmax for
softmax rows, and consistent with `acc` for any scores); `score > 0.5` per label for
multi-label tasks.
Multi-label per-class numbers treat each label as its own binary problem; its
confusion has one `[tn, fp, fn, tp]` row per label; `balanced_acc` is the mean of
the labels' balanced accuracies.

Degenerate inputs do not crash: a division by zero counts as 0 (precision of a class
never predicted, ...); an AUC that is undefined (a class absent from y_true, or the
only class present; scores that are not finite) is NaN, as MedMNIST computes it with
scikit-learn >= 1.6, and `notes` says why.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from medmnist.evaluator import getACC, getAUC
from sklearn.exceptions import UndefinedMetricWarning
from sklearn.metrics import (
    balanced_accuracy_score,
    confusion_matrix,
    multilabel_confusion_matrix,
    precision_recall_fscore_support,
    roc_auc_score,
)

from medaug.data.imageset import TASKS
from medaug.errors import MedaugError

MULTI_LABEL = "multi-label, binary-class"
THRESHOLD = 0.5


@dataclass(frozen=True)
class ClassificationMetrics:
    """Metrics of one split. Lists are per class (per label for multi-label tasks).

    confusion: rows true class, columns predicted class (C x C); for multi-label
    tasks one [tn, fp, fn, tp] row per label. notes: why a number is NaN, if one is.
    """

    task: str
    n: int
    num_classes: int
    acc: float
    auc: float
    balanced_acc: float
    macro_f1: float
    precision: list[float]
    recall: list[float]
    f1: list[float]
    support: list[int]
    confusion: list[list[int]]
    notes: tuple[str, ...] = field(default=())

    def as_row(self, prefix: str = "test_") -> dict[str, Any]:
        """The metric fields under result-row column names: `test_acc`, ..., `test_confusion`."""
        keys = ("acc", "auc", "balanced_acc", "macro_f1", "precision", "recall", "f1", "support", "confusion")
        values = asdict(self)
        return {f"{prefix}{k}": values[k] for k in keys}


def evaluate(task: str, y_true: np.ndarray, y_score: np.ndarray) -> ClassificationMetrics:
    """Metrics of scores `y_score` (N, C) against labels `y_true` for a MedMNIST task.

    y_true: (N,) or (N, 1) integer classes for single-label tasks, (N, L) of 0/1 for
    "multi-label, binary-class". y_score: (N, C) probabilities: softmax rows for
    single-label tasks (C = number of classes, 2 for binary), sigmoids for multi-label
    (C = L). Raises MedaugError when the shapes or labels do not fit the task.
    """
    y_true, y_score = _check(task, y_true, y_score)
    n, c = y_score.shape
    multi_label = task == MULTI_LABEL
    notes: list[str] = []

    # MedMNIST wants single-label y_true as (N, 1); it squeezes both arrays, which
    # breaks for one sample (or one label): then apply the same rule here.
    y_true_mm = y_true if multi_label else y_true.reshape(n, 1)
    if n >= 2 and (c >= 2):
        acc = float(getACC(y_true_mm, y_score, task, threshold=THRESHOLD))
    else:
        acc = _acc_medmnist_rule(task, y_true, y_score)
    auc = _auc(task, y_true, y_true_mm, y_score, notes)

    if multi_label:
        y_pred = (y_score > THRESHOLD).astype(np.int64)
        confusion = [m.ravel().tolist() for m in multilabel_confusion_matrix(y_true, y_pred, labels=list(range(c)))]
        balanced = float(np.mean([_balanced_binary(*row) for row in confusion]))
    else:
        if task == "binary-class":  # MedMNIST's rule; equals argmax for softmax rows
            y_pred = (y_score[:, 1] > THRESHOLD).astype(np.int64)
        else:
            y_pred = np.argmax(y_score, axis=1)
        confusion = confusion_matrix(y_true, y_pred, labels=list(range(c))).tolist()
        with warnings.catch_warnings():  # "y_pred contains classes not in y_true": expected on small splits
            warnings.simplefilter("ignore", UserWarning)
            balanced = float(balanced_accuracy_score(y_true, y_pred))
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=list(range(c)), average=None, zero_division=0
    )
    return ClassificationMetrics(
        task=task,
        n=n,
        num_classes=c,
        acc=acc,
        auc=auc,
        balanced_acc=balanced,
        macro_f1=float(np.mean(f1)),
        precision=[float(v) for v in precision],
        recall=[float(v) for v in recall],
        f1=[float(v) for v in f1],
        support=[int(v) for v in support],
        confusion=[[int(v) for v in row] for row in confusion],
        notes=tuple(notes),
    )


def binary_rates(confusion: list[list[int]] | list[int] | np.ndarray, positive: int = 1) -> dict[str, float]:
    """TPR, TNR, FPR and FNR of one class against the rest, from a confusion matrix.

    `confusion` is a C x C matrix (rows true, columns predicted; for a binary task
    [[tn, fp], [fn, tp]] with `positive=1`) or one multi-label row [tn, fp, fn, tp].
    A rate whose denominator is 0 is 0. Seed 003 reports TPR, TNR and "FPR"; note
    that its "FPR" values equal 1 - TPR, i.e. what is called `fnr` here.
    """
    m = np.asarray(confusion, dtype=np.int64)
    if m.shape == (4,):
        tn, fp, fn, tp = (int(v) for v in m)
    elif m.ndim == 2 and m.shape[0] == m.shape[1] and m.shape[0] >= 2:
        if not 0 <= positive < m.shape[0]:
            raise MedaugError(f"binary_rates: positive class {positive} outside 0..{m.shape[0] - 1}")
        tp = int(m[positive, positive])
        fn = int(m[positive].sum()) - tp
        fp = int(m[:, positive].sum()) - tp
        tn = int(m.sum()) - tp - fn - fp
    else:
        raise MedaugError(f"binary_rates: confusion of shape {m.shape}; expected C x C (C >= 2) or [tn, fp, fn, tp]")
    return {
        "tpr": _ratio(tp, tp + fn),
        "tnr": _ratio(tn, tn + fp),
        "fpr": _ratio(fp, fp + tn),
        "fnr": _ratio(fn, fn + tp),
    }


# --- helpers ---------------------------------------------------------------------


def _ratio(num: int, den: int) -> float:
    return num / den if den else 0.0


def _balanced_binary(tn: int, fp: int, fn: int, tp: int) -> float:
    """scikit-learn's balanced accuracy of one binary label: mean recall of the classes present."""
    recalls = [tp / (tp + fn)] if tp + fn else []
    recalls += [tn / (tn + fp)] if tn + fp else []
    return float(np.mean(recalls)) if recalls else 0.0


def _check(task: str, y_true: np.ndarray, y_score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if task not in TASKS:
        raise MedaugError(f"evaluate: task {task!r}; expected one of {TASKS}")
    y_true = np.asarray(y_true)
    y_score = np.asarray(y_score, dtype=np.float64)
    if y_score.ndim != 2 or y_score.shape[0] < 1 or y_score.shape[1] < 1:
        raise MedaugError(f"evaluate: y_score of shape {y_score.shape}; expected (N, C) with N >= 1")
    n, c = y_score.shape
    if y_true.dtype.kind not in "biu" and not (y_true.dtype.kind == "f" and np.all(np.mod(y_true, 1) == 0)):
        raise MedaugError(f"evaluate: y_true of dtype {y_true.dtype}; expected integer labels")
    y_true = y_true.astype(np.int64)
    if task == MULTI_LABEL:
        if y_true.shape != (n, c):
            raise MedaugError(f"evaluate: multi-label y_true of shape {y_true.shape}; expected {(n, c)}")
        if not np.isin(y_true, (0, 1)).all():
            raise MedaugError("evaluate: multi-label y_true must hold only 0 and 1")
        return y_true, y_score
    if y_true.shape == (n, 1):
        y_true = y_true[:, 0]
    if y_true.shape != (n,):
        raise MedaugError(f"evaluate: y_true of shape {y_true.shape}; expected ({n},) or ({n}, 1)")
    if task == "binary-class" and c != 2:
        raise MedaugError(f"evaluate: binary-class y_score has {c} columns; expected 2 (softmax over both classes)")
    if c < 2:
        raise MedaugError(f"evaluate: {task} y_score has {c} column; expected one per class (>= 2)")
    if y_true.min() < 0 or y_true.max() >= c:
        raise MedaugError(
            f"evaluate: labels {int(y_true.min())}..{int(y_true.max())} out of range for {c} score columns"
        )
    return y_true, y_score


def _acc_medmnist_rule(task: str, y_true: np.ndarray, y_score: np.ndarray) -> float:
    """getACC's rule for the shapes its squeeze() cannot take (one sample or one label)."""
    if task == MULTI_LABEL:
        return float(np.mean((y_score > THRESHOLD) == (y_true == 1)))
    if task == "binary-class":
        return float(np.mean((y_score[:, -1] > THRESHOLD) == (y_true == 1)))
    return float(np.mean(np.argmax(y_score, axis=1) == y_true))


def _auc(task: str, y_true: np.ndarray, y_true_mm: np.ndarray, y_score: np.ndarray, notes: list[str]) -> float:
    """MedMNIST's getAUC, or NaN with a note where it is undefined."""
    if not np.isfinite(y_score).all():
        notes.append("auc undefined: y_score holds NaN or infinite values")
        return math.nan
    c = y_score.shape[1]
    if task == MULTI_LABEL:
        columns = {k: y_true[:, k] for k in range(c)}
    elif task == "binary-class":
        columns = {1: (y_true == 1).astype(np.int64)}
    else:
        columns = {k: (y_true == k).astype(np.int64) for k in range(c)}
    single = [k for k, col in columns.items() if col.min() == col.max()]
    if single:
        what = "label" if task == MULTI_LABEL else "class"
        notes.append(
            f"auc undefined: y_true has only positives or only negatives for {what}(es) {single} (one-vs-rest)"
        )
        return math.nan
    if c == 1:  # one label: getAUC's squeeze() cannot take it; its rule is plain ROC AUC
        return float(roc_auc_score(y_true[:, 0], y_score[:, 0]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        return float(getAUC(y_true_mm, y_score, task))
