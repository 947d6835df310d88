"""The one `medaug` command: parse, call, print. Work happens in the layers below.

Each area contributes its subcommands through an `add_commands(subparsers)` function
in its `commands` module; handlers return an exit code. A `MedaugError` (bad input)
prints one line and exits with code 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from medaug import __version__
from medaug.errors import MedaugError

# Modules that add subcommands, in the order they appear in --help.
COMMAND_MODULES = (
    "medaug.commands.train",
    "medaug.commands.data",
    "medaug.data.covid_commands",
    "medaug.generators.commands",
    "medaug.generators.eval_commands",
    "medaug.generators.synth_commands",
    "medaug.sweep.commands",
    "medaug.analysis.commands",
)
# Without these installed (an analysis-only machine), commands needing them are left out.
OPTIONAL_HEAVY = ("torch", "torchvision", "medmnist", "kornia", "ray", "submitit")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="medaug", description="Measure how much data augmentation improves medical image classifiers.")
    parser.add_argument("--version", action="version", version=f"medaug {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMAND_MODULES:
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if (exc.name or "").split(".")[0] in OPTIONAL_HEAVY:
                continue
            raise
        mod.add_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except MedaugError as exc:
        print(f"medaug: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("medaug: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
