"""`medaug data info|montage|distribution NAME`: look at a data set before training on it."""

from __future__ import annotations

import argparse
from pathlib import Path

from medaug.commands.common import add_data_options
from medaug.data.medmnist import dataset_info, load_medmnist
from medaug.errors import MedaugError


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="inspect a MedMNIST data set (info, montage, distribution)")
    dsub = p.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    for name, helptext, handler in (
        ("info", "splits, class counts, license, md5", info_command),
        ("montage", "grid of training samples per class (PNG)", montage_command),
        ("distribution", "class counts per split (PNG)", distribution_command),
    ):
        q = dsub.add_parser(name, help=helptext)
        q.add_argument("name", help="MedMNIST 2D data set, e.g. breastmnist")
        q.add_argument("--size", type=int, default=28)
        add_data_options(q)
        if name != "info":
            q.add_argument("--out", type=Path, required=True, help="PNG (or .svg/.pdf) to write")
        if name == "montage":
            q.add_argument("--per-class", type=int, default=8)
            q.add_argument("--seed", type=int, default=0)
        q.set_defaults(handler=handler)


def _load(args: argparse.Namespace):
    return load_medmnist(args.name, args.size, root=args.data_root, download_missing=args.download,
                         verify=args.verify_md5)


def info_command(args: argparse.Namespace) -> int:
    data = _load(args)
    info = dataset_info(args.name)
    print(f"{data.name} ({args.size}x{args.size}, {data.train.channels} channel(s)), task: {data.train.task}")
    print(f"  file: {data.source}")
    print(f"  md5: {data.md5} (verified against medmnist INFO: {'yes' if args.verify_md5 else 'not checked'})")
    print(f"  version: {data.version}   license: {data.license}")
    print(f"  description: {info.get('description', '').strip()[:200]}")
    header = f"  {'class':<40}" + "".join(f"{s:>8}" for s in ("train", "val", "test"))
    print(header)
    counts = {s: data.split(s).class_counts() for s in ("train", "val", "test")}
    for i, name in enumerate(data.train.class_names):
        print(f"  {i:>2} {name[:36]:<37}" + "".join(f"{int(counts[s][i]):>8}" for s in counts))
    print(f"  {'total':<40}" + "".join(f"{len(data.split(s)):>8}" for s in counts))
    print("  content hashes: " + ", ".join(f"{s} {h}" for s, h in data.split_hashes.items()))
    return 0


def _check_out(args: argparse.Namespace) -> None:
    """Refuse an --out that cannot be written (a file in the way, a folder, no permission, an
    unknown format) before the data are loaded; nothing is created."""
    from medaug.data.plots import check_figure_path

    check_figure_path(args.out)


def montage_command(args: argparse.Namespace) -> int:
    from medaug.data.plots import montage

    _check_out(args)
    if args.per_class < 1:
        raise MedaugError(f"--per-class {args.per_class}: expected an integer >= 1")
    data = _load(args)
    print(montage(data.train, args.out, per_class=args.per_class, seed=args.seed))
    return 0


def distribution_command(args: argparse.Namespace) -> int:
    from medaug.data.plots import distribution

    _check_out(args)
    print(distribution(_load(args), args.out))
    return 0
