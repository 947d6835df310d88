"""`medaug data covid-prepare`: preprocess the COVID-19 Radiography Database once.

    medaug data covid-prepare --data-root DATA --size 256

crops every radiograph of the chosen classes to its lung mask and resizes it
(seed 003's preprocessing, medaug/data/covid.py) into the Zarr cache that every
trial of a sweep then reads, so a SLURM sweep does not decode ~21k PNGs per trial.
Prints the per-class counts and every skipped file (missing or empty mask).

The subcommand joins the `data` group of medaug/commands/data.py; list this module
after that one in medaug/cli.py's COMMAND_MODULES.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.choices.get("data")
    if parser is None:  # the inspection commands are not loaded: a group of our own
        parser = subparsers.add_parser("data", help="data sets: inspect, prepare")
        group = parser.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    else:
        group = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    p = group.add_parser("covid-prepare", help="crop the COVID-19 Radiography images to their lungs once (Zarr cache)",
                         description=__doc__.splitlines()[0])
    p.add_argument("--data-root", required=True, type=Path, metavar="DIR",
                   help="COVID-19_Radiography_Dataset or the folder holding it")
    p.add_argument("--size", type=int, default=256, help="output side in px (seed 003: 256)")
    p.add_argument("--classes", default="covid-normal",
                   help="covid-normal (seed 003), all, or comma-separated class folder names")
    p.add_argument("--cache-dir", type=Path, default=None,
                   help="cache folder (default: $XDG_CACHE_HOME/medaug/covid, else ~/.cache/medaug/covid); "
                        "trials read the default one")
    p.add_argument("--workers", type=int, default=None, help="decoding threads (default: all cores)")
    p.set_defaults(handler=covid_prepare_command)


def covid_prepare_command(args: argparse.Namespace) -> int:
    from medaug.data.covid import (
        CLASS_SUBSETS,
        dataset_dir,
        default_cache_dir,
        prepare_covid,
    )

    classes = args.classes if args.classes in CLASS_SUBSETS else [c.strip() for c in args.classes.split(",")]
    t0 = time.perf_counter()
    prepared = prepare_covid(args.data_root, classes, args.size, cache_dir=args.cache_dir, workers=args.workers)
    cache = args.cache_dir or default_cache_dir()
    out = sys.stdout
    out.write(f"COVID-19 Radiography at {dataset_dir(args.data_root)}, {args.size} px, cache {cache}\n")
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
