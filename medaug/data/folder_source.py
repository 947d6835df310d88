"""The `folder` data set: the class-folder tree a user has, by name, for every command.

    medaug train --dataset folder --data-root /data/xrays --size 64 --out runs/x
    medaug train --dataset folder --data-root /data --data-option root=xrays --data-option channels=1 ...
    medaug generator fit --dataset folder --data-option root=/data/xrays --size 32 --generator cvae --out gens/c
    # a study:  base: {dataset: folder, size: 64, data_options: {root: xrays, channels: 1}}

`root` (data option, default ".") is the tree's folder: an absolute path, or a path
relative to the data root every source reads (`--data-root`, else $MEDAUG_DATA_ROOT,
else ~/.medmnist), so a study that says `root: xrays` runs on any machine holding
DATA/xrays, and `--data-root /data/xrays` alone names the tree.

Two layouts (torchvision's ImageFolder; images may sit in subfolders of a class folder;
hidden files and non-image files are not read):

- `root/<class>/<image>`: no split ships with the data. Each class of n images gives
  round(test_fraction x n) images to test and round(val_fraction x n) to val (halves
  up), drawn by the hashed-file-name rule of medaug/data/splits.py with `split_seed`, the
  split's own seed (a study's training seeds do not move its test set). Defaults 0.15 /
  0.15: 70/15/15.
  Every class must get at least one image in each of train, val and test: a class with
  fewer images than that needs is refused, naming its folder and the number it needs.
- `root/{train,val,test}/<class>/<image>`: the data's own split, used as it is. Without
  `val/`, `val_fraction` of each class of `train/` is drawn for validation by
  `split_seed`; `test_fraction` is not used. The split folders must hold the same classes.

Labels follow the sorted class folder names (at least 2 classes). Images are resized to
size x size (`fit`: "squash" scales each axis, "center-crop" crops the central square
first) with `channels` 1 (grayscale) or 3 (RGB, the default), and kept as uint8.

A result row records the options (`data_options`), the layout, classes, counts per split
and class, which splits were drawn and how, and the hash of the files' relative names and
byte sizes (`data_provenance`, `dataset_version`, `dataset_md5`), and the relative paths
of the test images (`test_files`).

Bad input is one line naming the path: no such folder, no class folders, one class, an
empty class folder, an unreadable image, a class too small for the split, split folders
that disagree on their classes, `train/` without `test/`, other folders beside the split
folders.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from medaug.data.folders import assemble_splits, scan_class_folders
from medaug.data.imageset import DatasetSplits
from medaug.data.splits import fraction_counts, stratified_indices
from medaug.errors import MedaugError

NAME = "folder"
SPLIT_DIRS = ("train", "val", "test")
DEFAULT_VAL_FRACTION = 0.15
DEFAULT_TEST_FRACTION = 0.15
RESAMPLE = "bilinear"


@dataclass(frozen=True)
class FolderPlan:
    """What a load reads and where each file goes, decided before any image is decoded."""

    root: Path
    layout: str  # "class-folders" | "split-folders"
    class_names: tuple[str, ...]
    keys: list[str]  # paths relative to root, posix
    paths: list[Path]
    labels: np.ndarray
    index: dict[str, np.ndarray]  # split -> row indices
    drawn: tuple[str, ...]  # the splits drawn by split_seed (the others are the data's own folders)

    def counts(self) -> dict[str, dict[str, int]]:
        return {s: {c: int((self.labels[idx] == i).sum()) for i, c in enumerate(self.class_names)}
                for s, idx in self.index.items()}


def resolve_root(root: str, data_root: str | Path | None) -> Path:
    """The tree's folder: `root` itself when absolute, else under the data root."""
    from medaug.data.medmnist import default_root

    path = Path(root).expanduser()
    if path.is_absolute():
        return path
    base = Path(data_root).expanduser() if data_root is not None else default_root()
    return base / path


