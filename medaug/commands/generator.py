"""`medaug generator fit|list|eval`: train generative augmenters and evaluate them.

    medaug generator fit --dataset breastmnist --generator cvae --epochs 200 --seed 0 --out runs/cvae
    medaug generator fit --dataset covid19-radiography --size 128 --generator stylegan2ada \
        --set kimg=500 --set fid_kimg=50 --data-option test_per_class=200 --out runs/sg
    medaug generator list
    medaug generator eval --checkpoint RUN/checkpoint --n 2000 --tstr --out OUT
    medaug generator eval --checkpoint EDM/checkpoint --steps 8 --guidance 1.5 --tstr --out OUT

`--dataset` is any source of `medaug.data.sources` at a `--size` that both the source
provides and the generator accepts (checked first, see medaug/generators/data.py).
StyleGAN2-ADA with `--set fid_kimg=K` logs FID every K kimg (stats.jsonl, status
lines): through Inception-v3 when `--set fid_inception_weights=PATH` names a local
weights file, else through the default extractor of `generator eval` (penultimate
layer of a CNN trained on the real train split, cached in OUT/generator-eval/).

Distributed: under `torchrun --nproc_per_node=N` (WORLD_SIZE > 1 in the environment)
`fit` initialises the process group (NCCL on CUDA, else gloo) and trains data-parallel.

`eval` writes OUT/generator-eval/<eval_id>.parquet, and the memorisation check's per-sample
neighbours and closest-pairs montage as OUT/generator-eval/memorisation/<eval_id>.json|png
(see medaug/generators/evaluate.py).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

from medaug.commands.common import add_checkpoint_data_options, parse_data_options
from medaug.errors import MedaugError
from medaug.store.atomic import check_writable


def configure(parser: argparse.ArgumentParser) -> None:
    parser.description = "Generative augmentation: fit, list and evaluate generators."
    group = parser.add_subparsers(dest="generator_command", required=True, metavar="SUBCOMMAND")
    _add_fit(group)
    group.add_parser("list", help="list the generators and their default settings").set_defaults(handler=run_list)
    _configure_eval(group.add_parser(
        "eval", help="evaluate a generator checkpoint: FID/KID with floor, PR, DC, pixel metrics, TSTR"))


def _add_fit(group: argparse._SubParsersAction) -> None:
    p = group.add_parser("fit", help="train a generator on a data set's train split",
                         description="Train a generator on the TRAIN split (val only for early stopping); "
                                     "checkpoints every epoch in OUT/checkpoint, loss tables and figures in OUT.")
    p.add_argument("--dataset", required=True,
                   help="a registered data set: a MedMNIST 2D set (e.g. breastmnist), covid19-radiography, "
                        "covid19-radiography-4class, isic2019, folder (a class-folder tree: --data-option root=DIR)")
    p.add_argument("--generator", required=True,
                   help="cvae, jvae, cgan, dcgan, cwgan-gp, vaegan, stylegan2ada, edm, ... "
                        "(see `medaug generator list`)")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (checkpoint/, losses_*.csv, *.png)")
    p.add_argument("--epochs", type=int, default=None, help="epochs (default: the generator's)")
    p.add_argument("--seed", type=int, default=0, help="seed of initial weights and every random draw (default 0)")
    p.add_argument("--size", type=int, default=28,
                   help="image size in px (default 28); must be one the data set provides and the generator "
                        "accepts (MedMNIST: 28, 64, ...; folder sets are resized on load)")
    p.add_argument("--batch-size", type=int, default=None, help="batch size (default: the generator's)")
    p.add_argument("--lr", type=float, default=None, help="learning rate (default: the generator's)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="any other config field, e.g. --set width=0.5 --set early_stopping_patience=20")
    p.add_argument("--resume", action="store_true", help="continue from the last epoch checkpointed in --out")
    p.add_argument("--data-root", metavar="DIR", default=None,
                   help="folder holding the data (MedMNIST npz files, the COVID-19 radiography folder, ISIC 2019; "
                        "default: $MEDAUG_DATA_ROOT, else ~/.medmnist)")
    p.add_argument("--data-option", action="append", default=[], metavar="KEY=VALUE",
                   help="an option of the data source, value as JSON, e.g. --data-option test_per_class=100 "
                        "(COVID); recorded in the checkpoint so synthesize/eval reload the same splits")
    p.add_argument("--download", action="store_true", help="download a missing MedMNIST npz (online only)")
    p.add_argument("--fid-classifier-epochs", type=int, default=20, metavar="N",
                   help="stylegan2ada with --set fid_kimg=K and no fid_inception_weights: epochs of the reference "
                        "classifier whose penultimate layer is the FID extractor (trained on the real train split, "
                        "cached in OUT/generator-eval/reference; default 20, as `generator eval`)")
    p.add_argument("--no-verify-md5", dest="verify_md5", action="store_false", help="skip the npz md5 check")
    p.add_argument("--device", default="auto", help="auto (CUDA when present, else CPU), cpu, cuda, cuda:N")
    p.add_argument("--quiet", action="store_true", help="no per-epoch status lines")
    p.set_defaults(handler=run_fit)


def parse_sets(items: list[str]) -> dict[str, Any]:
    """KEY=VALUE pairs; values read as JSON scalars (numbers, true/false), else as strings."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise MedaugError(f"--set {item!r}: expected KEY=VALUE")
        try:
            value = json.loads(raw)
        except ValueError:
            value = raw
        if isinstance(value, (list, dict)) or value is None:
            raise MedaugError(f"--set {item!r}: expected a number, true/false or a string")
        out[key.strip()] = value
    return out


