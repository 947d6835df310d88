"""The `medaug` command's layout: `medaug NAME` lives in medaug/commands/NAME.py, and
`medaug --help` loads none of the heavy libraries (torch, Ray, pandas...)."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

from medaug import cli

PACKAGE = Path(cli.__file__).parent
HEAVY = ("torch", "torchvision", "ray", "submitit", "pandas", "pyarrow", "scipy", "matplotlib", "duckdb", "zarr",
         "medmnist", "kornia")


def test_every_command_lives_in_its_own_module():
    modules = {p.stem for p in (PACKAGE / "commands").glob("*.py")} - {"__init__", "common"}
    assert modules == set(cli.COMMANDS)
    for name in cli.COMMANDS:
        tree = ast.parse((PACKAGE / "commands" / f"{name}.py").read_text())
        assert "configure" in {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}, name


def test_no_parser_is_built_outside_the_commands():
    """One guess finds a subcommand's code: nothing else in medaug adds subparsers."""
    outside = [p.relative_to(PACKAGE).as_posix() for p in PACKAGE.rglob("*.py")
               if "add_parser(" in p.read_text() and p.parent.name != "commands" and p.name != "cli.py"]
    assert outside == []


@pytest.mark.parametrize("argv", [["--help"], ["results", "--help"], ["report", "--help"]])
def test_help_loads_nothing_heavy(argv):
    code = ("import json, sys\nfrom medaug.cli import main\n"
            "try:\n    main(json.loads(sys.argv[1]))\nexcept SystemExit:\n    pass\n"
            f"print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))")
    proc = subprocess.run([sys.executable, "-c", code, json.dumps(argv)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert json.loads(lines[-1]) == []
    if argv == ["--help"]:
        assert all(name in proc.stdout for name in cli.COMMANDS)


def test_every_command_has_its_options(capsys):
    """Each command's own --help lists its options (its module is loaded for it)."""
    for name, option in (("train", "--dataset"), ("quickstart", "--epochs"), ("data", "covid-prepare"),
                         ("generator", "eval"), ("synthesize", "--strategy"), ("sweep", "--dry-run"),
                         ("report", "--out"), ("results", "query")):
        with pytest.raises(SystemExit) as exc:
            cli.main([name, "--help"])
        assert exc.value.code == 0
        assert option in capsys.readouterr().out, name


def test_a_missing_dependency_is_one_line(monkeypatch, capsys):
    def missing(name: str):
        raise ModuleNotFoundError("No module named 'ray'", name="ray")

    monkeypatch.setattr(cli.importlib, "import_module", missing)
    assert cli.main(["sweep", "x.yaml"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == "medaug: error: medaug sweep needs ray, which is not installed: pip install medaug"
