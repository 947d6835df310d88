"""Offline analysis of medaug results: seed-style tables, statistics across seeds, plots, a report.

Researchers copy a results folder home and analyse it there, so this package reads
Parquet (and Zarr, for montages) with pandas, pyarrow, numpy, scipy and matplotlib
only. It never imports torch, nor any medaug module that does (`medaug.data`,
`medaug.train`, ...); a test imports it with torch made unimportable.

Typical use::

    from medaug.analysis import load_results, build_tables, build_report
    res = load_results(["runs/leroux2021"])
    tables = build_tables(res)           # seed 000 Tables 2-5, seed 002/003 forms
    print(tables["table2"].to_markdown())
    build_report(["runs/leroux2021"], "report/")   # index.html + report.md

The modules, bottom up: `load` (folders -> one migrated DataFrame), `methods` (what a
row's configuration is called), `stats` (mean/std over seeds, paired tests, Holm),
`render` (a table's cells -> Markdown / LaTeX / CSV / HTML), `tables` (the seed
studies' table forms), `plots`, `report`, `query` (DuckDB over a results folder).
"""

from __future__ import annotations

import importlib
from typing import Any

# Public names -> the module defining them. Imported on first use (PEP 562), so that
# `medaug report` / `medaug results ...` load only what the command needs (no scipy or
# matplotlib for a query, no duckdb for a report).
_EXPORTS = {
    "Results": "load", "load_generator_eval": "load", "load_results": "load",
    "Cell": "render", "Table": "render",
    "build_report": "report",
    "Comparison": "stats", "StatsOptions": "stats", "Summary": "stats", "decide": "stats", "holm": "stats",
    "paired_compare": "stats", "summarize": "stats",
    "build_tables": "tables",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
