"""Rebuild seed 002's tables (Kosheleva, Alam, Ivannikov 2020, "Generative Adversarial Networks
for Data Augmentation", ISIC 2019) from a results folder, the paper's numbers beside ours.

    python analysis/kosheleva2020.py results/kosheleva2020-isic --out tables/kosheleva2020

Writes, under --out (each as .md, .tex and .csv), and prints as Markdown:
  table2     per-class precision / recall / F1 without augmentation: Table 2 beside ours
  table3     the same with 128 GAN images for each of AK, DF, VASC, SCC: Table 3 beside each
             GAN arm (per-class DCGAN, cWGAN-GP); F1 arrows against our no-augmentation runs
  accuracy   overall test accuracy (the paper: 33 % before, 39 % after) and balanced accuracy
  table4     train on synthetic, test on real (TSTR): the four rare classes' recall from the
             generator-evaluation rows (`medaug generator eval --tstr`) beside Table 4

The study is `sweeps/kosheleva2020-isic.yaml`. Ours are mean ± std over seeds (n), in the
paper's units (fractions); the paper reports one run each. Needs only the analysis
dependencies (pandas, pyarrow, numpy, scipy, matplotlib), not torch.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

from medaug.analysis.load import Results, load_results
from medaug.analysis.methods import GENERATOR_NAMES
from medaug.analysis.published import (Pending, legend, mark_comparisons, one_context, ours, per_class_per_seed,
                                       per_seed, published, require_rows, script_parser, write_tables)
from medaug.analysis.render import Cell, Table
from medaug.analysis.stats import StatsOptions, summarize
from medaug.errors import MedaugError

DATASET = "isic2019"
CLASSES = ("MEL", "NV", "BCC", "AK", "BKL", "DF", "VASC", "SCC")
RARE = ("AK", "DF", "VASC", "SCC")
GANS = ("dcgan", "cwgan-gp")

# Seed 002, Tables 2-4: (precision, recall, F1) per class, one run each, on its 30 % validation split.
TABLE2 = {"MEL": (0.22, 0.07, 0.11), "NV": (0.34, 0.77, 0.47), "BCC": (0.33, 0.08, 0.11), "AK": (0.00, 0.00, 0.00),
          "BKL": (0.09, 0.06, 0.07), "DF": (0.00, 0.00, 0.00), "VASC": (0.00, 0.00, 0.00), "SCC": (0.00, 0.00, 0.00)}
TABLE3 = {"MEL": (0.22, 0.07, 0.11), "NV": (0.34, 0.77, 0.47), "BCC": (0.33, 0.08, 0.11), "AK": (0.05, 0.01, 0.02),
          "BKL": (0.04, 0.06, 0.04), "DF": (0.06, 0.00, 0.00), "VASC": (0.04, 0.02, 0.03), "SCC": (0.05, 0.00, 0.00)}
TABLE4 = {"AK": (0.24, 0.22, 0.23), "DF": (0.19, 0.68, 0.29), "VASC": (0.32, 0.11, 0.16), "SCC": (0.16, 0.03, 0.05)}
ACCURACY = {"before": 0.33, "after": 0.39}  # "accuracy of 33 %", "increased to 39 %"
METRICS = (("test_precision", "P"), ("test_recall", "R"), ("test_f1", "F1"))


class Arms:
    """The study's runs in their one training setting: baseline, per-class DCGAN, cWGAN-GP."""

    def __init__(self, res: Results):
        df = res.finished
        require_rows(df, (DATASET,), "seed 002")
        rows, self.notes = one_context(df, DATASET, dataset=DATASET)
        plain = rows["generator"].isna() & (rows["augmentation"] == "none") & ~rows["wrs"].astype(bool)
        self.baseline = rows[plain]
        self.gans = {g: rows[(rows["generator"] == g) & (rows["augmentation"] == "none") & ~rows["wrs"].astype(bool)]
                     for g in GANS}
        other = rows[~plain & ~rows.index.isin([i for g in self.gans.values() for i in g.index])]
        if not other.empty:
            self.notes.append(f"not in seed 002's design, not shown: {', '.join(sorted(set(other['method'])))}")

    def label(self, gen: str) -> str:
        return GENERATOR_NAMES.get(gen, gen)


def _class_cells(rows: pd.DataFrame, cls: str) -> tuple[list[Cell], list[dict[int, float]]]:
    values = [per_class_per_seed(rows, col, cls) for col, _ in METRICS]
    return [ours(v, digits=2) for v in values], values


def table2(arms: Arms) -> Table:
    header = [f"published {m}" for _, m in METRICS] + [f"ours {m}" for _, m in METRICS]
    t = Table("table2", "Seed 002 Table 2: per-class results without augmentation (VGG11-bn, ISIC 2019)", "Class",
              header)
    for cls in CLASSES:
        cells, _ = _class_cells(arms.baseline, cls)
        t.rows.append((cls, [published(v, 2) for v in TABLE2[cls]] + cells))
    t.notes = ["Published: one run, the seed's 30 % validation split. Ours: mean ± std over seeds (n), test split "
               "of sweeps/kosheleva2020-isic.yaml (model selection on its own validation split)."] + arms.notes
    if arms.baseline.empty:
        t.notes.append("no run without augmentation in these results")
    return t


