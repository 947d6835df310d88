"""What fewer Heun steps cost and save: edm sampling speed and sample quality per step count
(issue 12's benchmark; run by hand on an otherwise idle machine, never in CI).

    .venv/bin/python bench/edm_sampling.py --checkpoint FIT [FIT ...] --data-root DIR \
        [--steps 18 12 8 6] [--n 2000] [--threads 1] [--eval --tstr-n 2000 --out OUT] [--markdown]

For each edm checkpoint (a `medaug generator fit` folder, e.g. one of a generator study's
OUT/generators/<trial>/) and step count:

- sampling speed: a class-balanced set of `--n` images (seed 003's 2,000 by default) is
  drawn once, timed (wall clock, `--threads` threads); images/s and the seconds the set
  takes. Heun's method evaluates the network 2 x steps - 1 times per image
  (guidance 0 or 1; twice that with guidance in between);
- with `--eval`: `medaug generator eval` at that step count (its default protocol: FID,
  KID, precision/recall in the features of the fast-recipe classifier, the real-vs-real
  floor, TSTR beside TRTR, the near-copy share), one row per step count in
  OUT/generator-eval/ (a row already there is read, not recomputed).

Issue 12's target: a 2,000-image set in under 5 minutes on the 2-core CPU at the step
count the benchmark recommends, i.e. the fewest steps whose FID and TSTR stay near 18's.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from medaug.generators.base import load_generator, read_checkpoint_meta
from medaug.generators.data import splits_of_checkpoint
from medaug.generators.evaluate import EvalOptions, evaluate_generator, evaluation_id
from medaug.generators.synthesize import checkpoint_content_hash
from medaug.store.generator_results import eval_path, read_eval_rows


def balanced_labels(n: int, num_classes: int) -> np.ndarray:
    """n labels, as equal a count per class as n allows."""
    return np.arange(n) % num_classes


def time_sampling(gen, labels: np.ndarray, steps: int) -> float:
    """Seconds to sample `labels` at `steps` Heun steps (after a one-batch warm-up)."""
    gen.sample(labels[:8], seed=1, steps=steps)
    t0 = time.perf_counter()
    gen.sample(labels, seed=0, steps=steps)
    return time.perf_counter() - t0


def evaluation(ckpt: Path, steps: int, args: argparse.Namespace) -> dict:
    """The generator-eval row of `ckpt` at `steps` (read when OUT has it)."""
    options = EvalOptions(n=args.eval_n, tstr=True, tstr_n=args.tstr_n, sampling={"steps": steps}, device="cpu")
    meta = read_checkpoint_meta(ckpt)
    splits = splits_of_checkpoint(meta, args.data_root)
    eid = evaluation_id(meta["name"], checkpoint_content_hash(ckpt), splits.train, len(splits.test), options,
                        {"steps": steps})
    if eval_path(args.out, eid).exists():
        return read_eval_rows(eval_path(args.out, eid)).iloc[0].to_dict()
    return evaluate_generator(ckpt, args.out, options, splits=splits)


def fmt(x, digits: int = 3) -> str:
    return "-" if x is None or (isinstance(x, float) and np.isnan(x)) else f"{x:.{digits}f}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", type=Path, nargs="+", required=True, help="edm fit folders")
    p.add_argument("--data-root", type=Path, default=None, help="MedMNIST files (default: $MEDAUG_DATA_ROOT)")
    p.add_argument("--steps", type=int, nargs="+", default=[18, 12, 8, 6])
    p.add_argument("--n", type=int, default=2000, help="images in the timed, class-balanced set")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--eval", action="store_true", help="also run generator eval (with TSTR) at each step count")
    p.add_argument("--eval-n", type=int, default=2000, help="generator eval --n")
    p.add_argument("--tstr-n", type=int, default=2000, help="generator eval --tstr-n")
    p.add_argument("--out", type=Path, default=Path("results/edm-sampling"))
    p.add_argument("--markdown", action="store_true")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    head = ["data set", "fit", "steps", "net evals/img", f"img/s ({args.threads} thr)", f"s per {args.n}"]
    if args.eval:
        head += ["FID", "floor", "precision", "recall", "TSTR bACC", "TRTR bACC", "TSTR AUC", "near-copies px"]
    lines = []
    for ckpt in args.checkpoint:
        gen = load_generator(ckpt, device="cpu")
        if gen.name != "edm":
            raise SystemExit(f"{ckpt}: a {gen.name} checkpoint; expected an edm fit")
        labels = balanced_labels(args.n, gen.num_classes)
        dataset = read_checkpoint_meta(ckpt)["dataset"]["name"]
        for steps in args.steps:
            seconds = time_sampling(gen, labels, steps)
            fit = ckpt.parent.name if ckpt.name == "checkpoint" else ckpt.name
            cells = [dataset, fit, str(steps), str(2 * steps - 1), f"{args.n / seconds:.1f}", f"{seconds:.0f}"]
            if args.eval:
                row = evaluation(ckpt, steps, args)
                cells += [fmt(row["fid"], 2), fmt(row["fid_floor"], 2), fmt(row["precision"]), fmt(row["recall"]),
                          fmt(row["tstr_balanced_acc"]), fmt(row["trtr_balanced_acc"]), fmt(row["tstr_auc"]),
                          fmt(row["near_copy_share_pixel"])]
            lines.append(cells)
            print("  " + " | ".join(cells), flush=True)
    if args.markdown:
        print("| " + " | ".join(head) + " |\n|" + "---|" * len(head))
        print("\n".join("| " + " | ".join(c) + " |" for c in lines))
    else:
        print("\t".join(head))
        print("\n".join("\t".join(c) for c in lines))


if __name__ == "__main__":
    main()
