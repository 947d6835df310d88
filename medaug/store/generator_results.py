"""Generator-evaluation rows as Parquet: one file per evaluation under `OUT/generator-eval/`.

Written by `medaug generator eval`; read by the analysis layer
(`medaug.analysis.load_generator_eval`) or any Parquet reader. The schema is explicit
so every file of the folder has the same columns and types.

Schema versions:
- 2 (current): the memorisation check (`medaug.generators.memorisation`): near-copy
  share in pixel and feature space, its train-to-train baseline, rule, k and the
  quantiles of the nearest-train distances; per-sample neighbours and the montage of
  the closest pairs sit beside the row in `generator-eval/memorisation/<eval_id>.json|png`.
- 1: before the memorisation check. `read_eval_rows` reads it with the new columns null.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from medaug.errors import MedaugError
from medaug.store.atomic import atomic_write

SCHEMA_VERSION = 2
GENERATOR_EVAL_DIR = "generator-eval"

# (name, type, doc)
COLUMNS: list[tuple[str, pa.DataType, str]] = [
    ("eval_id", pa.string(), "stable id of the evaluation (file name)"),
    ("schema_version", pa.int32(), "version of this schema"),
    ("generator", pa.string(), "registered generator name"),
    ("dataset", pa.string(), ""),
    ("size", pa.int32(), "image side in pixels"),
    ("checkpoint", pa.string(), "checkpoint folder evaluated"),
    ("checkpoint_hash", pa.string(), "sha256 (16 hex) of generator.json, which names the sha256 of state.pt"),
    ("train_hash", pa.string(), "content hash of the train split the generator was trained on"),
    ("extractor", pa.string(), "feature extractor: classifier:<name> or inception-v3"),
    ("extractor_hash", pa.string(), "digest of the extractor's weights"),
    ("n", pa.int64(), "images per side in FID/KID/PR/DC (generated, real train, real test)"),
    ("fid", pa.float64(), "FID generated vs real train"),
    ("fid_floor", pa.float64(), "FID real test vs real train (same extractor, same n)"),
    ("kid_mean", pa.float64(), ""),
    ("kid_std", pa.float64(), ""),
    ("kid_floor_mean", pa.float64(), "KID real test vs real train"),
    ("precision", pa.float64(), "improved precision, k=3 (Kynkaanniemi 2019)"),
    ("recall", pa.float64(), "improved recall, k=3"),
    ("density", pa.float64(), "density, k=5 (Naeem 2020)"),
    ("coverage", pa.float64(), "coverage, k=5"),
    ("rmse", pa.float64(), "mean RMSE to the nearest real train image, pixels in [0, 1] (seed 003)"),
    ("psnr", pa.float64(), "mean PSNR (dB) to the nearest real image"),
    ("sre", pa.float64(), "mean SRE (dB) to the nearest real image"),
    ("sam", pa.float64(), "mean SAM (degrees) to the nearest real image; 1 channel: whole-image angle"),
    ("confidence_per_class", pa.list_(pa.float64()), "mean classifier probability of the intended class (seed 001)"),
    ("mean_confidence", pa.float64(), "mean over all generated images"),
    ("tstr_acc", pa.float64(), "train on synthetic, test on real (seed 002 Table 4)"),
    ("tstr_auc", pa.float64(), ""),
    ("trtr_acc", pa.float64(), "train on real, test on real (same classifier spec)"),
    ("trtr_auc", pa.float64(), ""),
    ("tstr_balanced_acc", pa.float64(), "TSTR balanced accuracy (ACC alone rewards majority-class guessing)"),
    ("trtr_balanced_acc", pa.float64(), ""),
    ("near_copy_rule", pa.string(), "the near-copy rule, with where neighbours were searched (class or all)"),
    ("near_copy_k", pa.int32(), "k of the ratio test (lowered per class to the train images it has)"),
    ("near_copy_share_pixel", pa.float64(), "share of generated images that are near-copies, pixel space [-1, 1]"),
    ("near_copy_baseline_pixel", pa.float64(), "the same share for real train images against the rest of train"),
    ("near_copy_share_feature", pa.float64(), "share of near-copies in the FID extractor's feature space"),
    ("near_copy_baseline_feature", pa.float64(), "train-to-train baseline in feature space"),
    ("nn_distance_pixel_quantiles", pa.list_(pa.float64()),
     "quantiles 0, .01, .05, .25, .5 of each generated image's distance to its nearest train image (pixels)"),
    ("nn_distance_feature_quantiles", pa.list_(pa.float64()), "the same in feature space"),
    ("classifier_spec", pa.string(), "JSON of the ExperimentSpec of the reference/TSTR classifiers"),
    ("generated_by", pa.string(), "sample | reconstruct (generators that only reconstruct, e.g. jvae)"),
    ("seed", pa.int64(), "sampling seed"),
    ("versions", pa.string(), "JSON: medaug, torch, torchmetrics, zarr versions"),
    ("wall_seconds", pa.float64(), ""),
    ("device", pa.string(), ""),
    ("created_at", pa.timestamp("us", tz="UTC"), ""),
]

SCHEMA = pa.schema([pa.field(name, typ, metadata={"doc": doc} if doc else None) for name, typ, doc in COLUMNS])
COLUMN_NAMES = tuple(name for name, _, _ in COLUMNS)


def eval_path(out_dir: str | Path, eval_id: str) -> Path:
    return Path(out_dir) / GENERATOR_EVAL_DIR / f"{eval_id}.parquet"


def write_eval_row(row: dict[str, Any], out_dir: str | Path) -> Path:
    """Write one row as `OUT/generator-eval/<eval_id>.parquet`, whole or not at all."""
    unknown = set(row) - set(COLUMN_NAMES)
    if unknown:
        raise ValueError(f"generator-eval row has columns not in the schema: {sorted(unknown)}")
    if not row.get("eval_id"):
        raise ValueError("generator-eval row needs an eval_id")
    full = {name: row.get(name) for name in COLUMN_NAMES}
    full["schema_version"] = SCHEMA_VERSION
    table = pa.Table.from_pylist([full], schema=SCHEMA)
    path = eval_path(out_dir, row["eval_id"])
    atomic_write(path, lambda tmp: pq.write_table(table, tmp))
    return path


def read_eval_rows(folder: str | Path):
    """All generator-eval rows of a file, a `generator-eval` folder, or an OUT folder holding one."""
    import pandas as pd

    folder = Path(folder)
    if (folder / GENERATOR_EVAL_DIR).is_dir():
        folder = folder / GENERATOR_EVAL_DIR
    files = [folder] if folder.is_file() else sorted(folder.glob("*.parquet")) if folder.is_dir() else []
    if not files:
        raise MedaugError(f"{folder}: no generator-eval files (*.parquet) found")
    return pd.concat([pq.read_table(f, schema=SCHEMA).to_pandas() for f in files], ignore_index=True)
