"""Options shared by several subcommands."""

from __future__ import annotations

import argparse

from medaug.data.medmnist import DATA_ROOT_ENV


def add_data_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-root", metavar="DIR", default=None,
                   help=f"folder holding the MedMNIST npz files (default: ${DATA_ROOT_ENV}, else medmnist's ~/.medmnist)")
    p.add_argument("--download", action="store_true", help="download a missing npz with medmnist's URLs (online only)")
    p.add_argument("--no-verify-md5", dest="verify_md5", action="store_false",
                   help="accept an npz whose md5 differs from medmnist INFO (the actual md5 is recorded)")


def add_run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="auto", help="auto (CUDA when present, else CPU), cpu, cuda, cuda:N")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
