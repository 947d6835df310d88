"""The SLURM executor: each Ray Tune trial is one SLURM job submitted with submitit.

Two halves:

- In the job: `SlurmExperiment`, a submitit `Checkpointable` that initialises
  torch.distributed when the job has several tasks and calls
  `medaug.experiment.run`. On preemption or an approaching time limit SLURM sends
  USR2 (`--signal=USR2@signal_delay_s`); submitit calls `checkpoint()`, which returns
  the same experiment, and requeues the job. Nothing else is needed because `run`
  saves its training state atomically every epoch and resumes from it: the requeued
  job continues at the next epoch and ends with the metrics of an uninterrupted run.
- In the Ray worker: `SlurmTrial`, a Tune class trainable that submits the job (or
  re-attaches to it after a driver restart), tails the run's progress.jsonl and
  reports each epoch, so a scheduler (ASHA) can stop it; `cleanup()`, which Tune
  calls when it stops the trial, cancels the job.

Where submitit's files live (the job folder). A job runs
`python -m submitit.core._submit FOLDER`, which unpickles `FOLDER/<jobid>_submitted.pkl`
(rewritten by submitit when it checkpoints a job before a requeue). Whoever can write
FOLDER can therefore run code as the user, so FOLDER is never inside the output folder
(on a cluster often group-writable) but in a private per-user job root:

    $MEDAUG_JOB_DIR, else the site profile's `job_dir`, else
    ${XDG_STATE_HOME:-~/.local/state}/medaug/slurm
      <sha256(OUT)[:16]>/<run_id>/sub-<ns>/     submitit's pickles, sbatch script, logs

The root must be on a file system the compute nodes share (home usually is). Before
anything is submitted (`check_job_root`) the root and every folder above it up to the
user's home (or up to `/` outside home), like ssh's StrictModes, must be owned by the
user (or root) and writable by no one else (a root-owned sticky folder such as /tmp
excepted); folders medaug creates there are 0700. A root that fails is refused with a
one-line error (exit 2) and nothing is submitted.

Each trial keeps a job record `OUT/slurm/<run_id>/job.json` (job id, job folder, job
name): JSON, never executed, how a restarted driver finds running jobs instead of
submitting again, and how an interrupted sweep cancels what it submitted. The record
lies in OUT, so its `folder` is not trusted: it is followed only when it is
`<root>/<sha(OUT)>/<run_id>/sub-<ns>` and passes the same ownership check
(`trusted_record_folder`); a record naming any other folder while its job still runs
is refused before anything is submitted (`check_job_records`). Each submission gets a
fresh folder (job ids restart at 1 on a reset cluster: a reused folder would return a
stale result).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import stat
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import submitit

from medaug.errors import MedaugError
from medaug.store.atomic import atomic_write_text
from medaug.sweep.site import SiteProfile
from medaug.sweep.study import Resources
from medaug.sweep.trial import (
    RunOptions,
    epoch_pause,
    epoch_report,
    final_report,
    finished_row,
    has_row,
    is_last_epoch,
    progress_path,
    replay_reports,
    set_threads,
    update_row,
)

ACTIVE_STATES = ("PENDING", "RUNNING", "REQUEUED", "CONFIGURING", "COMPLETING", "SUSPENDED", "RESIZING",
                 "REQUEUE_HOLD", "REQUEUE_FED", "SIGNALING", "STAGE_OUT", "PREEMPTED")
RECORD = "job.json"
JOB_DIR_ENV = "MEDAUG_JOB_DIR"
SUBMISSION = re.compile(r"sub-[0-9]+")


# ============================================================================ in the job

class SlurmExperiment(submitit.helpers.Checkpointable):
    """One experiment as a requeue-safe SLURM job (every task of the job runs this)."""

    def __init__(self, spec: dict[str, Any], options: dict[str, Any], trial_id: str | None = None) -> None:
        self.spec = spec
        self.options = options
        self.trial_id = trial_id

    def __call__(self) -> dict[str, Any]:
        from medaug.experiment import ExperimentSpec, run
        from medaug.train.distributed import cleanup_distributed, init_distributed

        opts = RunOptions(**self.options)
        set_threads(opts.threads)
        spec = ExperimentSpec.from_dict(_spec_data(self.spec))
        info = init_distributed()
        try:
            done = finished_row(opts, spec)
            if done is not None:
                return _summary(done)
            device = opts.device if opts.device not in (None, "auto") else info.device()
            row = run(spec, opts.out, data_root=opts.data_root, device=device, quiet=True,
                      overwrite=has_row(opts, spec), verify_md5=opts.verify_md5,
                      context=job_context(opts, self.trial_id), on_epoch=epoch_pause())
            return _summary(row)
        finally:
            cleanup_distributed()

    def checkpoint(self, *args: Any, **kwargs: Any) -> submitit.helpers.DelayedSubmission:
        """Called by submitit on USR2: the state is already on disk (saved each epoch), so
        the requeued job simply runs this experiment again and `run` resumes it."""
        return submitit.helpers.DelayedSubmission(SlurmExperiment(self.spec, self.options, self.trial_id))


def job_context(opts: RunOptions, trial_id: str | None) -> dict[str, Any]:
    """The where-it-ran columns, from the job's environment."""
    return {
        "executor": "slurm",
        "study": opts.study,
        "trial_id": trial_id,
        "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
        "slurm_nodes": os.environ.get("SLURM_JOB_NODELIST"),
        "slurm_state": "RUNNING",  # the trial rewrites it with the final state
        "requeues": int(os.environ.get("SLURM_RESTART_COUNT", "0")),
    }


