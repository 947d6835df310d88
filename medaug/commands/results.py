"""`medaug results tables|query`: look at result rows without writing a report.

    medaug results tables runs/leroux2021 --table table2 --format latex
    medaug results query runs/leroux2021 "SELECT dataset, avg(test_acc) FROM results GROUP BY dataset"

Imports no torch (pandas, pyarrow, numpy, scipy; duckdb for `query`). `query` is
read-only over the same validated rows that `tables` and `report` read.
"""

from __future__ import annotations

import argparse
import sys

from medaug.commands.common import add_stats_options, positive_classes, stats_options
from medaug.errors import MedaugError


def configure(r: argparse.ArgumentParser) -> None:
    r.description = "Look at result rows without writing a report."
    rs = r.add_subparsers(dest="results_command", required=True, metavar="ACTION")
    q = rs.add_parser("query", help="run read-only DuckDB SQL over a results folder (table: results)",
                      description="Run SQL over the result rows with DuckDB. The rows are the table `results`: "
                                  "the same rows `results tables` and `report` read (validated, migrated to the "
                                  "current schema, duplicates dropped); generator evaluations, when present, are "
                                  "the table `generator_eval`. Read-only: only SELECT (and EXPLAIN) statements run, "
                                  "and no file can be read, written or deleted from the SQL.")
    q.add_argument("results", metavar="RESULTS", help="results folder (OUT or OUT/results)")
    q.add_argument("sql", metavar="SQL", help='e.g. "SELECT dataset, avg(test_acc) FROM results GROUP BY 1"')
    q.add_argument("--format", choices=("table", "csv", "json", "markdown"), default="table")
    q.add_argument("--max-rows", type=int, default=100, help="rows to print (0: all)")
    q.add_argument("--timeout", type=float, default=60.0, metavar="SECONDS",
                   help="interrupt a query running longer than this (default 60)")
    q.set_defaults(handler=query_command)

    t = rs.add_parser("tables", help="print the seed-style tables (Markdown, LaTeX or CSV)",
                      description="Print the seed-style tables of result rows.")
    t.add_argument("results", nargs="+", metavar="RESULTS")
    t.add_argument("--table", action="append", metavar="KEY",
                   help="table2, table3, table4, table5, binary_rates, per_class_<dataset> (repeatable; default all)")
    t.add_argument("--format", choices=("markdown", "latex", "csv"), default="markdown")
    t.add_argument("--per-class", choices=("best", "all", "none"), default="best")
    add_stats_options(t)
    t.set_defaults(handler=tables_command)


def tables_command(args: argparse.Namespace) -> int:
    from medaug.analysis.load import load_results
    from medaug.analysis.tables import build_tables

    res = load_results(args.results)
    tables = build_tables(res, stats_options(args), positive=positive_classes(args.positive),
                          geometric=args.geometric, per_class=args.per_class)
    keys = args.table or list(tables)
    unknown = [k for k in keys if k not in tables]
    if unknown:
        raise MedaugError(f"--table {unknown[0]!r}: not a table of these results; expected one of {list(tables)}")
    for k in keys:
        t = tables[k]
        text = {"markdown": t.to_markdown, "latex": t.to_latex, "csv": t.to_csv}[args.format]()
        sys.stdout.write(text + ("\n" if args.format != "csv" else ""))
    return 0


def query_command(args: argparse.Namespace) -> int:
    from medaug.analysis.query import format_result, query

    if args.max_rows < 0:
        raise MedaugError(f"--max-rows {args.max_rows}: expected an integer >= 0 (0: all rows)")
    res = query(args.results, args.sql, timeout_s=args.timeout)
    sys.stdout.write(format_result(res, args.format, args.max_rows))
    more = len(res.rows) - args.max_rows
    if args.max_rows > 0 and more > 0 and args.format in ("csv", "json"):
        print(f"note: {more} more row(s) not shown; use --max-rows 0 for all", file=sys.stderr)
    return 0
