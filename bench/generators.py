"""Speed and quality of every generator (issue 4's benchmark; run by hand, not a test).

    .venv/bin/python bench/generators.py --data-root ../shared/data/medmnist \
        [--sets breastmnist shapes] [--generators cvae jvae ...] [--epochs cgan=60 ...] \
        [--classifier-epochs 20] [--threads 2] [--out DIR] [--json results.json]

For each data set and generator: fit on the train split (the generator's defaults,
only the epochs set here), then `medaug generator eval`'s own functions
(`medaug.generators.evaluate.evaluate_generator`, with TSTR) on the checkpoint:

- training images/s on this CPU (images seen / seconds in the training loop, summed
  over epochs; checkpoint writing excluded);
- FID against the real train split with the default extractor (the penultimate layer
  of seed 000's CNN trained on the real train split; one extractor per data set, shared
  by all generators) and the real-vs-real floor (test vs train, same n);
- TSTR (the same CNN trained on |train| generated images with the train labels, best
  epoch on the real val split, tested on real test) beside TRTR: ACC, balanced ACC and
  AUC. BreastMNIST is 73 % benign, so ACC alone is met by a classifier that always says
  "benign": balanced ACC (0.5 for that classifier) and AUC are the ones to judge.

Data sets: `breastmnist` (the real 28 px file, 1 channel, 2 classes, 546 train) and
`shapes` (made here, see `make_shapes`: 3 channels, 28 px, 4 imbalanced classes -
disk, square, triangle, ring - in class-tinted colours whose hue ranges overlap, at
random places, sizes and angles on grey striped noisy backgrounds; the seed-000 CNN
reaches ~0.80 test ACC in 20 epochs: learnable, not trivial).

Issue 4's bar, checked at the end: every labelled generator has a lower FID than the
class-mean-noise baseline (per-class mean image + per-pixel Gaussian noise); the best
TSTR reaches >= 80 % of TRTR on BreastMNIST (by ACC, and by balanced ACC and AUC).
`jvae` is unconditional and cannot sample labelled images: it is scored on its
reconstructions of the train images (what seed 000 used it for) and left out of the bar.

Run it on an otherwise idle machine (other processes collapse PyTorch's CPU speed).
"""

from __future__ import annotations

import argparse
import colorsys
import csv
import json
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from medaug.data.imageset import DatasetSplits, ImageSet
from medaug.generators import GENERATORS, build_generator
from medaug.generators.evaluate import EvalOptions, evaluate_generator

GENERATORS_ORDER = ("class-mean-noise", "cvae", "jvae", "cgan", "dcgan", "cwgan-gp", "vaegan")
BASELINE = "class-mean-noise"
#: Default epochs: chosen so that both data sets and all generators finish in ~25 min on 2 cores.
DEFAULT_EPOCHS = {"class-mean-noise": 1, "cvae": 20, "jvae": 20, "cgan": 20, "dcgan": 20, "cwgan-gp": 20,
                  "vaegan": 10}
SHAPES = ("disk", "square", "triangle", "ring")
SHAPES_TRAIN = (400, 300, 200, 100)  # imbalanced, as medical sets are
SHAPES_VAL = 40
SHAPES_TEST = 100


# ----------------------------------------------------------------------------- data

def _shape_mask(kind: str, yy: np.ndarray, xx: np.ndarray, cy: float, cx: float, r: float, theta: float) -> np.ndarray:
    dy, dx = yy - cy, xx - cx
    u = dx * math.cos(theta) + dy * math.sin(theta)
    v = -dx * math.sin(theta) + dy * math.cos(theta)
    d = np.hypot(dy, dx)
    if kind == "disk":
        return d <= r
    if kind == "ring":
        return (d <= r) & (d >= 0.55 * r)
    if kind == "square":
        s = 0.8 * r
        return (np.abs(u) <= s) & (np.abs(v) <= s)
    # triangle: inside all three edges of an equilateral triangle of circumradius r
    inside = np.ones_like(d, dtype=bool)
    for k in range(3):
        a = theta + 2 * math.pi * k / 3 + math.pi / 3  # outward normal of edge k
        inside &= dx * math.cos(a) + dy * math.sin(a) <= 0.6 * r
    return inside


def _class_colour(k: int, rng: np.random.Generator) -> np.ndarray:
    """RGB of a class-k shape: hue around the class's own (0, 90, 180, 270 degrees) with a
    spread that lets neighbouring classes overlap, random saturation and value."""
    hue = (k / len(SHAPES) + rng.normal(0, 0.12)) % 1.0
    return 255 * np.array(colorsys.hsv_to_rgb(hue, rng.uniform(0.4, 1.0), rng.uniform(0.5, 1.0)))


