"""Accuracy and cost of each training recipe (issue 11's benchmark; run by hand, never in CI).

    .venv/bin/python bench/recipes.py --data-root ../shared/data/medmnist \
        [--recipes seed000 fast medmnist-v2] [--datasets breastmnist bloodmnist organamnist] \
        [--seeds 0 1 2 3 4] [--skip medmnist-v2:bloodmnist medmnist-v2:organamnist ...] [--tta shift] \
        [--out results/recipe-bench] [--reuse results/strong-baselines] [--markdown]

For every recipe x data set x seed, the recipe's run as a study runs it (28 px, no
augmentation, no WRS), once without and once with test-time augmentation (`--tta`, a spec
field: the views are averaged for validation and test). Each is an ordinary `medaug`
run whose row lands in OUT; a row already there, or in a `--reuse` results folder (the
strong-baselines study trains the same no-TTA specs), is read instead of trained again, so
the benchmark continues where it stopped and never trains a spec twice. It reports:

- test ACC and AUC, mean ± std over the seeds, without and with TTA;
- training FLOPs of a run, counted by `torch.utils.flop_counter` on one training step
  (forward and backward of a full batch) and one validation image, times the images the
  run trained on and validated (`epochs_trained` x split sizes): the count of the whole
  run, the same network at every step. `medmnist-v2`'s count needs no training, so its
  ratio is given for every data set;
- wall time of the run and training images/s (the rows' `wall_seconds` and
  `train_images_per_s`) on this machine. Run it on an otherwise idle machine.

`--tta shift` is the default because a horizontal flip swaps left and right organs in
OrganAMNIST; `--tta flip-shift` adds the flips.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from medaug.classifiers import build_classifier
from medaug.data.medmnist import dataset_info
from medaug.experiment import ExperimentSpec, run
from medaug.store.results import result_path
from medaug.sweep.trial import read_row
from medaug.train.loop import TrainConfig, make_criterion, normalise, tta_views

#: Published test ACC / AUC at 28 px (MedMNIST v2, Yang et al. 2023, Table 3; MedMNIST+,
#: Doerrich et al. 2024, best 28-px model: ImageNet-pretrained, zero-padded to 224 px).
PUBLISHED = {
    "breastmnist": {"MedMNIST v2 ResNet-18 (28)": (0.863, 0.901), "MedMNIST+ best at 28 px": (0.865, 0.891)},
    "bloodmnist": {"MedMNIST v2 ResNet-18 (28)": (0.958, 0.998)},
    "organamnist": {"MedMNIST v2 ResNet-18 (28)": (0.935, 0.997), "MedMNIST+ best at 28 px": (0.932, 0.995)},
}
#: Issue 11's targets for `fast` (mean of 5 seeds, 28 px, from scratch, no TTA): test ACC, and
#: AUC at least MedMNIST v2's ResNet-18 (28).
TARGETS = {"breastmnist": (0.88, 0.901), "bloodmnist": (0.97, 0.998), "organamnist": (0.95, 0.997)}


def run_flops(spec: ExperimentSpec, dataset: str, epochs: int | None = None) -> float:
    """Training FLOPs of `spec`'s whole run, counted (see the module docstring)."""
    info = dataset_info(dataset)
    channels, classes = int(info["n_channels"]), len(info["label"])
    n_train, n_val = int(info["n_samples"]["train"]), int(info["n_samples"]["val"])
    if epochs is None:
        epochs = TrainConfig(epochs=spec.epochs, min_steps=spec.min_steps, batch_size=spec.batch_size).epochs_for(
            n_train)
    model = build_classifier(spec.classifier, channels, classes, spec.size).train()
    x = torch.zeros(spec.batch_size, channels, spec.size, spec.size, dtype=torch.uint8)
    y = torch.zeros(spec.batch_size, dtype=torch.long)
    with FlopCounterMode(display=False) as counter:
        make_criterion(info["task"], spec.label_smoothing)(model(normalise(x)), y).backward()
    per_train_image = counter.get_total_flops() / spec.batch_size
    model.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        for view in tta_views(x[:1], spec.tta):
            model(normalise(view))
    return epochs * (n_train * per_train_image + n_val * counter.get_total_flops())


def row_of(spec: ExperimentSpec, out: Path, reuse: list[Path], data_root: Path) -> dict:
    """The finished row of `spec`: read from OUT or a reused folder, else trained into OUT."""
    for folder in (out, *reuse):
        path = result_path(folder, spec.run_id)
        if path.exists():
            row = read_row(path)
            if row is not None and row.get("status") == "finished":
                return row
    row = run(spec, out, data_root=data_root, overwrite=result_path(out, spec.run_id).exists())
    print(f"  {spec.run_id}: test ACC {row['test_acc']:.4f} AUC {row['test_auc']:.4f} in "
          f"{row['wall_seconds']:.0f} s", flush=True)
    return row


