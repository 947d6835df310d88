"""Rebuild seed 004's tables (Song & Zhao 2021, "EE228 Teamwork: MedMNIST") from a results
folder, the paper's numbers beside ours.

    python analysis/song_zhao2021.py results/song-zhao2021 --out tables/song-zhao2021

Writes, under --out (each as .md, .tex and .csv), and prints as Markdown:
  table1    ResNet-18 and ResNet-50 test AUC / ACC on the ten MedMNIST sets (Table 1); arrows
            on ResNet-50 against ResNet-18 (the seed: "ResNet-50 has better classification result")
  table2    BreastMNIST, original vs simple transformations ("Augmented") vs DCGAN images, both
            ResNets: best epoch, test AUC, test ACC (Tables 2 and 6; Table 3 is its ResNet-18 part)
  table4    PneumoniaMNIST, original vs simple transformations (Table 4)
  table5    RetinaMNIST, the ImageNet, CIFAR-10 and SVHN AutoAugment policies (Table 5)
Arrows in tables 2, 4 and 5: against the original (no augmentation) runs of the same network.

The study is `sweeps/song-zhao2021.yaml`. Ours are mean ± std over seeds (n); the paper reports
one run each. Its "Best Epoch" counts from 0; ours is shown the same way (medaug's
`best_epoch` - 1). Needs only the analysis dependencies, not torch.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

from medaug.analysis.load import Results, load_results
from medaug.analysis.published import (
    Pending,
    legend,
    mark_comparisons,
    one_context,
    ours,
    per_seed,
    published,
    require_rows,
    script_parser,
    write_tables,
)
from medaug.analysis.render import Cell, Table
from medaug.analysis.stats import StatsOptions
from medaug.errors import MedaugError

DATASETS = ("pathmnist", "chestmnist", "dermamnist", "octmnist", "pneumoniamnist", "retinamnist", "breastmnist",
            "organamnist", "organcmnist", "organsmnist")
NETS = (("resnet18", "ResNet-18"), ("resnet50", "ResNet-50"))
SIMPLE = "flip-shift-rotate-noise"
POLICIES = (("autoaugment-imagenet", "ImageNet"), ("autoaugment-cifar10", "CIFAR-10"), ("autoaugment-svhn", "SVHN"))

# Table 1: (ResNet-18 AUC, ResNet-18 ACC, ResNet-50 AUC, ResNet-50 ACC); OCT's ResNet-18 ACC is printed "075226".
TABLE1 = {
    "pathmnist": (0.98071, 0.87549, 0.98179, 0.86335), "chestmnist": (0.69807, 0.94524, 0.69391, 0.94537),
    "dermamnist": (0.90152, 0.70324, 0.89062, 0.71334), "octmnist": (0.95088, 0.75226, 0.94371, 0.77201),
    "pneumoniamnist": (0.96157, 0.84295, 0.95404, 0.87512), "retinamnist": (0.71389, 0.54000, 0.71253, 0.46500),
    "breastmnist": (0.49603, 0.73077, 0.86967, 0.80128), "organamnist": (0.99597, 0.91758, 0.99434, 0.91233),
    "organcmnist": (0.98904, 0.88652, 0.99037, 0.89506), "organsmnist": (0.96778, 0.74755, 0.96828, 0.72795),
}
# Tables 2/6 (BreastMNIST) and 4 (PneumoniaMNIST, ResNet-18): (best epoch, test AUC, test ACC).
TABLE2 = {
    ("resnet18", "original"): (0, 0.49603, 0.73077), ("resnet18", "augmented"): (7, 0.64536, 0.64744),
    ("resnet18", "dcgan"): (73, 0.81725, 0.78846), ("resnet50", "original"): (99, 0.86967, 0.80128),
    ("resnet50", "augmented"): (37, 0.59273, 0.65385), ("resnet50", "dcgan"): (42, 0.86299, 0.80128),
}
TABLE4 = {("resnet18", "original"): (78, 0.96157, 0.84295), ("resnet18", "augmented"): (25, 0.94362, 0.80609)}
# Table 5 (RetinaMNIST; the network is not said, its "Original" column is Table 1's ResNet-18):
# (best epoch, train AUC, train ACC, val AUC, val ACC, test AUC, test ACC).
TABLE5 = {
    "original": (4, 0.86832, 0.62222, 0.80850, 0.55000, 0.71389, 0.54000),
    "autoaugment-imagenet": (1, 0.83553, 0.56701, 0.75999, 0.50313, 0.68577, 0.49812),
    "autoaugment-cifar10": (1, 0.83571, 0.58819, 0.74616, 0.47083, 0.69558, 0.49188),
    "autoaugment-svhn": (2, 0.87301, 0.65127, 0.76377, 0.50625, 0.69440, 0.49875),
}


class Runs:
    """Finished runs of the study, selected by data set, network and arm."""

    def __init__(self, res: Results):
        self.df = res.finished
        require_rows(self.df, DATASETS, "seed 004")
        self.notes: list[str] = []

    def arm(self, dataset: str, net: str, arm: str) -> pd.DataFrame:
        """Runs of one arm: original, augmented (simple transformations), dcgan or an AutoAugment policy."""
        rows, notes = one_context(self.df, f"{dataset} {net}", dataset=dataset, classifier=net)
        for n in notes:
            if n not in self.notes:
                self.notes.append(n)
        if rows.empty:
            return rows
        no_gen, no_wrs = rows["generator"].isna(), ~rows["wrs"].astype(bool)
        aug = rows["augmentation"]
        if arm == "dcgan":
            return rows[(rows["generator"] == "dcgan") & (aug == "none") & no_wrs]
        name = {"original": "none", "augmented": SIMPLE}.get(arm, arm)
        return rows[(aug == name) & no_gen & no_wrs]


def _epoch(rows: pd.DataFrame) -> dict[int, float]:
    return per_seed(rows, "best_epoch", offset=-1.0)  # 0-based, as the seed counts


def table1(runs: Runs, opts: StatsOptions) -> Table:
    header = [f"{label} {m} {who}" for _, label in NETS for m in ("AUC", "ACC") for who in ("published", "ours")]
    t = Table("table1", "Seed 004 Table 1: ResNet-18 and ResNet-50 without augmentation (test AUC, ACC)", "Dataset",
              header)
    pending: list[Pending] = []
    for ds in DATASETS:
        pub = TABLE1[ds]
        cells: list[Cell] = []
        vals = {}
        for i, (net, _) in enumerate(NETS):
            rows = runs.arm(ds, net, "original")
            for j, col in enumerate(("test_auc", "test_acc")):
                vals[(net, col)] = per_seed(rows, col)
                cells += [published(pub[2 * i + j], 5), ours(vals[(net, col)])]
        for j, col in enumerate(("test_auc", "test_acc")):
            pending.append(Pending(cells[4 + 2 * j + 1], vals[("resnet50", col)], vals[("resnet18", col)],
                                   f"{ds}: ResNet-50 {col}", col.removeprefix("test_")))
        t.rows.append((ds, cells))
    n = mark_comparisons(pending, opts)
    t.notes = ["Published: one run each (MedMNIST v1 files). Ours: mean ± std over seeds (n), fractions."]
    t.notes += legend(opts, n, "ResNet-18 on the same data set (seeds matched by index)", "ResNet-50 AUC / ACC")
    return _with_notes(t, runs)


def _with_notes(t: Table, runs: Runs) -> Table:
    t.notes += [n for n in runs.notes if n not in t.notes]
    return t


def _arm_table(runs: Runs, key: str, title: str, dataset: str, arms: list[tuple[str, str]],
               pub: dict[tuple[str, str], tuple], opts: StatsOptions) -> Table:
    header = [f"{m} {who}" for m in ("best epoch", "test AUC", "test ACC") for who in ("published", "ours")]
    t = Table(key, title, "Network: arm", header)
    pending: list[Pending] = []
    for net, net_label in NETS:
        base = runs.arm(dataset, net, "original")
        base_vals = {c: per_seed(base, c) for c in ("test_auc", "test_acc")}
        for arm, arm_label in arms:
            rows = runs.arm(dataset, net, arm)
            p = pub.get((net, arm))
            cells: list[Cell] = []
            for j, col in enumerate(("best_epoch", "test_auc", "test_acc")):
                vals = _epoch(rows) if col == "best_epoch" else per_seed(rows, col)
                cells += [published(None if p is None else p[j], None if j == 0 else 5),
                          ours(vals, digits=1 if col == "best_epoch" else 3)]
                if col != "best_epoch" and arm != "original":
                    pending.append(Pending(cells[-1], vals, base_vals[col], f"{dataset} {net_label}: {arm_label}",
                                           col.removeprefix("test_")))
            t.rows.append((f"{net_label}: {arm_label}", cells))
    n = mark_comparisons(pending, opts)
    t.notes = ["Published: one run each; '—' where the seed reports none. Ours: mean ± std over seeds (n); best "
               "epoch counted from 0 as in the seed."]
    t.notes += legend(opts, n, "the original (no augmentation) runs of the same network", "test AUC / ACC")
    return _with_notes(t, runs)


def table2(runs: Runs, opts: StatsOptions) -> Table:
    return _arm_table(runs, "table2", "Seed 004 Tables 2, 3 and 6: BreastMNIST, original vs simple transformations "
                      "vs DCGAN images", "breastmnist",
                      [("original", "Original"), ("augmented", "Augmented"), ("dcgan", "DCGAN")], TABLE2, opts)


def table4(runs: Runs, opts: StatsOptions) -> Table:
    return _arm_table(runs, "table4", "Seed 004 Table 4: PneumoniaMNIST, original vs simple transformations",
                      "pneumoniamnist", [("original", "Original"), ("augmented", "Augmented")], TABLE4, opts)


def table5(runs: Runs, opts: StatsOptions) -> Table:
    cols = (("best_epoch", "best epoch"), ("val_auc", "val AUC"), ("val_acc", "val ACC"), ("test_auc", "test AUC"),
            ("test_acc", "test ACC"))
    header = [f"{m} {who}" for _, m in cols for who in ("published", "ours")]
    t = Table("table5", "Seed 004 Table 5: RetinaMNIST, AutoAugment policies", "Network: policy", header)
    pending: list[Pending] = []
    arms = [("original", "Original")] + list(POLICIES)
    for net, net_label in NETS:
        base = runs.arm("retinamnist", net, "original")
        base_vals = {c: per_seed(base, c) for c in ("test_auc", "test_acc")}
        for arm, arm_label in arms:
            rows = runs.arm("retinamnist", net, arm)
            p = TABLE5[arm] if net == "resnet18" else None
            cells: list[Cell] = []
            for col, _ in cols:
                vals = _epoch(rows) if col == "best_epoch" else per_seed(rows, col)
                pub = None if p is None else p[{"best_epoch": 0, "val_auc": 3, "val_acc": 4, "test_auc": 5,
                                                "test_acc": 6}[col]]
                cells += [published(pub, None if col == "best_epoch" else 5),
                          ours(vals, digits=1 if col == "best_epoch" else 3)]
                if col.startswith("test_") and arm != "original":
                    pending.append(Pending(cells[-1], vals, base_vals[col], f"retinamnist {net_label}: {arm_label}",
                                           col.removeprefix("test_")))
            t.rows.append((f"{net_label}: {arm_label}", cells))
    n = mark_comparisons(pending, opts)
    t.notes = ["Published: one run, shown beside ResNet-18 (the seed names no network; its 'Original' column is "
               "Table 1's ResNet-18); it also reports train AUC/ACC, which result rows do not hold. Ours: mean ± "
               "std over seeds (n); best epoch counted from 0."]
    t.notes += legend(opts, n, "the original (no augmentation) runs of the same network", "test AUC / ACC")
    return _with_notes(t, runs)


def build(res: Results, opts: StatsOptions) -> list[Table]:
    runs = Runs(res)
    return [table1(runs, opts), table2(runs, opts), table4(runs, opts), table5(runs, opts)]


def main(argv: list[str] | None = None) -> int:
    ap = script_parser(__doc__, "results folders (OUT or OUT/results)", "folder for the tables")
    args = ap.parse_args(argv)
    try:
        res = load_results(args.results)
        tables = build(res, StatsOptions(test=args.test, alpha=args.alpha))
    except MedaugError as exc:
        print(f"song_zhao2021: error: {exc}", file=sys.stderr)
        return 2
    out = Path(args.out)
    write_tables(tables, out)
    missing = [d for d in DATASETS if d not in set(res.finished["dataset"])]
    if missing:
        print(f"not in these results (seed 004 has them): {', '.join(missing)}")
    print(f"wrote {len(tables)} tables under {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
