"""The slurm executor against a real SLURM (hpc/localslurm: nodes n1, n2 on 127.0.0.1).

Each trial is a real SLURM job submitted with submitit; these tests check the jobs in
accounting (sacct), the rows, requeue after a preemption signal, DDP over both node
daemons, ASHA cancelling jobs, and resume after the driver is killed.
"""

from __future__ import annotations

import dataclasses
import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from medaug.experiment import ExperimentSpec, run
from medaug.store.results import result_path
from medaug.sweep.driver import run_study
from medaug.sweep.site import load_site
from medaug.sweep.slurm import SlurmExperiment, check_job_root, job_status, make_executor, new_job_folder
from medaug.sweep.study import Resources, load_study
from medaug.sweep.trial import RunOptions, read_row
from sweep_helpers import (REPO, ray_local, sacct_jobs, site_file, slurm_cluster, tiny_data, wait_for,  # noqa: F401
                           write)

pytestmark = pytest.mark.slurm

EPOCH_KEYS = ("epoch", "train_loss", "train_acc", "val_loss", "val_acc", "val_auc", "lr")
SPEC = ExperimentSpec(dataset="breastmnist", epochs=3, batch_size=16, lr=0.1, seed=0)


def _history(row: dict) -> list[dict]:
    return [{k: h[k] for k in EPOCH_KEYS} for h in row["history"]]


@pytest.fixture(scope="module")
def reference_row(tiny_data, tmp_path_factory) -> dict:  # noqa: F811
    """SPEC run once, uninterrupted, in one process (the test's own), with the jobs' one
    thread: float sums depend on the thread count, and the comparison is exact."""
    import torch

    out = tmp_path_factory.mktemp("reference")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return run(SPEC, out, data_root=tiny_data, verify_md5=False)
    finally:
        torch.set_num_threads(threads)


def _submit(tmp: Path, tiny: Path, resources: Resources, site_changes: dict | None = None,
            spec: ExperimentSpec = SPEC, **env: str):
    site = load_site("localhost")
    site = dataclasses.replace(site, env={**site.env, **env}, **(site_changes or {}))
    opts = RunOptions(out=str(tmp / "out"), study="direct", data_root=str(tiny), verify_md5=False, threads=1)
    folder = new_job_folder(check_job_root(site), opts.out, spec.run_id)  # the private job folder, not OUT
    executor = make_executor(folder, site, resources, "medaug-direct")
    job = executor.submit(SlurmExperiment(spec.to_dict(), opts.to_dict(), "t0"))
    return job, opts


def test_four_trial_study_runs_each_trial_as_a_slurm_job(tmp_path, slurm_cluster, tiny_data, ray_local):  # noqa: F811
    study = load_study(write(tmp_path / "four.yaml", """
name: slurm-four
base: {dataset: breastmnist, epochs: 2, batch_size: 16, lr: 0.1, min_steps: 0}
grid:
  wrs: [false, true]
  recipe: [seed000, fast]
resources: {cpus: 1, time: 10, mem: 500M}
"""))
    first = max((int(j) for j in sacct_jobs()), default=0)
    log = io.StringIO()
    outcome = run_study(study, "slurm", tmp_path / "out", site=site_file(tmp_path), data_root=tiny_data,
                        verify_md5=False, stream=log)
    assert (outcome.finished, outcome.failed) == (4, 0), log.getvalue()
    rows = outcome.rows
    assert (rows.executor == "slurm").all() and (rows.status == "finished").all()
    assert rows.slurm_job_id.nunique() == 4 and set(rows.slurm_state) == {"COMPLETED"}
    assert set(rows.slurm_nodes) <= {"n1", "n2"} and (rows.requeues == 0).all() and (rows.world_size == 1).all()
    # the recipe travels in the job's spec and is expanded there: fast's network, base's explicit values
    assert sorted(zip(rows.recipe, rows.classifier)) == [("fast", "fastnet")] * 2 + [("seed000", "cnn")] * 2
    assert set(rows.epochs_trained) == {2} and set(rows.lr) == {0.1}
    jobs = wait_for(lambda: (j := sacct_jobs(first)) and all(j.get(i, ("", ""))[1] == "COMPLETED"
                                                              for i in rows.slurm_job_id) and j, 60, "sacct")
    for _, row in rows.iterrows():
        name, state, nodes = jobs[row.slurm_job_id]
        assert name == f"medaug-slurm-four-{row.run_id}" and state == "COMPLETED" and nodes == row.slurm_nodes
    # the job-completion log of slurmctld saw them too
    jobcomp = Path(os.environ["SLURM_CONF"]).parent.parent / "log" / "jobcomp.txt"
    text = jobcomp.read_text()
    assert all(f"JobId={j} " in text for j in rows.slurm_job_id)
    assert "(slurm " in log.getvalue()


