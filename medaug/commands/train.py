"""`medaug train`: one experiment, one result row (data-parallel under torchrun)."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from medaug.commands.common import add_data_option_arg, add_data_options, add_run_options, parse_data_options
from medaug.errors import MedaugError
from medaug.experiment import OPTIMIZERS, SCHEDULES, SELECT_METRICS, SPEC_FIELDS, TTA_MODES, ExperimentSpec, run

def configure(p: argparse.ArgumentParser) -> None:
    p.description = ("Train one classifier (a recipe's values, seed 000's by default) and write "
                     "OUT/results/<run_id>.parquet.")
    p.add_argument("--dataset", required=True,
                   help="MedMNIST 2D name (e.g. breastmnist), covid19-radiography[-4class], isic2019, or folder "
                        "(any root/<class>/<image> tree: --data-option root=DIR)")
    p.add_argument("--size", type=int, default=28, help="image size (MedMNIST: 28, 64, 128 or 224)")
    p.add_argument("--recipe", default=None,
                   help="training preset: seed000 (default), medmnist-v2 or fast (medaug/train/recipes.py); "
                        "options given explicitly override its values")
    p.add_argument("--classifier", help="cnn, resnet18, resnet50, fricker-cnn, fastnet, ...")
    p.add_argument("--augment", dest="augmentation", help="augmentation pipeline name (default none)")
    p.add_argument("--wrs", action="store_true", default=None,
                   help="weighted random sampling (class-inverse frequency)")
    p.add_argument("--synthetic", metavar="STORE.zarr#GROUP", help="mix a synthetic set into train")
    p.add_argument("--optimizer", choices=OPTIMIZERS)
    p.add_argument("--nesterov", action=argparse.BooleanOptionalAction, help="Nesterov momentum (SGD)")
    p.add_argument("--lr", type=float)
    p.add_argument("--momentum", type=float)
    p.add_argument("--weight-decay", type=float)
    p.add_argument("--schedule", choices=SCHEDULES)
    p.add_argument("--warmup", type=float, help="fraction of the steps with a linear lr warm-up")
    p.add_argument("--epochs", type=int)
    p.add_argument("--min-steps", type=int, help="train more epochs when --epochs gives fewer optimiser steps")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--label-smoothing", type=float)
    p.add_argument("--ema", type=float, help="per-step decay of a weight EMA that is evaluated (0: off)")
    p.add_argument("--translate", type=float,
                   help="random translation of training images by up to this fraction of the side (a recipe's)")
    p.add_argument("--tta", choices=TTA_MODES, help="test-time augmentation of val and test (default none)")
    p.add_argument("--seed", type=int)
    p.add_argument("--select", dest="select_metric", choices=SELECT_METRICS,
                   help="validation metric that picks the tested epoch (default acc)")
    p.add_argument("--freeze-epochs", type=int,
                   help="transfer classifiers: epochs training only the new head first (default 0)")
    w = p.add_mutually_exclusive_group()
    w.add_argument("--pretrained", dest="pretrained", action="store_const", const=True, default=None,
                   help="transfer classifiers: require ImageNet weights ($MEDAUG_WEIGHTS_DIR)")
    w.add_argument("--no-pretrained", dest="pretrained", action="store_const", const=False,
                   help="transfer classifiers: random initialisation even when weights are configured")
    add_data_option_arg(p)
    p.add_argument("--out", required=True, type=Path, help="output folder (results/ and runs/ go inside)")
    p.add_argument("--overwrite", action="store_true", help="replace a finished result of the same spec")
    p.add_argument("--save-classifier", default=None, type=Path, metavar="FILE",
                   help="also write the tested weights, spec and train split hash to FILE (for medaug synthesize "
                        "--filter-classifier)")
    add_data_options(p)
    add_run_options(p)
    p.set_defaults(handler=train_command)


#: The `medaug train` option of each spec field whose name differs from it.
FIELD_FLAGS = {"augmentation": "--augment", "select_metric": "--select", "data_options": "--data-option"}


def _spec_from_args(args: argparse.Namespace) -> ExperimentSpec:
    """The spec of a `medaug train` command line; a refused value names the option it came from."""
    try:
        return _build_spec(args)
    except MedaugError as exc:
        m = re.match(r"spec field '(\w+)'", str(exc))
        if m is None:
            raise
        flag = FIELD_FLAGS.get(m.group(1), "--" + m.group(1).replace("_", "-"))
        raise MedaugError(f"{flag}: {exc}") from None


def _build_spec(args: argparse.Namespace) -> ExperimentSpec:
    """The options given, over the recipe's values (`ExperimentSpec.from_dict` expands it)."""
    given = {name: getattr(args, name) for name in SPEC_FIELDS if getattr(args, name, None) is not None}
    given["data_options"] = parse_data_options(args.data_options)
    return ExperimentSpec.from_dict(given)


def summary_line(row: dict) -> str:
    return (f"{row['run_id']}: test ACC {100 * row['test_acc']:.2f} AUC {100 * row['test_auc']:.2f} "
            f"(best epoch {row['best_epoch']}/{row['epochs_trained']}, val ACC {100 * row['val_acc']:.2f}) "
            f"{row['train_images_per_s']:.0f} img/s on {row['device']}, {row['wall_seconds']:.1f} s")


def train_command(args: argparse.Namespace) -> int:
    """One experiment; data-parallel when launched by torchrun or as a multi-task SLURM
    step (each rank trains its slice of the global batch; rank 0 writes and prints)."""
    from medaug.train.distributed import cleanup_distributed, init_distributed

    spec = _spec_from_args(args)
    info = init_distributed()
    try:
        device = args.device if args.device not in (None, "auto") or not info.distributed else info.device()
        row = run(spec, args.out, data_root=args.data_root, device=device, quiet=args.quiet or info.rank != 0,
                  overwrite=args.overwrite, download=args.download, verify_md5=args.verify_md5,
                  save_classifier=args.save_classifier)
    finally:
        cleanup_distributed()
    if info.rank == 0:
        print(summary_line(row))
    return 0
