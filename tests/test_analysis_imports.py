"""`medaug report` and `medaug results ...` load only what the command needs (issue 10, speed).

Importing the analysis commands costs nothing heavy (the parser is built from it); a query
never loads pandas, scipy, matplotlib or torch; tables never load duckdb, matplotlib or torch; a report
never loads duckdb or torch. Each command runs in a fresh interpreter, as from the shell.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
from analysis_rows import known_study

HEAVY = ("torch", "pandas", "pyarrow", "scipy", "matplotlib", "duckdb", "zarr")

PROBE = textwrap.dedent("""
    import argparse, json, sys, time
    t0 = time.perf_counter()
    from medaug.analysis.commands import add_commands
    after_import = sorted(m for m in HEAVY if m in sys.modules)
    argv = json.loads(sys.argv[1])
    rc = None
    if argv:
        p = argparse.ArgumentParser(prog="medaug")
        add_commands(p.add_subparsers(dest="command", required=True))
        args = p.parse_args(argv)
        rc = args.handler(args)
    print(json.dumps({"rc": rc, "after_import": after_import, "seconds": time.perf_counter() - t0,
                      "loaded": sorted(m for m in HEAVY if m in sys.modules)}))
""")


def probe(argv: list[str], cwd) -> dict:
    code = f"HEAVY = {HEAVY!r}\n" + PROBE
    proc = subprocess.run([sys.executable, "-c", code, json.dumps(argv)], capture_output=True, text=True, cwd=cwd,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_importing_the_commands_loads_nothing_heavy(tmp_path):
    assert probe([], tmp_path)["after_import"] == []


@pytest.mark.parametrize("command, absent", [
    (["results", "query", "{out}", "SELECT count(*) FROM results"], ("torch", "pandas", "scipy", "matplotlib", "zarr")),
    (["results", "tables", "{out}", "--table", "table2"], ("torch", "duckdb", "matplotlib", "zarr")),
    (["report", "{out}", "--out", "{rep}"], ("torch", "duckdb")),
])
def test_each_command_loads_only_what_it_needs(tmp_path, command, absent):
    out = known_study(tmp_path / "out")
    argv = [a.format(out=out, rep=tmp_path / "rep") for a in command]
    result = probe(argv, tmp_path)
    assert result["rc"] == 0
    assert not set(result["loaded"]) & set(absent), result
