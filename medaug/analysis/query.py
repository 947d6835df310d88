"""SQL over a results folder with DuckDB: the rows as a view named `results`.

The view reads the Parquet files as they are (no schema migration; older files'
missing columns read as NULL through `union_by_name`). When the folder holds
generator evaluations (`OUT/generator-eval/*.parquet`), they are the view
`generator_eval`. DuckDB is imported only here, when a query runs.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from medaug.analysis.load import GENERATOR_EVAL_DIR, generator_eval_files, result_files
from medaug.errors import MedaugError
from medaug.store.results import RESULTS_DIR

FORMATS = ("table", "csv", "json", "markdown")


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _source(files: list[Path], base: Path) -> str:
    """`read_parquet` argument: the folder's glob when it holds only result files, else the file list."""
    if base.is_dir() and not any(base.rglob(GENERATOR_EVAL_DIR)):
        return _literal(str(base / "**" / "*.parquet"))
    return "[" + ", ".join(_literal(str(f)) for f in files) + "]"


def connect(results: str | Path):
    """A DuckDB connection with the views `results` (and `generator_eval` when present)."""
    try:
        import duckdb
    except ImportError:
        raise MedaugError("medaug results query needs duckdb: pip install duckdb") from None
    path = Path(results)
    files = result_files([path])  # refuses a missing or empty folder with a clear message
    base = path / RESULTS_DIR if (path / RESULTS_DIR).is_dir() else path
    con = duckdb.connect()
    con.execute(f"CREATE VIEW results AS SELECT * FROM read_parquet({_source(files, base)}, union_by_name = true)")
    gen = generator_eval_files([path])
    if gen:
        lst = "[" + ", ".join(_literal(str(f)) for f in gen) + "]"
        con.execute(f"CREATE VIEW generator_eval AS SELECT * FROM read_parquet({lst}, union_by_name = true)")
    return con


def run_query(results: str | Path, sql: str) -> pd.DataFrame:
    """Run `sql` against the `results` view of a folder; SQL errors become one-line MedaugErrors."""
    import duckdb

    con = connect(results)
    try:
        rel = con.sql(sql)
        return rel.df() if rel is not None else pd.DataFrame()
    except duckdb.Error as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise MedaugError(f"SQL: {first}") from None
    finally:
        con.close()


def format_frame(df: pd.DataFrame, fmt: str = "table", max_rows: int = 100) -> str:
    """Text for a query result: an aligned table (default), CSV, JSON lines or Markdown."""
    if fmt not in FORMATS:
        raise MedaugError(f"--format {fmt!r}: expected one of {FORMATS}")
    shown = df.head(max_rows) if max_rows > 0 else df
    more = len(df) - len(shown)
    if fmt == "csv":
        return shown.to_csv(index=False)
    if fmt == "json":
        return shown.to_json(orient="records", lines=True, date_format="iso", default_handler=str)
    if fmt == "markdown":
        header = [str(c) for c in shown.columns]
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(_cell(v).replace("|", r"\|") for v in row) + " |"
                  for row in shown.itertuples(index=False)]
        text = "\n".join(lines) + "\n"
    else:
        text = shown.astype(object).map(_cell).to_string(index=False) + "\n" if len(shown) else \
            "(no rows) columns: " + ", ".join(map(str, df.columns)) + "\n"
    if more > 0:
        text += f"... {more} more row(s); use --max-rows 0 for all\n"
    return text


def _cell(v: object) -> str:
    if v is None or v is pd.NA or v is pd.NaT or (isinstance(v, float) and pd.isna(v)):
        return "NULL"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(_plain(v))


def _plain(v: object) -> object:
    """Nested numpy arrays (DuckDB list columns) as plain lists, for printing."""
    if hasattr(v, "tolist") and not isinstance(v, str):
        v = v.tolist()
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    return v
