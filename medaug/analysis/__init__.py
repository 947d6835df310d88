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

from medaug.analysis.load import Results, load_generator_eval, load_results
from medaug.analysis.render import Cell, Table
from medaug.analysis.report import build_report
from medaug.analysis.stats import Comparison, StatsOptions, Summary, decide, holm, paired_compare, summarize
from medaug.analysis.tables import build_tables

__all__ = [
    "Cell", "Comparison", "Results", "StatsOptions", "Summary", "Table", "build_report", "build_tables", "decide",
    "holm", "load_generator_eval", "load_results", "paired_compare", "summarize",
]
