"""Image data sets given as class folders or as a labels CSV (seed 002: ISIC 2019).

Two layouts:

- class folders, `root/<class>/<image>` (torchvision's ImageFolder layout; images
  may sit in subfolders of a class folder): `load_class_folders`;
- a CSV of image ids with one-hot class columns, as ISIC 2019 ships its training
  ground truth (`ISIC_2019_Training_GroundTruth.csv`: `image,MEL,NV,BCC,AK,BKL,DF,VASC,SCC,UNK`
  with 1.0/0.0 values; images in a folder as `<image>.jpg`): `load_labels_csv`.

Images are resized to size x size ("squash" scales each axis, "center-crop" crops
the central square first) with 1 (grayscale) or 3 (RGB) channels and kept as uint8.
The split is stratified and seeded by hashed file names (medaug/data/splits.py):
`val_fraction` and `test_fraction` of every class, rounded per class, each class
keeping at least one training image. Seed 002 kept 30% for validation, stratified,
and reported on that split: the defaults (0.3, 0.0) reproduce it, leaving the test
split empty; a study that selects on validation and reports on test sets both.

Bad input (an empty class folder, a CSV row with no or two labels, a missing or
unreadable image) is a one-line MedaugError naming the file.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from medaug.data.imageio import IMAGE_EXTENSIONS, FITS, load_resized, map_threads, resampling
from medaug.data.imageset import DatasetSplits, ImageSet
from medaug.data.splits import check_fractions, file_list_hash, fraction_counts, stratified_indices
from medaug.errors import MedaugError

log = logging.getLogger(__name__)

#: ISIC 2019's diagnostic classes in its ground-truth column order (UNK has no training images).
ISIC2019_CLASSES = ("MEL", "NV", "BCC", "AK", "BKL", "DF", "VASC", "SCC", "UNK")
SEED002_VAL_FRACTION = 0.3


def _check_common(size: int, channels: int, fit: str, resample: str, seed: int, val_fraction: float,
                  test_fraction: float, where: str) -> None:
    if not isinstance(size, int) or isinstance(size, bool) or size < 1:
        raise MedaugError(f"{where}: size {size!r}; expected an integer >= 1")
    if channels not in (1, 3):
        raise MedaugError(f"{where}: channels {channels!r}; expected 1 or 3")
    if fit not in FITS:
        raise MedaugError(f"{where}: fit {fit!r}; expected one of {FITS}")
    resampling(resample)
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise MedaugError(f"{where}: seed {seed!r}; expected an integer >= 0")
    check_fractions(val_fraction, test_fraction, where)


def _build_splits(name: str, source: Path, keys: list[str], paths: list[Path], labels: np.ndarray,
                  class_names: tuple[str, ...], size: int, channels: int, fit: str, resample: str,
                  val_fraction: float, test_fraction: float, seed: int, workers: int | None,
                  info: dict[str, Any] | None = None) -> DatasetSplits:
    """Split by hashed keys, decode only then (a bad split request fails before any decoding)."""
    if len(class_names) < 2:
        raise MedaugError(f"{source}: {len(class_names)} class(es) {list(class_names)}; expected at least 2")
    counts = np.bincount(labels, minlength=len(class_names))
    n_val, n_test = fraction_counts(counts.tolist(), val_fraction, test_fraction, str(source))
    index = stratified_indices(keys, labels, len(class_names), n_val, n_test, seed)
    return assemble_splits(name, source, keys, paths, labels, class_names, index, size, channels, fit, resample,
                           workers, info)


def assemble_splits(name: str, source: Path, keys: list[str], paths: list[Path], labels: np.ndarray,
                    class_names: tuple[str, ...], index: dict[str, np.ndarray], size: int, channels: int, fit: str,
                    resample: str, workers: int | None, info: dict[str, Any] | None = None) -> DatasetSplits:
    """Decode the files once and cut them into the train/val/test rows of `index`.

    The version and md5 are the hash of the relative keys and byte sizes of all files."""
    images = np.stack(map_threads(lambda p: load_resized(p, size, channels, fit, resample), paths, workers))
    task = "binary-class" if len(class_names) == 2 else "multi-class"
    sets = {s: ImageSet(name=name, split=s, images=images[idx], labels=labels[idx], class_names=class_names, task=task)
            for s, idx in index.items()}
    digest = file_list_hash([k, p.stat().st_size] for k, p in sorted(zip(keys, paths)))
    return DatasetSplits(name=name, train=sets["train"], val=sets["val"], test=sets["test"],
                         version=f"files-{digest}", md5=digest, source=str(source), info=dict(info or {}))


def scan_class_folders(
    root: str | Path, classes: Sequence[str] | None = None, extensions: Sequence[str] = IMAGE_EXTENSIONS,
) -> tuple[tuple[str, ...], list[str], list[Path], np.ndarray]:
    """(class names, relative keys, paths, labels) of `root/<class>/**/<image>`, in sorted order.

    Classes are the sorted non-hidden subfolders, or `classes` in the given order.
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise MedaugError(f"{root}: image folder not found")
    found = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if classes is None:
        class_names = tuple(found)
    else:
        class_names = tuple(classes)
        missing = [c for c in class_names if c not in found]
        if missing:
            raise MedaugError(f"{root}: class folder(s) {missing} not found; found {found}")
    if not class_names:
        raise MedaugError(f"{root}: no class folders; expected root/<class>/<image>")
    exts = {e.lower() for e in extensions}
    keys: list[str] = []
    paths: list[Path] = []
    labels: list[int] = []
    for label, cls in enumerate(class_names):
        files = sorted(p for p in (root / cls).rglob("*")
                       if p.is_file() and p.suffix.lower() in exts
                       and not any(part.startswith(".") for part in p.relative_to(root).parts))
        if not files:
            raise MedaugError(f"{root / cls}: empty class folder (no {', '.join(sorted(exts))} images)")
        keys += [p.relative_to(root).as_posix() for p in files]
        paths += files
        labels += [label] * len(files)
    return class_names, keys, paths, np.array(labels, dtype=np.int64)


