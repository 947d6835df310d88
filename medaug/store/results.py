"""Result rows as Parquet: one file per finished run under `OUT/results/`.

The schema is explicit (not inferred from the first row) so that every file of a
results folder has the same columns and types, and `pandas.read_parquet(folder)` or
DuckDB's `read_parquet('folder/**/*.parquet')` read the folder as one table.
`SCHEMA_VERSION` is stored in every row; readers migrate known older versions.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from medaug.errors import MedaugError
from medaug.store.atomic import atomic_write

SCHEMA_VERSION = 2  # 2: the recipe and its training fields, tta, epochs_trained
RESULTS_DIR = "results"

HISTORY_TYPE = pa.struct([
    ("epoch", pa.int32()),
    ("train_loss", pa.float64()),
    ("train_acc", pa.float64()),
    ("val_loss", pa.float64()),
    ("val_acc", pa.float64()),
    ("val_auc", pa.float64()),
    ("lr", pa.float64()),
    ("seconds", pa.float64()),
])

# (name, type, doc). Spec fields come first and mirror ExperimentSpec one to one.
COLUMNS: list[tuple[str, pa.DataType, str]] = [
    ("run_id", pa.string(), "stable id derived from the spec"),
    ("schema_version", pa.int32(), "version of this schema"),
    ("status", pa.string(), "finished | failed (raised past max_failures) | stopped (cut early by ASHA)"),
    ("error", pa.string(), "error message of a failed run"),
    # --- the spec ---
    ("dataset", pa.string(), ""),
    ("size", pa.int32(), "image side in pixels"),
    ("classifier", pa.string(), ""),
    ("augmentation", pa.string(), ""),
    ("wrs", pa.bool_(), "weighted random sampling"),
    ("synthetic", pa.string(), "STORE.zarr#GROUP or null"),
    ("optimizer", pa.string(), ""),
    ("lr", pa.float64(), ""),
    ("momentum", pa.float64(), ""),
    ("weight_decay", pa.float64(), ""),
    ("schedule", pa.string(), ""),
    ("milestones", pa.list_(pa.float64()), "fractions of epochs (multistep)"),
    ("epochs", pa.int32(), ""),
    ("batch_size", pa.int32(), ""),
    ("seed", pa.int64(), ""),
    ("select_metric", pa.string(), "acc | auc: how the best epoch is chosen"),
    ("freeze_epochs", pa.int32(), "epochs with a frozen backbone (transfer classifiers)"),
    ("pretrained", pa.bool_(), "transfer classifiers: true = ImageNet weights required, false = random init, "
                               "null = weights when configured"),
    ("recipe", pa.string(), "training preset the spec was expanded from (medaug/train/recipes.py)"),
    ("nesterov", pa.bool_(), "Nesterov momentum (SGD)"),
    ("label_smoothing", pa.float64(), ""),
    ("ema", pa.float64(), "per-step decay of the evaluated weight EMA; 0: no EMA"),
    ("warmup", pa.float64(), "fraction of the optimiser steps with a linear lr warm-up"),
    ("min_steps", pa.int64(), "fewest optimiser steps: more epochs than `epochs` when needed"),
    ("translate", pa.float64(), "a recipe's random translation of training images, fraction of the side"),
    ("tta", pa.string(), "test-time augmentation of val and test: none | flip | shift | flip-shift"),
    ("data_options", pa.string(), ("the data source's options, canonical JSON (COVID: test_per_class, "
                                   "val_fraction, split_seed); null for sources without options (MedMNIST)")),
    ("spec_json", pa.string(), "the whole spec, canonical JSON"),
    # --- data ---
    ("task", pa.string(), "medmnist task type"),
    ("class_names", pa.list_(pa.string()), ""),
    ("n_train", pa.int64(), "real training images"),
    ("n_synthetic", pa.int64(), "synthetic images mixed in"),
    ("dataset_version", pa.string(), ""),
    ("dataset_md5", pa.string(), ""),
    ("train_hash", pa.string(), "content hash of the train split"),
    ("val_hash", pa.string(), ""),
    ("test_hash", pa.string(), ""),
    ("test_files", pa.list_(pa.string()), "held-out test files, for file-based data sets (COVID)"),
    ("n_skipped", pa.int64(), "source images skipped (e.g. missing lung mask)"),
    ("data_provenance", pa.string(), ("JSON: how a file-based source made its splits (COVID: classes, test/val "
                                      "counts per class, split seed, skipped files, source file-list hash)")),
    ("synthetic_id", pa.string(), "content hash of the synthetic set"),
    ("classifier_weights", pa.string(), "file name and sha256 prefix of the ImageNet weights the classifier "
                                        "started from; null: random initialisation"),
    ("synthetic_provenance", pa.string(), "JSON provenance of the synthetic set"),
    # --- metrics of the selected (best-validation) weights ---
    ("recipe_version", pa.int32(), "version of the recipe's values"),
    ("epochs_trained", pa.int32(), "epochs run: `epochs`, or more to reach `min_steps`"),
    ("best_epoch", pa.int32(), "1-based epoch whose weights were tested"),
    ("val_acc", pa.float64(), ""),
    ("val_auc", pa.float64(), ""),
    ("test_acc", pa.float64(), "MedMNIST ACC"),
    ("test_auc", pa.float64(), "MedMNIST AUC"),
    ("test_balanced_acc", pa.float64(), ""),
    ("test_macro_f1", pa.float64(), ""),
    ("test_precision", pa.list_(pa.float64()), "per class"),
    ("test_recall", pa.list_(pa.float64()), "per class (TPR)"),
    ("test_f1", pa.list_(pa.float64()), "per class"),
    ("test_support", pa.list_(pa.int64()), "per class"),
    ("test_confusion", pa.list_(pa.list_(pa.int64())), "rows true, cols predicted; multi-label: [tn, fp, fn, tp] per label"),
    ("history", pa.list_(HISTORY_TYPE), "one entry per epoch"),
    # --- run facts ---
    ("wall_seconds", pa.float64(), ""),
    ("train_images_per_s", pa.float64(), "training throughput, excluding evaluation"),
    ("device", pa.string(), ""),
    ("world_size", pa.int32(), "DDP processes"),
    ("medaug_version", pa.string(), ""),
    ("torch_version", pa.string(), ""),
    ("medmnist_version", pa.string(), ""),
    ("git_commit", pa.string(), ""),
    ("hostname", pa.string(), ""),
    ("started_at", pa.timestamp("us", tz="UTC"), ""),
    ("finished_at", pa.timestamp("us", tz="UTC"), ""),
    # --- where it ran (filled by the sweep layer) ---
    ("executor", pa.string(), "direct | local | slurm"),
    ("study", pa.string(), ""),
    ("trial_id", pa.string(), ""),
    ("slurm_job_id", pa.string(), ""),
    ("slurm_nodes", pa.string(), ""),
    ("slurm_state", pa.string(), ""),
    ("requeues", pa.int32(), ""),
]

#: Columns holding JSON text; a mapping given for one is written as canonical JSON (empty: null).
JSON_COLUMNS = ("data_options",)

SCHEMA = pa.schema([pa.field(name, typ, metadata={"doc": doc} if doc else None) for name, typ, doc in COLUMNS])
COLUMN_NAMES = tuple(name for name, _, _ in COLUMNS)


def result_path(out_dir: str | Path, run_id: str) -> Path:
    return Path(out_dir) / RESULTS_DIR / f"{run_id}.parquet"


def write_row(row: dict[str, Any], out_dir: str | Path) -> Path:
    """Write one row as `OUT/results/<run_id>.parquet`, whole or not at all."""
    unknown = set(row) - set(COLUMN_NAMES)
    if unknown:
        raise ValueError(f"result row has columns not in the schema: {sorted(unknown)}")
    full = {name: row.get(name) for name in COLUMN_NAMES}
    for name in JSON_COLUMNS:
        if isinstance(full[name], dict):
            full[name] = json.dumps(full[name], sort_keys=True, separators=(",", ":")) if full[name] else None
    full["schema_version"] = SCHEMA_VERSION
    table = pa.Table.from_pylist([full], schema=SCHEMA)
    path = result_path(out_dir, row["run_id"])
    atomic_write(path, lambda tmp: pq.write_table(table, tmp))
    return path


def read_results(folder: str | Path):
    """All rows of one result file, a results folder, or an OUT folder holding `results/`, as a DataFrame."""
    import pandas as pd

    folder = Path(folder)
    if (folder / RESULTS_DIR).is_dir():
        folder = folder / RESULTS_DIR
    if folder.is_file():
        files = [folder]
    else:
        files = sorted(folder.rglob("*.parquet")) if folder.is_dir() else []
    if not files:
        raise MedaugError(f"{folder}: no result files (*.parquet) found")
    return pd.read_parquet(files, schema=SCHEMA) if len(files) > 1 else pd.read_parquet(files[0])
