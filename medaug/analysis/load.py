"""Read results folders into one DataFrame, migrating older schema versions.

A results folder holds one Parquet file per run (`OUT/results/<run_id>.parquet`,
`medaug.store.results`). Users hand us an OUT folder, its `results/` folder, a single
file, or several of these; files are read one by one so that a file of an older
schema version can be migrated (and one of an unknown version refused by name)
before the rows are put together.

Schema versions:
- 2 (current, `medaug.store.results.SCHEMA_VERSION`): recipes, their training fields, tta.
- 1: before recipes; migrated with seed 000's values of the new fields.
- 0: a file without a `schema_version` column (rows written before the schema was
  versioned). Migration adds every missing column as null and derives `status`
  from `test_acc` when absent; the columns it has must carry today's names and
  castable types.
A version above the current one, or one with no migration path, is refused with a
`MedaugError` naming the file: an analysis must never guess what a column means.

One loader decides which files are result rows, for every reader (`medaug report`,
`medaug results tables`, `medaug results query`): `read_result_rows`. A file that is not a
valid result row (not Parquet, a foreign schema, an unknown `schema_version`) is refused,
not skipped: the whole command stops with one line naming the first such file and how many
more there are, so that no reader ever counts rows another one does not.

Generator-evaluation rows (`OUT/generator-eval/*.parquet`, issue 4) are read by
`load_generator_eval`, tolerating their absence and missing columns; finished rows only
(a generator study's stopped or failed trials have no metrics). A folder holding only
evaluations (a generator study's OUT) loads with no classifier rows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from medaug.errors import MedaugError
from medaug.store.results import RESULTS_DIR, SCHEMA, SCHEMA_VERSION

if TYPE_CHECKING:  # pandas is imported where a DataFrame is made: `medaug results query` never needs it
    import pandas as pd

GENERATOR_EVAL_DIR = "generator-eval"

# Columns without which a file is not a classifier result row at all.
REQUIRED_COLUMNS = ("run_id", "dataset", "status")  # after migration

GENERATOR_EVAL_COLUMNS = (
    "generator", "dataset", "extractor", "fid", "fid_floor", "kid_mean", "kid_std", "precision", "recall",
    "density", "coverage", "tstr_acc", "trtr_acc", "seed", "near_copy_share_pixel", "near_copy_baseline_pixel",
    "near_copy_share_feature", "near_copy_baseline_feature", "tstr_balanced_acc", "trtr_balanced_acc", "tstr_auc",
    "trtr_auc", "recipe", "class_names", "fid_per_class", "tstr_recall_per_class", "tstr_n",
)
#: Columns of `GENERATOR_EVAL_COLUMNS` that are not numbers (text, or per-class lists).
GENERATOR_EVAL_OTHER = ("generator", "dataset", "extractor", "recipe", "class_names", "fid_per_class",
                        "tstr_recall_per_class")


def _v0_to_v1(table: pa.Table) -> pa.Table:
    """Version 0 (no `schema_version` column) -> 1.

    Missing columns are added as nulls by `_conform`; a missing `status` is derived
    from the metrics: a row with a test accuracy finished, one without failed.
    """
    if "status" not in table.column_names:
        if "test_acc" in table.column_names:
            done = table.column("test_acc").is_valid().to_pylist()
        else:
            done = [False] * table.num_rows
        table = table.append_column("status", pa.array(["finished" if d else "failed" for d in done], pa.string()))
    return table


def _v1_to_v2(table: pa.Table) -> pa.Table:
    """Version 1 -> 2: rows from before recipes were trained with seed 000's values of the
    new training fields, without TTA, for exactly `epochs` epochs."""
    n = table.num_rows
    filled = {"recipe": pa.array(["seed000"] * n, pa.string()), "recipe_version": pa.array([1] * n, pa.int32()),
              "nesterov": pa.array([False] * n), "label_smoothing": pa.array([0.0] * n),
              "ema": pa.array([0.0] * n), "warmup": pa.array([0.0] * n), "translate": pa.array([0.0] * n), "min_steps": pa.array([0] * n, pa.int64()),
              "tta": pa.array(["none"] * n, pa.string())}
    if "epochs" in table.column_names:
        filled["epochs_trained"] = table.column("epochs")
    for name, values in filled.items():
        if name not in table.column_names:
            table = table.append_column(name, values)
    return table


# MIGRATIONS[v] turns a table of version v into one of version v + 1.
MIGRATIONS: dict[int, Callable[[pa.Table], pa.Table]] = {0: _v0_to_v1, 1: _v1_to_v2}


@dataclass
class Results:
    """All result rows of one analysis, annotated with method/context labels (`methods.annotate`).

    `rows` holds every run; `finished` the ones with test metrics, `failed` all others
    (status failed, or stopped early by a scheduler); `messages` lists what the loader did that
    a reader should know (files migrated, duplicates dropped).
    """

    rows: pd.DataFrame
    sources: tuple[Path, ...]
    n_files: int
    messages: list[str] = field(default_factory=list)
    generator_eval: pd.DataFrame | None = None

    @property
    def finished(self) -> pd.DataFrame:
        return self.rows[self.rows["status"] == "finished"]

    @property
    def failed(self) -> pd.DataFrame:
        return self.rows[self.rows["status"] != "finished"]


def result_files(paths: Sequence[str | Path]) -> list[Path]:
    """Parquet result files under each path (an OUT folder, a `results/` folder or a file)."""
    if isinstance(paths, (str, Path)):
        paths = [paths]
    if not paths:
        raise MedaugError("results: no results folder given")
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise MedaugError(f"{path}: no such results folder or file")
        if path.is_file():
            if path.suffix != ".parquet":
                raise MedaugError(f"{path}: not a Parquet file; expected a results folder or a *.parquet file")
            files.append(path)
            continue
        base = path / RESULTS_DIR if (path / RESULTS_DIR).is_dir() else path
        files.extend(f for f in sorted(base.rglob("*.parquet"))
                     if not f.name.startswith(".") and GENERATOR_EVAL_DIR not in f.relative_to(base).parts)
    for f in files:
        if not (f.is_file() or f.is_dir()):  # a pipe would block the reader forever, a device never end
            raise MedaugError(f"{f}: not a regular file (a pipe or device named *.parquet); "
                              "expected a Parquet result file; remove it")
    seen: set[Path] = set()
    unique = [f for f in files if not (f.resolve() in seen or seen.add(f.resolve()))]
    if not unique:
        where = ", ".join(str(p) for p in paths)
        raise MedaugError(f"{where}: no result files (*.parquet) found; expected OUT/results/<run_id>.parquet files "
                          "written by `medaug train` or `medaug sweep`")
    return unique


def schema_version_of(table: pa.Table, file: Path) -> int:
    if "schema_version" not in table.column_names:
        return 0
    values = set(table.column("schema_version").to_pylist())
    if len(values) != 1 or None in values:
        raise MedaugError(f"{file}: column schema_version holds {sorted(values, key=str)}; expected one integer")
    return int(values.pop())


def migrate(table: pa.Table, file: Path) -> tuple[pa.Table, int]:
    """Bring a table of any known schema version to the current one; returns (table, old version)."""
    version = schema_version_of(table, file)
    if version == SCHEMA_VERSION and table.schema.equals(SCHEMA, check_metadata=False):
        return pa.Table.from_arrays(table.columns, schema=SCHEMA), version  # as written today: nothing to do
    if version > SCHEMA_VERSION:
        raise MedaugError(f"{file}: schema_version {version} is newer than this medaug reads (0..{SCHEMA_VERSION}); "
                          "upgrade medaug to analyse it")
    if version < 0 or any(v not in MIGRATIONS for v in range(version, SCHEMA_VERSION)):
        raise MedaugError(f"{file}: schema_version {version} is unknown; this medaug reads versions "
                          f"{sorted(set(MIGRATIONS) | {SCHEMA_VERSION})}")
    for v in range(version, SCHEMA_VERSION):
        table = MIGRATIONS[v](table)
    return _conform(table, file), version


def _conform(table: pa.Table, file: Path) -> pa.Table:
    """Exactly the current SCHEMA: missing columns null, each column cast to its type, extras dropped."""
    missing = [c for c in REQUIRED_COLUMNS if c not in table.column_names]
    if missing:
        raise MedaugError(f"{file}: not a medaug result row: missing column(s) {missing}")
    arrays = []
    for fld in SCHEMA:
        if fld.name == "schema_version":
            arrays.append(pa.array([SCHEMA_VERSION] * table.num_rows, pa.int32()))
        elif fld.name in table.column_names:
            col = table.column(fld.name)
            try:
                arrays.append(col.cast(fld.type))
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                raise MedaugError(f"{file}: column {fld.name!r} has type {col.type}; expected {fld.type}") from None
        else:
            arrays.append(pa.nulls(table.num_rows, fld.type))
    return pa.Table.from_arrays(arrays, schema=SCHEMA)


def read_result_file(file: Path) -> tuple[pa.Table, int]:
    """One file's rows in the current schema, and the schema version it was written in.

    Read with `pq.ParquetFile` (not `pq.read_table`, which imports pyarrow.dataset: a
    second of start-up that every `medaug results` command would pay).
    """
    try:
        table = pq.ParquetFile(file).read()
    except (pa.ArrowException, OSError) as exc:
        raise _unreadable(file, exc) from None
    return migrate(table, file)


def _unreadable(file: Path, exc: Exception) -> MedaugError:
    detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return MedaugError(f"{file}: not a readable Parquet file ({detail})")


def _read_all(files: list[Path]) -> tuple[list[pa.Table], int]:
    """Each file read, validated and migrated; (tables, number of files migrated from an older version).

    Every file is checked before any is refused, so the error says how many are bad.
    """
    tables: list[pa.Table] = []
    errors: list[MedaugError] = []
    migrated = 0
    for file in files:
        try:
            table, version = read_result_file(file)
        except MedaugError as exc:
            errors.append(exc)
            continue
        migrated += version != SCHEMA_VERSION
        tables.append(table)
    if errors:
        more = f" (and {len(errors) - 1} more file(s) that are not valid result rows)" if len(errors) > 1 else ""
        raise MedaugError(f"{errors[0]}{more}")
    return tables, migrated


@dataclass
class ResultRows:
    """The validated rows of some results folders, as one Arrow table of exactly `SCHEMA`.

    What every reader sees: `load_results` (tables, report) annotates these rows,
    `medaug.analysis.query` puts them into DuckDB as the table `results`.
    """

    table: pa.Table
    files: list[Path]
    messages: list[str] = field(default_factory=list)


def read_result_rows(paths: Sequence[str | Path] | str | Path) -> ResultRows:
    """Every result file under `paths`, validated, migrated to the current schema, duplicates dropped.

    Refuses (MedaugError, one line) a missing or empty folder and any file that is not a
    valid result row; see the module docstring.
    """
    if isinstance(paths, (str, Path)):
        paths = [paths]
    files = result_files(paths)
    tables, migrated = _read_all(files)
    table = pa.concat_tables(tables)
    messages = []
    if migrated:
        messages.append(f"{migrated} file(s) of an older schema version were migrated to version {SCHEMA_VERSION}")
    keep = _kept_rows(table)
    if len(keep) < table.num_rows:
        messages.append(f"{table.num_rows - len(keep)} duplicate row(s) with the same run_id were dropped "
                        "(a finished row is kept over a failed one, then the latest)")
    return ResultRows(table=table.take(_int64_array(keep)), files=files, messages=messages)


def load_results(paths: Sequence[str | Path] | str | Path, *, with_generator_eval: bool = True) -> Results:
    """Read every result file under `paths` (migrating old versions) into a `Results`."""
    from medaug.analysis.methods import annotate

    if isinstance(paths, (str, Path)):
        paths = [paths]
    gen_eval = load_generator_eval(paths) if with_generator_eval else None
    if gen_eval is not None and not _has_result_files(paths):  # a generator study: evaluations, no classifier rows
        read = ResultRows(table=SCHEMA.empty_table(), files=[])
    else:
        read = read_result_rows(paths)
    rows, notes = annotate(read.table.to_pandas())
    if gen_eval is not None:  # the classifier rows' `data` label of the same train split (analysis/data_label.py)
        from medaug.analysis.data_label import eval_data_labels

        hashes = gen_eval["train_hash"].tolist() if "train_hash" in gen_eval else [None] * len(gen_eval)
        gen_eval["data"] = eval_data_labels(gen_eval["dataset"].tolist(), hashes, rows["train_hash"].tolist(),
                                            rows["data"].tolist())
    return Results(rows=rows, sources=tuple(Path(p) for p in paths), n_files=len(read.files),
                   messages=read.messages + notes, generator_eval=gen_eval)


def _has_result_files(paths: Sequence[str | Path]) -> bool:
    """Whether `paths` hold classifier result rows (a generator study's OUT holds none)."""
    try:
        result_files(paths)
    except MedaugError as exc:
        if "no result files" in str(exc):
            return False
        raise
    return True


def _int64_array(values: list[int]) -> pa.Array:
    """`pa.array(values, pa.int64())` without its check for pandas input, which imports pandas
    (half a second of `medaug results query` start-up)."""
    return pa.Array.from_buffers(pa.int64(), len(values), [None, pa.py_buffer(np.asarray(values, np.int64))])


def _kept_rows(table: pa.Table) -> list[int]:
    """Row numbers to keep, one per run_id (a finished row over a failed one, then the latest
    `finished_at`, then the one read last), in (dataset, run_id) order."""
    run_ids = table.column("run_id").to_pylist()
    finished = [s == "finished" for s in table.column("status").to_pylist()]
    # microseconds since 1970, missing as 0 (timestamps' to_pylist would import pandas)
    times = [t or 0 for t in table.column("finished_at").cast(pa.int64()).to_pylist()]
    best: dict[object, int] = {}
    for i, run_id in enumerate(run_ids):
        j = best.get(run_id)
        if j is None or (finished[i], times[i]) >= (finished[j], times[j]):
            best[run_id] = i
    datasets = table.column("dataset").to_pylist()
    return sorted(best.values(), key=lambda i: (datasets[i] is None, datasets[i] or "",
                                                run_ids[i] is None, run_ids[i] or ""))


def generator_eval_files(paths: Iterable[str | Path]) -> list[Path]:
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        candidates = [path / GENERATOR_EVAL_DIR]
        if path.name == RESULTS_DIR:
            candidates.append(path.parent / GENERATOR_EVAL_DIR)
        if path.name == GENERATOR_EVAL_DIR:
            candidates.append(path)
        for c in candidates:
            if c.is_dir():
                files.extend(f for f in sorted(c.rglob("*.parquet")) if not f.name.startswith("."))
    for f in files:
        if not (f.is_file() or f.is_dir()):
            raise MedaugError(f"{f}: not a regular file (a pipe or device named *.parquet); "
                              "expected a generator-evaluation Parquet file; remove it")
    return sorted(set(files))


def load_generator_eval(paths: Sequence[str | Path] | str | Path) -> pd.DataFrame | None:
    """Generator-evaluation rows under `paths` (`OUT/generator-eval/*.parquet`), or None if there are none.

    Tolerant by design (another area writes them): unreadable files are skipped and
    missing columns of `GENERATOR_EVAL_COLUMNS` are added as NaN/None.
    """
    if isinstance(paths, (str, Path)):
        paths = [paths]
    files = generator_eval_files(paths)
    if not files:
        return None
    import pandas as pd  # only now: a query of a folder without evaluations never loads pandas

    frames = []
    for file in files:
        try:
            frames.append(pq.ParquetFile(file).read().to_pandas())
        except (pa.ArrowException, OSError):
            continue
    if not frames:
        return None
    df = pd.concat(frames, ignore_index=True)
    for col in GENERATOR_EVAL_COLUMNS:
        if col not in df.columns:
            df[col] = None
    numeric = [c for c in GENERATOR_EVAL_COLUMNS if c not in GENERATOR_EVAL_OTHER]
    for col in numeric:
        df[col] = pd.to_numeric(df[col], errors="coerce")
    if "schema_version" in df.columns:  # rows before generator-eval schema 3 trained seed 000's protocol
        old = pd.to_numeric(df["schema_version"], errors="coerce").fillna(0) < 3
        df.loc[old & df["recipe"].isna(), "recipe"] = "seed000"
    if "status" in df.columns:  # a generator study's stopped (ASHA) or failed trials carry no metrics
        df = df[df["status"].isna() | (df["status"] == "finished")].reset_index(drop=True)
        if df.empty:
            return None
    return df
