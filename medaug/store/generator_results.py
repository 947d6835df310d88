"""Generator-evaluation rows as Parquet: one file per evaluation under `OUT/generator-eval/`.

Written by `medaug generator eval`; read by the analysis layer
(`medaug.analysis.load_generator_eval`) or any Parquet reader. The schema is explicit
so every file of the folder has the same columns and types.

Schema versions:
- 4 (current): generator studies (`medaug.sweep.generator_study`): the study, trial id,
  status (finished, or stopped by ASHA / failed, with its error and no metrics), the
  generator's full config, the fit's epochs, the epoch it resumed from, its seconds and
  per-epoch history, and where it ran. Null for a plain `medaug generator eval` row.
- 3: the discriminating protocol of issue 12: the extractor's classifier spec
  and cache-file hash, class names, per-class FID and its floor, per-class TSTR/TRTR
  recall, the reference recipe (`fast` by default) and the sampler's options.
- 2: the memorisation check (`medaug.generators.memorisation`): near-copy
  share in pixel and feature space, its train-to-train baseline, rule, k and the
  quantiles of the nearest-train distances; per-sample neighbours and the montage of
  the closest pairs sit beside the row in `generator-eval/memorisation/<eval_id>.json|png`.
- 1: before the memorisation check.
`read_eval_rows` reads versions 1 and 2 with the later columns null, except `recipe`:
every row before version 3 trained its classifiers by seed 000's protocol, so it reads
`seed000`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from medaug.errors import MedaugError
from medaug.store.atomic import atomic_write

SCHEMA_VERSION = 5
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
    ("extractor", pa.string(), ("feature extractor: fast:fastnet (default), classifier:<name> (seed 000's "
                                "protocol) or inception-v3")),
    ("extractor_hash", pa.string(), "digest of the extractor's weights"),
    ("extractor_checkpoint_hash", pa.string(), "sha256 (16 hex) of the extractor classifier's cached checkpoint"),
    ("extractor_spec", pa.string(), "JSON of the ExperimentSpec of the extractor classifier (null: Inception)"),
    ("class_names", pa.list_(pa.string()), "class names, in the order of the per-class lists"),
    ("n", pa.int64(), "images per side in FID/KID/PR/DC (generated, real train, real test)"),
    ("fid", pa.float64(), "FID generated vs real train"),
    ("fid_floor", pa.float64(), "FID real test vs real train (same extractor, same n)"),
    ("fid_per_class", pa.list_(pa.float64()),
     "per class k: FID of the samples asked for k vs the real train images of k (NaN: < 2 a side)"),
    ("fid_floor_per_class", pa.list_(pa.float64()), "per class: FID real test vs real train of that class"),
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
    ("tstr_n", pa.int64(), ("images TSTR and TRTR trained on: |train|, or fewer with --tstr-n (TRTR then on the "
                            "same number of real train images); null: no TSTR or a row before schema 5")),
    ("near_copy_rule", pa.string(), "the near-copy rule, with where neighbours were searched (class or all)"),
    ("near_copy_k", pa.int32(), "k of the ratio test (lowered per class to the train images it has)"),
    ("near_copy_share_pixel", pa.float64(), "share of generated images that are near-copies, pixel space [-1, 1]"),
    ("near_copy_baseline_pixel", pa.float64(), "the same share for real train images against the rest of train"),
    ("near_copy_share_feature", pa.float64(), "share of near-copies in the FID extractor's feature space"),
    ("near_copy_baseline_feature", pa.float64(), "train-to-train baseline in feature space"),
    ("nn_distance_pixel_quantiles", pa.list_(pa.float64()),
     "quantiles 0, .01, .05, .25, .5 of each generated image's distance to its nearest train image (pixels)"),
    ("nn_distance_feature_quantiles", pa.list_(pa.float64()), "the same in feature space"),
    ("tstr_recall_per_class", pa.list_(pa.float64()), "TSTR recall of each class (0: the generator dropped it)"),
    ("trtr_recall_per_class", pa.list_(pa.float64()), "TRTR recall of each class"),
    ("recipe", pa.string(), "recipe of the reference (TRTR, TSTR, confidence) classifier: fast or seed000"),
    ("classifier_spec", pa.string(), "JSON of the ExperimentSpec of the reference/TSTR classifiers"),
    ("sampling", pa.string(), "JSON: the sampler's options and provenance (edm), null for other generators"),
    ("generated_by", pa.string(), "sample | reconstruct (generators that only reconstruct, e.g. jvae)"),
    ("seed", pa.int64(), "sampling seed"),
    ("versions", pa.string(), "JSON: medaug, torch, torchmetrics, zarr versions"),
    ("wall_seconds", pa.float64(), ""),
    ("device", pa.string(), ""),
    ("created_at", pa.timestamp("us", tz="UTC"), ""),
    ("study", pa.string(), "generator study (or classifier study's --make-synthetic) that wrote the row"),
    ("trial_id", pa.string(), "a generator study's trial: stable id of (data, generator, config, eval options)"),
    ("status", pa.string(), "finished | stopped (ASHA) | failed; null: a plain `generator eval` row (finished)"),
    ("error", pa.string(), "why a trial failed"),
    ("executor", pa.string(), "local | slurm"),
    ("generator_config", pa.string(), "JSON: the generator's full config (defaults filled in)"),
    ("fit_epochs", pa.int64(), "epochs the generator was trained"),
    ("fit_resumed_from", pa.int64(), "epoch the fit that finished it resumed from (0: one uninterrupted fit)"),
    ("fit_seconds", pa.float64(), "seconds of the fit that finished it"),
    ("fit_history", pa.string(), "JSON list: each epoch's losses and validation metric (val_fd, val_loss)"),
    ("slurm_job_id", pa.string(), ""),
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
    return pd.concat([migrate(pq.read_table(f, schema=SCHEMA).to_pandas()) for f in files], ignore_index=True)


def migrate(df):
    """Rows of versions 1 and 2 read under today's schema: their classifiers were seed 000's protocol."""
    old = df["schema_version"].fillna(0) < 3
    df.loc[old & df["recipe"].isna(), "recipe"] = "seed000"
    return df
