"""Rows of differently prepared data are never pooled (issue 13 item 5, follow-up): two class-folder
trees, two COVID crops, two copies of a source are separate contexts in the tables, the report and
`results query`; MedMNIST rows read exactly as before (medaug/analysis/data_label.py)."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from analysis_rows import known_study, make_row, write_rows

from medaug.analysis.data_label import OMITTED_DEFAULTS, data_labels, eval_data_labels
from medaug.analysis.load import load_results
from medaug.analysis.query import query
from medaug.analysis.report import datasets_frame
from medaug.analysis.tables import Grid, table2
from medaug.store.results import SCHEMA, result_path

GDA = "sharpness-contrast-flip"
FOLDER_OPTIONS = {"channels": 3, "fit": "squash", "split_seed": 0, "test_fraction": 0.15, "val_fraction": 0.15}
COVID_OPTIONS = {"split_seed": 0, "test_per_class": 200, "val_fraction": 0.1}
TREE_A, TREE_B = "a" * 32, "b" * 32  # dataset_md5: the hash of a tree's file names and sizes
# known per-seed ACC: (data, augmentation) -> seeds 0..2; the two trees' gains have opposite signs
ACC = {("A", "none"): [0.60, 0.62, 0.61], ("A", GDA): [0.70, 0.73, 0.71],
       ("B", "none"): [0.90, 0.92, 0.91], ("B", GDA): [0.80, 0.81, 0.79]}


def folder_row(root: str, md5: str | None, *, augmentation: str = "none", seed: int = 0, acc: float = 0.8,
               status: str = "finished", **options) -> dict:
    row = make_row("folder", augmentation=augmentation, seed=seed, acc=acc, auc=acc, status=status,
                   data_options={**FOLDER_OPTIONS, "root": root, **options}, dataset_md5=md5 or "none")
    row["dataset_md5"] = md5  # a failed run read no data: no md5
    return row


def two_trees(out, root_b: str = "/mnt/other/xrays"):
    rows = [folder_row(root, md5, augmentation=aug, seed=s, acc=a)
            for tree, root, md5 in (("A", "xrays", TREE_A), ("B", root_b, TREE_B))
            for aug in ("none", GDA) for s, a in enumerate(ACC[(tree, aug)])]
    return write_rows(out, rows)


def check(cell, values):
    v = np.asarray(values)
    assert cell.value.n == len(v) and cell.value.mean == pytest.approx(v.mean())
    assert cell.value.std == pytest.approx(v.std(ddof=1))


def test_two_folder_trees_with_one_folder_name_are_two_contexts(tmp_path):
    res = load_results(two_trees(tmp_path / "out"))
    grid = Grid(res)
    a, b = f"folder:xrays@{TREE_A[:8]}", f"folder:xrays@{TREE_B[:8]}"
    assert grid.contexts == [a, b]
    assert set(res.rows["dataset"]) == {"folder"}  # the rows themselves are as written
    t = table2(grid)
    for ctx, tree in ((a, "A"), (b, "B")):
        check(t.cell(ctx, "no GDA or WRS ACC"), ACC[(tree, "none")])  # each tree's own seeds, never pooled
        check(t.cell(ctx, "no WRS, GDA ACC"), ACC[(tree, GDA)])
    assert t.cell(a, "no WRS, GDA ACC").mark == "up" and t.cell(b, "no WRS, GDA ACC").mark == "down"
    # query: the same label as a column; the files on disk keep the row schema
    got = query(tmp_path / "out", "SELECT data, count(*) AS n FROM results GROUP BY data ORDER BY data")
    assert got.rows == [(a, 6), (b, 6)]
    some = result_path(tmp_path / "out", folder_row("xrays", TREE_A)["run_id"])
    assert pq.read_schema(some).names == SCHEMA.names
    # the report's Datasets table says which tree is which
    ds = datasets_frame(res)
    assert list(ds.columns[:2]) == ["data", "dataset"] and sorted(ds["data"]) == [a, b]


def test_one_tree_under_two_root_paths_is_one_context(tmp_path):
    """`root: xrays` on one machine, `/data/xrays` on another: same md5, one tree, seeds pooled."""
    rows = [folder_row("xrays", TREE_A, seed=s, acc=0.6) for s in range(3)]
    rows += [folder_row("/data/xrays", TREE_A, seed=s, acc=0.7) for s in (3, 4)]
    res = load_results(write_rows(tmp_path / "out", rows))
    assert Grid(res).contexts == [f"folder:xrays@{TREE_A[:8]}"]
    assert Grid(res).seeds(f"folder:xrays@{TREE_A[:8]}", "no GDA/WRS", "test_acc") == \
        {0: 0.6, 1: 0.6, 2: 0.6, 3: 0.7, 4: 0.7}


def test_folder_options_that_change_the_images_split_a_tree(tmp_path):
    rows = [folder_row("xrays", TREE_A, seed=s, channels=c) for s in range(2) for c in (1, 3)]
    rows.append(folder_row(".", TREE_B))  # the data root itself is the tree
    res = load_results(write_rows(tmp_path / "out", rows))
    assert Grid(res).contexts == [f"folder:xrays@{TREE_A[:8]} · channels=1", f"folder:xrays@{TREE_A[:8]} · channels=3",
                                  f"folder@{TREE_B[:8]}"]


def test_a_failed_folder_run_joins_the_tree_of_its_options():
    a = json.dumps({**FOLDER_OPTIONS, "root": "xrays"})
    other = json.dumps({**FOLDER_OPTIONS, "root": "elsewhere"})
    labels = data_labels(["folder"] * 4, [28] * 4, [a, a, other, None], [TREE_A, None, None, None])
    assert labels == [f"folder:xrays@{TREE_A[:8]}"] * 2 + ["folder:elsewhere", "folder"]


def test_covid_rows_with_and_without_the_lung_crop_are_two_contexts(tmp_path):
    crop, whole = COVID_OPTIONS, {**COVID_OPTIONS, "lung_crop": False}  # lung_crop true is left out of the row
    rows = [make_row("covid19-radiography", seed=s, acc=0.9 + s / 100, data_options=crop, dataset_md5="m")
            for s in range(3)]
    res_one = load_results(write_rows(tmp_path / "one", rows))
    assert Grid(res_one).contexts == ["covid19-radiography"]  # one setting: the label as before
    rows += [make_row("covid19-radiography", seed=s, acc=0.7 + s / 100, data_options=whole, dataset_md5="m")
             for s in range(3)]
    res = load_results(write_rows(tmp_path / "two", rows))
    grid = Grid(res)
    assert grid.contexts == ["covid19-radiography · lung_crop=false", "covid19-radiography · lung_crop=true"]
    t = table2(grid)
    check(t.cell("covid19-radiography · lung_crop=true", "no GDA or WRS ACC"), [0.90, 0.91, 0.92])
    check(t.cell("covid19-radiography · lung_crop=false", "no GDA or WRS ACC"), [0.70, 0.71, 0.72])
    # any option that changes the data: another test set size is another context too
    rows2 = [make_row("covid19-radiography", seed=0, data_options={**crop, "test_per_class": n}, dataset_md5="m")
             for n in (100, 200)]
    assert Grid(load_results(write_rows(tmp_path / "three", rows2))).contexts == [
        "covid19-radiography · test_per_class=100", "covid19-radiography · test_per_class=200"]


def test_two_copies_of_a_source_are_told_apart_by_md5_but_not_two_sizes():
    opts = json.dumps(COVID_OPTIONS)
    assert data_labels(["covid19-radiography"] * 3, [64] * 3, [opts] * 3, ["1234567890", "abcdefabcd", None]) == \
        ["covid19-radiography@12345678", "covid19-radiography@abcdefab", "covid19-radiography"]
    # MedMNIST's npz differs per size: the size is in the context already, the label stays the name
    assert data_labels(["breastmnist"] * 2, [28, 64], [None, None], ["m28", "m64"]) == ["breastmnist"] * 2


def test_medmnist_contexts_and_tables_are_unchanged(tmp_path):
    res = load_results(known_study(tmp_path / "out", datasets=("breastmnist", "pneumoniamnist")))
    assert (res.rows["data"] == res.rows["dataset"]).all()
    assert Grid(res).contexts == ["breastmnist", "pneumoniamnist"]
    assert list(datasets_frame(res).columns[:1]) == ["dataset"]  # no data column when it says nothing new
    sized = write_rows(tmp_path / "sized", [make_row(seed=0), make_row(seed=0, size=64, dataset_md5="md5-64")])
    assert Grid(load_results(sized)).contexts == ["breastmnist · 28px", "breastmnist · 64px"]
    # the rows (and so the run ids pinned elsewhere) are what make_row always wrote
    assert make_row(seed=0)["run_id"] == "breastmnist-28-cnn-none-nowrs-real-s0"
    assert make_row(seed=0)["data_options"] is None


def test_generator_evaluations_take_the_label_of_their_train_split():
    rows_hash, rows_data = ["tA", "tB", "tM"], [f"folder:xrays@{TREE_A[:8]}", f"folder:xrays@{TREE_B[:8]}",
                                                 "breastmnist"]
    got = eval_data_labels(["folder", "folder", "folder", "breastmnist", "breastmnist"],
                           ["tA", "tB", "t-unseen", "tM", None], rows_hash, rows_data)
    assert got == [rows_data[0], rows_data[1], "folder (train t-unseen)", "breastmnist", "breastmnist"]


def test_omitted_defaults_match_the_data_sources():
    """The analysis imports no torch, so it keeps its own copy of the options a source leaves
    out of the row at their default; this is that copy's check."""
    from medaug.data.sources import SOURCES

    omitted = {name: {o.name: o.default for o in src.options if o.omit_default} for name, src in SOURCES.items()}
    assert OMITTED_DEFAULTS == {name: opts for name, opts in omitted.items() if opts}


