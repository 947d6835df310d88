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


def test_resume_after_the_driver_is_killed_reruns_nothing_finished(tmp_path, tiny_data):  # noqa: F811
    """kill -9 of `medaug sweep` (and of the Ray it started) mid-study, then --resume:
    finished trials keep their rows untouched, the interrupted one continues from its
    saved epoch (not from scratch) and ends like an uninterrupted run."""
    import json
    import os
    import signal
    import subprocess
    import sys

    import torch

    from medaug.experiment import ExperimentSpec, run
    from sweep_helpers import REPO, wait_for

    study = write(tmp_path / "kill.yaml", """
name: local-kill
base: {dataset: breastmnist, epochs: 3, batch_size: 16, lr: 0.1}
grid:
  seed: [0, 1, 2]
resources: {cpus: 1}
""")
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "medaug.sweep", str(study), "--out", str(out), "--data-root", str(tiny_data),
           "--no-verify-md5", "--max-concurrent", "1"]
    env = {**os.environ, "MEDAUG_EPOCH_PAUSE_S": "2"}  # ~6 s a trial: time to kill one mid-run
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                            start_new_session=True, cwd=REPO)
    results = out / "results"

    def one_done_one_mid_run():
        done = sorted(results.glob("*.parquet")) if results.is_dir() else []
        if not done:
            return None
        for progress in (out / "runs").glob("*/progress.jsonl"):
            run_id = progress.parent.name
            if not (results / f"{run_id}.parquet").exists() and progress.read_text().count("\n") >= 1:
                return run_id
        return None

    interrupted = wait_for(one_done_one_mid_run, 300, "a finished trial and one mid-run")
    os.killpg(proc.pid, signal.SIGKILL)  # the driver, its Ray and the trial's worker, as if the machine died
    proc.communicate(timeout=60)
    before = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in results.glob("*.parquet")}
    assert f"{interrupted}.parquet" not in before
    assert (out / "runs" / interrupted / "state.pt").is_file()

    res = subprocess.run([*cmd, "--resume"], capture_output=True, text=True, env=env, cwd=REPO, timeout=600)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "resuming the study" in res.stdout + res.stderr
    rows = {p.name: read_row(p) for p in results.glob("*.parquet")}
    assert len(rows) == 3 and all(r["status"] == "finished" for r in rows.values())
    for name, (mtime, data) in before.items():  # not trained again, not rewritten
        assert (results / name).stat().st_mtime_ns == mtime and (results / name).read_bytes() == data
    # the interrupted run went on from its saved epoch: each epoch logged once, in order
    lines = (out / "runs" / interrupted / "progress.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2, 3]
    # and it ended as an uninterrupted run of the same spec does (one thread, as in the trial)
    row = rows[f"{interrupted}.parquet"]
    spec = ExperimentSpec.from_dict({k: row[k] for k in ("dataset", "epochs", "batch_size", "lr", "seed")})
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        ref = run(spec, tmp_path / "ref", data_root=tiny_data, verify_md5=False)
    finally:
        torch.set_num_threads(threads)
    assert spec.run_id == row["run_id"]
    keys = ("epoch", "train_loss", "val_loss", "val_acc", "val_auc")
    assert [{k: h[k] for k in keys} for h in row["history"]] == [{k: h[k] for k in keys} for h in ref["history"]]
    for key in ("best_epoch", "val_acc", "test_acc", "test_auc"):
        assert row[key] == ref[key], key
