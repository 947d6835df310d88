"""`results query`, `results tables` and `report` read the same rows (issue 10, item 11), and a
file that is not a result row stops all three alike: one line naming it, exit 2, nothing written.

The rule (medaug/analysis/load.py): a file under the results folder that is not a valid
result row (not Parquet, a foreign schema, an unknown schema_version) is refused, not
skipped, by every reader.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from analysis_rows import make_row, write_rows

from medaug.analysis.load import load_results
from medaug.cli import main
from medaug.store.results import result_path


def snapshot(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): "dir" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*"))}


def commands(out: Path, report: Path) -> dict[str, list[str]]:
    return {
        "query": ["results", "query", str(out), "SELECT count(*) AS n FROM results", "--format", "csv"],
        "tables": ["results", "tables", str(out), "--table", "table2"],
        "report": ["report", str(out), "--out", str(report)],
    }


def refused_alike(out: Path, tmp_path: Path, capsys) -> str:
    """Run the three readers on `out`; each exits 2 with the same one line and writes nothing."""
    before = snapshot(tmp_path)
    errors = {}
    for name, argv in commands(out, tmp_path / "report").items():
        rc = main(argv)
        cap = capsys.readouterr()
        assert rc == 2, (name, cap)
        assert cap.out == "" and cap.err.startswith("medaug: error: ") and cap.err.count("\n") == 1, (name, cap)
        errors[name] = cap.err
    assert len(set(errors.values())) == 1, errors
    assert snapshot(tmp_path) == before  # no report folder, no file touched
    return errors["query"]


def test_foreign_and_newer_files_are_refused_by_all_three(tmp_path, capsys):
    out = write_rows(tmp_path / "out", [make_row(seed=0)])
    results = out / "results"
    pq.write_table(pa.table({"generator": ["cvae"], "fid": [12.0]}), results / "a-foreign.parquet")
    newer = pq.read_table(result_path(out, make_row(seed=0)["run_id"]))
    newer = newer.set_column(newer.schema.get_field_index("schema_version"), "schema_version",
                             pa.array([99], pa.int32()))
    newer = newer.set_column(newer.schema.get_field_index("run_id"), "run_id", pa.array(["from-the-future"]))
    pq.write_table(newer, results / "b-newer.parquet")
    err = refused_alike(out, tmp_path, capsys)
    assert "a-foreign.parquet: not a medaug result row: missing column(s)" in err
    assert "(and 1 more file(s) that are not valid result rows)" in err
    (results / "a-foreign.parquet").unlink()
    err = refused_alike(out, tmp_path, capsys)
    assert "b-newer.parquet: schema_version 99 is newer than this medaug reads" in err and "more file" not in err


def test_the_three_count_the_same_rows(tmp_path, capsys):
    """Duplicates (one run_id in two files) and a version-0 file: query sees what tables and report see."""
    out = write_rows(tmp_path / "out", [make_row(seed=s, acc=0.8 + s / 100) for s in range(3)]
                     + [make_row(augmentation="sharpness-contrast-flip", seed=s) for s in range(3)])
    results = out / "results"
    first = result_path(out, make_row(seed=0)["run_id"])
    failed = pq.read_table(first)
    failed = failed.set_column(failed.schema.get_field_index("status"), "status", pa.array(["failed"]))
    pq.write_table(failed, results / "copy-of-seed0-failed.parquet")  # same run_id, a failed attempt
    pq.write_table(pa.table({"run_id": ["old-run"], "dataset": ["breastmnist"], "augmentation": ["none"],
                             "wrs": [False], "seed": [7], "test_acc": [0.5]}), results / "old-run.parquet")
    loaded = load_results(out)
    assert len(loaded.rows) == 7  # 6 + old-run; the duplicate dropped

    assert main(commands(out, tmp_path / "r")["query"]) == 0
    assert capsys.readouterr().out == "n\n7\n"
    assert main(["results", "query", str(out), "SELECT run_id, status FROM results ORDER BY run_id", "--format",
                 "csv", "--max-rows", "0"]) == 0
    queried = capsys.readouterr().out.splitlines()[1:]
    expected = loaded.rows.sort_values("run_id")
    assert queried == [f"{r},{s}" for r, s in zip(expected["run_id"], expected["status"])]
    assert f"{first.stem},finished" in queried  # the finished row is kept over the failed copy

    assert main(commands(out, tmp_path / "r")["report"]) == 0
    printed = capsys.readouterr().out
    assert "(7 runs," in printed and "duplicate row(s)" in printed

    assert main(["results", "tables", str(out), "--table", "table2", "--format", "csv"]) == 0
    assert capsys.readouterr().out.strip()


def _truncated(good: Path) -> bytes:
    data = good.read_bytes()
    return data[: len(data) // 2]


BAD_FILES = {
    "random-bytes": lambda good: os.urandom(4096),
    "empty": lambda good: b"",
    "parquet-magic-only": lambda good: b"PAR1" + b"\0" * 64 + b"PAR1",
    "truncated": _truncated,
    "footer-kept-pages-damaged": lambda good: (lambda d: d[:4] + bytes(len(d) // 2 - 4) + d[len(d) // 2:])(
        good.read_bytes()),
}


@pytest.mark.parametrize("kind", BAD_FILES)
def test_corrupt_parquet_is_one_line_in_all_three(tmp_path, capsys, kind):
    out = write_rows(tmp_path / "out", [make_row(seed=0), make_row(seed=1)])
    good = result_path(out, make_row(seed=0)["run_id"])
    (out / "results" / "x.parquet").write_bytes(BAD_FILES[kind](good))
    err = refused_alike(out, tmp_path, capsys)
    assert "x.parquet: " in err, err


def test_a_folder_named_like_a_parquet_file_is_refused_by_name(tmp_path, capsys):
    out = write_rows(tmp_path / "out", [make_row(seed=0)])
    shutil.copytree(out / "results", out / "results" / "part.parquet")
    err = refused_alike(out, tmp_path, capsys)
    assert "part.parquet: not a readable Parquet file" in err
