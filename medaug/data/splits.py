"""Stratified, seeded splits of file-based data sets, decided by hashing file names.

Which split an image lands in is decided per class by ranking the images on
sha256("medaug-split:<seed>:<part>:<key>"), where `key` is the image's path
relative to the data set root. Unlike a random permutation this depends on no
RNG implementation (the same seed picks the same files on every machine and every
numpy/torch version), and an image's place in the ranking does not move when other
files are added or skipped. The test images are drawn first; the validation images
are then drawn from the rest with a second, independent ranking.

Used by the COVID-19 Radiography loader (seed 003: 200 COVID + 200 Normal held out,
validation split 0.1 of the rest) and the class-folder loaders (seed 002: 30% kept
for validation, stratified).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Sequence

import numpy as np

from medaug.errors import MedaugError


def hash_rank(keys: Sequence[str], salt: str) -> np.ndarray:
    """Indices of `keys` ordered by sha256(salt + ':' + key) (a seeded, portable shuffle)."""
    digests = [hashlib.sha256(f"{salt}:{k}".encode()).digest() for k in keys]
    return np.array(sorted(range(len(keys)), key=digests.__getitem__), dtype=np.int64)


def round_half_up(x: float) -> int:
    """Round to the nearest integer, halves up (Python's round() rounds halves to even)."""
    return int(math.floor(x + 0.5))


def fraction_counts(class_counts: Sequence[int], val_fraction: float, test_fraction: float,
                    where: str = "split") -> tuple[list[int], list[int]]:
    """Per-class (val, test) counts for fractions of each class, keeping >= 1 training image per class.

    Counts are round(fraction * n) per class; where that would leave a class no
    training image, the larger of the two counts is lowered (the test count on a tie).
    """
    check_fractions(val_fraction, test_fraction, where)
    n_val, n_test = [], []
    for n in class_counts:
        v, t = round_half_up(val_fraction * n), round_half_up(test_fraction * n)
        while n > 0 and v + t > n - 1:
            if v > t:
                v -= 1
            else:  # the larger one gives way; on a tie the test set
                t -= 1
        n_val.append(v)
        n_test.append(t)
    return n_val, n_test


def check_fractions(val_fraction: float, test_fraction: float, where: str = "split") -> None:
    for name, f in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not isinstance(f, (int, float)) or isinstance(f, bool) or not 0 <= f < 1:
            raise MedaugError(f"{where}: {name} {f!r}; expected a number in [0, 1)")
    if val_fraction + test_fraction >= 1:
        raise MedaugError(f"{where}: val_fraction + test_fraction = {val_fraction + test_fraction}; expected < 1")


def stratified_indices(keys: Sequence[str], labels: np.ndarray, num_classes: int, n_val: Sequence[int],
                       n_test: Sequence[int], seed: int) -> dict[str, np.ndarray]:
    """Split rows into train/val/test, taking n_test[c] then n_val[c] rows of class c by hash rank.

    `keys` name the rows (unique; relative file paths); `labels` are int class indices.
    Returns sorted index arrays {"train", "val", "test"} that partition range(len(keys)).
    """
    labels = np.asarray(labels)
    if len(set(keys)) != len(keys):
        raise MedaugError("split: file keys are not unique")
    parts: dict[str, list[np.ndarray]] = {"train": [], "val": [], "test": []}
    for c in range(num_classes):
        rows = np.flatnonzero(labels == c)
        class_keys = [keys[i] for i in rows]
        if n_test[c] + n_val[c] > len(rows):
            raise MedaugError(f"split: class {c} has {len(rows)} images; {n_test[c]} test + {n_val[c]} val requested")
        test_pos = hash_rank(class_keys, f"medaug-split:{seed}:test")[: n_test[c]]
        rest = np.setdiff1d(np.arange(len(rows)), test_pos)
        val_pos = rest[hash_rank([class_keys[i] for i in rest], f"medaug-split:{seed}:val")[: n_val[c]]]
        train_pos = np.setdiff1d(rest, val_pos)
        parts["test"].append(rows[test_pos])
        parts["val"].append(rows[val_pos])
        parts["train"].append(rows[train_pos])
    return {name: np.sort(np.concatenate(p)) if p else np.zeros(0, np.int64) for name, p in parts.items()}


def file_list_hash(entries: Iterable[Sequence[object]]) -> str:
    """sha256 (16 hex chars) of a list of (relative name, size, ...) entries: identifies a file set."""
    h = hashlib.sha256()
    for entry in entries:
        h.update(json.dumps(list(entry), separators=(",", ":")).encode())
        h.update(b"\n")
    return h.hexdigest()[:16]
