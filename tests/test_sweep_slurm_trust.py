"""The SLURM executor runs no code from the output folder (issue 10, security item 1).

A SLURM job runs `python -m submitit.core._submit FOLDER`, which unpickles the job's
callable from FOLDER (and, after a requeue, the checkpoint submitit wrote there). These
tests check, against the local SLURM of tests/sweep_helpers.py and through the CLI:

- FOLDER is a private job folder under $MEDAUG_JOB_DIR (0700), not under OUT, so a
  pickle planted anywhere in OUT is never loaded by a job;
- a job root that someone else could write (group- or world-writable, foreign-owned,
  an ancestor the same, a study folder made first by someone else) is refused with
  exit 2 and a one-line message before anything is submitted;
- a job record (OUT/slurm/<run_id>/job.json) edited to name another folder is not
  followed: refused while its job runs, ignored (and said so) once it has ended.
"""

from __future__ import annotations

import json
import os
import pickle
import stat
import subprocess
from pathlib import Path

import pytest
from sweep_helpers import (  # noqa: F401
    ray_local,
    sacct_jobs,
    site_file,
    slurm_cluster,
    tiny_data,
    wait_for,
    write,
)

from medaug.cli import main
from medaug.sweep.slurm import JOB_DIR_ENV, job_base, job_status
from medaug.sweep.study import load_study

pytestmark = pytest.mark.slurm

STUDY = """
name: trust
base: {dataset: breastmnist, epochs: 1, batch_size: 16, lr: 0.1}
grid:
  seed: [0]
resources: {cpus: 1, time: 10, mem: 500M}
"""


class _Marker:
    """Unpickling this runs a shell command that creates the marker file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (os.system, (f"touch {self.path}",))


def _study(tmp: Path) -> tuple[Path, str]:
    path = write(tmp / "trust.yaml", STUDY)
    study = load_study(path)
    return path, study.spec_for(study.cells[0].spec).run_id


def _args(study: Path, out: Path, tiny: Path, site: Path, *extra: str) -> list[str]:
    return ["sweep", str(study), "--executor", "slurm", "--site", str(site), "--out", str(out),
            "--data-root", str(tiny), "--no-verify-md5", *extra]


def _listing(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")) if root.exists() else []


def _sleeper(name: str) -> str:
    """A real running SLURM job named like a trial's (what an edited record could point at)."""
    res = subprocess.run(["sbatch", "--parsable", "-J", name, "-p", "debug", "-c", "1", "--mem", "100M",
                          "-t", "5", "-o", "/dev/null", "--wrap", "sleep 300"],
                         capture_output=True, text=True, timeout=60, check=True)
    job_id = res.stdout.strip().split(";")[0]
    wait_for(lambda: job_status(job_id)[0] in ("RUNNING", "PENDING"), 60, "the sleeper job")
    # accounting can lag the queue under load: a "nothing submitted" check compares sacct listings
    wait_for(lambda: job_id in sacct_jobs(int(job_id) - 1), 60, "the sleeper job in accounting")
    return job_id


