"""Reading results folders: migration of older schema versions, clean refusals, annotation."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from analysis_rows import known_study, make_row, write_generator_eval, write_rows

from medaug.analysis.load import load_generator_eval, load_results
from medaug.analysis.tables import Grid, table2
from medaug.errors import MedaugError
from medaug.store.results import SCHEMA_VERSION, result_path


def test_reads_out_folder_results_folder_and_single_file(tmp_path):
    out = known_study(tmp_path / "out")
    n = 18
    assert len(load_results(out).rows) == n
    assert len(load_results(out / "results").rows) == n
    one = next((out / "results").glob("*.parquet"))
    assert len(load_results([one]).rows) == 1


def test_empty_folder_is_a_clean_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(MedaugError, match="no result files"):
        load_results(tmp_path / "empty")
    with pytest.raises(MedaugError, match="no such results folder"):
        load_results(tmp_path / "missing")
    with pytest.raises(MedaugError, match="no results folder given"):
        load_results([])


def _rewrite(path, table):
    pq.write_table(table, path)


def test_unknown_and_newer_schema_versions_are_refused_by_file(tmp_path):
    out = write_rows(tmp_path / "out", [make_row(seed=0), make_row(seed=1)])
    path = result_path(out, make_row(seed=1)["run_id"])
    table = pq.read_table(path)
    col = table.schema.get_field_index("schema_version")
    _rewrite(path, table.set_column(col, "schema_version", pa.array([99], pa.int32())))
    with pytest.raises(MedaugError, match=rf"{path.name}.*schema_version 99 is newer"):
        load_results(out)
    _rewrite(path, table.set_column(col, "schema_version", pa.array([-3], pa.int32())))
    with pytest.raises(MedaugError, match=r"schema_version -3 is unknown"):
        load_results(out)


def test_version_0_file_is_migrated(tmp_path):
    """A file from before versioning: no schema_version, no status, few columns."""
    out = write_rows(tmp_path / "out", [make_row(seed=s, acc=a) for s, a in ((0, 0.80), (1, 0.82))])
    old = pa.table({"run_id": ["old-run"], "dataset": ["breastmnist"], "augmentation": ["none"], "wrs": [False],
                    "seed": [2], "test_acc": [0.81], "test_auc": [0.86], "size": [28], "classifier": ["cnn"],
                    "optimizer": ["sgd"], "lr": [1e-3], "momentum": [0.9], "weight_decay": [0.0],
                    "schedule": ["none"], "milestones": [[0.5, 0.75]], "epochs": [3], "batch_size": [64],
                    "select_metric": ["acc"]})
    pq.write_table(old, out / "results" / "old-run.parquet")
    res = load_results(out)
    assert any("1 file(s) of an older schema version were migrated" in m for m in res.messages)
    row = res.rows.set_index("run_id").loc["old-run"]
    assert row["status"] == "finished" and row["schema_version"] == SCHEMA_VERSION and row["history"] is None
    t = table2(Grid(res))
    cell = t.cell("breastmnist", "no GDA or WRS ACC")
    assert cell.value.n == 3 and cell.value.mean == pytest.approx(0.81)


def test_bad_column_type_and_non_result_file_are_named(tmp_path):
    out = tmp_path / "out" / "results"
    out.mkdir(parents=True)
    pq.write_table(pa.table({"run_id": ["x"], "dataset": ["d"], "seed": ["not-a-number"]}), out / "x.parquet")
    with pytest.raises(MedaugError, match=r"x.parquet: column 'seed' has type string; expected int64"):
        load_results(out)
    (out / "x.parquet").unlink()
    pq.write_table(pa.table({"fid": [1.0]}), out / "y.parquet")
    with pytest.raises(MedaugError, match=r"y.parquet: not a medaug result row: missing column"):
        load_results(out)
    (out / "y.parquet").write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(MedaugError, match=r"y.parquet: not a readable Parquet file"):
        load_results(out)


def test_duplicate_runs_keep_finished_and_are_reported(tmp_path):
    a = write_rows(tmp_path / "a", [make_row(seed=0, acc=0.8)])
    b = write_rows(tmp_path / "b", [make_row(seed=0, status="failed", error="x")])
    res = load_results([a, b])
    assert len(res.rows) == 1 and res.rows["status"].iloc[0] == "finished"
    assert any("duplicate" in m for m in res.messages)
    # the same folder twice is read once
    assert len(load_results([a, a]).rows) == 1


def test_generator_eval_rows_are_separate_and_tolerant(tmp_path):
    out = known_study(tmp_path / "out")
    write_generator_eval(out, [{"generator": "cvae", "dataset": "breastmnist", "fid": 12.5},
                               {"generator": "cgan", "dataset": "breastmnist", "fid": 20.0, "tstr_acc": 0.7}])
    res = load_results(out)
    assert len(res.rows) == 18  # evaluations are not result rows
    ev = res.generator_eval
    assert list(ev["fid"]) == [12.5, 20.0] and ev["fid_floor"].isna().all() and "coverage" in ev
    assert load_generator_eval(tmp_path / "nothing") is None


def test_annotation_contexts_and_methods(tmp_path):
    out = known_study(tmp_path / "out")
    write_rows(out, [make_row(classifier="resnet18", seed=0)])
    rows = load_results(out).rows
    labels = set(rows["method"])
    assert labels == {"no GDA/WRS", "WRS", "geometric", "WRS + geometric", "Conditional VAE", "Conditional GAN"}
    assert set(rows["context"]) == {"breastmnist · cnn", "breastmnist · resnet18"}  # classifier varies: named
    assert rows.loc[rows["is_baseline"], "method"].eq("no GDA/WRS").all()


def test_version_1_file_is_migrated_to_seed000_recipe_values(tmp_path):
    """A row from before recipes (schema 1) lands in the seed000 context of today's rows."""
    from medaug.store.results import SCHEMA

    out = write_rows(tmp_path / "out", [make_row(seed=s, acc=a) for s, a in ((0, 0.80), (1, 0.82))])
    new_columns = {"recipe", "recipe_version", "nesterov", "label_smoothing", "ema", "warmup", "min_steps",
                   "translate", "tta",
                   "epochs_trained"}
    row = make_row(seed=2, acc=0.81)
    row["run_id"] = "v1-run"
    table = pa.Table.from_pylist([{k: v for k, v in row.items() if k not in new_columns} | {"schema_version": 1}],
                                 schema=pa.schema([f for f in SCHEMA if f.name not in new_columns]))
    pq.write_table(table, out / "results" / "v1-run.parquet")
    res = load_results(out)
    old = res.rows.set_index("run_id").loc["v1-run"]
    assert (old["recipe"], old["recipe_version"], old["tta"], old["ema"], old["epochs_trained"]) == (
        "seed000", 1, "none", 0.0, 3)
    cell = table2(Grid(res)).cell("breastmnist", "no GDA or WRS ACC")
    assert cell.value.n == 3 and cell.value.mean == pytest.approx(0.81)
