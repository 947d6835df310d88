"""SQL over a results folder with DuckDB, read-only: the rows as the table `results`.

The SQL a user types may be anything, so it runs in a DuckDB database that holds
nothing but the rows and can reach nothing else:

- the rows are read by medaug's own loader (`medaug.analysis.load.read_result_rows`), the
  same rows `medaug results tables` and `medaug report` see: files are validated,
  migrated to the current schema and de-duplicated, and a file that is not a valid
  result row (corrupt, foreign, an unknown `schema_version`) refuses the query with one
  line, as it refuses the other two. Generator evaluations (`OUT/generator-eval/*.parquet`),
  when present, are the table `generator_eval`.
- `results` holds one column more than the files: `data`, the label the tables group rows by
  (`medaug.analysis.data_label`: the dataset, told apart by class-folder tree and data
  options where one source makes several); `generator_eval` gets the same column.
- they are copied into in-memory tables *before* the user's SQL runs; then DuckDB's
  external access is switched off (no file is read, written or deleted: `COPY`,
  `read_csv`, `glob`, `ATTACH`, `EXPORT DATABASE`, `INSTALL`, persistent secrets, ...) and
  the configuration is locked (`SET`, `RESET`, `PRAGMA` and `enable_logging` cannot undo
  it). Extensions are neither installed nor loaded automatically, nothing spills to a
  temporary directory, and Python objects are not scanned by name.
  (A view over `read_parquet` would not do: with external access off it cannot read its
  own files any more, DuckDB 1.x-2.x.)
- only statements that read are accepted (SELECT, including WITH, VALUES, FROM-first,
  DESCRIBE, SHOW, SUMMARIZE, PIVOT; and EXPLAIN): anything else is refused before it reaches
  DuckDB, a second wall behind the first.

DuckDB is imported only here, when a query runs.
"""

from __future__ import annotations

import csv
import datetime
import decimal
import io
import json
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from medaug.errors import MedaugError

if TYPE_CHECKING:
    import duckdb
    import pandas as pd
    import pyarrow as pa

T = TypeVar("T")

FORMATS = ("table", "csv", "json", "markdown")

# DuckDB settings fixed at connect time (before any data is loaded).
CONNECT_CONFIG = {
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
    "allow_community_extensions": False,
    "allow_unsigned_extensions": False,
    "python_enable_replacements": False,  # `FROM some_python_variable` must not reach the caller's objects
    "temp_directory": "",  # never spill to disk
}
# Applied after the rows are loaded; lock_configuration last, so that nothing can lift them.
LOCKDOWN = ("SET enable_external_access = false", "SET lock_configuration = true")
#: How long one query may run before it is interrupted (`medaug results query --timeout`): a
#: read-only query can still be endless (WITH RECURSIVE without a bound) or enormous.
DEFAULT_TIMEOUT_S = 60.0
READ_STATEMENTS = ("SELECT", "EXPLAIN", "MULTI")  # MULTI: PIVOT (a SELECT with a generated type)


