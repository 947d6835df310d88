"""What `medaug results query` prints in each --format: data a program can read back (CSV, JSON
lines), and a note on stderr, not in the data, when --max-rows cuts the rows."""

from __future__ import annotations

import csv
import io
import json

import pytest
from analysis_rows import make_row, write_rows

from medaug.cli import main

SQL = ("SELECT run_id, seed, test_acc, milestones, history[1] AS h, finished_at, NULL::DOUBLE AS missing, "
       "'nan'::DOUBLE AS nan, 1.5::DECIMAL(4, 2) AS dec FROM results ORDER BY seed")


@pytest.fixture
def out(tmp_path):
    return write_rows(tmp_path / "out", [make_row(seed=s, acc=0.8 + s / 100) for s in range(3)])


def test_csv_reads_back(out, capsys):
    assert main(["results", "query", str(out), SQL, "--format", "csv"]) == 0
    cap = capsys.readouterr()
    rows = list(csv.DictReader(io.StringIO(cap.out)))
    assert [r["seed"] for r in rows] == ["0", "1", "2"] and float(rows[1]["test_acc"]) == pytest.approx(0.81)
    assert json.loads(rows[0]["milestones"]) == [0.5, 0.75] and json.loads(rows[0]["h"])["epoch"] == 1
    assert rows[0]["missing"] == "" and rows[0]["finished_at"].startswith("2026-11-01 00:00:00")
    assert cap.err == ""


def test_json_lines_are_strict_json(out, capsys):
    assert main(["results", "query", str(out), SQL, "--format", "json"]) == 0
    lines = [json.loads(line, parse_constant=pytest.fail) for line in capsys.readouterr().out.splitlines()]
    assert [r["seed"] for r in lines] == [0, 1, 2]
    first = lines[0]
    assert first["missing"] is None and first["nan"] is None and first["dec"] == 1.5
    assert first["finished_at"] == "2026-11-01T00:00:00+00:00" and first["h"]["val_acc"] == pytest.approx(0.76)


def test_cut_rows_are_said_beside_the_data(out, capsys):
    for fmt in ("csv", "json"):
        assert main(["results", "query", str(out), SQL, "--format", fmt, "--max-rows", "2"]) == 0
        cap = capsys.readouterr()
        assert len(cap.out.strip().splitlines()) == (3 if fmt == "csv" else 2)
        assert cap.err == "note: 1 more row(s) not shown; use --max-rows 0 for all\n"
    for fmt in ("table", "markdown"):
        assert main(["results", "query", str(out), SQL, "--format", fmt, "--max-rows", "2"]) == 0
        assert capsys.readouterr().out.endswith("... 1 more row(s); use --max-rows 0 for all\n")


def test_table_shows_nulls_and_short_numbers(out, capsys):
    assert main(["results", "query", str(out), SQL + " LIMIT 1"]) == 0
    header, row = capsys.readouterr().out.splitlines()
    assert header.split()[:3] == ["run_id", "seed", "test_acc"]
    assert "[0.5, 0.75]" in row and "val_acc: 0.76" in row and " NULL " in row and " NaN " in row
    assert main(["results", "query", str(out), "SELECT * FROM results WHERE false"]) == 0
    assert capsys.readouterr().out.startswith("(no rows) columns: run_id, schema_version, status")


def test_a_generator_study_s_folder_is_queried_without_classifier_rows(tmp_path, capsys):
    from medaug.store.generator_results import write_eval_row

    for k, fid in enumerate((12.5, 30.0)):
        write_eval_row({"eval_id": f"e{k}", "generator": ("edm", "dcgan")[k], "dataset": "bloodmnist", "size": 28,
                        "fid": fid, "tstr_n": 2000}, tmp_path / "gen")
    assert main(["results", "query", str(tmp_path / "gen"), "SELECT generator, fid, tstr_n FROM generator_eval "
                 "ORDER BY fid", "--format", "csv"]) == 0
    assert list(csv.DictReader(io.StringIO(capsys.readouterr().out))) == [
        {"generator": "edm", "fid": "12.5", "tstr_n": "2000"}, {"generator": "dcgan", "fid": "30.0", "tstr_n": "2000"}]
    assert main(["results", "query", str(tmp_path / "gen"), "SELECT count(*) AS n FROM results", "--format",
                 "csv"]) == 0
    assert capsys.readouterr().out.splitlines() == ["n", "0"]
    # a folder with neither is still refused
    (tmp_path / "empty").mkdir()
    assert main(["results", "query", str(tmp_path / "empty"), "SELECT 1"]) == 2