def _shape_images(labels: np.ndarray, rng: np.random.Generator, size: int = 28) -> np.ndarray:
    """One 3 x size x size uint8 image per label: a shape of that class in a colour of
    that class's hue range, random position, size and rotation, on a grey striped
    background, with pixel noise."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    out = np.empty((len(labels), 3, size, size), dtype=np.uint8)
    for i, k in enumerate(labels):
        bg = rng.uniform(0, 255) + rng.uniform(-25, 25, 3)  # a grey, slightly tinted
        fg = _class_colour(int(k), rng)
        while np.abs(fg - bg).sum() < 150:  # contrast enough to see the shape
            fg = _class_colour(int(k), rng)
        angle, freq = rng.uniform(0, math.pi), rng.uniform(0.3, 1.2)
        stripes = np.sin(freq * (xx * math.cos(angle) + yy * math.sin(angle)) + rng.uniform(0, 2 * math.pi))
        img = bg[:, None, None] + rng.uniform(5, 25) * stripes[None]
        r = rng.uniform(7.0, 10.5)
        cy, cx = rng.uniform(r, size - r, 2)
        mask = _shape_mask(SHAPES[k], yy, xx, cy, cx, r, rng.uniform(0, 2 * math.pi))
        img = np.where(mask[None], fg[:, None, None], img)
        img += rng.normal(0, 12, img.shape)
        out[i] = np.clip(np.round(img), 0, 255).astype(np.uint8)
    return out


def make_shapes(seed: int = 0) -> DatasetSplits:
    """The generated 3-channel, 4-class set (train 400/300/200/100, val 40, test 100 per class)."""
    rng = np.random.default_rng(seed)

    def split(name: str, counts: tuple[int, ...]) -> ImageSet:
        labels = np.repeat(np.arange(len(counts)), counts)
        labels = labels[rng.permutation(len(labels))].astype(np.int64)
        return ImageSet("shapes", name, _shape_images(labels, rng), labels, SHAPES, "multi-class")

    return DatasetSplits("shapes", split("train", SHAPES_TRAIN), split("val", (SHAPES_VAL,) * 4),
                         split("test", (SHAPES_TEST,) * 4), version=f"bench-shapes-seed{seed}", md5="")


def load_set(name: str, data_root: str | None) -> DatasetSplits:
    if name == "shapes":
        return make_shapes()
    from medaug.data.sources import load_dataset

    return load_dataset(name, 28, root=data_root).splits


# ----------------------------------------------------------------------------- one generator

def train_speed(run_dir: Path) -> float:
    """Images per second over the whole fit, from the per-epoch loss table."""
    with open(run_dir / "losses_epochs.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    seconds = sum(float(r["seconds"]) for r in rows)
    images = sum(float(r["images_per_s"]) * float(r["seconds"]) for r in rows)
    return images / max(seconds, 1e-9)


def bench_one(name: str, splits: DatasetSplits, epochs: int, out: Path, options: EvalOptions,
              width: float = 1.0) -> dict:
    train = splits.train
    config = {"epochs": epochs, "seed": 0, "width": width}
    gen = build_generator(name, train.channels, train.size, train.num_classes, config, device="cpu")
    run_dir = out / splits.name / name
    t0 = time.perf_counter()
    ckpt = gen.fit(train, run_dir, val=splits.val, provenance={"version": splits.version, "md5": splits.md5},
                   plots=True)
    fit_seconds = time.perf_counter() - t0
    t1 = time.perf_counter()
    row = evaluate_generator(ckpt, out, options, splits=splits)
    return {
        "dataset": splits.name, "generator": name, "epochs": gen.epoch, "width": width, "images_per_s": train_speed(run_dir),
        "fit_s": fit_seconds, "eval_s": time.perf_counter() - t1, "n": row["n"], "fid": row["fid"],
        "fid_floor": row["fid_floor"], "kid": row["kid_mean"], "precision": row["precision"],
        "recall": row["recall"], "generated_by": row["generated_by"],
        "tstr_acc": row["tstr_acc"], "trtr_acc": row["trtr_acc"],
        "tstr_bacc": row["tstr_balanced_acc"], "trtr_bacc": row["trtr_balanced_acc"],
        "tstr_auc": row["tstr_auc"], "trtr_auc": row["trtr_auc"], "extractor": row["extractor"] + "@"
        + row["extractor_hash"], "stopped_early": bool(gen.loop_state.get("stopped_early", 0)),
    }


# ----------------------------------------------------------------------------- report

def fmt(x: float | None, digits: int = 3) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def table(rows: list[dict]) -> str:
    head = ("| set | generator | epochs | train img/s | FID | floor | TSTR ACC | TRTR ACC | TSTR bACC | TRTR bACC "
            "| TSTR AUC | TRTR AUC |")
    lines = [head, "|" + " --- |" * (head.count("|") - 1)]
    for r in rows:
        tag = " (recon.)" if r["generated_by"] == "reconstruct" else ""
        lines.append(f"| {r['dataset']} | {r['generator']}{tag} | {r['epochs']} | {r['images_per_s']:,.0f} | "
                     f"{fmt(r['fid'], 2)} | {fmt(r['fid_floor'], 2)} | {fmt(r['tstr_acc'])} | {fmt(r['trtr_acc'])} | "
                     f"{fmt(r['tstr_bacc'])} | {fmt(r['trtr_bacc'])} | {fmt(r['tstr_auc'])} | {fmt(r['trtr_auc'])} |")
    return "\n".join(lines)


def verdict(rows: list[dict]) -> list[str]:
    """Issue 4's bar, per data set."""
    out = []
    for ds in dict.fromkeys(r["dataset"] for r in rows):
        got = {r["generator"]: r for r in rows if r["dataset"] == ds}
        if BASELINE in got:
            base = got[BASELINE]["fid"]
            labelled = [g for g in got if g != BASELINE and GENERATORS.get(g).can_sample]
            losers = [g for g in labelled if not got[g]["fid"] < base]
            out.append(f"{ds}: FID below the {BASELINE} baseline ({fmt(base, 2)}): "
                       + ("all labelled generators" if not losers else f"NOT {', '.join(losers)}"))
        cands = [r for g, r in got.items() if g != BASELINE and r["generated_by"] == "sample"]
        for metric in ("acc", "bacc", "auc"):
            ratios = [(r[f"tstr_{metric}"] / r[f"trtr_{metric}"], r["generator"]) for r in cands
                      if r[f"tstr_{metric}"] is not None and r[f"trtr_{metric}"]]
            if ratios:
                ratio, best = max(ratios)
                out.append(f"{ds}: best TSTR/TRTR {metric.upper()} {ratio:.2f} ({best}) "
                           f"{'>=' if ratio >= 0.8 else '<'} 0.80")
    return out


