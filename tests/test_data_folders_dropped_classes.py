"""A labels CSV whose columns do not all become classes says so (issue 10): a warning line in
the log, the dropped columns in the loaded splits' `info`, and, for `isic2019`, in the result
row's `data_provenance`. Before, a 9-column CSV silently became a 3-class task."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
from test_data_folders import make_isic

from medaug.data.folders import ISIC2019_CLASSES, load_labels_csv

WITHOUT_IMAGES = ["BCC", "AK", "BKL", "VASC", "SCC", "UNK"]  # make_isic fills MEL, NV and DF only


def test_columns_without_images_are_a_warning_and_recorded(tmp_path: Path, caplog) -> None:
    csv_path, images = make_isic(tmp_path)
    with caplog.at_level(logging.WARNING, logger="medaug.data.folders"):
        data = load_labels_csv(csv_path, images, size=8)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "\n" not in warnings[0]
    assert str(WITHOUT_IMAGES) in warnings[0] and "a 3-class task ['MEL', 'NV', 'DF']" in warnings[0]
    assert data.train.class_names == ("MEL", "NV", "DF")
    assert data.info == {
        "labels_csv": "ISIC_2019_Training_GroundTruth.csv", "label_columns": list(ISIC2019_CLASSES),
        "classes": ["MEL", "NV", "DF"], "dropped_classes": WITHOUT_IMAGES, "dropped_images": 0,
        "label_counts": {"MEL": 6, "NV": 12, "BCC": 0, "AK": 0, "BKL": 0, "DF": 3, "VASC": 0, "SCC": 0, "UNK": 0},
    }


def test_chosen_classes_record_what_was_left_out(tmp_path: Path, caplog) -> None:
    csv_path, images = make_isic(tmp_path)
    with caplog.at_level(logging.INFO, logger="medaug.data.folders"):
        data = load_labels_csv(csv_path, images, size=8, classes=["DF", "MEL"], val_fraction=0.2)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]  # chosen, not a surprise
    assert data.info["classes"] == ["DF", "MEL"]
    assert data.info["dropped_classes"] == ["NV", *WITHOUT_IMAGES] and data.info["dropped_images"] == 12


def test_all_columns_used_drops_nothing(tmp_path: Path, caplog) -> None:
    rows = [(f"ISIC_{i:07d}", c) for i, c in enumerate(ISIC2019_CLASSES * 2)]
    csv_path, images = make_isic(tmp_path, rows)
    with caplog.at_level(logging.WARNING, logger="medaug.data.folders"):
        data = load_labels_csv(csv_path, images, size=8, val_fraction=0.0)
    assert not caplog.records
    assert data.info["dropped_classes"] == [] and data.train.class_names == ISIC2019_CLASSES


def test_isic2019_row_records_the_dropped_classes(tmp_path: Path) -> None:
    """`medaug train --dataset isic2019` as a user runs it: the warning on stderr (a process of its
    own, so that the log reaches stderr as it does outside pytest), the dropped classes in the row."""
    make_isic(tmp_path / "data")
    out = tmp_path / "out"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "medaug.cli", "train", "--dataset", "isic2019", "--data-root",
                           str(tmp_path / "data"), "--size", "28", "--epochs", "1", "--batch-size", "8", "--out",
                           str(out), "--quiet", "--device", "cpu"],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    warning = [line for line in proc.stderr.splitlines() if "have no images and are dropped" in line]
    assert len(warning) == 1 and str(WITHOUT_IMAGES) in warning[0], proc.stderr[-3000:]
    (row_file,) = (out / "results").glob("*.parquet")
    row = pq.read_table(row_file).to_pylist()[0]
    assert row["class_names"] == ["MEL", "NV", "DF"]
    provenance = json.loads(row["data_provenance"])
    assert provenance["dropped_classes"] == WITHOUT_IMAGES and provenance["label_columns"] == list(ISIC2019_CLASSES)
    assert provenance["split_seed"] == 0 and provenance["file_list_hash"] == row["dataset_md5"]
    assert str(tmp_path) not in row["data_provenance"]  # no machine paths