def _spec_data(spec: dict[str, Any]) -> dict[str, Any]:
    data = dict(spec)
    if "milestones" in data:
        data["milestones"] = tuple(data["milestones"])
    return data


def _summary(row: dict[str, Any]) -> dict[str, Any]:
    return {k: row.get(k) for k in ("run_id", "status", "best_epoch", "val_acc", "test_acc", "test_auc")}


# ============================================================================ scheduler talk

@dataclass(frozen=True)
class JobRecord:
    job_id: str
    folder: str
    job_name: str
    submitted_at: float
    trial_id: str | None = None

    @classmethod
    def read(cls, path: Path) -> JobRecord | None:
        try:
            return cls(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError):
            return None

    def write(self, path: Path) -> None:
        atomic_write_text(path, json.dumps(self.__dict__, indent=2))


def record_path(out: str | Path, run_id: str) -> Path:
    return Path(out) / "slurm" / run_id / RECORD


def job_status(job_id: str) -> tuple[str, str | None, str | None]:
    """(state, job name, node list) from slurmctld (squeue), else accounting (sacct).

    UNKNOWN when neither knows the id (never submitted here, or a reset cluster).
    """
    out = _quiet(["squeue", "-h", "-t", "all", "-j", job_id, "-o", "%T|%j|%N"])
    if out:
        state, name, nodes = (out.splitlines()[0].split("|") + ["", ""])[:3]
        return state.strip(), name or None, nodes or None
    out = _quiet(["sacct", "-X", "-n", "-P", "-j", job_id, "-o", "State,JobName,NodeList"])
    if out:
        state, name, nodes = (out.splitlines()[0].split("|") + ["", ""])[:3]
        return state.split()[0].strip(), name or None, nodes or None  # "CANCELLED by 0" -> CANCELLED
    return "UNKNOWN", None, None


def _quiet(cmd: list[str]) -> str:
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return res.stdout.strip() if res.returncode == 0 else ""


def cancel_job(job_id: str) -> None:
    subprocess.run(["scancel", job_id], capture_output=True, timeout=60)


def is_active(state: str) -> bool:
    return state.upper() in ACTIVE_STATES


def job_name(study: str, run_id: str) -> str:
    return f"medaug-{study}-{run_id}"[:120]


# ============================================================================ the private job folder

