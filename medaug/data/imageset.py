"""`ImageSet`: one split of a labelled image data set, held in memory as uint8.

Every data source (MedMNIST npz, COVID radiography folders, class folders, a Zarr
synthetic set) ends as ImageSets, so everything downstream sees one shape:
images uint8 N x C x H x W, labels int64 (N,) or, for multi-label tasks, (N, L) of 0/1.
The content hash identifies the exact pixels and labels; a synthetic set records the
hash of the split its generator was trained on, which is how leakage is refused.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from medaug.errors import MedaugError

TASKS = ("binary-class", "multi-class", "multi-label, binary-class", "ordinal-regression")


def content_hash(images: np.ndarray, labels: np.ndarray) -> str:
    """sha256 of shapes, dtypes and bytes of images and labels (hex, 16 chars)."""
    h = hashlib.sha256()
    for arr in (images, labels):
        arr = np.ascontiguousarray(arr)
        h.update(f"{arr.dtype.str}{arr.shape}".encode())
        if arr.size:  # memoryview cannot cast an empty array (an empty split, e.g. no validation images)
            h.update(memoryview(arr).cast("B"))
    return h.hexdigest()[:16]


@dataclass(frozen=True, eq=False)
class ImageSet:
    """One split: uint8 images N x C x H x W with labels, class names and task type."""

    name: str
    split: str
    images: np.ndarray
    labels: np.ndarray
    class_names: tuple[str, ...]
    task: str
    content_hash: str = field(default="")

    def __post_init__(self) -> None:
        where = f"{self.name}/{self.split}"
        if self.task not in TASKS:
            raise MedaugError(f"{where}: task {self.task!r}; expected one of {TASKS}")
        if self.images.dtype != np.uint8 or self.images.ndim != 4:
            raise MedaugError(
                f"{where}: images must be uint8 N x C x H x W, got {self.images.dtype} {self.images.shape}"
            )
        n = len(self.images)
        n_classes = len(self.class_names)
        if self.multi_label:
            if self.labels.shape != (n, n_classes):
                raise MedaugError(f"{where}: multi-label labels must be {(n, n_classes)}, got {self.labels.shape}")
            if not np.isin(self.labels, (0, 1)).all():
                raise MedaugError(f"{where}: multi-label labels must be 0/1")
        else:
            if self.labels.shape != (n,):
                raise MedaugError(f"{where}: labels must have shape ({n},), got {self.labels.shape}")
            if n and (self.labels.min() < 0 or self.labels.max() >= n_classes):
                raise MedaugError(
                    f"{where}: labels out of range [0, {n_classes - 1}]: found {int(self.labels.min())}..{int(self.labels.max())}"
                )
        if not self.content_hash:
            object.__setattr__(self, "content_hash", content_hash(self.images, self.labels))

    @property
    def multi_label(self) -> bool:
        return self.task.startswith("multi-label")

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def channels(self) -> int:
        return int(self.images.shape[1])

    @property
    def size(self) -> int:
        return int(self.images.shape[2])

    def __len__(self) -> int:
        return len(self.images)

    def class_counts(self) -> np.ndarray:
        """Images per class (for multi-label: positives per label)."""
        if self.multi_label:
            return self.labels.sum(axis=0).astype(np.int64)
        return np.bincount(self.labels, minlength=self.num_classes).astype(np.int64)

    def subset(self, index: np.ndarray, split: str | None = None) -> ImageSet:
        """A new ImageSet holding the rows `index` (hash recomputed)."""
        return ImageSet(
            name=self.name,
            split=split or self.split,
            images=self.images[index],
            labels=self.labels[index],
            class_names=self.class_names,
            task=self.task,
        )


@dataclass(frozen=True)
class DatasetSplits:
    """train/val/test ImageSets of one data set plus where they came from."""

    name: str
    train: ImageSet
    val: ImageSet
    test: ImageSet
    version: str
    md5: str
    license: str = ""
    source: str = ""
    # What the loader decided that a reader of the result should know (JSON-able), e.g. a
    # labels CSV's dropped classes (medaug/data/folders.py); a data source puts it in the row.
    info: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def split(self, name: str) -> ImageSet:
        return {"train": self.train, "val": self.val, "test": self.test}[name]

    @property
    def split_hashes(self) -> dict[str, str]:
        return {s: self.split(s).content_hash for s in ("train", "val", "test")}
