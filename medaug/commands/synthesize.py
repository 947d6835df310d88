"""`medaug synthesize`: write a synthetic set from a generator checkpoint (medaug/generators/synthesize.py)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from medaug.commands.common import add_checkpoint_data_options
from medaug.generators.strategies import STRATEGIES


def configure(p: argparse.ArgumentParser) -> None:
    p.description = ("Sample (or reconstruct) images with a trained generator and write them, with provenance, "
                     "as one group of a Zarr v3 store (STORE.zarr#GROUP). Nothing is written on bad input.")
    p.add_argument("--checkpoint", required=True, metavar="DIR", help="generator checkpoint folder (generator.json + state.pt)")
    p.add_argument("--strategy", required=True, choices=STRATEGIES, help="how many images of which class")
    p.add_argument("--fraction", type=float, default=None, metavar="F",
                   help="inverse-scarcity: add floor(F x |train|) images, F in (0, 1] (seed 000: 0.04-0.10)")
    p.add_argument("--classes", action="append", default=None, metavar="A,B",
                   help="per-class: class names or indices, comma-separated or repeated (a name with a comma "
                        "is taken whole when it matches a class)")
    p.add_argument("--count", type=int, default=None, metavar="N", help="per-class: images per named class (seed 002: 128)")
    p.add_argument("--synthetic-per-real", type=int, default=None, metavar="K",
                   help="ratio: K synthetic images per real image of each class")
    p.add_argument("--seed", type=int, required=True, help="sampling seed (same seed, same images)")
    p.add_argument("--out", required=True, metavar="STORE.zarr", help="Zarr v3 directory store (created if missing)")
    p.add_argument("--group", default=None, help="group name (default: GENERATOR-DATASET-STRATEGY-sSEED-HASH)")
    p.add_argument("--steps", type=int, default=None, metavar="N",
                   help="sampler steps of a generator that has one (edm: Heun steps, default the checkpoint's "
                        "sample_steps, EDM's 18; fewer is faster); recorded in the set's provenance")
    p.add_argument("--guidance", type=float, default=None, metavar="W",
                   help="classifier-free guidance scale of a generator that has one (edm: 1 = conditional, "
                        "0 = unconditional, >1 stronger class signal; default the checkpoint's guidance)")
    p.add_argument("--drop-near-copies", action="store_true",
                   help="drop samples that are near-copies of a train image (nearest < 1/3 x 50th nearest in its "
                        "class, pixel space) and draw more until each class is full (at most 8 extra draws, else "
                        "exit 2); default group name ends in -nocopies. Without it the share is only recorded")
    add_checkpoint_data_options(p)
    p.set_defaults(handler=run_synthesize)


def split_classes(values: Sequence[str] | None, class_names: Sequence[str]) -> tuple[str, ...]:
    """--classes values -> class tokens: a value equal to a class name stays whole, else split on commas."""
    out: list[str] = []
    for value in values or ():
        if value.strip() in class_names:
            out.append(value.strip())
        else:
            out.extend(part.strip() for part in value.split(",") if part.strip())
    return tuple(out)


def run_synthesize(args: argparse.Namespace) -> int:
    from medaug.generators.base import read_checkpoint_meta
    from medaug.generators.strategies import Strategy
    from medaug.generators.synthesize import synthesize

    meta = read_checkpoint_meta(args.checkpoint)
    strategy = Strategy(name=args.strategy, fraction=args.fraction,
                        classes=split_classes(args.classes, meta["class_names"]), count=args.count,
                        synthetic_per_real=args.synthetic_per_real)
    result = synthesize(args.checkpoint, strategy, args.seed, args.out, group=args.group, data_root=args.data_root,
                        device=args.device, verify_md5=args.verify_md5,
                        sampling={"steps": args.steps, "guidance": args.guidance},
                        drop_near_copies=args.drop_near_copies)
    counts = ", ".join(f"{name}: {c}" for name, c in zip(meta["class_names"], result.counts) if c)
    print(f"wrote {result.n} images ({counts}) to {result.ref} (set_id {result.set_id})")
    memo = result.provenance["memorisation"]
    dropped = f"; dropped {sum(memo['dropped_per_class'])} and drew more" if args.drop_near_copies else ""
    share, base = (("n/a" if x is None else f"{x:.3f}") for x in (memo["near_copy_share"], memo["baseline_share"]))
    print(f"near-copies of train images (pixel space): {share} of the samples drawn, "
          f"train-to-train baseline {base}{dropped}")
    return 0