def min_class_images(val_fraction: float, test_fraction: float) -> int:
    """The fewest images a class needs so that round-half-up fractions give it >= 1 val,
    >= 1 test (where the fraction is > 0) and >= 1 train image."""
    need = [0.5 / f for f in (val_fraction, test_fraction) if f > 0]
    n = max(1, math.floor(max(need, default=1.0)) - 1)
    while True:
        (v,), (t,) = fraction_counts([n], val_fraction, test_fraction)
        if (v >= 1 or val_fraction == 0) and (t >= 1 or test_fraction == 0) and n - v - t >= 1:
            return n
        n += 1


def _subfolders(path: Path) -> list[str]:
    return sorted(p.name for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))


def _check_class_sizes(where: Path, class_names: tuple[str, ...], labels: np.ndarray, val_fraction: float,
                       test_fraction: float) -> tuple[list[int], list[int]]:
    """Per-class (val, test) counts; a class that would lack a val, test or train image is refused."""
    counts = np.bincount(labels, minlength=len(class_names)).tolist()
    n_val, n_test = fraction_counts(counts, val_fraction, test_fraction, str(where))
    need = min_class_images(val_fraction, test_fraction)
    for cls, n, v, t in zip(class_names, counts, n_val, n_test):
        if (val_fraction > 0 and v < 1) or (test_fraction > 0 and t < 1) or n - v - t < 1:
            parts = [f"val_fraction {val_fraction:g}"] + ([f"test_fraction {test_fraction:g}"] if test_fraction else [])
            raise MedaugError(f"{where / cls}: {n} image(s), too few for the split ({', '.join(parts)}): a class "
                              f"needs at least {need} to have a train, val{' and test' if test_fraction else ''} "
                              "image; add images or raise the fractions")
    return n_val, n_test


def plan_folder(root: Path, *, val_fraction: float = DEFAULT_VAL_FRACTION,
                test_fraction: float = DEFAULT_TEST_FRACTION, split_seed: int = 0) -> FolderPlan:
    """Scan `root` (either layout) and decide the split; reads no image."""
    if not root.is_dir():
        raise MedaugError(f"{root}: image folder not found (data set {NAME!r}: root/<class>/<image> or "
                          "root/{train,val,test}/<class>/<image>)")
    found = _subfolders(root)
    splits_here = [d for d in SPLIT_DIRS if d in found]
    if not splits_here:
        return _plan_class_folders(root, found, val_fraction, test_fraction, split_seed)
    other = [d for d in found if d not in SPLIT_DIRS]
    if other:
        raise MedaugError(f"{root}: folders {other} beside the split folders {splits_here}; expected either "
                          "root/<class>/<image> or only root/{train,val,test}/<class>/<image>")
    if "train" not in splits_here or "test" not in splits_here:
        absent = [d for d in ("train", "test") if d not in splits_here]
        raise MedaugError(f"{root}: split folder(s) {absent} missing beside {splits_here}; a split layout needs "
                          "train/ and test/ (val/ is drawn from train/ when absent)")
    return _plan_split_folders(root, splits_here, val_fraction, split_seed)


def _plan_class_folders(root: Path, found: list[str], val_fraction: float, test_fraction: float,
                        split_seed: int) -> FolderPlan:
    if not found:
        raise MedaugError(f"{root}: no class folders; expected root/<class>/<image> "
                          "or root/{train,val,test}/<class>/<image>")
    class_names, keys, paths, labels = scan_class_folders(root)
    if len(class_names) < 2:
        raise MedaugError(f"{root}: 1 class folder {list(class_names)}; expected at least 2")
    if val_fraction <= 0 or test_fraction <= 0:
        raise MedaugError(f"{root}: no train/val/test folders, so val and test are drawn from each class: "
                          f"val_fraction {val_fraction:g} and test_fraction {test_fraction:g} must both be > 0")
    n_val, n_test = _check_class_sizes(root, class_names, labels, val_fraction, test_fraction)
    index = stratified_indices(keys, labels, len(class_names), n_val, n_test, split_seed)
    return FolderPlan(root, "class-folders", class_names, keys, paths, labels, index, ("val", "test"))