def load_class_folders(
    root: str | Path,
    size: int,
    channels: int = 3,
    *,
    val_fraction: float = SEED002_VAL_FRACTION,
    test_fraction: float = 0.0,
    seed: int = 0,
    name: str | None = None,
    classes: Sequence[str] | None = None,
    fit: str = "squash",
    resample: str = "bilinear",
    extensions: Sequence[str] = IMAGE_EXTENSIONS,
    workers: int | None = None,
) -> DatasetSplits:
    """Load `root/<class>/<image>` folders as stratified train/val/test ImageSets (uint8, size x size).

    Labels follow the sorted class folder names (or `classes`' order). The data set
    name defaults to the folder's name.
    """
    root = Path(root).expanduser()
    _check_common(size, channels, fit, resample, seed, val_fraction, test_fraction, str(root))
    class_names, keys, paths, labels = scan_class_folders(root, classes, extensions)
    return _build_splits(name or root.name, root, keys, paths, labels, class_names, size, channels, fit, resample,
                         val_fraction, test_fraction, seed, workers)


def _one_hot_value(text: str, where: str, column: str) -> int:
    try:
        value = float(text)
    except ValueError:
        raise MedaugError(f"{where}: column {column} = {text!r}; expected 0 or 1") from None
    if value not in (0.0, 1.0):
        raise MedaugError(f"{where}: column {column} = {text!r}; expected 0 or 1")
    return int(value)


