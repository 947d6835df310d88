"""The report (HTML + Markdown), the CLI (`medaug report`, `medaug results ...`), the analysis/ scripts,
and the promise that all of it runs without torch."""

from __future__ import annotations

import base64
import re
import runpy
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from analysis_rows import known_study, make_row, write_rows

from medaug.analysis.query import run_query
from medaug.cli import build_parser, main
from medaug.analysis.report import build_report
from medaug.errors import MedaugError

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> Path:
    out = known_study(tmp_path_factory.mktemp("report") / "out")
    write_rows(out, [
        make_row("dermamnist", status="failed", seed=0,
                 error="Traceback (most recent call last):\n  File \"x.py\"\nRuntimeError: boom <b>not html</b>"),
        make_row("pneumoniamnist", wrs=True, seed=0, acc=0.9), make_row("pneumoniamnist", wrs=True, seed=1, acc=0.91),
    ])
    return out


def run_cli(argv: list[str]) -> int:
    args = build_parser(argv[0]).parse_args(argv)
    return args.handler(args)


def test_report_is_self_contained_with_markdown_twin(results, tmp_path):
    rep = build_report([results], tmp_path / "rep")
    page = rep.index_html.read_text()
    # nothing outside the file: every src/href is a data URI or an in-page anchor
    refs = re.findall(r'(?:src|href)="([^"]*)"', page)
    assert refs and all(r.startswith(("data:", "#")) for r in refs), [r for r in refs if not r.startswith("data")]
    imgs = re.findall(r'<img src="data:image/png;base64,([^"]+)"', page)
    assert len(imgs) == len(rep.figures) >= 5
    assert all(base64.b64decode(b).startswith(b"\x89PNG") for b in imgs)
    assert "<script" not in page
    # contents: tables, failed runs (escaped), impossible comparisons, configuration, datasets, software
    assert page.count('class="results"') >= 5
    assert "RuntimeError: boom &lt;b&gt;not html&lt;/b&gt;" in page and "<b>not html</b>" not in page
    assert "pneumoniamnist: runs of WRS but no baseline run" in page
    assert "dermamnist: none of its 1 run(s) finished" in page
    for text in ("sharpness-contrast-flip", "md5-breastmnist", "analysis: scipy", "runs: torch", "2.14.1",
                 "Holm", "1 run(s) did not finish", "20 finished, 1 failed"):
        assert text in page, text
    # the Markdown twin points at figure files that exist
    md = rep.report_md.read_text()
    links = re.findall(r"!\[[^\]]*\]\((figures/[^)]+\.png)\)", md)
    assert len(links) == len(rep.figures)
    for link in links:
        png = rep.out_dir / link
        assert png.stat().st_size > 2000 and png.with_suffix(".svg").stat().st_size > 2000
    assert "| breastmnist |" in md and "## Failed runs" in md
    for key in ("table2", "table3", "table4", "table5", "binary_rates"):
        for ext in ("md", "tex", "csv"):
            assert (rep.out_dir / "tables" / f"{key}.{ext}").stat().st_size > 0
        assert (rep.out_dir / "tables" / f"{key}_long.csv").exists()
    assert rep.n_failed == 1 and rep.n_runs == 21


def test_report_bad_input_is_clean_and_writes_nothing(tmp_path):
    (tmp_path / "empty").mkdir()
    out = tmp_path / "rep"
    with pytest.raises(MedaugError, match="no result files"):
        build_report([tmp_path / "empty"], out)
    assert not out.exists()
    (tmp_path / "afile").write_text("x")
    with pytest.raises(MedaugError, match="is not a folder"):
        build_report([tmp_path / "empty"], tmp_path / "afile")
    with pytest.raises(MedaugError, match="no such Zarr store"):
        build_report([known_study(tmp_path / "ok")], out, synthetic=["missing.zarr#g"])
    assert not out.exists()