def test_generator_tables_and_the_fidelity_points_keep_two_trees_apart(tmp_path):
    from analysis_rows import write_generator_eval

    from medaug.analysis.generator_tables import confidence_table
    from medaug.analysis.plots import fidelity_utility_points

    out = two_trees(tmp_path / "out")
    for row in load_results(out).rows.itertuples():  # each tree's real train split has its own content hash
        path = result_path(out, row.run_id)
        table = pq.read_table(path)
        tree = "tA" if row.dataset_md5 == TREE_A else "tB"
        pq.write_table(table.set_column(table.schema.get_field_index("train_hash"), "train_hash",
                                        pa.array([tree], pa.string())), path)
    write_generator_eval(out, [{"generator": "cvae", "dataset": "folder", "train_hash": h, "size": 28,
                                "recipe": "fast", "extractor": "inception", "mean_confidence": c, "fid": f}
                               for h, c, f in (("tA", 0.9, 10.0), ("tB", 0.5, 30.0))])
    res = load_results(out)
    a, b = f"folder:xrays@{TREE_A[:8]}", f"folder:xrays@{TREE_B[:8]}"
    assert list(res.generator_eval["data"]) == [a, b]
    t = confidence_table(res.generator_eval)
    assert [label for label, _ in t.rows[:2]] == [a, b]
    assert [cells[0].value.mean for _, cells in t.rows[:2]] == pytest.approx([0.9, 0.5])
    points = fidelity_utility_points(res.generator_eval, None)
    assert sorted(zip(points["dataset"], points["fid"])) == [(a, 10.0), (b, 30.0)]
    got = query(out, "SELECT data, fid FROM generator_eval ORDER BY data")
    assert got.rows == [(a, 10.0), (b, 30.0)]