FIT_GROUP_TIMEOUT_S = 3600.0  # rank 0 may first train the FID reference classifier while the others wait


def _join_process_group(device_arg: str) -> str:
    """Under torchrun or a multi-task SLURM step, join the process group (gloo for
    --device cpu, else NCCL when CUDA is present); returns this rank's device."""
    from medaug.train.distributed import init_distributed

    info = init_distributed(backend="gloo" if device_arg == "cpu" else None, timeout_s=FIT_GROUP_TIMEOUT_S)
    if info.distributed and device_arg in ("auto", "cuda"):
        return info.device()
    return device_arg


def run_fit(args: argparse.Namespace) -> int:
    from medaug.generators import GENERATORS, resolve_device
    from medaug.generators.data import check_fit_size, checked_data_options, load_splits
    from medaug.train.distributed import cleanup_distributed

    cls = GENERATORS.get(args.generator)
    overrides = parse_sets(args.set)
    for key in ("epochs", "batch_size", "lr"):
        if getattr(args, key) is not None:
            overrides[key] = getattr(args, key)
    config = cls.make_config(overrides, seed=args.seed)
    resolve_device(args.device)  # refuse a bad --device before loading anything
    check_fit_size(cls.name, args.dataset, args.size)
    options = checked_data_options(args.dataset, parse_data_options(args.data_option))
    if args.fid_classifier_epochs < 1:
        raise MedaugError(f"--fid-classifier-epochs {args.fid_classifier_epochs}: expected an integer >= 1")
    out = Path(args.out)
    if not args.resume and (out / "checkpoint" / "generator.json").exists():
        raise MedaugError(f"{out}: already holds a generator checkpoint; pass --resume or choose another --out")
    if args.resume and not (out / "checkpoint" / "generator.json").is_file():
        raise MedaugError(f"{out}: nothing to resume (no checkpoint/generator.json)")
    check_writable(out / "checkpoint" / "generator.json", what="--out")  # before the data or a first epoch
    splits = load_splits(args.dataset, args.size, args.data_root, download=args.download,
                         verify_md5=args.verify_md5, options=options)
    device = _join_process_group(args.device)
    try:
        return _fit(args, cls, config, splits, options, out, device)
    finally:
        cleanup_distributed()


def _fit(args: argparse.Namespace, cls: Any, config: Any, splits: Any, options: dict[str, Any], out: Path,
         device: str) -> int:
    import torch.distributed as dist

    gen = cls(splits.train.channels, splits.train.size, splits.train.num_classes, config, device=device)
    if _wants_default_fid(gen) and (not dist.is_initialized() or dist.get_rank() == 0):
        from medaug.generators.evaluate import default_fid_extractor

        gen.fid_extractor = default_fid_extractor(splits, out, gen.device, epochs=args.fid_classifier_epochs,
                                                  quiet=args.quiet)
        if not args.quiet:
            print(f"{gen.name}: FID every {gen.config.fid_kimg:g} kimg with {gen.fid_extractor.describe()} "
                  "(penultimate layer of a classifier trained on the real train split)", file=sys.stdout)
    provenance: dict[str, Any] = {"version": splits.version, "md5": splits.md5}
    if options:
        provenance["data_options"] = options
    ckpt = gen.fit(splits.train, out, val=splits.val, resume=args.resume, quiet=args.quiet, provenance=provenance)
    if not args.quiet and (not dist.is_initialized() or dist.get_rank() == 0):
        print(f"{gen.name} on {splits.name}: {gen.epoch} epochs; checkpoint {ckpt}", file=sys.stdout)
    return 0


