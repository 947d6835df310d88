"""`medaug report` and `medaug results ...` load only what the command needs (issue 10, speed).

Building the parser of `medaug`, of `medaug results` or of `medaug report` loads nothing heavy; a query
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
    import json, sys, time
    t0 = time.perf_counter()
    from medaug.cli import build_parser
    argv = json.loads(sys.argv[1])
    p = build_parser(argv[0] if argv else None)
    after_import = sorted(m for m in HEAVY if m in sys.modules)
    rc = None
    if len(argv) > 1:  # a whole command line: run it (one word: only build its parser)
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


@pytest.mark.parametrize("command", [[], ["results"], ["report"]])
def test_building_the_parser_loads_nothing_heavy(tmp_path, command):
    assert probe(command, tmp_path)["after_import"] == []


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