def test_job_folder_is_private_and_pickles_planted_in_out_are_never_loaded(
        tmp_path, slurm_cluster, tiny_data, ray_local, monkeypatch, capsys):  # noqa: F811
    root = tmp_path / "jobs"
    monkeypatch.setenv(JOB_DIR_ENV, str(root))
    study, run_id = _study(tmp_path)
    out = tmp_path / "out"
    marker = tmp_path / "MARKER"
    payload = pickle.dumps(_Marker(marker))
    # where submitit's files lay before (OUT/slurm/<run_id>/sub-*/) and beside the record:
    # job ids restart at 1 on a fresh cluster, so plant a range of them
    first = max((int(j) for j in sacct_jobs()), default=0)
    planted = []
    for job_id in range(first + 1, first + 20):
        for folder in (out / "slurm" / run_id, out / "slurm" / run_id / "sub-1"):
            for name in (f"{job_id}_submitted.pkl", f"{job_id}_0_result.pkl"):
                planted.append(write_bytes(folder / name, payload))

    assert main(_args(study, out, tiny_data, site_file(tmp_path))) == 0, capsys.readouterr().err

    assert not marker.exists()
    rows = list((out / "results").glob("*.parquet"))
    assert [p.stem for p in rows] == [run_id]
    assert all(p.read_bytes() == payload for p in planted)  # untouched, and unread by any job
    # submitit's files are in the private folder: ROOT/<sha(OUT)>/<run_id>/sub-<ns>, every level 0700
    record = json.loads((out / "slurm" / run_id / "job.json").read_text())
    folder = Path(record["folder"])
    assert folder.parent == job_base(root.resolve(), out, run_id) and folder.name.startswith("sub-")
    assert (folder / f"{record['job_id']}_submitted.pkl").is_file()
    assert (folder / f"{record['job_id']}_0_log.err").is_file()
    for level in (root, folder.parent.parent, folder.parent, folder):
        assert stat.S_IMODE(level.stat().st_mode) == 0o700, level
    # submitit put nothing into OUT (Ray's own OUT/ray is written, never read: driver.py)
    assert not [p for p in out.rglob("*") if p.is_file() and p not in planted
                and not p.is_relative_to(out / "ray") and (p.suffix == ".pkl" or "submit" in p.name)]


