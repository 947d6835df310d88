"""`python -m medaug.sweep STUDY.yaml ...`: the `medaug sweep` command on its own
(useful where the `medaug` entry point is not on PATH)."""

from __future__ import annotations

import sys

from medaug.cli import main as cli_main


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["sweep"]:  # `python -m medaug.sweep sweep ...` reads like `medaug sweep ...`
        argv = argv[1:]
    return cli_main(["sweep", *argv])


if __name__ == "__main__":
    sys.exit(main())