def job_root(site: SiteProfile | None = None) -> Path:
    """Where submitit's job folders go: $MEDAUG_JOB_DIR, else the site's `job_dir`, else
    ${XDG_STATE_HOME:-~/.local/state}/medaug/slurm (`~` and `$VAR` expanded; not checked here)."""
    value = os.environ.get(JOB_DIR_ENV, "").strip()
    where = f"${JOB_DIR_ENV}"
    if not value and site is not None and site.job_dir:
        value, where = site.job_dir, f"{site.source or 'site profile'}: job_dir"
    if not value:
        state = os.environ.get("XDG_STATE_HOME", "").strip()
        if state and Path(state).is_absolute():
            return Path(state) / "medaug" / "slurm"
        home = _home()
        if home is None:
            raise MedaugError(f"no home folder for the SLURM job folder root: set ${JOB_DIR_ENV} to a private folder")
        return home / ".local" / "state" / "medaug" / "slurm"
    path = Path(os.path.expandvars(value)).expanduser()
    if not path.is_absolute():
        raise MedaugError(f"{where} {value}: expected an absolute path (the SLURM job folder root)")
    return path


def _home() -> Path | None:
    try:
        return Path.home().resolve()
    except (OSError, RuntimeError, KeyError):
        return None


def _why_unsafe(folder: Path, uid: int, sticky_ok: bool) -> str | None:
    """Why someone other than the user (or root) could change what `folder` holds, else None."""
    st = folder.lstat()
    if not stat.S_ISDIR(st.st_mode):
        return "is not a folder"
    if st.st_uid not in (uid, 0):
        return f"is owned by uid {st.st_uid}, not by you (uid {uid}) or root"
    if st.st_mode & 0o022 and not (sticky_ok and st.st_uid == 0 and st.st_mode & stat.S_ISVTX):
        who = " and ".join(w for w, bit in (("group", 0o020), ("others", 0o002)) if st.st_mode & bit)
        return f"is writable by {who} (mode {stat.S_IMODE(st.st_mode):04o})"
    return None


def chain_problem(folder: Path, strict_from: Path | None = None) -> str | None:
    """What makes `folder` unsafe to hold pickles a job will load, else None (ssh's StrictModes).

    `folder` (resolved, its missing part skipped) and every folder above it up to the
    user's home, or up to / outside home, must be owned by the user or root and
    writable by no one else; a root-owned sticky folder (/tmp) is accepted above
    `strict_from` (default: above the first existing folder), where others can add
    entries but not replace ours."""
    uid = os.geteuid()
    path = Path(folder).expanduser().absolute().resolve()
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    strict = Path(strict_from).resolve() if strict_from is not None else existing
    home = _home()
    for current in (existing, *existing.parents):
        try:
            why = _why_unsafe(current, uid, sticky_ok=current != strict and strict.is_relative_to(current))
        except OSError as err:
            return f"{current} cannot be checked ({err.strerror or err})"
        if why:
            return f"{current} {why}"
        if current == home:
            break
    return None


def private_folder(folder: Path, strict_from: Path | None = None, what: str = "SLURM job folder") -> Path:
    """`folder`, resolved, after checking its chain (`chain_problem`) and creating its
    missing part 0700; a MedaugError (one line) names the folder that fails."""
    path = Path(folder).expanduser().absolute().resolve()
    why = chain_problem(path, strict_from)
    if why is None:
        missing = []
        probe = path
        while not probe.exists() and probe != probe.parent:
            missing.append(probe)
            probe = probe.parent
        try:
            for new in reversed(missing):
                try:
                    new.mkdir(mode=0o700)
                    new.chmod(0o700)
                except FileExistsError:
                    pass  # someone made it in between: the check below decides
        except OSError as err:
            raise MedaugError(f"{what} {path}: cannot create it ({err.strerror or err})") from None
        why = chain_problem(path, strict_from)
    if why is not None:
        raise MedaugError(f"{what} {path}: {why}; submitit's pickles there would run as you "
                          f"(choose a private folder with ${JOB_DIR_ENV} or the site profile's job_dir)")
    return path


def check_job_root(site: SiteProfile | None = None) -> Path:
    """The job root, resolved, created 0700 if missing, refused (MedaugError) unless it
    and the folders above it are yours alone (the root itself: no sticky exception)."""
    root = job_root(site)
    return private_folder(root, strict_from=root, what="SLURM job folder root")