def write_bytes(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _make_unsafe(case: str, root: Path, out: Path) -> Path:
    """Set up the job root of `case` (as an attacker or a careless umask would leave it);
    return the folder the error must name."""
    if case == "group-writable root":
        root.mkdir(parents=True)
        root.chmod(0o770)
        return root
    if case == "world-writable parent":
        root.parent.mkdir(parents=True)
        root.parent.chmod(0o777)
        return root.parent
    if case == "foreign-owned root":
        root.mkdir(parents=True, mode=0o700)
        os.chown(root, 65534, 65534)
        return root
    if case == "study folder made by another user":
        root.mkdir(parents=True, mode=0o700)
        study_folder = job_base(root, out, "")
        study_folder.mkdir(mode=0o700)
        os.chown(study_folder, 65534, 65534)
        return study_folder
    if case == "link to a group-writable folder":
        shared = root.parent / "shared"
        shared.mkdir(parents=True)
        shared.chmod(0o775)
        root.symlink_to(shared)
        return shared
    raise AssertionError(case)


@pytest.mark.parametrize("case", ["group-writable root", "world-writable parent", "foreign-owned root",
                                  "study folder made by another user", "link to a group-writable folder"])
def test_a_job_root_others_can_write_is_refused_before_anything_is_submitted(
        tmp_path, slurm_cluster, tiny_data, monkeypatch, capsys, case):  # noqa: F811
    if ("owned" in case or "another user" in case) and os.geteuid() != 0:
        pytest.skip("chown to another user needs root")
    base = tmp_path / "home"
    base.mkdir(mode=0o700)
    root = base / "parent" / "jobs"
    out = tmp_path / "out"
    named = _make_unsafe(case, root, out)
    monkeypatch.setenv(JOB_DIR_ENV, str(root))
    study, _ = _study(tmp_path)
    site = site_file(tmp_path)
    before_root, before_jobs = _listing(base), set(sacct_jobs())

    code = main(_args(study, out, tiny_data, site))

    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("medaug: error: SLURM job folder"), err
    assert f"{named} " in lines[0] and ("writable by" in lines[0] or "owned by uid 65534" in lines[0]), err
    assert JOB_DIR_ENV in lines[0]
    assert not out.exists()  # nothing written in OUT
    assert _listing(base) == before_root  # nor in the job root
    assert set(sacct_jobs()) == before_jobs  # and nothing submitted


def test_site_profile_job_dir_is_checked_too(tmp_path, slurm_cluster, tiny_data, monkeypatch, capsys):  # noqa: F811
    """Without $MEDAUG_JOB_DIR the site profile's job_dir is the root, held to the same rule."""
    monkeypatch.delenv(JOB_DIR_ENV)
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    site = site_file(tmp_path)
    site.write_text(site.read_text() + f"job_dir: {shared / 'jobs'}\n")
    study, _ = _study(tmp_path)
    code = main(_args(study, tmp_path / "out", tiny_data, site))
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert f"{shared} is writable by group and others (mode 0777)" in err
    assert not (tmp_path / "out").exists() and not (shared / "jobs").exists()


@pytest.mark.parametrize("where", ["outside the root", "a link in the root to outside"])
def test_an_edited_job_record_of_a_running_job_is_refused(tmp_path, slurm_cluster, tiny_data,  # noqa: F811
                                                          monkeypatch, capsys, where):
    """job.json edited to name the attacker's folder (planted pickle and log there) while a
    job of the right name runs: `--resume` does not re-attach through it, exits 2, submits nothing."""
    root = tmp_path / "jobs"
    monkeypatch.setenv(JOB_DIR_ENV, str(root))
    study, run_id = _study(tmp_path)
    out = tmp_path / "out"
    marker = tmp_path / "MARKER"
    job_id = _sleeper(f"medaug-trust-{run_id}")
    try:
        evil = tmp_path / "evil" / "sub-1"
        write_bytes(evil / f"{job_id}_submitted.pkl", pickle.dumps(_Marker(marker)))
        write_bytes(evil / f"{job_id}_0_log.err", b"planted log\n")
        if where == "outside the root":
            folder = evil
        else:  # a name that looks right, resolving elsewhere
            base = job_base(root, out, run_id)
            base.mkdir(parents=True)
            folder = base / "sub-1"
            folder.symlink_to(evil)
        record = out / "slurm" / run_id / "job.json"
        write(record, json.dumps({"job_id": job_id, "folder": str(folder), "job_name": f"medaug-trust-{run_id}",
                                  "submitted_at": 0.0, "trial_id": None}))
        before_out, before_jobs = _listing(out), set(sacct_jobs())

        code = main(_args(study, out, tiny_data, site_file(tmp_path), "--resume"))

        err = capsys.readouterr().err
        lines = [ln for ln in err.splitlines() if ln.strip() and not ln.startswith("[trust]")]
        assert code == 2, err
        assert len(lines) == 1 and lines[0].startswith(f"medaug: error: {record}: job {job_id} runs with job "
                                                       f"folder '{folder}'"), err
        assert "refusing to follow it" in lines[0] and f"scancel {job_id}" in lines[0]
        assert _listing(out) == before_out and set(sacct_jobs()) == before_jobs
        assert job_status(job_id)[0] in ("RUNNING", "PENDING")  # not cancelled by us: it may not be ours
        assert not marker.exists()
    finally:
        subprocess.run(["scancel", job_id], capture_output=True, timeout=60)


def test_an_edited_job_record_of_an_ended_job_is_ignored_and_said_so(
        tmp_path, slurm_cluster, tiny_data, ray_local, monkeypatch, capsys):  # noqa: F811
    """Once the record's job has ended, the record only says what to re-attach to, and it
    is not followed: the driver says it ignores it and runs the trial in a private folder."""
    root = tmp_path / "jobs"
    monkeypatch.setenv(JOB_DIR_ENV, str(root))
    study, run_id = _study(tmp_path)
    out = tmp_path / "out"
    marker = tmp_path / "MARKER"
    job_id = _sleeper(f"medaug-trust-{run_id}")
    subprocess.run(["scancel", job_id], capture_output=True, timeout=60, check=True)
    wait_for(lambda: job_status(job_id)[0] == "CANCELLED", 60, "the sleeper to end")
    evil = tmp_path / "evil" / "sub-1"
    write_bytes(evil / f"{job_id}_submitted.pkl", pickle.dumps(_Marker(marker)))
    record = out / "slurm" / run_id / "job.json"
    write(record, json.dumps({"job_id": job_id, "folder": str(evil), "job_name": f"medaug-trust-{run_id}",
                              "submitted_at": 0.0, "trial_id": None}))

    code = main(_args(study, out, tiny_data, site_file(tmp_path), "--resume"))

    err = capsys.readouterr().err
    assert code == 0, err
    assert f"ignoring {record}: its job folder '{evil}' is not a private folder under" in err
    assert not marker.exists()
    rec = json.loads(record.read_text())
    assert rec["job_id"] != job_id and Path(rec["folder"]).parent == job_base(root.resolve(), out, run_id)
    assert [p.stem for p in (out / "results").glob("*.parquet")] == [run_id]


def test_dry_run_previews_the_private_job_folder_and_writes_nothing(
        tmp_path, slurm_cluster, tiny_data, monkeypatch, capsys):  # noqa: F811
    """The dry run previews the sbatch script with the private folder and creates nothing there."""
    root = tmp_path / "jobs"
    monkeypatch.setenv(JOB_DIR_ENV, str(root))
    study, run_id = _study(tmp_path)
    out = tmp_path / "out"
    code = main(_args(study, out, tiny_data, site_file(tmp_path), "--dry-run"))
    text = capsys.readouterr().out
    assert code == 0, text
    assert not root.exists() and not out.exists()
    assert str(job_base(root.resolve(), out, run_id)) in text and f"{out}/slurm/{run_id}/sub" not in text


def test_an_edited_fit_job_record_is_refused_before_any_fit_is_submitted(
        tmp_path, slurm_cluster, tiny_data, monkeypatch, capsys):  # noqa: F811
    """--make-synthetic's generator fits are submitit jobs too: a fit's job.json (beside its
    checkpoint in OUT) edited to name another folder while its job runs is refused, exit 2."""
    from medaug.sweep.synthetic_stage import fit_folder

    monkeypatch.setenv(JOB_DIR_ENV, str(tmp_path / "jobs"))
    study = write(tmp_path / "fitrust.yaml", f"""
name: fitrust
base: {{dataset: breastmnist, epochs: 1, batch_size: 16, lr: 0.1}}
synthetic: {{root: {tmp_path / 'synthetic'}, strategy: inverse-scarcity, fraction: 0.1, seed: 3}}
generators:
  class-mean-noise: {{epochs: 1}}
grid:
  generator: [class-mean-noise]
resources: {{cpus: 1, time: 10, mem: 500M}}
""")
    out = tmp_path / "out"
    marker = tmp_path / "MARKER"
    job_id = _sleeper("medaug-fitrust-fit-breastmnist_28-class-mean-noise")
    try:
        evil = tmp_path / "evil" / "sub-1"
        write_bytes(evil / f"{job_id}_submitted.pkl", pickle.dumps(_Marker(marker)))
        record = fit_folder(out, "breastmnist", 28, {}, "class-mean-noise") / "slurm" / "job.json"
        write(record, json.dumps({"job_id": job_id, "folder": str(evil), "submitted_at": 0.0, "trial_id": None,
                                  "job_name": "medaug-fitrust-fit-breastmnist_28-class-mean-noise"}))
        before_jobs = set(sacct_jobs())

        code = main(_args(study, out, tiny_data, site_file(tmp_path), "--make-synthetic"))

        err = capsys.readouterr().err
        lines = [ln for ln in err.splitlines() if ln.strip() and not ln.startswith("[fitrust]")]
        assert code == 2, err
        assert len(lines) == 1 and lines[0].startswith(f"medaug: error: {record}: job {job_id} runs with job "
                                                       f"folder '{evil}'") and "refusing to follow it" in err, err
        assert set(sacct_jobs()) == before_jobs and not marker.exists()
        assert not (tmp_path / "synthetic").exists()
    finally:
        subprocess.run(["scancel", job_id], capture_output=True, timeout=60)
