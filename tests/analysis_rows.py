"""Result rows with known values for the analysis tests (written with `medaug.store.results.write_row`).

Not a test module: imported by tests/test_analysis_*.py and test_report_browser.py.
"""

from __future__ import annotations

import json
import zlib
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from medaug.store.results import write_row
from medaug.train.recipes import RECIPES

CLASS_NAMES = {
    "breastmnist": ["malignant", "normal, benign"],
    "pneumoniamnist": ["normal", "pneumonia"],
    "dermamnist": ["akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"],
}


def make_row(dataset: str = "breastmnist", *, augmentation: str = "none", wrs: bool = False,
             generator: str | None = None, strategy: str = "inverse-scarcity", seed: int = 0, acc: float = 0.8,
             auc: float = 0.85, status: str = "finished", classifier: str | None = None, size: int = 28,
             confusion: list[list[int]] | None = None, f1: list[float] | None = None,
             precision: list[float] | None = None, recall: list[float] | None = None,
             error: str | None = None, epochs: int = 3, study: str = "test-study", recipe: str = "seed000",
             tta: str = "none", data_options: dict | None = None, dataset_md5: str | None = None) -> dict:
    """A complete, plausible result row; the metric arguments are the known values. The training
    fields are the recipe's (the classifier too, unless given), except `epochs`. `data_options`
    and `dataset_md5` (default `md5-<dataset>`) say which data of a source the row saw (a
    class-folder tree, COVID's options); rows given options get their own run ids."""
    fields = {**RECIPES[recipe].fields, "epochs": epochs}
    classifier = classifier or fields["classifier"]
    names = CLASS_NAMES.get(dataset, ["a", "b", "c"])
    k = len(names)
    synthetic = provenance = None
    if generator is not None:
        synthetic = f"/tmp/none/{generator}.zarr#{dataset}-s{seed}"
        provenance = json.dumps({"generator": generator, "strategy": strategy, "seed": seed})
    key = (f"{dataset}-{size}-{classifier}-{augmentation}-{'wrs' if wrs else 'nowrs'}-{generator or 'real'}-s{seed}"
           + ("" if recipe == "seed000" else f"-{recipe}") + ("" if tta == "none" else f"-tta-{tta}")
           + ("" if data_options is None else f"-{zlib.crc32(json.dumps(data_options, sort_keys=True).encode()):08x}")
           + ("" if dataset_md5 is None else f"-{dataset_md5}"))
    if confusion is None:
        confusion = (np.eye(k, dtype=int) * 10 + 1).tolist()
    rng = np.random.default_rng(zlib.crc32(key.encode()))
    spec = {"dataset": dataset, "size": size, "classifier": classifier, "augmentation": augmentation, "wrs": wrs,
            "synthetic": synthetic, "seed": seed, "epochs": epochs}
    history = [{"epoch": e + 1, "train_loss": 1.0 / (e + 1), "train_acc": 0.5 + 0.1 * e, "val_loss": 1.1 / (e + 1),
                "val_acc": acc - 0.02 * (epochs - 1 - e), "val_auc": auc - 0.01 * (epochs - 1 - e), "lr": 1e-3,
                "seconds": 1.0} for e in range(epochs)]
    finished = status == "finished"
    now = datetime(2026, 11, 1, tzinfo=timezone.utc)
    return {
        "run_id": key, "status": status, "error": error,
        "dataset": dataset, "size": size, "classifier": classifier, "augmentation": augmentation, "wrs": wrs,
        "synthetic": synthetic, **{k: v for k, v in fields.items() if k != "classifier"},
        "milestones": list(fields["milestones"]), "seed": seed, "recipe": recipe, "recipe_version": 1, "tta": tta,
        "epochs_trained": epochs, "spec_json": json.dumps(spec, sort_keys=True),
        "task": "binary-class" if k == 2 else "multi-class", "class_names": names, "n_train": 546,
        "n_synthetic": 54 if generator else 0, "dataset_version": "3.0",
        "dataset_md5": f"md5-{dataset}" if dataset_md5 is None else dataset_md5,
        "data_options": None if data_options is None else json.dumps(data_options, sort_keys=True),
        "train_hash": "th", "val_hash": "vh", "test_hash": "teh",
        "synthetic_id": "sid" if generator else None, "synthetic_provenance": provenance,
        "best_epoch": epochs if finished else None,
        "val_acc": acc if finished else None, "val_auc": auc if finished else None,
        "test_acc": acc if finished else None, "test_auc": auc if finished else None,
        "test_balanced_acc": acc if finished else None, "test_macro_f1": acc if finished else None,
        "test_precision": (precision or list(rng.uniform(0.3, 0.9, k))) if finished else None,
        "test_recall": (recall or list(rng.uniform(0.3, 0.9, k))) if finished else None,
        "test_f1": (f1 or list(rng.uniform(0.3, 0.9, k))) if finished else None,
        "test_support": [20 + 10 * i for i in range(k)],
        "test_confusion": confusion if finished else None,
        "history": history if finished else None,
        "wall_seconds": 12.5, "train_images_per_s": 1500.0, "device": "cpu", "world_size": 1,
        "medaug_version": "0.1.0", "torch_version": "2.14.1", "medmnist_version": "3.0.2", "git_commit": "abc123",
        "hostname": "test", "started_at": now, "finished_at": now, "executor": "direct", "study": study,
    }