def job_base(root: Path, out: str | Path, key: str) -> Path:
    """`ROOT/<sha256(OUT)[:16]>/<key>`: the submissions of one trial (key = run_id) or fit."""
    digest = hashlib.sha256(str(Path(out).expanduser().absolute().resolve()).encode()).hexdigest()[:16]
    return Path(root) / digest / key


def new_job_folder(root: Path, out: str | Path, key: str) -> Path:
    """A fresh, private submission folder (created 0700) for one job of `key`."""
    return private_folder(job_base(root, out, key) / f"sub-{time.time_ns()}", strict_from=root)


def trusted_record_folder(rec: JobRecord, root: Path, out: str | Path, key: str) -> Path | None:
    """The record's job folder if it is one of ours (`ROOT/<sha(OUT)>/<key>/sub-<ns>`,
    an existing folder passing `chain_problem`); None for anything else: the record
    lies in OUT and may have been edited to point at someone else's folder."""
    folder = Path(rec.folder)
    if not folder.is_absolute():
        return None
    try:
        resolved = folder.resolve()
        base = job_base(Path(root).resolve(), out, key)
        if resolved.parent != base or not SUBMISSION.fullmatch(resolved.name) or not resolved.is_dir():
            return None
    except (OSError, RuntimeError):
        return None
    return resolved if chain_problem(resolved, strict_from=root) is None else None


def untrusted_record_error(path: Path, rec: JobRecord, root: Path, out: str | Path, key: str) -> MedaugError:
    return MedaugError(f"{path}: job {rec.job_id} runs with job folder {rec.folder!r}, which is not a private "
                       f"folder under {job_base(root, out, key)}; refusing to follow it (the record was edited, "
                       f"or written by another user or an older medaug): if the job is yours, cancel it "
                       f"(scancel {rec.job_id}) and remove {path}")


def check_job_records(out: str | Path, root: Path, say=lambda _text: None) -> None:
    """Before anything is submitted: every trial's job record under OUT/slurm names a
    trusted job folder, or its job no longer runs (then it is ignored, and said so); a
    record whose job still runs from another folder is refused (MedaugError). The study's
    folder in the root (`ROOT/<sha(OUT)>`) is checked (created 0700) here too, so one that
    someone else made first is refused before anything is submitted."""
    private_folder(job_base(root, out, ""), strict_from=root)
    for path in sorted(Path(out, "slurm").glob(f"*/{RECORD}")):
        rec = JobRecord.read(path)
        key = path.parent.name
        if rec is None or trusted_record_folder(rec, root, out, key) is not None:
            continue
        state, name, _ = job_status(rec.job_id)
        if is_active(state) and (name is None or name == rec.job_name):
            raise untrusted_record_error(path, rec, root, out, key)
        say(f"ignoring {path}: its job folder {rec.folder!r} is not a private folder under "
            f"{job_base(root, out, key)} (its job {rec.job_id} is {state})")


def make_executor(folder: Path, site: SiteProfile, resources: Resources, name: str,
                  binds: tuple[str, ...] = ()) -> submitit.SlurmExecutor:
    """A submitit SlurmExecutor for one trial on `site` (the job's python is the
    container's when the site runs jobs in one).

    `folder` (submitit's pickles and logs) must pass `chain_problem`: it is created
    0700 where missing and refused with a MedaugError otherwise."""
    folder = private_folder(folder)
    python = site.python_command(binds) or None
    executor = submitit.SlurmExecutor(folder=folder, max_num_timeout=site.max_num_timeout, python=python)
    executor.update_parameters(**site.slurm_parameters(resources, name))
    return executor


class _PreviewExecutor(submitit.SlurmExecutor):
    """submitit's SlurmExecutor for writing the sbatch script only: its constructor
    refuses to run where `srun` is not on PATH, but a preview submits nothing."""

    @classmethod
    def affinity(cls) -> int:
        return 1


def sbatch_script(site: SiteProfile, resources: Resources, name: str, folder: Path,
                  binds: tuple[str, ...] = ()) -> str:
    """The sbatch script submitit would submit for one trial (dry runs, golden-file tests).

    Works on any machine, SLURM or not, and writes nothing (`folder` is only named)."""
    python = site.python_command(binds) or None
    executor = _PreviewExecutor(folder=folder, max_num_timeout=site.max_num_timeout, python=python)
    executor.update_parameters(**site.slurm_parameters(resources, name))
    return executor._make_submission_file_text(executor._submitit_command_str, uid="preview")