def test_preempted_job_is_requeued_and_ends_like_an_uninterrupted_run(tmp_path, slurm_cluster, tiny_data,  # noqa: F811
                                                                     reference_row):
    """USR2 (what SLURM sends before preemption/timeout) mid-run: submitit checkpoints and
    requeues; the job resumes from state.pt and its metrics equal an uninterrupted run's."""
    job, opts = _submit(tmp_path, tiny_data, Resources(cpus=1), MEDAUG_EPOCH_PAUSE_S="3")
    progress = tmp_path / "out" / "runs" / SPEC.run_id / "progress.jsonl"
    wait_for(lambda: progress.is_file() and progress.read_text().count("\n") >= 1, 240, "epoch 1")
    assert job_status(job.job_id)[0] == "RUNNING"
    job._interrupt(timeout=False)  # SIGTERM then USR2, as on preemption
    # SLURM holds a requeued job ~2 minutes before it is eligible again; a test need not wait
    wait_for(lambda: job_status(job.job_id)[0] == "PENDING", 60, "requeue")
    subprocess.run(["scontrol", "update", f"JobId={job.job_id}", "StartTime=now"], check=True, capture_output=True)
    summary = job.result()
    assert summary["status"] == "finished"
    row = read_row(result_path(opts.out, SPEC.run_id))
    assert row["requeues"] == 1 and row["slurm_job_id"] == job.job_id
    assert _history(row) == _history(reference_row)  # bit-identical on CPU
    for key in ("best_epoch", "val_acc", "val_auc", "test_acc", "test_auc", "test_confusion"):
        assert row[key] == reference_row[key], key
    # epochs in the progress file: each once, in order (1 before the signal, 2-3 after)
    lines = progress.read_text().splitlines()
    assert [int(line.split('"epoch": ')[1].split(",")[0]) for line in lines] == [1, 2, 3]
    log = job.paths.stderr.read_text()
    assert "this job is preempted" in log


def test_ddp_job_on_two_nodes_matches_one_process(tmp_path, slurm_cluster, tiny_data, reference_row):  # noqa: F811
    """2 nodes x 1 task, gloo: every rank draws the same global batch of 16 and trains on
    its half; gradients are averaged. Tolerance: per-epoch train loss within 10 % (+0.01),
    validation accuracy within 0.1 (4 of 40 images), test accuracy within 0.05. Not
    identical: BatchNorm normalises each rank's half batch on its own (no SyncBatchNorm),
    and the logged train loss is rank 0's half. Measured: epoch-1 train loss 0.180 vs
    0.169, val_acc 1.0 vs 0.9, then equal."""
    job, opts = _submit(tmp_path, tiny_data, Resources(cpus=1, nodes=2, tasks_per_node=1))
    summaries = job.results()  # one per task; rank 0 wrote the row
    assert len(summaries) == 2 and all(s["status"] == "finished" for s in summaries)
    row = read_row(result_path(opts.out, SPEC.run_id))
    assert row["world_size"] == 2 and row["slurm_nodes"] == "n[1-2]"
    got, ref = _history(row), _history(reference_row)
    assert len(got) == len(ref) == SPEC.epochs
    for g, r in zip(got, ref):
        assert abs(g["val_acc"] - r["val_acc"]) <= 0.1 + 1e-9, (g, r)
        assert abs(g["train_loss"] - r["train_loss"]) <= 0.1 * r["train_loss"] + 0.01, (g, r)
    assert abs(row["test_acc"] - reference_row["test_acc"]) <= 0.05