def parse_epochs(items: list[str]) -> dict[str, int]:
    epochs = dict(DEFAULT_EPOCHS)
    for item in items:
        name, _, n = item.partition("=")
        if name not in epochs or not n.isdigit() or int(n) < 1:
            sys.exit(f"--epochs {item!r}: expected GENERATOR=N with GENERATOR in {', '.join(epochs)}")
        epochs[name] = int(n)
    return epochs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-root", default=None, help="folder with breastmnist.npz (default: $MEDAUG_DATA_ROOT)")
    ap.add_argument("--sets", nargs="+", default=["breastmnist", "shapes"])
    ap.add_argument("--generators", nargs="+", default=list(GENERATORS_ORDER), choices=GENERATORS_ORDER)
    ap.add_argument("--epochs", nargs="*", default=[], metavar="GEN=N",
                    help=f"epochs per generator (defaults: {DEFAULT_EPOCHS})")
    ap.add_argument("--width", type=float, default=0.5,
                    help="channel-width multiplier of every generator (1.0 = the published nets; default 0.5, "
                         "which trains ~4x faster so the run fits ~25 min on 2 CPU cores)")
    ap.add_argument("--classifier-epochs", type=int, default=20, help="epochs of the TRTR/TSTR/extractor CNN")
    ap.add_argument("--n", type=int, default=2000, help="images per side for FID (capped at |test|)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=None, help="folder for checkpoints, figures and eval rows (default: temp)")
    ap.add_argument("--json", default=None, help="also write the results here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    epochs = parse_epochs(args.epochs)
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="medaug-bench-gen-"))
    options = EvalOptions(n=args.n, tstr=True, classifier_epochs=args.classifier_epochs, kid_subsets=50,
                          device="cpu", overwrite=True)
    rows: list[dict] = []
    t0 = time.perf_counter()
    for name in args.sets:
        splits = load_set(name, args.data_root)
        print(f"{name}: train {splits.train.class_counts().tolist()}, val {len(splits.val)}, "
              f"test {len(splits.test)}, {splits.train.channels} ch", flush=True)
        for gen in args.generators:
            if (out / name / gen).exists():
                sys.exit(f"{out / name / gen}: exists; use another --out")
            r = bench_one(gen, splits, epochs[gen], out, options, args.width)
            rows.append(r)
            print(f"  {gen:16s} {r['epochs']:3d} ep {r['images_per_s']:7.0f} img/s  fit {r['fit_s']:5.0f}s  "
                  f"eval {r['eval_s']:4.0f}s  FID {fmt(r['fid'], 2)} (floor {fmt(r['fid_floor'], 2)})  "
                  f"TSTR acc/bacc/auc {fmt(r['tstr_acc'])}/{fmt(r['tstr_bacc'])}/{fmt(r['tstr_auc'])}  "
                  f"TRTR {fmt(r['trtr_acc'])}/{fmt(r['trtr_bacc'])}/{fmt(r['trtr_auc'])}", flush=True)
    total = time.perf_counter() - t0
    print()
    print(table(rows))
    print()
    for line in verdict(rows):
        print(line)
    print(f"total {total / 60:.1f} min; outputs in {out}")
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "epochs": epochs, "total_s": total, "width": args.width,
                                               "classifier_epochs": args.classifier_epochs,
                                               "threads": args.threads}, indent=2) + "\n")


if __name__ == "__main__":
    main()
