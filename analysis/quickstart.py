"""Analyse the quickstart study (BreastMNIST, baseline CNN, {none, WRS} x {none, geometric}, 5 seeds).

    medaug quickstart                       # runs it (see README)
    python analysis/quickstart.py RESULTS [--report DIR]

Prints seed 000's Table 2 form for the quickstart rows (mean ± std over seeds, arrows
only where a paired t-test over matched seeds is significant after Holm) and, for each
configuration, the gain over "no GDA/WRS" with its bootstrap CI and verdict. With
--report it also writes the full HTML/Markdown report.
"""

from __future__ import annotations

import argparse
import sys

from medaug.analysis.load import load_results
from medaug.analysis.report import build_report
from medaug.analysis.stats import StatsOptions
from medaug.analysis.tables import Grid, gains, table2
from medaug.errors import MedaugError


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", help="the quickstart's results folder")
    ap.add_argument("--report", metavar="DIR", help="also write index.html + report.md here")
    args = ap.parse_args(argv)
    try:
        res = load_results([args.results])
        grid = Grid(res)
        opts = StatsOptions()
        print(table2(grid, opts).to_markdown())
        for g in gains(grid, opts):
            print(f"{g.context}: {g.method}: {g.comparison.describe()}")
        if args.report:
            rep = build_report([args.results], args.report, options=opts)
            print(f"report: {rep.index_html}")
    except MedaugError as exc:
        print(f"quickstart analysis: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