def test_asha_stops_the_worst_trials_and_cancels_their_jobs(tmp_path, slurm_cluster, tiny_data, ray_local):  # noqa: F811
    """Two good trials (lr 0.1: val_acc 0.9 after epoch 1, equal so neither is cut) run first; the two bad ones
    (lr 1e-5: 0.5) reach the epoch-1 rung below the cut-off and are stopped, and their
    SLURM jobs cancelled. Each epoch pauses 2 s so a stop arrives before the job ends."""
    study = load_study(write(tmp_path / "asha.yaml", """
name: slurm-asha
base: {dataset: breastmnist, epochs: 4, batch_size: 16, seed: 0}
grid:
  lr: [0.1, 1.0e-5]
  select_metric: [acc, auc]   # trains identically: the two good trials tie at every rung
scheduler: {type: asha, metric: val_acc, mode: max, grace_period: 1, max_t: 4, reduction_factor: 2}
resources: {cpus: 1, time: 10, mem: 500M}
"""))
    first = max((int(j) for j in sacct_jobs()), default=0)
    outcome = run_study(study, "slurm", tmp_path / "out", site=site_file(tmp_path, MEDAUG_EPOCH_PAUSE_S="2"),
                        data_root=tiny_data, verify_md5=False, max_concurrent=2, stream=io.StringIO())
    rows = outcome.rows.set_index("lr")
    good, bad = rows.loc[[0.1]], rows.loc[[1e-5]]
    # trials that train every epoch (max_t = epochs) end finished with their test numbers: the
    # last epoch is not reported before the job's test evaluation, so ASHA cannot cancel it there
    assert (good.status == "finished").all() and good.test_acc.notna().all()
    assert (good.history.map(len) == 4).all() and (good.slurm_state == "COMPLETED").all()
    assert (bad.status == "stopped").any(), bad[["status", "slurm_state"]]
    stopped = bad[bad.status == "stopped"]
    assert (stopped.best_epoch < 4).all()
    jobs = wait_for(lambda: (j := sacct_jobs(first)) and all(j.get(i, ("", ""))[1] == "CANCELLED"
                                                              for i in stopped.slurm_job_id) and j, 60, "cancel")
    assert all(jobs[j][1] == "CANCELLED" for j in stopped.slurm_job_id)
    assert (stopped.slurm_state == "CANCELLED").all()
    assert outcome.stopped == len(stopped)


def _release_requeued(job) -> None:
    """Wait for `job` to end, starting it again at once each time it is requeued (SLURM
    holds a requeued job ~2 minutes before it is eligible; a test need not wait)."""
    while not job.done():
        if job_status(job.job_id)[0] == "PENDING":
            subprocess.run(["scontrol", "update", f"JobId={job.job_id}", "StartTime=now"], capture_output=True)
        time.sleep(2)


def test_job_reaching_its_time_limit_is_requeued_and_ends_like_an_uninterrupted_run(
        tmp_path, slurm_cluster, tiny_data, reference_row):  # noqa: F811
    """A real time limit, no signal sent by hand: a 3-minute job whose epochs (paused
    40 s each) need ~130 s, with USR2 asked for 90 s before the end. SLURM sends it up
    to 60 s early (its documented resolution), so it comes 30-90 s into the job, after
    at least one saved epoch; submitit checkpoints and requeues it as a time-out; the
    requeued job resumes (and may time out once more before it finishes)."""
    job, opts = _submit(tmp_path, tiny_data, Resources(cpus=1, time_min=3), {"signal_delay_s": 90},
                        MEDAUG_EPOCH_PAUSE_S="40")
    _release_requeued(job)
    assert job.result()["status"] == "finished"
    row = read_row(result_path(opts.out, SPEC.run_id))
    log = job.paths.stderr.read_text()
    timeouts = log.count("this job is timed-out")
    assert row["requeues"] == timeouts >= 1 and "preempted" not in log and row["slurm_job_id"] == job.job_id
    assert _history(row) == _history(reference_row)  # bit-identical on CPU
    for key in ("best_epoch", "val_acc", "val_auc", "test_acc", "test_auc", "test_confusion"):
        assert row[key] == reference_row[key], key


def test_job_past_its_timeout_requeue_limit_ends_unfinished_and_keeps_its_state(
        tmp_path, slurm_cluster, tiny_data):  # noqa: F811
    """max_num_timeout 0: the first time-out is the last. submitit ends the job without
    a requeue; no result row is written, and the epochs saved so far stay on disk for a
    later `--resume`."""
    import submitit

    # USR2 is due 120 s into the 4-min job, but slurmctld checks time limits periodically and
    # under load sent it more than 37 s late, once after a 3-epoch job of 60-s pauses had
    # finished: 6 epochs of 60-s pauses cannot finish inside the limit, so the signal has until
    # the limit itself to come; the job ends when it does, so the test is no longer for it
    spec = dataclasses.replace(SPEC, epochs=6)
    job, opts = _submit(tmp_path, tiny_data, Resources(cpus=1, time_min=4),
                        {"signal_delay_s": 120, "max_num_timeout": 0}, spec, MEDAUG_EPOCH_PAUSE_S="60")
    with pytest.raises(submitit.core.utils.UncompletedJobError, match="timed-out too many times"):
        job.result()
    assert not result_path(opts.out, spec.run_id).exists()
    assert (tmp_path / "out" / "runs" / spec.run_id / "state.pt").is_file()


def _same_row(a: dict, b: dict) -> bool:
    """Row equality where NaN equals NaN (e.g. train_images_per_s of a run resumed after its last epoch)."""
    def same(x, y) -> bool:
        return x == y or (isinstance(x, float) and isinstance(y, float) and x != x and y != y)
    return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)


def _driver(study: Path, out: Path, tiny: Path, site: Path, *extra: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "medaug.sweep", str(study), "--executor", "slurm", "--site", str(site),
           "--out", str(out), "--data-root", str(tiny), "--no-verify-md5", "--max-concurrent", "2", *extra]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True, cwd=REPO)


