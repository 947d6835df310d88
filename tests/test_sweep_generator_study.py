"""Generator studies (medaug/sweep/generator_study.py): trials that are generator fits, each
followed by `generator eval`, one generator-eval row per trial; ASHA on the per-epoch
`val_fd`; resume without refitting; the rows in `results tables` and the report; and a
classifier study's --make-synthetic evaluating what it fits.

Tiny: the breastmnist npz of `tiny_data` (120 train images), `class-mean-noise` (one pass)
and a quarter-width CVAE, 2 epochs; evaluations on 20 images with a 2-epoch reference.
The ASHA test runs first: it starts its own Ray with MEDAUG_EPOCH_PAUSE_S in the
environment its workers inherit.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from sweep_helpers import ray_local, site_file, slurm_cluster, tiny_data, write  # noqa: F401  (fixtures)

from medaug.errors import MedaugError
from medaug.sweep.driver import run_study
from medaug.sweep.generator_study import (
    GeneratorStudy,
    finished_trial_row,
    print_dry_run,
    trial_rows,
)
from medaug.sweep.study import load_study

EVAL = "eval: {n: 20, kid_subsets: 3, recipe_set: {epochs: 2, min_steps: 0, batch_size: 16}}"


def _study(tmp: Path, name: str, body: str) -> GeneratorStudy:
    study = load_study(write(tmp / f"{name}.yaml", f"kind: generator\nname: {name}\n{body}\n{EVAL}\n"))
    assert isinstance(study, GeneratorStudy)
    return study


def test_asha_stops_a_bad_fit_early(tmp_path, tiny_data, monkeypatch):  # noqa: F811
    """A DCGAN at lr 1e-6 (its samples stay noise) against the class-mean-noise baseline, one
    at a time: ASHA stops the DCGAN at the first rung on val_fd, before its 4 epochs; the
    stopped trial's row says so, with its history and no metrics."""
    monkeypatch.setenv("MEDAUG_EPOCH_PAUSE_S", "1")  # time for the stop to land mid-fit
    study = _study(tmp_path, "gen-asha", """
base: {dataset: breastmnist, epochs: 4, width: 0.25}
grid:
  model: {baseline: {generator: class-mean-noise}, noise: {generator: dcgan, lr: 1.0e-6}}
scheduler: {type: asha, metric: val_fd, grace_period: 1, reduction_factor: 2}
resources: {cpus: 1}""")
    log = io.StringIO()
    outcome = run_study(study, "local", tmp_path / "out", data_root=tiny_data, verify_md5=False, stream=log,
                        max_concurrent=1, num_cpus=2)
    assert (outcome.finished, outcome.stopped, outcome.failed) == (1, 1, 0), log.getvalue()
    rows = outcome.rows.set_index("generator")
    assert rows.loc["class-mean-noise", "status"] == "finished" and rows.loc["class-mean-noise", "fit_epochs"] == 4
    bad = rows.loc["dcgan"]
    assert bad["status"] == "stopped" and bad["fit_epochs"] < 4 and bad["fid"] != bad["fid"]  # no metrics
    history = json.loads(bad["fit_history"])
    good = json.loads(rows.loc["class-mean-noise", "fit_history"])
    assert history[0]["val_fd"] > good[0]["val_fd"]  # stopped for its metric


def test_generator_study_fits_evaluates_resumes_without_refitting_and_reports(tmp_path, tiny_data,  # noqa: F811
                                                                              ray_local, capsys):  # noqa: F811
    from medaug.analysis.report import build_report
    from medaug.cli import main
    from medaug.generators import build_generator
    from medaug.generators.data import load_splits

    study = _study(tmp_path, "gen-local", """
base: {dataset: breastmnist, epochs: 2, width: 0.25}
grid:
  generator: [class-mean-noise, cvae]
  seed: [0, 1]
resources: {cpus: 1}""")
    assert len(study.cells) == 4 and study.max_epochs == 2
    buf = io.StringIO()
    print_dry_run(study, "local", tmp_path / "out", buf)
    assert "4 cells x 1 trial(s) per cell = 4 generator fits" in buf.getvalue()
    out = tmp_path / "out"
    # one fit was interrupted after its first epoch: its checkpoint is resumed, not started over
    interrupted = study.trial(study.cells[3])  # cvae seed 1
    splits = load_splits("breastmnist", 28, tiny_data, verify_md5=False)
    build_generator("cvae", 1, 28, 2, {**interrupted.config, "epochs": 1}, device="cpu").fit(
        splits.train, interrupted.fit_dir(out), val=splits.val, plots=False)

    outcome = run_study(study, "local", out, data_root=tiny_data, verify_md5=False, progress=False,
                        max_concurrent=2)
    assert (outcome.finished, outcome.failed, outcome.stopped) == (4, 0, 0)
    rows = outcome.rows.set_index("trial_id")
    assert len(rows) == 4 and set(rows.status) == {"finished"} and set(rows.study) == {"gen-local"}
    assert set(rows.fit_epochs) == {2} and (rows.executor == "local").all()
    assert rows.loc[interrupted.trial_id, "fit_resumed_from"] == 1
    assert sorted(rows.fit_resumed_from) == [0, 0, 0, 1]
    assert rows.mean_confidence.between(0, 1).all() and rows.fid.notna().all()
    assert sorted(json.loads(c)["seed"] for c in rows.generator_config) == [0, 0, 1, 1]
    history = json.loads(rows.loc[interrupted.trial_id, "fit_history"])
    assert [h["epoch"] for h in history] == [1, 2] and history[1]["val_fd"] >= 0  # epoch 1: fitted by hand
    files = sorted((out / "generator-eval").glob("*.parquet"))
    assert len(files) == 4

    # resume: every trial replayed from its row; nothing refitted, re-evaluated or rewritten
    stamps = {p: p.stat().st_mtime_ns for p in [*files, *(out / "generators").glob("*/checkpoint/state.pt")]}
    assert len(stamps) == 8
    again = run_study(load_study(tmp_path / "gen-local.yaml"), "local", out, data_root=tiny_data,
                      verify_md5=False, progress=False, resume=True)
    assert (again.finished, again.failed) == (4, 0)
    assert stamps == {p: p.stat().st_mtime_ns for p in stamps}
    assert sorted((out / "generator-eval").glob("*.parquet")) == files

    # the rows render: seed 001's Table 2 form in `results tables` and in the report
    assert main(["results", "tables", str(out), "--table", "generator_confidence"]) == 0
    text = capsys.readouterr().out
    assert "Mean classifier confidence" in text and "| breastmnist |" in text and "CVAE" in text
    assert "Mean of mean confidence" in text
    report = build_report([out], tmp_path / "report")
    md = report.report_md.read_text()
    assert "Mean classifier confidence" in md and "4 generator evaluation(s) of class-mean-noise, cvae" in md
    assert "generator_fidelity" in report.tables and "fidelity_utility" in [f.name for f in report.figures]