def table3(arms: Arms, opts: StatsOptions) -> Table:
    present = [g for g in GANS if not arms.gans[g].empty]
    header = [f"published {m}" for _, m in METRICS] + [f"{arms.label(g)} {m}" for g in present for _, m in METRICS]
    t = Table("table3", "Seed 002 Table 3: per-class results with 128 GAN images for each of AK, DF, VASC, SCC",
              "Class", header)
    pending: list[Pending] = []
    for cls in CLASSES:
        cells = [published(v, 2) for v in TABLE3[cls]]
        base_f1 = per_class_per_seed(arms.baseline, "test_f1", cls)
        for g in present:
            mine, values = _class_cells(arms.gans[g], cls)
            pending.append(Pending(mine[2], values[2], base_f1, f"{cls}: {arms.label(g)}", "f1"))
            cells += mine
        t.rows.append((cls, cells))
    n = mark_comparisons(pending, opts)
    t.notes = ["Published: one run; the paper does not say which GAN made these images (its best images came from "
               "the conditional WGAN). Ours: mean ± std over seeds (n) per GAN arm."]
    t.notes += legend(opts, n, "our runs without augmentation", "per-class F1") + arms.notes
    if not present:
        t.notes.append("no GAN-augmented runs in these results (sweep with --make-synthetic)")
    return t


def accuracy(arms: Arms, opts: StatsOptions) -> Table:
    t = Table("accuracy", "Seed 002: overall accuracy before and after GAN augmentation", "Training data",
              ["published ACC", "ours ACC", "ours balanced ACC"])
    base = {col: per_seed(arms.baseline, col) for col in ("test_acc", "test_balanced_acc")}
    t.rows.append(("real only", [published(ACCURACY["before"], 2), ours(base["test_acc"]),
                                 ours(base["test_balanced_acc"])]))
    pending = []
    for g in GANS:
        if arms.gans[g].empty:
            continue
        acc, bal = per_seed(arms.gans[g], "test_acc"), per_seed(arms.gans[g], "test_balanced_acc")
        cells = [published(ACCURACY["after"], 2), ours(acc), ours(bal)]
        pending += [Pending(cells[1], acc, base["test_acc"], f"{arms.label(g)}: ACC", "acc"),
                    Pending(cells[2], bal, base["test_balanced_acc"], f"{arms.label(g)}: balanced ACC", "acc")]
        t.rows.append((f"+ 128 x 4 {arms.label(g)}", cells))
    n = mark_comparisons(pending, opts)
    t.notes = ["Published 39 % is for 'GAN generated images' (which GAN is not said); shown beside each arm. Balanced "
               "ACC (mean per-class recall) is ours only: with NV about half the images, ACC rewards predicting NV."]
    t.notes += legend(opts, n, "real only", "ACC / balanced ACC")
    return t


def table4(res: Results) -> Table:
    ev = res.generator_eval
    rows = pd.DataFrame() if ev is None else ev[ev["dataset"] == DATASET]
    present = [g for g in GANS if not rows.empty and (rows["generator"] == g).any()]
    header = [f"published {m}" for _, m in METRICS]
    for g in present:
        header += [f"{GENERATOR_NAMES.get(g, g)} TSTR R", f"{GENERATOR_NAMES.get(g, g)} TRTR R"]
    t = Table("table4", "Seed 002 Table 4: a classifier trained on generated images only, tested on real ones "
              "(TSTR)", "Class", header)

    def recalls(g: str, column: str, cls: str) -> Cell:
        vals = []
        for names, lst in zip(rows.loc[rows["generator"] == g, "class_names"],
                              rows.loc[rows["generator"] == g, column] if column in rows else []):
            if names is not None and lst is not None and cls in list(names):
                k = list(names).index(cls)
                if k < len(lst) and lst[k] is not None and lst[k] == lst[k]:
                    vals.append(float(lst[k]))
        return Cell(summarize(vals), scale=1.0, digits=2)

    for cls in RARE:
        cells = [published(v, 2) for v in TABLE4[cls]]
        for g in present:
            cells += [recalls(g, "tstr_recall_per_class", cls), recalls(g, "trtr_recall_per_class", cls)]
        t.rows.append((cls, cells))
    for label, col, trcol in (("all classes: ACC", "tstr_acc", "trtr_acc"),
                              ("all classes: balanced ACC", "tstr_balanced_acc", "trtr_balanced_acc")):
        cells = [published(None)] * 3
        for g in present:
            sel = rows[rows["generator"] == g]
            cells += [Cell(summarize(pd.to_numeric(sel[c], errors="coerce").dropna().tolist()), scale=1.0, digits=2)
                      for c in (col, trcol)]
        t.rows.append((label, cells))
    t.notes = ["Published: a 4-class VGG11-bn trained on cWGAN images of AK, DF, VASC, SCC. Ours: `medaug generator "
               "eval --tstr`: the fast recipe trained on as many generated images as the real train split has, of "
               "all 8 classes with the train labels, tested on the real test split (TRTR: the same classifier on "
               "the real train split); the rows hold recall per class, not precision or F1. mean ± std over "
               "evaluation rows (n)."]
    if not present:
        t.notes.append("no generator-evaluation rows of isic2019 under these folders (the study's --make-synthetic "
                       "writes them to OUT/generator-eval/; by hand: `medaug generator eval --checkpoint "
                       "OUT/generators/.../cwgan-gp/checkpoint --tstr --out OUT`)")
    return t


def build(res: Results, opts: StatsOptions) -> list[Table]:
    arms = Arms(res)
    return [table2(arms), table3(arms, opts), accuracy(arms, opts), table4(res)]


def main(argv: list[str] | None = None) -> int:
    ap = script_parser(__doc__, "results folders (OUT or OUT/results; OUT/generator-eval is read too)", "folder for the tables")
    args = ap.parse_args(argv)
    try:
        tables = build(load_results(args.results), StatsOptions(test=args.test, alpha=args.alpha))
    except MedaugError as exc:
        print(f"kosheleva2020: error: {exc}", file=sys.stderr)
        return 2
    out = Path(args.out)
    write_tables(tables, out)
    print(f"wrote {len(tables)} tables under {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