def mean_std(values: list[float], seeds: int) -> str:
    """Mean ± std of a cell; a cell with fewer runs than its row's `seeds` says how many."""
    if not values:
        return "-"
    text = f"{statistics.fmean(values):.3f}"
    text += f" ± {statistics.stdev(values):.3f}" if len(values) > 1 else ""
    return text + (f" (n={len(values)})" if len(values) != seeds else "")


def table(results: dict, datasets: list[str], recipes: list[str], tta: str, markdown: bool) -> str:
    head = ["data set", "recipe", "seeds", "test ACC", "test AUC", f"ACC TTA {tta}", f"AUC TTA {tta}",
            "train TFLOPs", "vs medmnist-v2", "wall s", "img/s"]
    lines = [head]
    for dataset in datasets:
        v2 = run_flops(ExperimentSpec.from_dict({"dataset": dataset, "recipe": "medmnist-v2"}), dataset)
        for recipe in recipes:
            plain, with_tta = results.get((dataset, recipe, "none"), []), results.get((dataset, recipe, tta), [])
            if not plain:
                continue
            flops = statistics.fmean(r["flops"] for r in plain)
            n = len(plain)
            lines.append([dataset, recipe, str(n), mean_std([r["test_acc"] for r in plain], n),
                          mean_std([r["test_auc"] for r in plain], n), mean_std([r["test_acc"] for r in with_tta], n),
                          mean_std([r["test_auc"] for r in with_tta], n), f"{flops / 1e12:.2f}",
                          f"1/{v2 / flops:.0f}" if flops < v2 else f"{flops / v2:.2f}x",
                          f"{statistics.fmean(r['wall_seconds'] for r in plain):.0f}",
                          f"{statistics.fmean(r['train_images_per_s'] for r in plain):.0f}"])
        for name, (acc, auc) in PUBLISHED.get(dataset, {}).items():
            lines.append([dataset, f"published: {name}", "", f"{acc:.3f}", f"{auc:.3f}"] + [""] * (len(head) - 5))
        acc, auc = TARGETS[dataset]
        lines.append([dataset, "target for fast", "5", f">= {acc:.3f}", f">= {auc:.3f}"] + [""] * (len(head) - 5))
    if markdown:
        rows = ["| " + " | ".join(lines[0]) + " |", "|" + "---|" * len(head)]
        return "\n".join(rows + ["| " + " | ".join(row) + " |" for row in lines[1:]])
    widths = [max(len(row[i]) for row in lines) for i in range(len(head))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths)) for row in lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-root", type=Path, required=True)
    p.add_argument("--recipes", nargs="+", default=["seed000", "fast", "medmnist-v2"])
    p.add_argument("--datasets", nargs="+", default=["breastmnist", "bloodmnist", "organamnist"])
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    p.add_argument("--skip", nargs="*", default=["medmnist-v2:bloodmnist", "medmnist-v2:organamnist"],
                   help="RECIPE:DATASET pairs not to run (default: the 100-epoch ResNet-18 on the big sets), "
                        "or RECIPE:DATASET:TTA to leave out one variant (e.g. medmnist-v2:breastmnist:shift)")
    p.add_argument("--tta", default="shift", choices=["flip", "shift", "flip-shift"])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", type=Path, default=Path("results/recipe-bench"))
    p.add_argument("--reuse", type=Path, nargs="*", default=[Path("results/strong-baselines")])
    p.add_argument("--markdown", action="store_true")
    p.add_argument("--table-only", action="store_true", help="tabulate the rows there are; train nothing")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    results: dict[tuple[str, str, str], list[dict]] = {}
    for dataset in args.datasets:
        for recipe in args.recipes:
            if f"{recipe}:{dataset}" in args.skip:
                continue
            for tta in ("none", args.tta):
                if f"{recipe}:{dataset}:{tta}" in args.skip:
                    continue
                for seed in args.seeds:
                    spec = ExperimentSpec.from_dict({"dataset": dataset, "recipe": recipe, "seed": seed, "tta": tta})
                    if args.table_only:
                        path = next((result_path(f, spec.run_id) for f in (args.out, *args.reuse)
                                     if result_path(f, spec.run_id).exists()), None)
                        if path is None:
                            continue
                        row = read_row(path)
                        if row is None or row.get("status") != "finished":
                            continue
                    else:
                        row = row_of(spec, args.out, args.reuse, args.data_root)
                    row["flops"] = run_flops(spec, dataset, row["epochs_trained"])
                    results.setdefault((dataset, recipe, tta), []).append(row)
    print(table(results, args.datasets, args.recipes, args.tta, args.markdown))


if __name__ == "__main__":
    main()