def test_make_synthetic_evaluates_its_fits_so_the_report_draws_fidelity_against_utility(
        tmp_path, tiny_data, ray_local):  # noqa: F811
    from medaug.analysis.report import build_report

    path = write(tmp_path / "cls.yaml", f"""
name: cls-eval
base: {{dataset: breastmnist, epochs: 1, batch_size: 16, lr: 0.1}}
synthetic: {{root: {tmp_path / 'synthetic'}, strategy: inverse-scarcity, fraction: 0.1}}
generators: {{class-mean-noise: {{epochs: 1}}}}
grid:
  generator: [null, class-mean-noise]
  seed: [0, 1]
resources: {{cpus: 1}}
{EVAL}
""")
    study = load_study(path)
    assert study.eval_options["n"] == 20
    out = tmp_path / "out"
    outcome = run_study(study, "local", out, data_root=tiny_data, verify_md5=False, progress=False,
                        make_synthetic=True)
    assert outcome.finished == 4 and len(outcome.synthetic_made) == 1
    rows = list((out / "generator-eval").glob("*.parquet"))
    assert len(rows) == 1
    report = build_report([out], tmp_path / "report")
    assert "fidelity_utility" in [f.name for f in report.figures]
    assert not any("fidelity-vs-utility figure skipped" in m for m in report.messages)
    assert "generator_confidence" in report.tables


def test_generator_study_file_is_validated_with_yaml_paths(tmp_path):
    for body, where in (
            ("base: {dataset: breastmnist, generator: cvae, epoch: 3}", "base.epoch: unknown field (did you mean "
                                                                       "'epochs'?)"),
            ("base: {dataset: breastmnist}\ngrid: {generator: [cvea]}", "grid.generator[0]: unknown generator"),
            ("base: {dataset: breastmnist, generator: dcgan}\nscheduler: {type: asha, metric: val_loss}",
             "scheduler.metric: val_loss is reported by the VAEs only"),
            ("base: {dataset: breastmnist, generator: dcgan}\nsearch: {epochs: {uniform: [1, 5]}}",
             "search.epochs.uniform: uniform gives real numbers"),
            ("base: {dataset: breastmnist, generator: dcgan}\neval: {n: 3}", "eval.n: --n 3: expected an integer >= 10"),
            ("base: {dataset: breastmnist, generator: cvae, gamma: 0.1}", "not a cvae setting"),
    ):
        with pytest.raises(MedaugError) as err:
            load_study(write(tmp_path / "bad.yaml", f"kind: generator\nname: bad\n{body}\n"))
        assert where in str(err.value), str(err.value)
    with pytest.raises(MedaugError, match="kind: expected one of: classifier, generator"):
        load_study(write(tmp_path / "kind.yaml", "kind: gan\nname: k\nbase: {dataset: breastmnist}\n"))


@pytest.mark.slurm
def test_generator_study_runs_as_slurm_jobs(tmp_path, slurm_cluster, tiny_data, ray_local):  # noqa: F811
    study = _study(tmp_path, "gen-slurm", """
base: {dataset: breastmnist, epochs: 2, width: 0.25}
grid:
  generator: [class-mean-noise, cvae]
  seed: [0, 1]
resources: {cpus: 1, time: 10, mem: 1G}""")
    log = io.StringIO()
    outcome = run_study(study, "slurm", tmp_path / "out", site=site_file(tmp_path), data_root=tiny_data,
                        verify_md5=False, stream=log)
    assert (outcome.finished, outcome.failed) == (4, 0), log.getvalue()
    rows = outcome.rows
    assert (rows.executor == "slurm").all() and rows.slurm_job_id.nunique() == 4
    assert set(rows.fit_epochs) == {2}
    records = list((tmp_path / "out" / "slurm").glob("*/job.json"))
    assert len(records) == 4
    for trial_id in rows.trial_id:
        assert finished_trial_row(tmp_path / "out", trial_id) is not None
    assert len(trial_rows(tmp_path / "out")) == 4
