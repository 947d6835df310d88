"""`medaug data ...`: look at a data set before training on it, or prepare one.

    medaug data info breastmnist
    medaug data montage breastmnist --out m.png
    medaug data info folder --data-option root=scans --size 64
    medaug data montage covid19-radiography --size 256 --data-root DATA --out m.png
    medaug data covid-prepare --data-root DATA --size 256

`covid-prepare` crops every radiograph of the chosen classes to its lung mask and
resizes it (seed 003's preprocessing, medaug/data/covid.py) into the Zarr cache that
every trial of a sweep then reads, so a SLURM sweep does not decode ~21k PNGs per
trial. It prints the per-class counts and every skipped file (missing or empty mask).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from medaug.commands.common import add_data_option_arg, add_data_options, parse_data_options
from medaug.data.medmnist import DATASETS_2D, dataset_info, load_medmnist
from medaug.errors import MedaugError


def configure(p: argparse.ArgumentParser) -> None:
    dsub = p.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    for name, helptext, handler in (
        ("info", "splits, class counts, license, md5", info_command),
        ("montage", "grid of training samples per class (PNG)", montage_command),
        ("distribution", "class counts per split (PNG)", distribution_command),
    ):
        q = dsub.add_parser(name, help=helptext)
        q.add_argument("name", help="data set: a MedMNIST 2D name (e.g. breastmnist), covid19-radiography, "
                                    "covid19-radiography-4class, isic2019 or folder")
        q.add_argument("--size", type=int, default=28)
        add_data_options(q)
        add_data_option_arg(q)
        if name != "info":
            q.add_argument("--out", type=Path, required=True, help="PNG (or .svg/.pdf) to write")
        if name == "montage":
            q.add_argument("--per-class", type=int, default=8, help=f"images per class, 1-{MAX_PER_CLASS} (default 8)")
            q.add_argument("--seed", type=int, default=0)
        q.set_defaults(handler=handler)
    _configure_covid_prepare(dsub.add_parser(
        "covid-prepare", help="crop the COVID-19 Radiography images to their lungs once (Zarr cache)"))


#: The widest montage row: a figure of more images per class is unreadable, and a huge
#: --per-class would make matplotlib build that many axes (minutes, gigabytes) first.
MAX_PER_CLASS = 64


def _load(args: argparse.Namespace):
    """The splits a run with these data arguments trains on (a MedMNIST file, or any data source)."""
    from medaug.data.sources import load_dataset

    options = parse_data_options(args.data_options)
    if args.name in DATASETS_2D and not options:
        return load_medmnist(args.name, args.size, root=args.data_root, download_missing=args.download,
                             verify=args.verify_md5)
    return load_dataset(args.name, args.size, args.data_root, args.download, args.verify_md5, options).splits


def info_command(args: argparse.Namespace) -> int:
    data = _load(args)
    medmnist = args.name in DATASETS_2D
    print(f"{data.name} ({args.size}x{args.size}, {data.train.channels} channel(s)), task: {data.train.task}")
    print(f"  file: {data.source}")
    if medmnist:
        print(f"  md5: {data.md5} (verified against medmnist INFO: {'yes' if args.verify_md5 else 'not checked'})")
    else:
        print(f"  md5: {data.md5} (digest of the source's files; no published value to check it against)")
    print(f"  version: {data.version}   license: {data.license}")
    if medmnist:
        print(f"  description: {dataset_info(args.name).get('description', '').strip()[:200]}")
    for key, value in data.info.items():
        print(f"  {key}: {value}")
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
    if args.seed < 0:
        raise MedaugError(f"--seed {args.seed}: expected an integer >= 0")
    if not 1 <= args.per_class <= MAX_PER_CLASS:
        raise MedaugError(f"--per-class {args.per_class}: expected an integer >= 1 and <= {MAX_PER_CLASS}")
    data = _load(args)
    print(montage(data.train, args.out, per_class=args.per_class, seed=args.seed))
    return 0


def distribution_command(args: argparse.Namespace) -> int:
    from medaug.data.plots import distribution

    _check_out(args)
    print(distribution(_load(args), args.out))
    return 0


def _configure_covid_prepare(p: argparse.ArgumentParser) -> None:
    p.description = "Preprocess the COVID-19 Radiography Database once: lung crop + resize into the Zarr cache."
    p.add_argument("--data-root", required=True, type=Path, metavar="DIR",
                   help="COVID-19_Radiography_Dataset or the folder holding it")
    p.add_argument("--size", type=int, default=256, help="output side in px (seed 003: 256)")
    p.add_argument("--classes", default="covid-normal",
                   help="covid-normal (seed 003), all, or comma-separated class folder names")
    p.add_argument("--cache-dir", type=Path, default=None,
                   help="cache folder (default: $XDG_CACHE_HOME/medaug/covid, else ~/.cache/medaug/covid); "
                        "trials read the default one")
    p.add_argument("--workers", type=int, default=None, help="decoding threads (default: all cores)")
    p.add_argument("--no-lung-crop", dest="lung_crop", action="store_false",
                   help="a copy without masks: resize whole images (the cache of trials with lung_crop: false)")
    p.set_defaults(handler=covid_prepare_command)


def covid_prepare_command(args: argparse.Namespace) -> int:
    from medaug.data.covid import (
        CLASS_SUBSETS,
        dataset_dir,
        default_cache_dir,
        prepare_covid,
    )

    if args.workers is not None and args.workers < 1:
        raise MedaugError(f"--workers {args.workers}: expected an integer >= 1")
    classes = args.classes if args.classes in CLASS_SUBSETS else [c.strip() for c in args.classes.split(",")]
    t0 = time.perf_counter()
    prepared = prepare_covid(args.data_root, classes, args.size, cache_dir=args.cache_dir, workers=args.workers,
                             lung_crop=args.lung_crop)
    cache = args.cache_dir or default_cache_dir()
    out = sys.stdout
    crop = "lung crop" if args.lung_crop else "whole images (no lung crop)"
    out.write(f"COVID-19 Radiography at {dataset_dir(args.data_root)}, {args.size} px, {crop}, cache {cache}\n")
    out.write(f"  {'class':<16}{'images':>8}{'usable':>8}{'skipped':>9}  cache\n")
    for c in prepared:
        out.write(f"  {c.name:<16}{c.images:>8}{c.usable:>8}{len(c.skipped):>9}  "
                  f"{'found' if c.cache_hit else 'written'} {Path(c.cache_entry).name}\n")
    total = sum(c.usable for c in prepared), sum(len(c.skipped) for c in prepared)
    out.write(f"  {'total':<16}{sum(c.images for c in prepared):>8}{total[0]:>8}{total[1]:>9}\n")
    for c in prepared:
        for rel, reason in c.skipped:
            out.write(f"skipped {rel} ({reason})\n")
    out.write(f"done in {time.perf_counter() - t0:.1f} s\n")
    return 0