def active_records(out: str | Path) -> list[tuple[Path, JobRecord]]:
    """Job records under OUT/slurm whose job is still pending or running."""
    found = []
    for path in sorted(Path(out, "slurm").glob(f"*/{RECORD}")):
        rec = JobRecord.read(path)
        if rec is not None:
            state, name, _ = job_status(rec.job_id)
            if is_active(state) and (name is None or name == rec.job_name):
                found.append((path, rec))
    return found


# ============================================================================ in the Ray worker

class SlurmTrialLogic:
    """Submit or re-attach, tail progress, finish or cancel: the Trainable's body, kept
    free of Ray so it can be read (and tested) on its own."""

    def __init__(self, config: dict[str, Any], options: dict[str, Any], site: SiteProfile, resources: Resources,
                 poll_s: float, trial_id: str | None, root: Path | None = None) -> None:
        from medaug.sweep.local import trial_spec
        from medaug.sweep.trial import ProgressTail

        self.opts = RunOptions(**options)
        self.spec = trial_spec(config)
        self.site = site
        self.resources = resources
        self.poll_s = poll_s
        self.trial_id = trial_id
        self.root = Path(root) if root is not None else check_job_root(site)
        self.record_file = record_path(self.opts.out, self.spec.run_id)
        self.folder: Path | None = None  # this trial's job folder: checked, never re-read from the record
        self.tail = ProgressTail(progress_path(self.opts, self.spec))
        self.buffer: list[dict[str, Any]] = []
        self.replay = None
        self.job_id: str | None = None
        self.finished = False
        self.submitted_at = time.time()
        self.first_epoch_latency: float | None = None
        done = finished_row(self.opts, self.spec)
        if done is not None:
            if done.get("slurm_job_id") and done.get("slurm_state") == "RUNNING":
                # the driver stopped watching before the job ended: record its final state now
                state, _, nodes = job_status(done["slurm_job_id"])
                if not is_active(state):
                    update_row(self.opts, self.spec.run_id, slurm_state=state)
            self.replay = list(replay_reports(done))
            return
        self.job_id = self._attach() or self._submit()

    # -- submission ------------------------------------------------------------
    def _attach(self) -> str | None:
        rec = JobRecord.read(self.record_file)
        if rec is None:
            return None
        state, name, _ = job_status(rec.job_id)
        if is_active(state) and (name is None or name == rec.job_name):
            folder = trusted_record_folder(rec, self.root, self.opts.out, self.spec.run_id)
            if folder is None:
                raise untrusted_record_error(self.record_file, rec, self.root, self.opts.out, self.spec.run_id)
            self.folder = folder
            self.submitted_at = rec.submitted_at
            return rec.job_id
        return None

    def _submit(self) -> str:
        run_folder = progress_path(self.opts, self.spec).parent
        if not (run_folder / "state.pt").exists():
            # a fresh start: drop epochs of an earlier attempt that left no state to resume
            progress_path(self.opts, self.spec).unlink(missing_ok=True)
        folder = new_job_folder(self.root, self.opts.out, self.spec.run_id)
        name = job_name(self.opts.study, self.spec.run_id)
        binds = tuple(p for p in (self.opts.data_root, self.opts.out, str(self.root)) if p)
        executor = make_executor(folder, self.site, self.resources, name, binds)
        self.folder = folder
        job = executor.submit(SlurmExperiment(self.spec.to_dict(), self.opts.to_dict(), self.trial_id))
        self.submitted_at = time.time()
        JobRecord(job_id=str(job.job_id), folder=str(folder), job_name=name, submitted_at=self.submitted_at,
                  trial_id=self.trial_id).write(self.record_file)
        return str(job.job_id)

    # -- reporting -------------------------------------------------------------
    def next_report(self) -> dict[str, Any]:
        """Block until the next epoch (or the end of the job); return what Tune should see."""
        if self.replay is not None:
            report = self.replay.pop(0)
            if not self.replay:
                report["done"] = True
                self.finished = True
            return report
        assert self.job_id is not None
        while True:
            self.buffer.extend(self.tail.read_new())
            if self.buffer and self.first_epoch_latency is None:
                self.first_epoch_latency = time.time() - self.submitted_at
            # the last epoch comes with the final report, once the job has written the row:
            # reported now, ASHA would stop the trial at max_t and cancel the job during its
            # test evaluation (`trial.epoch_reports`)
            self.buffer = [r for r in self.buffer if not is_last_epoch(r, self.spec.epochs)]
            if self.buffer:
                report = epoch_report(self.buffer.pop(0), self.spec.run_id)
                report["slurm_job_id"] = self.job_id
                return report
            state, _, nodes = job_status(self.job_id)
            if not is_active(state) and state != "UNKNOWN" or (state == "UNKNOWN" and self._result_pickle()):
                self.buffer.extend(self.tail.read_new())  # lines written just before the job ended
                if self.buffer:
                    continue
                return self._finish(state, nodes)
            time.sleep(self.poll_s)

    def _result_pickle(self) -> bool:
        """submitit's result file exists (it is only looked for, never loaded)."""
        return self.folder is not None and any(self.folder.glob(f"{self.job_id}_*_result.pkl"))

    def _finish(self, state: str, nodes: str | None) -> dict[str, Any]:
        row = finished_row(self.opts, self.spec)
        if row is None:
            raise RuntimeError(f"SLURM job {self.job_id} ended {state} without a result: {self._job_error()}")
        update_row(self.opts, self.spec.run_id, slurm_state=state, slurm_nodes=nodes or row.get("slurm_nodes"))
        self.finished = True
        report = final_report(row)
        report.update(done=True, slurm_job_id=self.job_id, slurm_state=state)
        if self.first_epoch_latency is not None:
            report["slurm_first_epoch_s"] = self.first_epoch_latency
        return report

    def _job_error(self) -> str:
        """The job's own error, from the tail of its stderr log in the private job folder
        (text: submitit's result pickle is never loaded by the driver)."""
        if self.folder is None or self.job_id is None:
            return "no job folder"
        err = submitit.SlurmJob(folder=self.folder, job_id=self.job_id).stderr() or ""
        lines = [ln for ln in err.strip().splitlines() if ln.strip() and not ln.startswith("submitit ")]
        return " ".join(lines[-3:])[:2000] or "no error output"

    def cancel(self) -> None:
        """Cancel the job unless it finished (Tune stopped the trial: ASHA, Ctrl-C)."""
        if self.job_id is not None and not self.finished:
            cancel_job(self.job_id)


