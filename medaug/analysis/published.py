"""A seed paper's published numbers beside a reproduction's, for the scripts in `analysis/`.

The seed papers report one run per configuration; a reproduction has several seeds. These
helpers turn annotated result rows (`medaug.analysis.load.Results.finished`) into
{seed: value} (two rows of one seed averaged), summarise them as table cells, write a
paper's number as text beside them, and run one table's paired comparisons with Holm's
correction (`medaug.analysis.stats`), marking the compared cells as the seed-000 tables do.
Used by analysis/kosheleva2020.py (seed 002) and analysis/song_zhao2021.py (seed 004).
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from medaug.analysis.render import Cell, Table
from medaug.analysis.stats import StatsOptions, decide, paired_compare, summarize
from medaug.errors import MedaugError
from medaug.store.atomic import atomic_write_text


def _number(value: object) -> float:
    try:
        v = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan
    return v


def per_seed(rows: pd.DataFrame, column: str, offset: float = 0.0) -> dict[int, float]:
    """{seed: mean of `column` over that seed's rows} (+ `offset`), NaN values left out."""
    if rows.empty or column not in rows:
        return {}
    vals = pd.to_numeric(rows[column], errors="coerce") + offset
    s = vals.groupby(rows["seed"].astype(int)).mean().dropna()
    return {int(k): float(v) for k, v in s.items()}


def per_class_per_seed(rows: pd.DataFrame, column: str, cls: str) -> dict[int, float]:
    """{seed: value of class `cls` in the per-class list `column`}, the class found by name
    in each row's `class_names` (rows without the class, or without the list, left out)."""
    found: dict[int, list[float]] = {}
    if rows.empty or column not in rows:
        return {}
    for seed, names, values in zip(rows["seed"], rows["class_names"], rows[column]):
        if names is None or values is None:
            continue
        names = [str(n) for n in names]
        if cls not in names or names.index(cls) >= len(values):
            continue
        v = _number(values[names.index(cls)])
        if not math.isnan(v):
            found.setdefault(int(seed), []).append(v)
    return {s: float(np.mean(v)) for s, v in found.items()}


def ours(values: Mapping[int, float], digits: int = 3) -> Cell:
    """mean ± std (n) over seeds, on the scale the paper prints (fractions, not %)."""
    return Cell(summarize(list(values.values())), scale=1.0, digits=digits)


def published(value: float | int | str | None, digits: int | None = None) -> Cell:
    """A paper's number as it printed it (`digits`: format a float), "—" where it gave none."""
    if value is None:
        return Cell(text="—")
    if isinstance(value, str):
        return Cell(text=value)
    return Cell(text=f"{value:.{digits}f}" if digits is not None else str(value))


@dataclass
class Pending:
    """A cell whose value is compared with a baseline: its per-seed values and the baseline's."""

    cell: Cell
    values: Mapping[int, float]
    baseline: Mapping[int, float]
    label: str
    metric: str


def mark_comparisons(pending: Sequence[Pending], opts: StatsOptions) -> int:
    """Paired comparisons over matched seeds, Holm within `pending` (one table's family);
    marks each cell (↑/↓, the comparison in `detail`, and where the renderer shows them,
    the fragile dagger and the minimum detectable effect). Returns how many were tested."""
    comps = [paired_compare(p.values, p.baseline, label=p.label, metric=p.metric, options=opts) for p in pending]
    decided = decide(comps, opts.alpha)
    for p, c in zip(pending, decided):
        p.cell.mark = {"improved": "up", "worse": "down"}.get(c.verdict, "")
        p.cell.detail = c.describe()
        for attr in ("fragile", "detectable"):  # the power statement of issue 13, where present
            if hasattr(p.cell, attr) and hasattr(c, attr):
                setattr(p.cell, attr, getattr(c, attr))
    return sum(c.verdict != "untestable" for c in decided)


def legend(opts: StatsOptions, n_tested: int, baseline: str, what: str) -> list[str]:
    """The notes that explain a table's marks."""
    if not n_tested:
        return [f"No {what} comparison with {baseline} could be tested here (each needs at least 2 seeds matched "
                "with the baseline): no arrows."]
    test = "paired t-test" if opts.test == "t" else "Wilcoxon signed-rank test"
    notes = [f"↑/↓: {what} significantly better/worse than {baseline} ({test} over matched seeds, Holm-corrected "
             f"over the {n_tested} tested comparison(s) of this table, alpha {opts.alpha:g}); no arrow: not "
             "significant or untestable. Claims need at least 2 matched seeds."]
    try:  # the fragile mark and the detectable effect (medaug.analysis.stats, issue 13 item 6)
        from medaug.analysis.stats import detectable_note, fragile_note
    except ImportError:
        return notes
    return notes + [fragile_note(), detectable_note(opts, n_tested)]


def one_context(df: pd.DataFrame, what: str, **fields: object) -> tuple[pd.DataFrame, list[str]]:
    """The rows of `df` matching `fields` in their one training setting (context, less the
    fields given); where several settings match, the one with the most runs, and a note."""
    sel = df
    for name, value in fields.items():
        sel = sel[sel[name] == value]
    if sel.empty:
        return sel, []
    counts = sel.groupby("context", sort=False).size().sort_values(ascending=False, kind="stable")
    if len(counts) == 1:
        return sel, []
    chosen = str(counts.index[0])
    others = ", ".join(f"{c} ({n} runs)" for c, n in counts.iloc[1:].items())
    return sel[sel["context"] == chosen], [f"{what}: several training settings in these results; shown: {chosen} "
                                            f"({counts.iloc[0]} runs); not shown: {others}"]


def require_rows(df: pd.DataFrame, dataset_names: Sequence[str], study: str) -> None:
    """Refuse, in one line, results that hold none of the seed study's data sets."""
    if df.empty or not set(df["dataset"]).intersection(dataset_names):
        present = ", ".join(sorted(set(df["dataset"]))) if not df.empty else "no finished runs"
        raise MedaugError(f"no finished runs of {study}'s data sets ({', '.join(dataset_names)}) in these results "
                          f"({present})")


def script_parser(doc: str, results_help: str = "results folders (OUT or OUT/results)",
                  out_help: str = "folder for the tables") -> argparse.ArgumentParser:
    """The command line every seed's analysis script shares: results folders, --out and the test options."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("results", nargs="+", help=results_help)
    ap.add_argument("--out", required=True, help=out_help)
    ap.add_argument("--test", choices=("t", "wilcoxon"), default="t")
    ap.add_argument("--alpha", type=float, default=0.05)
    return ap


def write_tables(tables: Sequence[Table], out: Path) -> None:
    """Write each table's md/tex/csv forms under `out` and print its markdown."""
    for t in tables:
        for ext, text in t.files().items():
            atomic_write_text(out / f"{t.key}.{ext}", text)
        print(t.to_markdown())