def connect(results: str | Path) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection holding the tables `results` (and `generator_eval` when
    there are generator evaluations), with file access off and its configuration locked."""
    try:
        import duckdb
    except ImportError:
        raise MedaugError("medaug results query needs duckdb: pip install duckdb") from None
    from medaug.analysis.data_label import eval_data_labels
    from medaug.analysis.load import ResultRows, _has_result_files, load_generator_eval, read_result_rows
    from medaug.store.results import SCHEMA

    gen = load_generator_eval([results])
    if gen is not None and not _has_result_files([results]):  # a generator study: evaluations only
        rows = ResultRows(table=SCHEMA.empty_table(), files=[])
    else:
        rows = read_result_rows([results])  # refuses a missing or empty folder and invalid files, by name
    table, data = _with_data(rows.table)
    if gen is not None:
        gen = gen.assign(data=eval_data_labels(gen["dataset"].tolist(), gen["train_hash"].tolist()
                                               if "train_hash" in gen else [None] * len(gen),
                                               table.column("train_hash").to_pylist(), data))
    con = duckdb.connect(":memory:", config=CONNECT_CONFIG)
    try:
        con.from_arrow(table).create("results")
        if gen is not None:
            try:
                con.from_df(gen).create("generator_eval")
            except duckdb.Error as exc:  # e.g. one column holding numbers in one file, text in another
                raise MedaugError(f"{results}: generator evaluations (generator-eval/*.parquet) cannot be put "
                                  f"into one table ({_first_line(exc)})") from None
        for statement in LOCKDOWN:
            con.execute(statement)
    except BaseException:
        con.close()
        raise
    return con


def _with_data(table: pa.Table) -> tuple[pa.Table, list[str]]:
    """The rows with the column `data` appended (`medaug.analysis.data_label`): what the tables
    group by, so that `GROUP BY data` keeps two class-folder trees, or two COVID crops, apart."""
    import numpy as np
    import pyarrow as pa

    from medaug.analysis.data_label import data_labels

    data = data_labels(*(table.column(c).to_pylist() for c in ("dataset", "size", "data_options", "dataset_md5")))
    encoded = [s.encode() for s in data]
    offsets = np.cumsum([0, *map(len, encoded)], dtype=np.int32)
    # from buffers: pa.array would import pandas to check its input (half a second of every query)
    column = pa.Array.from_buffers(pa.string(), len(data), [None, pa.py_buffer(offsets), pa.py_buffer(b"".join(encoded))])
    return table.append_column("data", column), data


def check_read_only(sql: str) -> None:
    """Refuse SQL that is empty or holds a statement other than a read (see READ_STATEMENTS)."""
    import duckdb

    try:
        sql.encode("utf-8")
    except UnicodeEncodeError as exc:  # bytes of another encoding on the command line (surrogate escapes)
        raise MedaugError(f"SQL: not UTF-8 text (byte {exc.start}); expected the query in UTF-8") from None
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as exc:
        raise MedaugError(f"SQL: {_first_line(exc)}") from None
    if not statements:
        raise MedaugError("SQL: no statement; expected e.g. \"SELECT count(*) FROM results\"")
    for st in statements:
        kind = str(st.type).rsplit(".", 1)[-1]
        if kind not in READ_STATEMENTS:
            raise MedaugError(f"SQL: {kind} statements are not allowed; results query runs read-only SELECT "
                              "statements over the tables results and generator_eval")


@dataclass
class QueryResult:
    """What a query returned: column names and rows of Python values (as DuckDB gives them)."""

    columns: list[str]
    rows: list[tuple[Any, ...]]


def query(results: str | Path, sql: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> QueryResult:
    """Run `sql` against the tables of a results folder; SQL errors become one-line MedaugErrors.

    Bad SQL is refused before the folder is read; a read of anything but the loaded
    tables fails inside DuckDB ("file system operations are disabled"). No pandas: the
    command's start-up stays well under a second.
    """
    return _execute(results, sql, lambda rel: QueryResult(list(rel.columns), rel.fetchall()),
                    QueryResult([], []), timeout_s)


def run_query(results: str | Path, sql: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> pd.DataFrame:
    """`query`, as a pandas DataFrame (DuckDB's own conversion), for use from Python."""
    import pandas as pd

    return _execute(results, sql, lambda rel: rel.df(), pd.DataFrame(), timeout_s)


def _execute(results: str | Path, sql: str, fetch: Callable[[Any], T], empty: T,
             timeout_s: float = DEFAULT_TIMEOUT_S) -> T:
    import duckdb

    if not (math.isfinite(timeout_s) and timeout_s > 0):
        raise MedaugError(f"--timeout {timeout_s}: expected a number of seconds > 0")
    check_read_only(sql)
    con = connect(results)
    timer = threading.Timer(timeout_s, con.interrupt)  # DuckDB stops the running query at its next check
    timer.daemon = True
    timer.start()
    try:
        rel = con.sql(sql)
        return fetch(rel) if rel is not None else empty
    except duckdb.InterruptException:
        raise MedaugError(f"SQL: stopped after {timeout_s:g} s (--timeout); an unbounded WITH RECURSIVE, or "
                          "a result too big to list? add a LIMIT or a bound") from None
    except duckdb.OutOfMemoryException as exc:
        raise MedaugError(f"SQL: out of memory ({_first_line(exc)}); add a LIMIT or aggregate") from None
    except duckdb.PermissionException as exc:
        raise MedaugError(f"SQL: {_first_line(exc)} (results query reads only the tables results and "
                          "generator_eval)") from None
    except duckdb.Error as exc:
        raise MedaugError(f"SQL: {_first_line(exc)}") from None
    finally:
        timer.cancel()
        con.close()


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def format_result(res: QueryResult, fmt: str = "table", max_rows: int = 100) -> str:
    """Text for a query result: an aligned table (default), CSV, JSON lines or Markdown.

    `max_rows` > 0 shows at most that many rows; the table and Markdown end with a line
    saying how many more there are (CSV and JSON stay data only: the caller says it).
    """
    if fmt not in FORMATS:
        raise MedaugError(f"--format {fmt!r}: expected one of {FORMATS}")
    shown = res.rows[:max_rows] if max_rows > 0 else res.rows
    more = len(res.rows) - len(shown)
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(res.columns)
        writer.writerows([_csv_cell(v) for v in row] for row in shown)
        return buf.getvalue()
    if fmt == "json":
        return "".join(json.dumps(dict(zip(res.columns, map(_jsonable, row))), allow_nan=False) + "\n"
                       for row in shown)
    if fmt == "markdown":
        lines = ["| " + " | ".join(res.columns) + " |", "|" + "---|" * len(res.columns)]
        lines += ["| " + " | ".join(_cell(v).replace("|", r"\|") for v in row) + " |" for row in shown]
        text = "\n".join(lines) + "\n"
    elif not shown:
        text = "(no rows) columns: " + ", ".join(res.columns) + "\n"
    else:
        cells = [[_cell(v) for v in row] for row in shown]
        widths = [max(len(c), *(len(r[k]) for r in cells)) for k, c in enumerate(res.columns)]
        text = "".join(" ".join(x.rjust(w) for x, w in zip(line, widths)) + "\n" for line in [res.columns, *cells])
    if more > 0:
        text += f"... {more} more row(s); use --max-rows 0 for all\n"
    return text


def _cell(v: object) -> str:
    """A value for the eye: NULL, floats to 4 significant digits (in lists and structs too)."""
    if v is None:
        return "NULL"
    if isinstance(v, float):
        return "NaN" if math.isnan(v) else f"{v:.4g}"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(map(_cell, v)) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k}: {_cell(x)}" for k, x in v.items()) + "}"
    return str(v)


def _csv_cell(v: object) -> object:
    if v is None:
        return ""
    if isinstance(v, (list, dict)):
        return json.dumps(_jsonable(v))
    return v


def _jsonable(v: object) -> object:
    """A DuckDB value as JSON: NaN/inf as null, timestamps ISO 8601, decimals as numbers."""
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (datetime.datetime, datetime.date, datetime.time)):
        return v.isoformat()
    if isinstance(v, decimal.Decimal):
        return float(v)
    if v is None or isinstance(v, (bool, int, str)):
        return v
    return str(v)
