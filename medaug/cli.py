"""The one `medaug` command: parse, call, print. Work happens in the layers below.

One rule places every subcommand: `medaug NAME ...` lives in `medaug/commands/NAME.py`,
whose `configure(parser)` adds its options (and sub-actions) and sets `handler`.
Handlers return an exit code. A `MedaugError` (bad input) prints one line and exits 2.

Only the chosen command's module is imported, so `medaug --help` and the analysis
commands (`results`, `report`) never load torch: the top-level help is built from
the one-line summaries below.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from medaug import __version__
from medaug.errors import MedaugError

#: Every subcommand, in --help order, with its one-line summary; its code is medaug/commands/<name>.py.
COMMANDS: dict[str, str] = {
    "train": "train and test one classifier; writes one Parquet result row",
    "quickstart": "seed 000 Table 2 on BreastMNIST: {none, WRS} x {none, geometric} x 5 seeds",
    "data": "data sets: inspect (info, montage, distribution), prepare (covid-prepare)",
    "generator": "train generative augmenters (VAEs, GANs, StyleGAN2-ADA) and evaluate them",
    "synthesize": "generate a synthetic set from a generator checkpoint into a Zarr store",
    "sweep": "run a study (YAML) with Ray Tune: local processes or SLURM jobs",
    "report": "write an HTML + Markdown report (tables, figures, statistics) from results folders",
    "results": "look at result rows: tables, read-only SQL queries",
    "bench": "measure this site's throughput (calibrate) for the estimate `sweep --dry-run` prints",
}
# Without these installed (an analysis-only machine), the commands that need them say so.
OPTIONAL_HEAVY = ("torch", "torchvision", "medmnist", "kornia", "ray", "submitit", "zarr", "duckdb")


def command_module(name: str):
    """The module of `medaug NAME`; a missing optional dependency is a one-line error."""
    try:
        return importlib.import_module(f"medaug.commands.{name}")
    except ModuleNotFoundError as exc:
        missing = (exc.name or "").split(".")[0]
        if missing in OPTIONAL_HEAVY:
            raise MedaugError(f"medaug {name} needs {missing}, which is not installed: pip install medaug") from None
        raise


class Parser(argparse.ArgumentParser):
    """argparse, but a bad command line is a `MedaugError` like any other bad input: one line
    (`medaug: error: train: argument --lr: invalid float value: 'abc'`), exit 2, no usage block.
    Sub-parsers (`medaug data montage`, ...) are made of this class too."""

    def error(self, message: str):  # type: ignore[override]
        where = self.prog.removeprefix("medaug").strip()
        hint = f" (see medaug {where + ' ' if where else ''}--help)"
        raise MedaugError(f"{where + ': ' if where else ''}{message}{hint}")


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; only `command` (when given) gets its full options, the others their summary."""
    parser = Parser(prog="medaug", description="Measure how much data augmentation improves medical image classifiers.")
    parser.add_argument("--version", action="version", version=f"medaug {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, summary in COMMANDS.items():
        p = sub.add_parser(name, help=summary, description=summary)
        if name == command:
            command_module(name).configure(p)
    return parser


def chosen_command(argv: list[str]) -> str | None:
    """The subcommand named on the command line (the first word that is not an option)."""
    word = next((a for a in argv if not a.startswith("-")), None)
    return word if word in COMMANDS else None


def one_line(message: str) -> str:
    """The message on one line: a newline or other control character that came from the input
    (a YAML key, a file name) is shown escaped, never printed."""
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in message)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        parser = build_parser(chosen_command(argv))
        args = parser.parse_args(argv)
        code = int(args.handler(args) or 0)
        sys.stdout.flush()  # here, so that a reader that left (`| head`) is met below, not at exit
        return code
    except MedaugError as exc:
        print(f"medaug: error: {one_line(str(exc))}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("medaug: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `medaug generator list | head`: the reader left; say nothing more
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so that the interpreter's final flush cannot fail again
        return 141  # 128 + SIGPIPE, as a tool killed by the signal


if __name__ == "__main__":
    sys.exit(main())
