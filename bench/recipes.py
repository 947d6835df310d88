"""Accuracy and cost of each training recipe (issue 11's benchmark; run by hand, never in CI).

    .venv/bin/python bench/recipes.py --data-root ../shared/data/medmnist \
        [--recipes seed000 fast medmnist-v2] [--datasets breastmnist bloodmnist organamnist] \
        [--seeds 0 1 2 3 4] [--skip medmnist-v2:bloodmnist medmnist-v2:organamnist] [--threads 2] \
        [--out bench/out/recipes] [--markdown]

For every recipe x data set x seed, one run of the recipe as a study would run it (28 px,
no augmentation, no WRS, no TTA; `medaug.experiment.fit_and_test`), then:

- test ACC and AUC of the tested (best-validation) weights, and the same weights tested
  with test-time augmentation (`shift`: 4 one-pixel shifts; `flip-shift`: and their
  horizontal flips; the tested epoch is the one chosen without TTA);
- training FLOPs of the run, counted by `torch.utils.flop_counter` on one training step
  (forward + backward of a full batch) and one validation pass, times the run's number of
  steps and epochs (the network is the same at every step, so this is the count of the
  whole run, not a hand estimate);
- wall time of the run and training images/s on this machine.

Each finished run is stored as `OUT/<recipe>/<dataset>/seed<N>.json` and skipped when
rerun, so a benchmark longer than a sitting continues where it stopped. The summary (mean
± std over seeds, next to the published 28-px rows) goes to stdout, as Markdown with
--markdown. Run it on an otherwise idle machine: other processes slow PyTorch on a CPU.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from medaug.data.medmnist import load_medmnist
from medaug.experiment import ExperimentSpec, fit_and_test
from medaug.train.loop import evaluate_model, make_criterion, normalise, tta_views

TTA_MODES = ("shift", "flip-shift")

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


def training_flops(spec: ExperimentSpec, model: torch.nn.Module, n_train: int, n_val: int, channels: int,
                   task: str, epochs: int) -> float:
    """FLOPs of a whole run: counted on one full training step and one validation image."""
    model = model.train()
    criterion = make_criterion(task, spec.label_smoothing)
    x = torch.zeros(spec.batch_size, channels, spec.size, spec.size, dtype=torch.uint8)
    y = torch.zeros(spec.batch_size, dtype=torch.long)
    with FlopCounterMode(display=False) as counter:
        criterion(model(normalise(x)), y).backward()
    per_image_step = counter.get_total_flops() / spec.batch_size
    model.zero_grad(set_to_none=True)
    model.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        for view in tta_views(x[:1], spec.tta):
            model(normalise(view))
    per_val_image = counter.get_total_flops()
    return epochs * (n_train * per_image_step + n_val * per_val_image)


def one_run(recipe: str, dataset: str, seed: int, data_root: Path) -> dict:
    data = load_medmnist(dataset, size=28, root=data_root)
    spec = ExperimentSpec.from_dict({"dataset": dataset, "recipe": recipe, "seed": seed})
    t0 = time.perf_counter()
    fit = fit_and_test(spec, data.train, data.val, data.test, device="cpu")
    seconds = time.perf_counter() - t0
    result = {"recipe": recipe, "dataset": dataset, "seed": seed, "run_id": spec.run_id,
              "test_acc": fit.test.acc, "test_auc": fit.test.auc, "val_acc": fit.val_acc,
              "best_epoch": fit.best_epoch, "epochs": fit.outcome.epochs, "seconds": seconds,
              "train_images_per_s": fit.outcome.train_images_per_s}
    for mode in TTA_MODES:
        metrics, _ = evaluate_model(fit.model, data.test, torch.device("cpu"), tta=mode)
        result[f"test_acc_{mode}"], result[f"test_auc_{mode}"] = metrics.acc, metrics.auc
    from medaug.classifiers import build_classifier

    fresh = build_classifier(spec.classifier, data.train.channels, data.train.num_classes, 28)
    result["train_flops"] = training_flops(spec, fresh, len(data.train), len(data.val), data.train.channels,
                                           data.train.task, fit.outcome.epochs)
    return result


def mean_std(values: list[float]) -> str:
    if not values:
        return "-"
    std = statistics.stdev(values) if len(values) > 1 else float("nan")
    return f"{statistics.fmean(values):.3f} ± {std:.3f}"


def summary(results: list[dict], markdown: bool) -> str:
    head = ["data set", "recipe", "n", "test ACC", "test AUC", "ACC TTA shift", "ACC TTA flip-shift",
            "AUC TTA flip-shift", "train PFLOPs", "FLOPs / medmnist-v2", "wall s", "img/s"]
    lines = [head]
    datasets = list(dict.fromkeys(r["dataset"] for r in results))
    recipes = list(dict.fromkeys(r["recipe"] for r in results))
    for dataset in datasets:
        v2 = [r["train_flops"] for r in results if r["dataset"] == dataset and r["recipe"] == "medmnist-v2"]
        for recipe in recipes:
            rows = [r for r in results if r["dataset"] == dataset and r["recipe"] == recipe]
            if not rows:
                continue
            flops = statistics.fmean(r["train_flops"] for r in rows)
            ratio = f"1/{statistics.fmean(v2) / flops:.0f}" if v2 and flops < statistics.fmean(v2) else (
                f"{flops / statistics.fmean(v2):.2f}" if v2 else "-")
            lines.append([dataset, recipe, str(len(rows)), mean_std([r["test_acc"] for r in rows]),
                          mean_std([r["test_auc"] for r in rows]), mean_std([r["test_acc_shift"] for r in rows]),
                          mean_std([r["test_acc_flip-shift"] for r in rows]),
                          mean_std([r["test_auc_flip-shift"] for r in rows]), f"{flops / 1e15:.4f}", ratio,
                          f"{statistics.fmean(r['seconds'] for r in rows):.0f}",
                          f"{statistics.fmean(r['train_images_per_s'] for r in rows):.0f}"])
        for name, (acc, auc) in PUBLISHED.get(dataset, {}).items():
            lines.append([dataset, f"published: {name}", "", f"{acc:.3f}", f"{auc:.3f}"] + [""] * (len(head) - 5))
        if dataset in TARGETS:
            acc, auc = TARGETS[dataset]
            lines.append([dataset, "target for fast", "", f">= {acc:.3f}", f">= {auc:.3f}"] + [""] * (len(head) - 5))
    if markdown:
        out = ["| " + " | ".join(lines[0]) + " |", "|" + "---|" * len(head)]
        out += ["| " + " | ".join(row) + " |" for row in lines[1:]]
        return "\n".join(out)
    widths = [max(len(row[i]) for row in lines) for i in range(len(head))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths)) for row in lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-root", type=Path, required=True)
    p.add_argument("--recipes", nargs="+", default=["seed000", "fast", "medmnist-v2"])
    p.add_argument("--datasets", nargs="+", default=["breastmnist", "bloodmnist", "organamnist"])
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    p.add_argument("--skip", nargs="*", default=["medmnist-v2:bloodmnist", "medmnist-v2:organamnist"],
                   help="RECIPE:DATASET pairs not to run (default: the 100-epoch ResNet-18 on the big sets)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", type=Path, default=Path("bench/out/recipes"))
    p.add_argument("--markdown", action="store_true")
    p.add_argument("--summary-only", action="store_true", help="print the table of the runs stored in OUT")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    results = []
    for dataset in args.datasets:
        for recipe in args.recipes:
            if f"{recipe}:{dataset}" in args.skip:
                continue
            for seed in args.seeds:
                path = args.out / recipe / dataset / f"seed{seed}.json"
                if path.exists():
                    results.append(json.loads(path.read_text()))
                    continue
                if args.summary_only:
                    continue
                result = one_run(recipe, dataset, seed, args.data_root)
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_suffix(".tmp")
                tmp.write_text(json.dumps(result, indent=1))
                tmp.replace(path)
                results.append(result)
                print(f"{recipe} {dataset} seed {seed}: test ACC {result['test_acc']:.4f} AUC "
                      f"{result['test_auc']:.4f} in {result['seconds']:.0f} s", flush=True)
    print(summary(results, args.markdown))
    if any(math.isnan(r["test_auc"]) for r in results):
        print("note: NaN AUC where a test split lacks a class")


if __name__ == "__main__":
    main()