def write_rows(out: Path, rows: list[dict]) -> Path:
    for r in rows:
        write_row(r, out)
    return out


# Known per-seed ACC values for a small "study": breastmnist, 4 configs x 3 seeds + 2 generators.
KNOWN_ACC = {
    # (augmentation, wrs, generator): [seed0, seed1, seed2]
    ("none", False, None): [0.80, 0.82, 0.81],
    ("none", True, None): [0.84, 0.87, 0.85],
    ("sharpness-contrast-flip", False, None): [0.79, 0.83, 0.78],
    ("sharpness-contrast-flip", True, None): [0.86, 0.90, 0.89],
    ("none", False, "cvae"): [0.83, 0.84, 0.86],
    ("none", False, "cgan"): [0.81, 0.80, 0.83],
}


def known_study(out: Path, datasets: tuple[str, ...] = ("breastmnist",)) -> Path:
    rows = []
    for dataset in datasets:
        for (aug, wrs, gen), accs in KNOWN_ACC.items():
            for seed, acc in enumerate(accs):
                rows.append(make_row(dataset, augmentation=aug, wrs=wrs, generator=gen, seed=seed, acc=acc,
                                     auc=acc + 0.05, confusion=[[30 + seed, 12], [8, 106 - seed]]))
    return write_rows(out, rows)


def write_synthetic_store(store: Path, group: str, *, classes: int = 2, per_class: int = 5, channels: int = 1,
                          size: int = 8, class_names: list[str] | None = None, generator: str = "cvae") -> str:
    """A Zarr v3 synthetic set as issue 4 describes it (images N x C x H x W uint8, labels, attributes)."""
    import zarr

    rng = np.random.default_rng(0)
    n = classes * per_class
    images = rng.integers(0, 255, size=(n, channels, size, size), dtype=np.uint8)
    labels = np.repeat(np.arange(classes), per_class).astype(np.int64)
    root = zarr.open_group(str(store), mode="a")
    g = root.create_group(group)
    g.create_array("images", data=images)
    g.create_array("labels", data=labels)
    g.attrs.update({"generator": generator, "strategy": "inverse-scarcity", "complete": True,
                    "class_names": class_names or [f"class{k}" for k in range(classes)]})
    return f"{store}#{group}"


def write_generator_eval(out: Path, rows: list[dict]) -> Path:
    """Generator-evaluation rows as OUT/generator-eval/<i>.parquet (the columns issue 4 names, as given)."""
    import pandas as pd

    folder = out / "generator-eval"
    folder.mkdir(parents=True, exist_ok=True)
    for i, r in enumerate(rows):
        pd.DataFrame([r]).to_parquet(folder / f"eval-{i}.parquet")
    return folder


def write_loss_table(folder: Path, epochs: int = 5) -> Path:
    import pandas as pd

    folder.mkdir(parents=True, exist_ok=True)
    rows = [{"epoch": e, "step": e * 10 + s, "loss_g": 2.0 / (e + 1) + s * 0.01, "loss_d": 0.5 + 0.1 * e}
            for e in range(epochs) for s in range(3)]
    path = folder / "losses.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path
