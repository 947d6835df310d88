"""`medaug results query` is read-only over the results (issue 10, security 2).

The SQL may be anything a user (or someone handing them a command line) types. It
must not read a file outside the rows, write or delete any file, nor lift those limits
from within the SQL. Each attack runs through the real `medaug` command and must exit 2
with one line, print nothing of what it tried to read, and leave the file system as it
was (every file under the test folder, which is also the working directory, hashed
before and after). A second set of tests runs the attacks straight on the DuckDB
connection, past the statement check, to show that DuckDB's own settings hold too.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import duckdb
import pytest
from analysis_rows import make_row, write_rows

from medaug.analysis.query import connect
from medaug.cli import main

SECRET = "secret-marker-7f3a"


def snapshot(root: Path) -> dict[str, str]:
    """Every file and folder under `root`: relative path -> sha256 of the content ('dir' for folders)."""
    out = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        out[rel] = "dir" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
    return out


@pytest.fixture
def world(tmp_path, monkeypatch):
    """A results folder, a victim folder of 3 files beside it, a secret file; cwd = tmp_path."""
    out = write_rows(tmp_path / "out", [make_row(seed=s, acc=0.8 + s / 100) for s in range(3)])
    victim = tmp_path / "victim"
    victim.mkdir()
    for i in range(3):
        (victim / f"keep{i}.csv").write_text(f"a,b\n{i},{SECRET}\n")
    (tmp_path / "secret.txt").write_text(SECRET + "\n")
    monkeypatch.chdir(tmp_path)
    return {"tmp": tmp_path, "out": out, "victim": victim, "secret": tmp_path / "secret.txt"}


# name -> SQL; {tmp} is the test folder (and cwd), {victim} a folder of 3 files beside the
# results, {secret} a file beside them, {result} one of the result files themselves.
ATTACKS = {
    # the three attacks of the issue
    "copy-to-file": "COPY results TO '{tmp}/written.csv'",
    "read-etc-passwd": "SELECT * FROM read_csv('/etc/passwd')",
    "partition-overwrite": "COPY (SELECT dataset, seed FROM results) TO '{victim}' "
                           "(FORMAT csv, PARTITION_BY (dataset), OVERWRITE)",
    # more ways to read
    "read-csv-beside": "SELECT * FROM read_csv('{victim}/keep0.csv')",
    "read-text": "SELECT content FROM read_text('{secret}')",
    "read-blob": "SELECT content FROM read_blob('{secret}')",
    "file-as-table": "SELECT * FROM '{secret}'",
    "glob": "SELECT * FROM glob('{tmp}/*')",
    "read-parquet-in-results": "SELECT * FROM read_parquet('{result}')",
    "parquet-metadata": "SELECT * FROM parquet_metadata('{result}')",
    "sniff-csv": "SELECT * FROM sniff_csv('{secret}')",
    "http": "SELECT * FROM read_parquet('https://example.com/x.parquet')",
    "relative-copy": "COPY results TO 'relative.parquet' (FORMAT parquet)",
    # lifting the limits from within the SQL
    "set-external-access": "SET enable_external_access = true; SELECT * FROM read_text('{secret}')",
    "reset-external-access": "RESET enable_external_access; SELECT * FROM read_text('{secret}')",
    "unlock": "SET lock_configuration = false",
    "allowed-dirs": "SET allowed_directories = ['{tmp}']",
    "pragma-profile": "PRAGMA enable_profiling = 'json'; PRAGMA profiling_output = '{tmp}/prof.json'",
    "logging-to-file": "SELECT * FROM enable_logging(storage = 'file', storage_path = '{tmp}/logs')",
    "call-logging": "CALL enable_logging(storage = 'file', storage_path = '{tmp}/logs')",
    "attach": "ATTACH '{tmp}/new.duckdb' AS x",
    "install": "INSTALL httpfs",
    "load": "LOAD httpfs",
    "load-file": "LOAD '{tmp}/evil.duckdb_extension'",
    "export": "EXPORT DATABASE '{victim}'",
    "import": "IMPORT DATABASE '{victim}'",
    "persistent-secret": "CREATE PERSISTENT SECRET s (TYPE s3, KEY_ID 'a', SECRET 'b')",
    "create-secret": "CREATE SECRET s (TYPE s3, KEY_ID 'a', SECRET 'b')",
    "select-then-copy": "SELECT 1; COPY results TO '{tmp}/later.csv'",
}


def attack(w: dict, name: str) -> str:
    result = next((w["out"] / "results").glob("*.parquet"))
    return ATTACKS[name].format(tmp=w["tmp"], victim=w["victim"], secret=w["secret"], result=result)


@pytest.mark.parametrize("name", ATTACKS)
def test_attack_through_the_cli_exits_2_and_changes_nothing(world, capsys, name):
    sql = attack(world, name)
    before = snapshot(world["tmp"])
    duckdb_home = Path.home() / ".duckdb"  # extensions, persistent secrets
    home_before = snapshot(duckdb_home) if duckdb_home.is_dir() else None
    rc = main(["results", "query", str(world["out"]), sql])
    captured = capsys.readouterr()
    assert rc == 2, (name, captured)
    assert captured.out == ""
    err = captured.err
    assert err.startswith("medaug: error: SQL: ") and err.count("\n") == 1, err
    assert SECRET not in err and "root:" not in err
    assert snapshot(world["tmp"]) == before, name
    assert sorted(p.name for p in world["victim"].iterdir()) == ["keep0.csv", "keep1.csv", "keep2.csv"]
    assert (snapshot(duckdb_home) if duckdb_home.is_dir() else None) == home_before


def test_the_three_issue_attacks_name_what_stopped_them(world, capsys):
    """COPY is refused as a statement; a file read inside a SELECT is refused by DuckDB itself."""
    assert main(["results", "query", str(world["out"]), attack(world, "copy-to-file")]) == 2
    assert "COPY statements are not allowed" in capsys.readouterr().err
    assert main(["results", "query", str(world["out"]), attack(world, "partition-overwrite")]) == 2
    assert "COPY statements are not allowed" in capsys.readouterr().err
    assert main(["results", "query", str(world["out"]), attack(world, "read-etc-passwd")]) == 2
    err = capsys.readouterr().err
    assert "file system operations are disabled" in err and "reads only the tables results" in err


@pytest.mark.parametrize("name", ATTACKS)
def test_duckdb_settings_hold_without_the_statement_check(world, name):
    """The connection itself refuses every attack (run past `check_read_only`)."""
    sql = attack(world, name)
    before = snapshot(world["tmp"])
    con = connect(world["out"])
    try:
        with pytest.raises(duckdb.Error):
            for statement in duckdb.extract_statements(sql):
                rows = con.execute(statement).fetchall()
                assert SECRET not in str(rows)
    finally:
        con.close()
    assert snapshot(world["tmp"]) == before, name
    # the settings that make it so, as DuckDB reports them
    con = connect(world["out"])
    try:
        settings = dict(con.execute(
            "SELECT name, value FROM duckdb_settings() WHERE name IN ('enable_external_access', "
            "'lock_configuration', 'autoinstall_known_extensions', 'autoload_known_extensions')").fetchall())
    finally:
        con.close()
    assert settings == {"enable_external_access": "false", "lock_configuration": "true",
                        "autoinstall_known_extensions": "false", "autoload_known_extensions": "false"}


def test_reads_still_work(world, capsys):
    """The lock costs nothing a reader needs: SELECT, WITH, DESCRIBE, SUMMARIZE, PIVOT, EXPLAIN."""
    out = str(world["out"])
    for sql in ("SELECT count(*) AS n FROM results", "WITH r AS (SELECT * FROM results) SELECT count(*) AS n FROM r",
                "FROM results SELECT count(*) AS n"):
        assert main(["results", "query", out, sql, "--format", "csv"]) == 0
        assert capsys.readouterr().out == "n\n3\n"
    for sql in ("DESCRIBE results", "SUMMARIZE results", "PIVOT results ON augmentation USING count(*)",
                "EXPLAIN SELECT * FROM results", "SHOW TABLES"):
        assert main(["results", "query", out, sql]) == 0, sql
        assert capsys.readouterr().out.strip()


def test_empty_sql_is_a_one_line_error(world, capsys):
    assert main(["results", "query", str(world["out"]), "  -- nothing\n"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("medaug: error: SQL: no statement") and err.count("\n") == 1


def test_a_python_variable_is_not_a_table(world, capsys):
    """DuckDB's Python replacement scans would read a caller's variable by name; they are off."""
    assert main(["results", "query", str(world["out"]), "SELECT * FROM sql"]) == 2
    assert "Table with name sql does not exist" in capsys.readouterr().err