def _plan_split_folders(root: Path, present: list[str], val_fraction: float, split_seed: int) -> FolderPlan:
    scanned = {s: scan_class_folders(root / s) for s in present}
    class_names = scanned["train"][0]
    if len(class_names) < 2:
        raise MedaugError(f"{root / 'train'}: 1 class folder {list(class_names)}; expected at least 2")
    for s in present:
        if scanned[s][0] != class_names:
            raise MedaugError(f"{root / s}: class folders {list(scanned[s][0])} differ from "
                              f"{root / 'train'}'s {list(class_names)}")
    keys: list[str] = []
    paths: list[Path] = []
    labels: list[np.ndarray] = []
    rows: dict[str, np.ndarray] = {}
    for s in present:
        _, k, p, y = scanned[s]
        rows[s] = np.arange(len(keys), len(keys) + len(k))
        keys += [f"{s}/{key}" for key in k]
        paths += p
        labels.append(y)
    label_arr = np.concatenate(labels)
    drawn: tuple[str, ...] = ()
    index = {"test": rows["test"]}
    if "val" in rows:
        index["train"], index["val"] = rows["train"], rows["val"]
    else:
        if val_fraction <= 0:
            raise MedaugError(f"{root}: no val/ folder, so val is drawn from train/: val_fraction {val_fraction:g} "
                              "must be > 0")
        train_rows = rows["train"]
        train_labels = label_arr[train_rows]
        n_val, _ = _check_class_sizes(root / "train", class_names, train_labels, val_fraction, 0.0)
        part = stratified_indices([keys[i] for i in train_rows], train_labels, len(class_names), n_val,
                                  [0] * len(class_names), split_seed)
        index["train"], index["val"] = train_rows[part["train"]], train_rows[part["val"]]
        drawn = ("val",)
    return FolderPlan(root, "split-folders", class_names, keys, paths, label_arr,
                      {s: index[s] for s in SPLIT_DIRS}, drawn)


def load_folder(data_root: str | Path | None, size: int, options: Mapping[str, Any],
                workers: int | None = None) -> tuple[DatasetSplits, dict[str, Any]]:
    """The `folder` source: (splits, result-row facts) for options validated by
    medaug/data/sources.py (`FOLDER_OPTIONS`: root, channels, fit, val_fraction, test_fraction, split_seed)."""
    import json

    root = resolve_root(options["root"], data_root)
    plan = plan_folder(root, val_fraction=options["val_fraction"], test_fraction=options["test_fraction"],
                       split_seed=options["split_seed"])
    provenance = {
        "layout": plan.layout, "root": options["root"], "classes": list(plan.class_names), "size": size,
        "channels": options["channels"], "fit": options["fit"], "resample": RESAMPLE,
        "drawn": list(plan.drawn), "split_seed": options["split_seed"] if plan.drawn else None,
        "val_fraction": options["val_fraction"] if "val" in plan.drawn else None,
        "test_fraction": options["test_fraction"] if "test" in plan.drawn else None,
        "counts": plan.counts(),
    }
    splits = assemble_splits(NAME, root, plan.keys, plan.paths, plan.labels, plan.class_names, plan.index, size,
                             options["channels"], options["fit"], RESAMPLE, workers, provenance)
    provenance["file_list_hash"] = splits.md5
    facts = {"test_files": [plan.keys[i] for i in plan.index["test"]],
             "data_provenance": json.dumps(provenance, sort_keys=True)}
    return splits, facts


def folder_problem(options: Mapping[str, Any], data_root: str | Path | None) -> str | None:
    """What a `sweep --dry-run` says of a folder cell's data without decoding it: None when
    the tree is there and splits as asked, else the one-line reason."""
    try:
        plan_folder(resolve_root(options["root"], data_root), val_fraction=options["val_fraction"],
                    test_fraction=options["test_fraction"], split_seed=options["split_seed"])
    except MedaugError as exc:
        return f"folder data: {exc}"
    return None