def _wants_default_fid(gen: Any) -> bool:
    """A generator with periodic FID switched on (``fid_kimg`` > 0) but no Inception weights
    gets the default extractor; one with ``fid_inception_weights`` builds Inception itself."""
    cfg = gen.config
    return (hasattr(gen, "fid_extractor") and float(getattr(cfg, "fid_kimg", 0) or 0) > 0
            and not getattr(cfg, "fid_inception_weights", ""))


def run_list(args: argparse.Namespace) -> int:
    from medaug.generators import GENERATORS

    for name in GENERATORS.names():
        cls = GENERATORS.get(name)
        cfg = cls.make_config()
        caps = ", ".join(k for k, on in (("conditional", cls.conditional), ("sample", cls.can_sample),
                                         ("reconstruct", cls.can_reconstruct)) if on)
        doc = (cls.__doc__ or "").strip().splitlines()[0]
        print(f"{name:9s} [{caps}] {doc}")
        print(f"{'':9s} defaults: " + ", ".join(f"{k}={v}" for k, v in cfg.to_dict().items()))
    return 0


def _configure_eval(p: argparse.ArgumentParser) -> None:
    """Add the `generator eval` options to `p` and set its handler."""
    p.description = ("FID/KID (with the real-vs-real floor, per class too), precision/recall, density/coverage, nearest-real "
                     "RMSE/PSNR/SRE/SAM, near-copies of train images (memorisation check, with montage), "
                     "classifier confidence and optionally TSTR vs TRTR (per-class recall) of a generator checkpoint, "
                     "in the features of a fast-recipe classifier by default; one Parquet row under "
                     "OUT/generator-eval/.")
    p.add_argument("--checkpoint", required=True, metavar="DIR", help="generator checkpoint folder")
    p.add_argument("--n", type=int, default=2000,
                   help="images per side for FID/KID/PR/DC (capped at |test|, which the floor needs; default 2000)")
    p.add_argument("--extractor", choices=("fast", "classifier", "inception"), default="fast",
                   help="features of FID/KID/PR/DC: penultimate layer of a classifier trained on the real train "
                        "split with the fast recipe (default), of seed 000's CNN (classifier: --classifier for "
                        "--classifier-epochs, the protocol before issue 12), or Inception-v3 from "
                        "--inception-weights")
    p.add_argument("--inception-weights", default=None, metavar="PATH",
                   help="local torchvision Inception-v3 state dict (.pth); required with --extractor inception")
    p.add_argument("--tstr", action="store_true", help="also train on synthetic only and test on real (TSTR)")
    p.add_argument("--tstr-n", type=int, default=None, metavar="N",
                   help="TSTR trains on N generated images, TRTR on a seeded draw of N real train images "
                        "(default: |train| each; caps a slow sampler's cost on a large set)")
    p.add_argument("--seed", type=int, default=0, help="sampling and subset seed")
    p.add_argument("--recipe", choices=("fast", "seed000"), default="fast",
                   help="recipe of the reference classifier (TRTR, TSTR, confidence): fast (default) or seed000 "
                        "(--classifier for --classifier-epochs)")
    p.add_argument("--recipe-set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a field of the fast recipe, e.g. --recipe-set epochs=2 --recipe-set min_steps=50 "
                        "(recorded in the row's specs)")
    p.add_argument("--classifier", default="cnn",
                   help="classifier of the seed000 recipe and the classifier extractor (default: seed 000's cnn)")
    p.add_argument("--classifier-epochs", type=int, default=20,
                   help="epochs of the seed000 recipe and the classifier extractor (default 20)")
    p.add_argument("--steps", type=int, default=None, metavar="N",
                   help="sampler steps of a generator that has one (edm); refused for the others")
    p.add_argument("--guidance", type=float, default=None, metavar="W",
                   help="classifier-free guidance scale of a generator that has one (edm); refused for the others")
    p.add_argument("--kid-subsets", type=int, default=100, help="random subsets averaged by KID")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (rows go to DIR/generator-eval/)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing row of the same evaluation")
    add_checkpoint_data_options(p)
    p.add_argument("--quiet", action="store_true", help="no classifier training progress")
    p.set_defaults(handler=run_eval)