def test_a_report_that_cannot_be_finished_leaves_the_folder_as_it_was(results, tmp_path, monkeypatch, capsys):
    """A full disk half-way through the files (the fifth write fails) is one line, exit 2, and
    the report folder is as it was: no figure or table of the unfinished report, the
    earlier report's index.html intact, no staging folder left beside it."""
    from medaug.analysis import report

    out = tmp_path / "rep"
    out.mkdir()
    (out / "index.html").write_text("the earlier report")
    real = report.atomic_write
    calls = []

    def fail_fifth(target, write):
        calls.append(target)
        if len(calls) == 5:
            raise MedaugError(f"no space left writing {target} (nothing written; free space and rerun)")
        real(target, write)

    monkeypatch.setattr(report, "atomic_write", fail_fifth)
    assert main(["report", str(results), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("medaug: error: no space left writing") and err.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rep"]
    assert [p.name for p in out.rglob("*")] == ["index.html"] and (out / "index.html").read_text() == "the earlier report"
    monkeypatch.setattr(report, "atomic_write", real)
    assert main(["report", str(results), "--out", str(out)]) == 0
    assert (out / "index.html").read_text() != "the earlier report" and (out / "figures").is_dir()


def test_cli_results_query_and_tables(results, capsys):
    assert run_cli(["results", "query", str(results),
                    "SELECT augmentation, wrs, count(*) AS n, round(100*avg(test_acc), 2) AS acc FROM results "
                    "WHERE dataset = 'breastmnist' AND synthetic IS NULL GROUP BY ALL ORDER BY ALL"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["augmentation", "wrs", "n", "acc"]
    assert out[1].split() == ["none", "False", "3", "81"]
    assert out[4].split() == ["sharpness-contrast-flip", "True", "3", "88.33"]
    assert run_cli(["results", "query", str(results), "SELECT count(*) AS n FROM results", "--format", "csv"]) == 0
    assert capsys.readouterr().out == "n\n21\n"
    assert run_cli(["results", "tables", str(results), "--table", "table2", "--format", "latex"]) == 0
    assert r"\toprule" in capsys.readouterr().out
    with pytest.raises(MedaugError, match="^SQL: .*syntax error"):
        run_cli(["results", "query", str(results), "SELEC 1"])
    with pytest.raises(MedaugError, match="DATASET=CLASS"):
        run_cli(["results", "tables", str(results), "--positive", "breastmnist"])


def test_query_empty_folder_and_generator_eval_view(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(MedaugError, match="no result files"):
        run_query(tmp_path / "empty", "SELECT 1")
    out = known_study(tmp_path / "out")
    from analysis_rows import write_generator_eval

    write_generator_eval(out, [{"generator": "cvae", "dataset": "breastmnist", "fid": 10.0}])
    assert run_query(out, "SELECT count(*) AS n FROM results")["n"].iloc[0] == 18
    assert run_query(out, "SELECT fid FROM generator_eval")["fid"].tolist() == [10.0]


def test_example_queries_all_run(results):
    sql = re.sub(r"--[^\n]*", "", (REPO / "analysis" / "queries.sql").read_text())
    statements = [s.strip() for s in sql.split(";") if s.strip()]
    assert len(statements) >= 3
    for s in statements:
        df = run_query(results, s)
        assert len(df) > 0, s


def test_leroux2021_and_quickstart_scripts(results, tmp_path, capsys):
    leroux = runpy.run_path(str(REPO / "analysis" / "leroux2021.py"), run_name="leroux2021")
    assert leroux["main"]([str(results), "--out", str(tmp_path / "l"), "--no-figures"]) == 0
    printed = capsys.readouterr().out
    assert "seed 000 Table 2 form" in printed and "not in these results (seed 000 has them): pathmnist" in printed
    for key in ("table2", "table3", "table4", "table5", "published_vs_reproduced"):
        assert (tmp_path / "l" / f"{key}.tex").exists()
    pub = (tmp_path / "l" / "published_vs_reproduced.csv").read_text()
    assert "breastmnist,82.69,81.00 ± 1.00 (n=3),WRS + Conditional GAN,85.90,— (not run)" in pub
    assert leroux["main"]([str(tmp_path / "nothing"), "--out", str(tmp_path / "x")]) == 2
    quick = runpy.run_path(str(REPO / "analysis" / "quickstart.py"), run_name="quickstart")
    assert quick["main"]([str(results)]) == 0
    assert "breastmnist: WRS + geometric: improved" in capsys.readouterr().out


NO_TORCH = textwrap.dedent("""
    import sys

    BLOCKED = ("torch", "torchvision", "medmnist", "kornia")

    class NotInstalled:
        # an import finder that makes BLOCKED packages look uninstalled (ModuleNotFoundError)

        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    sys.meta_path.insert(0, NotInstalled())
    try:
        import torch
        raise SystemExit("the torch block did not work")
    except ModuleNotFoundError:
        pass
    from medaug.cli import build_parser
    results, out = sys.argv[1], sys.argv[2]
    for argv in (["report", results, "--out", out], ["results", "tables", results, "--table", "table5"],
                 ["results", "query", results, "SELECT count(*) AS n FROM results"]):
        args = build_parser(argv[0]).parse_args(argv)
        assert args.handler(args) == 0, argv
    heavy = ("medaug.data", "medaug.train", "medaug.classifiers", "medaug.augment", "medaug.generators",
             "medaug.metrics", "medaug.sweep", "medaug.experiment")
    loaded = sorted(m for m in sys.modules if m.startswith(heavy))
    assert not loaded, loaded
    print("NO-TORCH-OK")
""")


def test_analysis_runs_without_torch(tmp_path):
    out = write_rows(tmp_path / "out", [make_row(augmentation=a, seed=s, acc=0.8 + s / 100 + (a != "none") / 50)
                                        for a in ("none", "sharpness-contrast-flip") for s in range(2)])
    proc = subprocess.run([sys.executable, "-c", NO_TORCH, str(out), str(tmp_path / "rep")], capture_output=True,
                          text=True, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "NO-TORCH-OK" in proc.stdout and "wrote" in proc.stdout
    assert (tmp_path / "rep" / "index.html").stat().st_size > 10_000


CLI_NO_TORCH = textwrap.dedent("""
    import sys

    class NotInstalled:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("torch", "torchvision", "medmnist", "kornia"):
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    sys.meta_path.insert(0, NotInstalled())
    import medaug.cli
    rc = medaug.cli.main(["results", "query", sys.argv[1], "SELECT count(*) AS n FROM results", "--format", "csv"])
    assert rc == 0, rc
    rc = medaug.cli.main(["results", "query", sys.argv[1], "SELEC 1"])
    assert rc == 2, rc
    print("CLI-NO-TORCH-OK")
""")


def test_medaug_cli_results_query_without_torch(tmp_path):
    """The real `medaug` entry point works without torch;
    bad SQL exits 2 with a one-line message."""
    out = write_rows(tmp_path / "out", [make_row(seed=s) for s in range(2)])
    proc = subprocess.run([sys.executable, "-c", CLI_NO_TORCH, str(out)], capture_output=True, text=True,
                          cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.splitlines()[:2] == ["n", "2"] and "CLI-NO-TORCH-OK" in proc.stdout
    assert proc.stderr.strip().startswith("medaug: error: SQL: Parser Error") and proc.stderr.count("\n") == 1
