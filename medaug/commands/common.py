"""Options shared by several subcommands."""

from __future__ import annotations

import argparse
import json
import math
import re
from typing import Any

from medaug.errors import MedaugError


def add_data_options(p: argparse.ArgumentParser) -> None:
    from medaug.data.medmnist import DATA_ROOT_ENV  # here: the analysis commands import this module too

    p.add_argument("--data-root", metavar="DIR", default=None,
                   help=f"folder holding the MedMNIST npz files (default: ${DATA_ROOT_ENV}, else medmnist's ~/.medmnist)")
    p.add_argument("--download", action="store_true", help="download a missing npz with medmnist's URLs (online only)")
    p.add_argument("--no-verify-md5", dest="verify_md5", action="store_false",
                   help="accept an npz whose md5 differs from medmnist INFO (the actual md5 is recorded)")


def add_checkpoint_data_options(p: argparse.ArgumentParser) -> None:
    """Where the data of a generator checkpoint are (`generator eval`, `synthesize`), and the device."""
    p.add_argument("--data-root", default=None, metavar="DIR",
                   help="folder holding the checkpoint's data set (MedMNIST npz files, COVID-19 radiography, "
                        "ISIC 2019; default: $MEDAUG_DATA_ROOT, else ~/.medmnist)")
    p.add_argument("--no-verify-md5", dest="verify_md5", action="store_false",
                   help="accept an npz whose md5 differs from medmnist INFO (the train hash is still checked)")
    p.add_argument("--device", default="auto", help="auto (CUDA when present, else CPU), cpu, cuda, cuda:N")


def add_run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="auto", help="auto (CUDA when present, else CPU), cpu, cuda, cuda:N")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


#: What --device takes (medaug.train.device.resolve_device says what this machine has).
DEVICE_NAMES = re.compile(r"auto|cpu|cuda(?::\d{1,3})?")


def check_device(name: str | None, *, here: bool = True) -> None:
    """Refuse a bad --device before anything starts (a sweep's Ray workers, a quickstart's trials).

    `here`: the trials run on this machine, so CUDA must be present for "cuda"; a SLURM sweep
    or one on a Ray cluster runs them elsewhere and only the spelling is checked."""
    if name is None:
        return
    if not DEVICE_NAMES.fullmatch(name):
        raise MedaugError(f"--device {name!r}: expected auto, cpu, cuda or cuda:N")
    if here and name != "auto":
        from medaug.train.device import resolve_device

        resolve_device(name)


def add_data_option_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-option", dest="data_options", action="append", default=[], metavar="KEY=VALUE",
                   help="an option of the data source, e.g. test_per_class=200 for the COVID sets (repeatable)")


def parse_data_options(items: list[str]) -> dict[str, Any]:
    """--data-option KEY=VALUE pairs; values read as JSON (numbers, objects such as {"COVID": 50}), else strings."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise MedaugError(f"--data-option {item!r}: expected KEY=VALUE")
        try:
            out[key.strip()] = json.loads(raw, parse_constant=_no_constant, parse_float=_finite_float)
        except _NonFinite:
            raise MedaugError(f"--data-option {item!r}: expected a finite number, text or JSON") from None
        except ValueError:
            out[key.strip()] = raw
    return out


class _NonFinite(Exception):
    pass


def _no_constant(name: str) -> Any:
    """JSON's NaN, Infinity and -Infinity are no data option's value (json.loads accepts them)."""
    raise _NonFinite(name)


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e999 reads as inf
        raise _NonFinite(text)
    return value


# -- analysis commands (report, results): nothing here imports torch -------------------------

def positive_classes(items: list[str]) -> dict[str, str]:
    """--positive DATASET=CLASS pairs as a dict."""
    out = {}
    for item in items:
        dataset, sep, cls = item.partition("=")
        if not sep or not dataset or not cls:
            raise MedaugError(f"--positive {item!r}: expected DATASET=CLASS (a class name or index 0/1)")
        out[dataset] = cls
    return out


def stats_options(args: argparse.Namespace):
    """The paired-test settings of --test and --alpha."""
    from medaug.analysis.stats import StatsOptions

    if not 0 < args.alpha < 1:  # also NaN
        raise MedaugError(f"--alpha {args.alpha}: expected a significance level in (0, 1), e.g. 0.05")
    return StatsOptions(test=args.test, alpha=args.alpha)


def add_stats_options(p: argparse.ArgumentParser) -> None:
    """Options of the tables' statistics (`report`, `results tables`)."""
    p.add_argument("--test", choices=("t", "wilcoxon"), default="t",
                   help="paired test over matched seeds (default: t, the paired t-test)")
    p.add_argument("--alpha", type=float, default=0.05, help="significance level after Holm correction (0.05)")
    p.add_argument("--geometric", metavar="NAME", help="the geometric pipeline 'GDA' means when there are several")
    p.add_argument("--positive", action="append", default=[], metavar="DATASET=CLASS",
                   help="positive class of a binary dataset for TPR/TNR/FPR (default: class index 1)")