def test_ctrl_c_cancels_jobs_then_resume_after_kill_reruns_nothing_finished(
        tmp_path, slurm_cluster, tiny_data):  # noqa: F811
    study = write(tmp_path / "resume.yaml", """
name: slurm-resume
base: {dataset: breastmnist, epochs: 3, batch_size: 16, lr: 0.1}
grid:
  seed: [0, 1, 2]
resources: {cpus: 1, time: 10, mem: 500M}
""")
    out = tmp_path / "out"
    site = site_file(tmp_path, MEDAUG_EPOCH_PAUSE_S="2")
    first = max((int(j) for j in sacct_jobs()), default=0)

    def ours() -> dict:
        return {j: v for j, v in sacct_jobs(first).items() if v[0].startswith("medaug-slurm-resume-")}

    # 1. Ctrl-C while jobs run: the driver stops, cancels what it submitted, exits 130.
    #    Tune's graceful stop waits for each trial's blocked step, which returns at the job's
    #    next epoch, then ~70 s of Ray shutdown (133 s measured with 60-s epochs): so 90 s per
    #    epoch here, and a 3-epoch job cannot end before the driver cancels it.
    proc = _driver(study, out, tiny_data, site_file(tmp_path / "slow", MEDAUG_EPOCH_PAUSE_S="90"))
    wait_for(lambda: any(v[1] == "RUNNING" for v in ours().values()), 240, "a running job")
    t_int = time.monotonic()
    os.killpg(proc.pid, signal.SIGINT)
    output = proc.communicate(timeout=300)[0]
    stop_s = time.monotonic() - t_int
    assert proc.returncode == 130, output
    wait_for(lambda: all(v[1] not in ("RUNNING", "PENDING") for v in ours().values()), 60, "jobs to end")
    assert {v[1] for v in ours().values()} <= {"CANCELLED", "COMPLETED"} and "CANCELLED" in \
        {v[1] for v in ours().values()}, (ours(), f"driver exited {stop_s:.0f} s after SIGINT", output)

    # 2. Resume; once one trial has finished and another job runs, kill -9 the driver.
    proc = _driver(study, out, tiny_data, site, "--resume")
    results = out / "results"
    wait_for(lambda: results.is_dir() and any(results.glob("*.parquet")), 300, "a finished trial")
    wait_for(lambda: any(v[1] == "RUNNING" for v in ours().values()), 120, "a running job")
    proc.kill()  # SIGKILL the driver: its SLURM jobs keep running
    proc.communicate(timeout=60)
    try:  # and whatever of its local Ray outlived it (helper agents), as if its machine had died
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    finished_before = {p.name: read_row(p) for p in results.glob("*.parquet")}
    jobs_before = ours()
    running = {j for j, v in jobs_before.items() if v[1] in ("RUNNING", "PENDING")}
    assert running, jobs_before  # a job outlived its driver: the resumed driver must re-attach to it

    # 3. Resume again: finished trials are not rerun, running jobs are re-attached, all finish.
    proc = _driver(study, out, tiny_data, site, "--resume")
    output = proc.communicate(timeout=600)[0]
    assert proc.returncode == 0, output
    assert "resuming the study" in output
    rows = {p.name: read_row(p) for p in results.glob("*.parquet")}
    assert len(rows) == 3 and all(r["status"] == "finished" for r in rows.values())
    for name, before in finished_before.items():  # not trained again: same run, same times, same numbers
        after = rows[name]
        assert _same_row({k: v for k, v in after.items() if k != "slurm_state"},
                         {k: v for k, v in before.items() if k != "slurm_state"}), name
        # a row written while its driver was gone gets the job's final state on resume
        assert after["slurm_state"] in ("COMPLETED", before["slurm_state"])
    jobs_after = ours()
    # no new job for a run that had finished, or whose job was running when the driver died
    running_names = {jobs_before[j][0] for j in running}
    finished_names = {f"medaug-slurm-resume-{n.removesuffix('.parquet')}" for n in finished_before}
    new_jobs = {j: v for j, v in jobs_after.items() if j not in jobs_before}
    assert not [v for v in new_jobs.values() if v[0] in running_names | finished_names], (new_jobs, jobs_before)
    for row in rows.values():
        if f"medaug-slurm-resume-{row['run_id']}" in running_names:
            assert row["slurm_job_id"] in running  # re-attached to the job that was running
    for row in rows.values():  # each row names the job that trained it, in its final state
        name, state, nodes = jobs_after[row["slurm_job_id"]]
        assert name == f"medaug-slurm-resume-{row['run_id']}" and row["slurm_state"] == state, (row, state)
