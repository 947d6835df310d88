"""Rebuild seed 001's Table 2 (Fricker, "Advanced Deep Learning Mini Project: Data
Augmentation": mean classifier confidence on 100 generated images per model and data set)
from a results folder, with the seed's published numbers side by side, and the downstream
gain the seed did not measure.

    python analysis/fricker.py results/fricker --out analysis-out/fricker

Reads the generator-evaluation rows (OUT/generator-eval/*.parquet) that `medaug sweep
sweeps/fricker.yaml --make-synthetic` (or a generator study) wrote, and the classifier rows
of the same study. Writes, under --out:
  table2_vs_published .md .csv   per data set and model: ours (mean ± std over the model's
                                 evaluated fits) beside seed 001's single number, and the
                                 "Mean of mean confidence" row
  downstream_gain .md .csv       per data set and method: test-ACC gain over training on real
                                 data alone, paired over matched seeds (↑/↓ significant after Holm)
and prints both as Markdown. Needs only the analysis dependencies (no torch).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from medaug.analysis.generator_tables import MEAN_ROW
from medaug.analysis.load import load_generator_eval, load_results
from medaug.analysis.render import Cell, Table
from medaug.analysis.stats import StatsOptions, summarize
from medaug.errors import MedaugError
from medaug.store.atomic import atomic_write_text

DATASETS = ("pathmnist", "dermamnist", "octmnist", "pneumoniamnist", "breastmnist", "organamnist", "organcmnist",
            "organsmnist")
#: seed 001's column -> medaug's generator.
MODELS = (("Geometric", "geometric"), ("CVAE", "cvae"), ("DCGAN", "dcgan"), ("CVAEDCGAN", "vaegan"))

# Seed 001 Table 2, mean confidence (%) on 100 generated images, one run per cell.
PUBLISHED = {
    "pathmnist": (100.00, 87.07, 88.33, 93.63),
    "dermamnist": (46.28, 100.00, 100.00, 100.00),
    "octmnist": (97.98, 94.73, 97.32, 97.25),
    "pneumoniamnist": (99.74, 98.46, 99.59, 98.54),
    "breastmnist": (57.48, 97.34, 95.37, 92.21),
    "organamnist": (100.00, 91.02, 92.98, 94.86),
    "organcmnist": (99.85, 88.41, 86.93, 87.54),
    "organsmnist": (99.97, 85.78, 90.44, 83.95),
}
PUBLISHED_MEAN = (87.66, 92.85, 93.87, 93.50)
#: Seed 001's classifier test accuracy (%) after 100 epochs (its Results section).
PUBLISHED_CLASSIFIER_ACC = {"breastmnist": 81.41, "dermamnist": 66.93, "octmnist": 63.20, "organamnist": 84.13,
                            "organcmnist": 81.74, "organsmnist": 71.25, "pathmnist": 80.71, "pneumoniamnist": 85.09}


def table2_vs_published(gen_eval: pd.DataFrame | None) -> Table:
    """Seed 001 Table 2, ours beside the published value for each model; every data set of
    the seed is a row (a dash where we have no evaluation)."""
    header = [h for name, _ in MODELS for h in (f"{name} (ours)", f"{name} (seed 001)")]
    table = Table("table2_vs_published", "Seed 001 Table 2: mean confidence (%) on generated images, reproduced "
                  "vs published", "Dataset", header)
    ev = gen_eval if gen_eval is not None else pd.DataFrame(columns=["dataset", "generator", "mean_confidence"])
    ours_means: dict[str, list[float]] = {g: [] for _, g in MODELS}
    for ds in DATASETS:
        cells = []
        for (_, g), published in zip(MODELS, PUBLISHED[ds]):
            vals = pd.to_numeric(ev.loc[(ev["dataset"] == ds) & (ev["generator"] == g), "mean_confidence"],
                                 errors="coerce")
            s = summarize(list(vals))
            if s.n:
                ours_means[g].append(s.mean)
            cells += [Cell(value=s), Cell(text=f"{published:.2f}")]
        table.rows.append((ds, cells))
    mean_cells = []
    for (_, g), published in zip(MODELS, PUBLISHED_MEAN):
        vals = ours_means[g]
        mean_cells += [Cell(value=summarize(vals)) if len(vals) == len(DATASETS) else
                       Cell(text=f"— ({len(vals)} of {len(DATASETS)} sets)"), Cell(text=f"{published:.2f}")]
    table.rows.append((MEAN_ROW, mean_cells))
    protocols = sorted(set(ev["recipe"].dropna().astype(str))) if "recipe" in ev else []
    table.notes += [
        "Ours: mean ± std over each model's evaluated fits (n), the reference classifier's mean probability of the "
        "intended class on n generated images (sweeps/fricker.yaml: n 100, seed 001's classifier fricker-cnn trained "
        "100 epochs). Seed 001: one run per cell, its Table 2.",
        f"Reference recipe(s) of these rows: {', '.join(protocols) or '—'}. {MEAN_ROW}: mean over the eight data sets "
        "of each model's mean (shown only when all eight are there).",
        "Seed 001's classifier reached test ACC " + ", ".join(f"{d} {a:.2f} %" for d, a in
                                                            PUBLISHED_CLASSIFIER_ACC.items())
        + ": a weaker classifier is more often confidently wrong, so confidence compares models within a row, "
          "not data sets.",
    ]
    return table


def downstream_gain(paths: list[str], opts: StatsOptions | None = None) -> Table | None:
    """Per data set and method, the test-ACC gain over real data alone (pp), None without classifier rows."""
    from medaug.analysis.tables import Grid, gains

    res = load_results(paths)
    if res.rows.empty:
        return None
    grid = Grid(res)
    found = gains(grid, opts or StatsOptions())
    methods = list(dict.fromkeys(g.method for g in found))
    table = Table("downstream_gain", "Downstream gain over real data alone (test ACC, pp; not measured by seed 001)",
                  "Context", methods)
    for ctx in grid.contexts:
        by_method = {g.method: g.comparison for g in found if g.context == ctx}
        cells = []
        for m in methods:
            comp = by_method.get(m)
            if comp is None or not comp.seeds:
                cells.append(Cell(text="—"))
                continue
            mark = {"improved": "up", "worse": "down"}.get(getattr(comp, "verdict", ""), "")
            cells.append(Cell(text=f"{comp.mean_diff * 100:+.2f} (n={len(comp.seeds)})", mark=mark,
                              detail=comp.describe()))
        table.rows.append((ctx, cells))
    table.notes.append("Mean paired difference over matched seeds against the context's baseline (no augmentation, "
                       "no synthetic set); ↑/↓: significant after Holm over the table.")
    return table


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("results", nargs="+", help="results folder(s) of sweeps/fricker.yaml (OUT)")
    p.add_argument("--out", required=True, help="folder for the tables")
    args = p.parse_args(argv)
    try:
        gen_eval = load_generator_eval(args.results)
        if gen_eval is None:
            raise MedaugError(f"{', '.join(args.results)}: no generator-evaluation rows (OUT/generator-eval/); run "
                              "the study with --make-synthetic, or a generator study")
        tables = [table2_vs_published(gen_eval)]
        gain = downstream_gain(args.results)
        if gain is not None:
            tables.append(gain)
        out = Path(args.out)
        for t in tables:
            atomic_write_text(out / f"{t.key}.md", t.to_markdown())
            atomic_write_text(out / f"{t.key}.csv", t.to_csv())
            sys.stdout.write(t.to_markdown() + "\n")
    except MedaugError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())


__all__ = ["PUBLISHED", "PUBLISHED_MEAN", "downstream_gain", "main", "table2_vs_published"]
