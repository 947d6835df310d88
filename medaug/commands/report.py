"""`medaug report`: an HTML + Markdown report (tables, figures, statistics) from results folders.

    medaug report runs/leroux2021 --out report/        # index.html + report.md + tables/ + figures/

Imports no torch: it runs where only the analysis dependencies (pandas, pyarrow, numpy,
scipy, matplotlib) are installed.
"""

from __future__ import annotations

import argparse

from medaug.commands.common import add_stats_options, positive_classes, stats_options


def configure(p: argparse.ArgumentParser) -> None:
    p.description = ("Analyse result rows offline: seed-style tables with mean ± std over seeds, paired tests "
                     "with Holm correction, figures; writes OUT/index.html (self-contained) and OUT/report.md.")
    p.add_argument("results", nargs="+", metavar="RESULTS", help="results folders (OUT or OUT/results) or files")
    p.add_argument("--out", required=True, metavar="DIR", help="folder for index.html, report.md, tables/, figures/")
    p.add_argument("--title", help="report title (default: from the rows' study names)")
    add_stats_options(p)
    p.add_argument("--generator-runs", nargs="+", default=[], metavar="DIR",
                   help="generator run folders whose loss tables to plot")
    p.add_argument("--synthetic", action="append", default=[], metavar="STORE.zarr#GROUP",
                   help="synthetic set to show as a montage (repeatable; sets named by the rows are added "
                        "when their store exists)")
    p.add_argument("--per-class", choices=("best", "all", "none"), default="best",
                   help="per-class P/R/F1 tables: baseline vs the best configuration (default), vs all, or none")
    p.set_defaults(handler=report_command)


def report_command(args: argparse.Namespace) -> int:
    from medaug.analysis.report import build_report

    rep = build_report(args.results, args.out, title=args.title, options=stats_options(args),
                       positive=positive_classes(args.positive), geometric=args.geometric,
                       generator_runs=args.generator_runs, synthetic=args.synthetic, per_class=args.per_class)
    failed = f", {rep.n_failed} failed run(s) listed" if rep.n_failed else ""
    print(f"wrote {rep.index_html} and {rep.report_md} ({rep.n_runs} runs, {len(rep.tables)} tables, "
          f"{len(rep.figures)} figures{failed})")
    for m in rep.messages:
        print(f"note: {m}")
    return 0
