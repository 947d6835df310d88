"""The local executor: Ray Tune trials that call `medaug.experiment.run` in Ray workers."""

from __future__ import annotations

import io

from medaug.sweep.driver import run_study
from medaug.sweep.study import load_study
from medaug.sweep.trial import read_row
from sweep_helpers import ray_local, tiny_data, write  # noqa: F401  (fixtures)


def test_local_study_runs_retries_then_records_a_failing_trial(tmp_path, tiny_data, ray_local):  # noqa: F811
    """Two trials finish; the third (its data set is missing) is retried once, then
    recorded as `failed` with its error, and the study goes on."""
    path = write(tmp_path / "local.yaml", """
name: local-test
base: {epochs: 2, batch_size: 16, lr: 0.1}
grid:
  dataset: [breastmnist, pathmnist]
  seed: [0, 1]
resources: {cpus: 1}
max_failures: 1
""")
    study = load_study(path)
    # keep 3 trials: pathmnist seed 1 is dropped to save time
    study = type(study)(**{**study.__dict__, "cells": study.cells[:3]})
    log = io.StringIO()
    out = tmp_path / "out"
    outcome = run_study(study, "local", out, data_root=tiny_data, verify_md5=False, stream=log)
    text = log.getvalue()

    assert (outcome.finished, outcome.failed, outcome.stopped) == (2, 1, 0), text
    assert len(outcome.rows) == 3
    done = outcome.rows[outcome.rows.status == "finished"]
    assert set(done.dataset) == {"breastmnist"} and set(done.seed) == {0, 1}
    assert (done.executor == "local").all() and (done.study == "local-test").all()
    assert done.trial_id.notna().all() and done.trial_id.nunique() == 2
    assert (done.val_acc > 0.6).all()  # lr 0.1 learns the tiny set (chance: 0.5)
    failed = outcome.rows[outcome.rows.status == "failed"].iloc[0]
    assert failed.dataset == "pathmnist" and failed.seed == 0
    assert "failed after 2 attempts" in failed.error and "pathmnist" in failed.error, failed.error
    assert failed.spec_json and failed.trial_id
    # progress display: counts and the best metric so far
    assert "3 trials: 0 pending, 0 running, 2 done, 1 failed, 0 stopped | best val_acc" in text, text
    assert (out / "ray" / "local-test").is_dir() and outcome.experiment_path == out / "ray" / "local-test"
    # per-epoch progress was written by the run and reported to Tune
    progress = (out / "runs" / done.run_id.iloc[0] / "progress.jsonl").read_text().splitlines()
    assert len(progress) == 2

    # A fresh sweep over the same OUT trains nothing that finished: rows are reused as they are.
    before = {rid: (out / "results" / f"{rid}.parquet").stat().st_mtime_ns for rid in done.run_id}
    study2 = type(study)(**{**study.__dict__, "cells": study.cells[:2], "name": "local-test"})
    again = run_study(study2, "local", out, data_root=tiny_data, verify_md5=False, progress=False)
    assert again.finished == 2
    after = {rid: (out / "results" / f"{rid}.parquet").stat().st_mtime_ns for rid in done.run_id}
    assert before == after
    assert read_row(out / "results" / f"{done.run_id.iloc[0]}.parquet")["status"] == "finished"