def run_eval(args: argparse.Namespace) -> int:
    from medaug.generators.evaluate import EvalOptions, evaluate_generator, memorisation_paths
    from medaug.store.generator_results import eval_path

    # before the reference classifier trains (minutes) only to find the folder read-only
    check_writable(eval_path(args.out, "eval-id"), what="--out")

    sampling = {k: v for k, v in (("steps", args.steps), ("guidance", args.guidance)) if v is not None}
    options = EvalOptions(n=args.n, extractor=args.extractor, inception_weights=args.inception_weights,
                          tstr=args.tstr, tstr_n=args.tstr_n, seed=args.seed, recipe=args.recipe,
                          recipe_overrides=parse_sets(args.recipe_set), classifier=args.classifier,
                          classifier_epochs=args.classifier_epochs, kid_subsets=args.kid_subsets,
                          sampling=sampling, device=args.device, overwrite=args.overwrite)
    row = evaluate_generator(args.checkpoint, args.out, options, data_root=args.data_root,
                             verify_md5=args.verify_md5, quiet=args.quiet)

    def f(x: object, digits: int = 3) -> str:
        return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"

    print(f"{row['generator']} on {row['dataset']} ({row['size']} px), extractor {row['extractor']}@"
          f"{row['extractor_hash']}, n={row['n']}")
    print(f"  FID {f(row['fid'])} (real-vs-real floor {f(row['fid_floor'])})  KID {f(row['kid_mean'], 4)} "
          f"(floor {f(row['kid_floor_mean'], 4)})")
    print(f"  precision {f(row['precision'])} recall {f(row['recall'])} density {f(row['density'])} "
          f"coverage {f(row['coverage'])}")
    print(f"  nearest real: RMSE {f(row['rmse'], 4)} PSNR {f(row['psnr'], 2)} dB SRE {f(row['sre'], 2)} dB "
          f"SAM {f(row['sam'], 2)} deg  mean confidence {f(row['mean_confidence'])}")
    print(f"  near-copies (nearest < 1/3 x {row['near_copy_k']}-th nearest train image): pixel "
          f"{f(row['near_copy_share_pixel'])} (train-to-train {f(row['near_copy_baseline_pixel'])}), feature "
          f"{f(row['near_copy_share_feature'])} (train-to-train {f(row['near_copy_baseline_feature'])}); median "
          f"nearest distance pixel {f(row['nn_distance_pixel_quantiles'][4], 2)}; closest pairs in "
          f"{memorisation_paths(args.out, row['eval_id'])[1]}")
    names = row["class_names"]
    print("  per-class FID (floor): " + ", ".join(
        f"{c} {f(v, 2)} ({f(w, 2)})" for c, v, w in zip(names, row["fid_per_class"], row["fid_floor_per_class"])))
    print(f"  TSTR acc {f(row['tstr_acc'])} auc {f(row['tstr_auc'])} balanced acc {f(row['tstr_balanced_acc'])}   "
          f"TRTR acc {f(row['trtr_acc'])} auc {f(row['trtr_auc'])} balanced acc {f(row['trtr_balanced_acc'])}   "
          f"(recipe {row['recipe']}" + (f", {row['tstr_n']} training images each" if row["tstr_n"] else "") + ")")
    if row["tstr_recall_per_class"] is not None:
        print("  per-class recall TSTR (TRTR): " + ", ".join(
            f"{c} {f(t)} ({f(r)})" for c, t, r in zip(names, row["tstr_recall_per_class"],
                                                      row["trtr_recall_per_class"] or [None] * len(names))))
    if row["sampling"]:
        print(f"  sampler {row['sampling']}")
    print(f"wrote {eval_path(args.out, row['eval_id'])}")
    return 0
