"""`medaug generator eval`: its options, handler, and `add_commands` mounting it in the `generator` group.

    medaug generator eval --checkpoint RUN/checkpoint --n 2000 --tstr --out OUT

writes OUT/generator-eval/<eval_id>.parquet (see medaug/generators/evaluate.py).
"""

from __future__ import annotations

import argparse
import math


def configure_eval(p: argparse.ArgumentParser) -> None:
    """Add the `generator eval` options to `p` and set its handler."""
    p.description = ("FID/KID (with the real-vs-real floor), precision/recall, density/coverage, nearest-real "
                     "RMSE/PSNR/SRE/SAM, classifier confidence and optionally TSTR vs TRTR of a generator "
                     "checkpoint; one Parquet row under OUT/generator-eval/.")
    p.add_argument("--checkpoint", required=True, metavar="DIR", help="generator checkpoint folder")
    p.add_argument("--n", type=int, default=2000,
                   help="images per side for FID/KID/PR/DC (capped at |test|, which the floor needs; default 2000)")
    p.add_argument("--extractor", choices=("classifier", "inception"), default="classifier",
                   help="features: penultimate layer of a CNN trained on the real train split (default, no "
                        "download) or Inception-v3 from --inception-weights")
    p.add_argument("--inception-weights", default=None, metavar="PATH",
                   help="local torchvision Inception-v3 state dict (.pth); required with --extractor inception")
    p.add_argument("--tstr", action="store_true", help="also train on synthetic only and test on real (TSTR)")
    p.add_argument("--seed", type=int, default=0, help="sampling and subset seed")
    p.add_argument("--classifier", default="cnn", help="reference/TSTR classifier (default: seed 000's cnn)")
    p.add_argument("--classifier-epochs", type=int, default=20, help="epochs of the reference and TSTR classifiers")
    p.add_argument("--kid-subsets", type=int, default=100, help="random subsets averaged by KID")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (rows go to DIR/generator-eval/)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing row of the same evaluation")
    p.add_argument("--data-root", default=None, metavar="DIR",
                   help="folder holding the checkpoint's data set (MedMNIST npz files, COVID-19 radiography, "
                        "ISIC 2019; default: $MEDAUG_DATA_ROOT, else ~/.medmnist)")
    p.add_argument("--no-verify-md5", dest="verify_md5", action="store_false",
                   help="accept an npz whose md5 differs from medmnist INFO (the train hash is still checked)")
    p.add_argument("--device", default="auto", help="auto (CUDA when present, else CPU), cpu, cuda, cuda:N")
    p.add_argument("--quiet", action="store_true", help="no classifier training progress")
    p.set_defaults(handler=run_eval)


def run_eval(args: argparse.Namespace) -> int:
    from medaug.generators.evaluate import EvalOptions, evaluate_generator
    from medaug.store.generator_results import eval_path

    options = EvalOptions(n=args.n, extractor=args.extractor, inception_weights=args.inception_weights,
                          tstr=args.tstr, seed=args.seed, classifier=args.classifier,
                          classifier_epochs=args.classifier_epochs, kid_subsets=args.kid_subsets,
                          device=args.device, overwrite=args.overwrite)
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
    print(f"  TSTR acc {f(row['tstr_acc'])} auc {f(row['tstr_auc'])} balanced acc {f(row['tstr_balanced_acc'])}   "
          f"TRTR acc {f(row['trtr_acc'])} auc {f(row['trtr_auc'])} balanced acc {f(row['trtr_balanced_acc'])}")
    print(f"wrote {eval_path(args.out, row['eval_id'])}")
    return 0


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Add `eval` to the `generator` group (created here if medaug.generators.commands has not yet)."""
    from medaug.generators.commands import generator_subparsers

    configure_eval(generator_subparsers(subparsers).add_parser(
        "eval", help="evaluate a generator checkpoint: FID/KID with floor, PR, DC, pixel metrics, TSTR"))
