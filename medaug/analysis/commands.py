"""`medaug report` and `medaug results ...`: offline analysis from the command line.

    medaug report runs/leroux2021 --out report/        # index.html + report.md + tables/ + figures/
    medaug results tables runs/leroux2021 --table table2 --format latex
    medaug results query runs/leroux2021 "SELECT dataset, avg(test_acc) FROM results GROUP BY dataset"

Nothing here imports torch: these commands run where only the analysis
dependencies (pandas, pyarrow, numpy, scipy, matplotlib; duckdb for `query`) are installed.
"""

from __future__ import annotations

import argparse
import sys

from medaug.errors import MedaugError


def _positive(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        dataset, sep, cls = item.partition("=")
        if not sep or not dataset or not cls:
            raise MedaugError(f"--positive {item!r}: expected DATASET=CLASS (a class name or index 0/1)")
        out[dataset] = cls
    return out


def _options(args: argparse.Namespace):
    from medaug.analysis.stats import StatsOptions

    return StatsOptions(test=args.test, alpha=args.alpha)


def _add_stats_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--test", choices=("t", "wilcoxon"), default="t",
                   help="paired test over matched seeds (default: t, the paired t-test)")
    p.add_argument("--alpha", type=float, default=0.05, help="significance level after Holm correction (0.05)")
    p.add_argument("--geometric", metavar="NAME", help="the geometric pipeline 'GDA' means when there are several")
    p.add_argument("--positive", action="append", default=[], metavar="DATASET=CLASS",
                   help="positive class of a binary dataset for TPR/TNR/FPR (default: class index 1)")


def _report(args: argparse.Namespace) -> int:
    from medaug.analysis.report import build_report

    rep = build_report(args.results, args.out, title=args.title, options=_options(args),
                       positive=_positive(args.positive), geometric=args.geometric,
                       generator_runs=args.generator_runs, synthetic=args.synthetic, per_class=args.per_class)
    failed = f", {rep.n_failed} failed run(s) listed" if rep.n_failed else ""
    print(f"wrote {rep.index_html} and {rep.report_md} ({rep.n_runs} runs, {len(rep.tables)} tables, "
          f"{len(rep.figures)} figures{failed})")
    for m in rep.messages:
        print(f"note: {m}")
    return 0


def _tables(args: argparse.Namespace) -> int:
    from medaug.analysis.load import load_results
    from medaug.analysis.tables import build_tables

    res = load_results(args.results)
    tables = build_tables(res, _options(args), positive=_positive(args.positive), geometric=args.geometric,
                          per_class=args.per_class)
    keys = args.table or list(tables)
    unknown = [k for k in keys if k not in tables]
    if unknown:
        raise MedaugError(f"--table {unknown[0]!r}: not a table of these results; expected one of {list(tables)}")
    for k in keys:
        t = tables[k]
        text = {"markdown": t.to_markdown, "latex": t.to_latex, "csv": t.to_csv}[args.format]()
        sys.stdout.write(text + ("\n" if args.format != "csv" else ""))
    return 0


def _query(args: argparse.Namespace) -> int:
    from medaug.analysis.query import format_result, query

    res = query(args.results, args.sql)
    sys.stdout.write(format_result(res, args.format, args.max_rows))
    more = len(res.rows) - args.max_rows
    if args.max_rows > 0 and more > 0 and args.format in ("csv", "json"):
        print(f"note: {more} more row(s) not shown; use --max-rows 0 for all", file=sys.stderr)
    return 0


def add_commands(subparsers) -> None:
    """Add `report` and `results {query,tables}` to the `medaug` command."""
    p = subparsers.add_parser(
        "report", help="write an HTML + Markdown report (tables, figures, statistics) from results folders",
        description="Analyse result rows offline: seed-style tables with mean ± std over seeds, paired tests "
                    "with Holm correction, figures; writes OUT/index.html (self-contained) and OUT/report.md.")
    p.add_argument("results", nargs="+", metavar="RESULTS", help="results folders (OUT or OUT/results) or files")
    p.add_argument("--out", required=True, metavar="DIR", help="folder for index.html, report.md, tables/, figures/")
    p.add_argument("--title", help="report title (default: from the rows' study names)")
    _add_stats_args(p)
    p.add_argument("--generator-runs", nargs="+", default=[], metavar="DIR",
                   help="generator run folders whose loss tables to plot")
    p.add_argument("--synthetic", action="append", default=[], metavar="STORE.zarr#GROUP",
                   help="synthetic set to show as a montage (repeatable; sets named by the rows are added "
                        "when their store exists)")
    p.add_argument("--per-class", choices=("best", "all", "none"), default="best",
                   help="per-class P/R/F1 tables: baseline vs the best configuration (default), vs all, or none")
    p.set_defaults(handler=_report)

    r = subparsers.add_parser("results", help="look at result rows: tables, SQL queries",
                              description="Look at result rows without writing a report.")
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
    q.set_defaults(handler=_query)

    t = rs.add_parser("tables", help="print the seed-style tables (Markdown, LaTeX or CSV)",
                      description="Print the seed-style tables of result rows.")
    t.add_argument("results", nargs="+", metavar="RESULTS")
    t.add_argument("--table", action="append", metavar="KEY",
                   help="table2, table3, table4, table5, binary_rates, per_class_<dataset> (repeatable; default all)")
    t.add_argument("--format", choices=("markdown", "latex", "csv"), default="markdown")
    t.add_argument("--per-class", choices=("best", "all", "none"), default="best")
    _add_stats_args(t)
    t.set_defaults(handler=_tables)