def read_labels_csv(csv_path: str | Path, image_column: str = "image",
                    label_columns: Sequence[str] | None = None) -> tuple[list[str], np.ndarray, tuple[str, ...]]:
    """(image ids, int labels, label column names) of a one-hot labels CSV (ISIC 2019 ground truth).

    Label columns are every column but `image_column` unless given. Each row must
    set exactly one of them to 1 (ISIC writes 1.0/0.0).
    """
    csv_path = Path(csv_path).expanduser()
    if not csv_path.is_file():
        raise MedaugError(f"{csv_path}: labels CSV not found")
    with open(csv_path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        header = list(reader.fieldnames or [])
        if image_column not in header:
            raise MedaugError(f"{csv_path}: no {image_column!r} column; header is {header}")
        columns = tuple(label_columns) if label_columns is not None else tuple(h for h in header if h != image_column)
        missing = [c for c in columns if c not in header]
        if missing or len(columns) < 2:
            raise MedaugError(f"{csv_path}: label columns {list(columns)} (missing {missing}); "
                              f"expected >= 2 of {header}")
        ids: list[str] = []
        labels: list[int] = []
        seen: set[str] = set()
        for line, row in enumerate(reader, start=2):
            image = (row.get(image_column) or "").strip()
            where = f"{csv_path}: line {line} (image {image!r})"
            if not image:
                raise MedaugError(f"{where}: empty {image_column} value")
            if image in seen:
                raise MedaugError(f"{where}: image listed twice")
            seen.add(image)
            values = [_one_hot_value((row.get(c) or "").strip(), where, c) for c in columns]
            if sum(values) != 1:
                set_cols = [c for c, v in zip(columns, values) if v]
                raise MedaugError(f"{where}: {len(set_cols)} labels set {set_cols}; "
                                  f"expected exactly one of {list(columns)}")
            ids.append(image)
            labels.append(values.index(1))
    if not ids:
        raise MedaugError(f"{csv_path}: no rows")
    return ids, np.array(labels, dtype=np.int64), columns


def load_labels_csv(
    csv_path: str | Path,
    image_dir: str | Path,
    size: int,
    channels: int = 3,
    *,
    image_column: str = "image",
    label_columns: Sequence[str] | None = None,
    classes: Sequence[str] | None = None,
    image_ext: str = ".jpg",
    val_fraction: float = SEED002_VAL_FRACTION,
    test_fraction: float = 0.0,
    seed: int = 0,
    name: str | None = None,
    fit: str = "squash",
    resample: str = "bilinear",
    workers: int | None = None,
) -> DatasetSplits:
    """Load images listed in a one-hot labels CSV (ISIC 2019) from `image_dir/<image><image_ext>`.

    Every row is validated (exactly one label) before anything is decoded. `classes`
    keeps only images of those label columns, in that order; otherwise all label
    columns with at least one image are used: ISIC 2019's UNK column is empty in the
    training ground truth, so its 9 columns make an 8-class task. A column dropped for
    having no images is a warning in the log, and every dropped column is recorded in
    the returned splits' `info` (`labels_csv_info`), which the `isic2019` source writes
    into the result row's `data_provenance`. The data set name defaults to the CSV's
    file stem.
    """
    csv_path = Path(csv_path).expanduser()
    image_dir = Path(image_dir).expanduser()
    _check_common(size, channels, fit, resample, seed, val_fraction, test_fraction, str(csv_path))
    ids, labels, columns = read_labels_csv(csv_path, image_column, label_columns)
    counts = np.bincount(labels, minlength=len(columns))
    if classes is None:
        kept = tuple(c for c, n in zip(columns, counts) if n > 0)
        empty = [c for c, n in zip(columns, counts) if n == 0]
        if empty:
            log.warning("%s: label column(s) %s have no images and are dropped: a %d-class task %s",
                        csv_path, empty, len(kept), list(kept))
    else:
        kept = tuple(classes)
        bad = [c for c in kept if c not in columns]
        if bad:
            raise MedaugError(f"{csv_path}: classes {bad} are not label columns {list(columns)}")
        empty = [c for c in kept if counts[columns.index(c)] == 0]
        if empty:
            raise MedaugError(f"{csv_path}: classes {empty} have no images")
    remap = np.full(len(columns), -1, np.int64)
    for new, c in enumerate(kept):
        remap[columns.index(c)] = new
    new_labels = remap[labels]
    rows = np.flatnonzero(new_labels >= 0)
    if not image_dir.is_dir():
        raise MedaugError(f"{image_dir}: image folder not found")
    keys, paths = [], []
    for i in rows:
        image = ids[i]
        path = image_dir / (image if Path(image).suffix.lower() in IMAGE_EXTENSIONS else image + image_ext)
        if not path.is_file():
            raise MedaugError(f"{path}: image listed in {csv_path.name} not found")
        keys.append(image)
        paths.append(path)
    info = labels_csv_info(csv_path, columns, counts, kept)
    if classes is not None and info["dropped_classes"]:
        log.info("%s: classes %s chosen; label column(s) %s and their %d image(s) left out", csv_path, list(kept),
                 info["dropped_classes"], info["dropped_images"])
    return _build_splits(name or csv_path.stem, csv_path, keys, paths, new_labels[rows], kept, size, channels, fit,
                         resample, val_fraction, test_fraction, seed, workers, info)


def labels_csv_info(csv_path: Path, columns: Sequence[str], counts: np.ndarray,
                    kept: Sequence[str]) -> dict[str, Any]:
    """What a result row records of the classes a labels CSV became (JSON-able).

    `dropped_classes`: label columns that are not classes of the task (no images, or not
    among the chosen `classes`), in column order; `dropped_images`: the images they held;
    `label_counts`: images per label column as the CSV has them. The CSV's file name only,
    not its machine path.
    """
    per_column = {c: int(n) for c, n in zip(columns, counts)}
    dropped = [c for c in columns if c not in kept]
    return {"labels_csv": csv_path.name, "label_columns": list(columns), "classes": list(kept),
            "dropped_classes": dropped, "dropped_images": sum(per_column[c] for c in dropped),
            "label_counts": per_column}