def make_trainable(site: SiteProfile, resources: Resources, options: dict[str, Any], poll_s: float,
                   root: Path | None = None):
    """The Tune class trainable for the slurm executor (built here so Ray is imported lazily).

    `root`: the job root the driver checked (`check_job_root`); the trials use it as
    given, whatever the environment of the Ray workers says."""
    from ray import tune

    class SlurmTrial(tune.Trainable):
        def setup(self, config: dict[str, Any]) -> None:
            self.logic = SlurmTrialLogic(config, options, site, resources, poll_s, self.trial_id, root)

        def step(self) -> dict[str, Any]:
            return self.logic.next_report()

        def save_checkpoint(self, checkpoint_dir: str) -> None:
            # The run's own state.pt and the job record (JSON) are the real checkpoint;
            # returning None leaves Tune nothing to pickle into the output folder.
            return None

        def load_checkpoint(self, checkpoint: Any) -> None:
            pass  # setup() already re-attached to the job (or resubmitted it)

        def cleanup(self) -> None:
            logic = getattr(self, "logic", None)
            if logic is not None:
                logic.cancel()

    return SlurmTrial


def describe_command(site: SiteProfile, argv: list[str], binds: tuple[str, ...] = ()) -> str:
    """A medaug command line as a job on this site would run it (inside the container if any)."""
    cmd = site.container.command(argv, binds) if site.container is not None else argv
    return shlex.join(cmd)
