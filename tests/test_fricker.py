"""Seed 001 (Fricker): sweeps/fricker.yaml validates with the expected trials and fits, and
analysis/fricker.py renders Table 2 from generator-eval rows beside the published numbers."""

from __future__ import annotations

import io
import runpy
from datetime import UTC, datetime
from pathlib import Path

import pytest

from medaug.store.generator_results import write_eval_row

REPO = Path(__file__).resolve().parents[1]


def test_fricker_study_dry_run_lists_240_trials_and_32_fits(tmp_path):
    from medaug.commands.sweep import print_dry_run
    from medaug.sweep.study import load_study

    study = load_study(REPO / "sweeps" / "fricker.yaml")
    assert len(study.cells) * study.trials_per_cell == 240  # 8 data sets x 6 methods x 5 seeds
    assert study.merged == ()
    assert {c.spec["classifier"] for c in study.cells} == {"fricker-cnn"} and study.max_epochs == 100
    assert sorted({c.generator for c in study.cells if c.generator}) == ["cvae", "dcgan", "geometric", "vaegan"]
    assert {c.spec["augmentation"] for c in study.cells} == {"none", "rot-shift-flip"}
    assert study.eval_options == {"n": 100, "recipe": "seed000", "classifier": "fricker-cnn",
                                  "classifier_epochs": 100, "extractor": "classifier", "tstr": True}
    buf = io.StringIO()
    (tmp_path / "data").mkdir()
    print_dry_run(study, "local", None, tmp_path / "out", buf, make_synthetic=True, data_root=tmp_path / "data",
                  verify_md5=False)
    text = buf.getvalue()
    assert "240 cells x 1 trial(s) per cell" in text
    assert "--make-synthetic: 32 generator fit(s) before the trials" in text
    assert "fit geometric on breastmnist 28 px (epochs 1, batch 256, seed 0)" in text
    assert "fit vaegan on organsmnist 28 px (epochs 100, batch 64, seed 0)" in text


def _row(tmp: Path, dataset: str, generator: str, i: int, confidence: float) -> None:
    write_eval_row({"eval_id": f"{generator}-{dataset}-{i}", "generator": generator, "dataset": dataset, "size": 28,
                    "mean_confidence": confidence, "recipe": "seed000", "extractor": "classifier:fricker-cnn",
                    "status": "finished", "created_at": datetime.now(UTC)}, tmp)


def test_fricker_table2_from_rows_beside_the_published_numbers(tmp_path, capsys):
    fricker = runpy.run_path(str(REPO / "analysis" / "fricker.py"), run_name="fricker")
    out = tmp_path / "results"
    values = {"geometric": (0.50, 0.60), "cvae": (0.90, 0.94), "dcgan": (0.95, 0.97), "vaegan": (0.80, 0.90)}
    for ds in ("breastmnist", "dermamnist"):
        for gen, (a, b) in values.items():
            _row(out, ds, gen, 0, a)
            _row(out, ds, gen, 1, b)
    _row(out, "breastmnist", "dcgan", 9, 0.10)  # a stopped trial's row: never counted
    write_eval_row({"eval_id": "trial-x", "generator": "dcgan", "dataset": "breastmnist", "status": "stopped",
                    "mean_confidence": 0.0, "created_at": datetime.now(UTC)}, out)
    (out / "generator-eval" / "dcgan-breastmnist-9.parquet").unlink()

    from medaug.analysis.load import load_generator_eval

    table = fricker["table2_vs_published"](load_generator_eval(out))
    cell = table.cell("breastmnist", "Geometric (ours)")
    assert cell.value.n == 2 and cell.value.mean == pytest.approx(0.55)
    assert table.cell("breastmnist", "Geometric (seed 001)").text == "57.48"
    assert table.cell("dermamnist", "CVAEDCGAN (seed 001)").text == "100.00"
    assert table.cell("breastmnist", "DCGAN (ours)").value.mean == pytest.approx(0.96)  # the stopped row left out
    assert table.cell("pathmnist", "CVAE (ours)").value.n == 0  # no evaluation: a dash
    assert table.cell("Mean of mean confidence", "CVAE (ours)").text == "— (2 of 8 sets)"
    assert table.cell("Mean of mean confidence", "DCGAN (seed 001)").text == "93.87"
    md = table.to_markdown()
    assert "| breastmnist | 55.00 ± 7.07 (n=2) | 57.48 |" in md

    assert fricker["main"]([str(out), "--out", str(tmp_path / "t")]) == 0
    assert (tmp_path / "t" / "table2_vs_published.md").read_text() == md
    assert "Seed 001 Table 2" in capsys.readouterr().out
    assert fricker["main"]([str(tmp_path / "empty"), "--out", str(tmp_path / "t2")]) == 2
