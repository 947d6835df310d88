"""`python -m medaug.sweep STUDY.yaml ...`: the `medaug sweep` command on its own
(the same parser and handler; useful where the `medaug` entry point is not installed)."""

from __future__ import annotations

import argparse
import sys

from medaug.errors import MedaugError
from medaug.sweep.commands import add_commands


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m medaug.sweep")
    sub = parser.add_subparsers(dest="command", required=True)
    add_commands(sub)
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["sweep"]:  # `python -m medaug.sweep sweep ...` reads like `medaug sweep ...`
        argv = argv[1:]
    args = parser.parse_args(["sweep", *argv])
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
