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
                        "exit 2); default group name ends in -nocopies. Without it the share is only recorded. "
                        "The same as --filter near-copy")
    f = p.add_argument_group("filter (medaug/generators/filters.py): keep only samples that pass, draw until each "
                             "class is full; the default group name ends in the filter's tag")
    f.add_argument("--filter", dest="filter_kind", default=None, choices=("confidence", "realism", "near-copy"),
                   help="confidence: p(label) >= T under a classifier of the real train split; realism: "
                        "Kynkaanniemi et al. 2019 realism score >= T (default 1: inside the real k-NN manifold "
                        "of the class, in that classifier's features); near-copy: drop near-copies (T: ratio, "
                        "default 1/3)")
    f.add_argument("--filter-threshold", type=float, default=None, metavar="T", help="the filter's threshold")
    f.add_argument("--filter-k", type=int, default=None, metavar="K",
                   help="k of the realism score's k-NN balls (default 3) or of the near-copy test (default 50)")
    f.add_argument("--filter-classifier", default=None, metavar="FILE",
                   help="classifier file of this data set (medaug train --save-classifier FILE, or generator "
                        "eval's cache OUT/generator-eval/reference/*.pt), loaded with weights_only; without it "
                        "one is trained by --filter-recipe")
    f.add_argument("--filter-recipe", default="fast", choices=("fast", "seed000"),
                   help="recipe of the classifier trained when no file is given (default fast)")
    f.add_argument("--filter-recipe-set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a field of the fast recipe for that classifier (enters the group's tag)")
    f.add_argument("--filter-cache", default=None, metavar="DIR",
                   help="where a trained filter classifier is cached: DIR/generator-eval/reference/, shared with "
                        "generator eval --out DIR (default: the store's folder)")
    f.add_argument("--max-draws", type=float, default=8.0, metavar="F",
                   help="draw at most F x the requested images of a class, else exit 2 with nothing written "
                        "(default 8)")
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
    sample_filter = filter_of(args)
    strategy = Strategy(name=args.strategy, fraction=args.fraction,
                        classes=split_classes(args.classes, meta["class_names"]), count=args.count,
                        synthetic_per_real=args.synthetic_per_real)
    result = synthesize(args.checkpoint, strategy, args.seed, args.out, group=args.group, data_root=args.data_root,
                        device=args.device, verify_md5=args.verify_md5,
                        sampling={"steps": args.steps, "guidance": args.guidance},
                        drop_near_copies=args.drop_near_copies, sample_filter=sample_filter,
                        classifier_cache=args.filter_cache)
    counts = ", ".join(f"{name}: {c}" for name, c in zip(meta["class_names"], result.counts) if c)
    print(f"wrote {result.n} images ({counts}) to {result.ref} (set_id {result.set_id})")
    memo = result.provenance["memorisation"]
    dropped = f"; dropped {sum(memo['dropped_per_class'])} and drew more" if args.drop_near_copies else ""
    share, base = (("n/a" if x is None else f"{x:.3f}") for x in (memo["near_copy_share"], memo["baseline_share"]))
    print(f"near-copies of train images (pixel space): {share} of the samples drawn, "
          f"train-to-train baseline {base}{dropped}")
    record = result.provenance.get("filter")
    if record is not None:
        per_class = ", ".join(f"{name}: {a}/{d}" for name, a, d in zip(meta["class_names"],
                              record["accepted_per_class"], record["drawn_per_class"]) if d)
        clf = record.get("classifier") or {}
        which = f", classifier {clf.get('classifier')} {clf.get('checkpoint_hash')}" if clf else ""
        print(f"filter {record['kind']} (threshold {record['threshold']:.10g}{which}): accepted/drawn {per_class}")
    return 0


def filter_of(args: argparse.Namespace):
    """The --filter options as a FilterSpec (None without --filter); filter options without it are refused."""
    from medaug.errors import MedaugError
    from medaug.generators.filters import DEFAULT_MAX_DRAWS, FilterSpec

    given = [name for name, value in (("--filter-threshold", args.filter_threshold), ("--filter-k", args.filter_k),
                                      ("--filter-classifier", args.filter_classifier),
                                      ("--filter-recipe-set", args.filter_recipe_set),
                                      ("--filter-cache", args.filter_cache)) if value]
    if args.filter_recipe != "fast":
        given.append("--filter-recipe")
    if args.filter_kind is None:
        if given:
            raise MedaugError(f"{given[0]}: needs --filter KIND")
        if args.max_draws != DEFAULT_MAX_DRAWS and not args.drop_near_copies:
            raise MedaugError("--max-draws: needs --filter KIND or --drop-near-copies")
        return FilterSpec(kind="near-copy", max_draws=args.max_draws) if args.drop_near_copies else None
    from medaug.commands.generator import parse_sets

    return FilterSpec(kind=args.filter_kind, threshold=args.filter_threshold, k=args.filter_k,
                      classifier=args.filter_classifier, recipe=args.filter_recipe,
                      recipe_set=tuple(parse_sets(args.filter_recipe_set).items()), max_draws=args.max_draws)
