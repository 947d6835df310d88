"""Run a study with Ray Tune as the driver: `run_study(study, executor, out, ...)`.

Tune owns the trial bookkeeping (which trial is pending, running, finished, failed;
retries up to the study's max_failures; the ASHA scheduler).
Where a trial trains is the executor: `local` (Ray workers on this machine or on the
Ray cluster given by --ray-address) or `slurm` (one SLURM job per trial). Either way
the trial calls `medaug.experiment.run` and its result is one Parquet row under
OUT/results/.

Layout of OUT:

    results/<run_id>.parquet     one row per trial (finished, failed or stopped)
    runs/<run_id>/               progress.jsonl and state.pt of each run
    ray/<study>/                 the Ray Tune experiment (storage_path = OUT/ray)
    slurm/<run_id>/job.json      job record (slurm executor; submitit's pickles and logs
                                 are in a private job folder outside OUT: see slurm.py)
    generators/<dataset>_<size>/<generator>/
                                 generator fits of --make-synthetic (checkpoint/, losses,
                                 fit.log or slurm/job.json; see synthetic_stage.py)

With `make_synthetic=True` (`--make-synthetic`) the driver first fits the generators
that the waiting cells' synthetic requests need and writes their sets
(`medaug.sweep.synthetic_stage`); cells whose fit failed keep waiting.

Resuming (`resume=True`) rebuilds the study from the study file and what OUT holds,
never from Ray's own experiment state: restoring a Tune experiment unpickles
OUT/ray/<study>/tuner.pkl (and trial checkpoints), and an output folder is not trusted
(on a cluster it is often group-writable; a planted pickle would run code). So every
run, resumed or not, starts a new Tune experiment over the same trials: a trial whose
finished row exists is replayed to Tune from that row, not trained; a failed or stopped
one runs again; an interrupted local run continues from its state.pt (weights only), and
a SLURM trial whose job is still running re-attaches to it through its job record
(OUT/slurm/<run_id>/job.json). The old OUT/ray/<study> is removed unread. What is not
carried over is the scheduler's state: ASHA's rungs are rebuilt from the replayed
trials. Searched fields are sampled with a seed derived from the study (`search_seed`),
so the rebuilt study samples the same configurations, hence the same run_ids.
"""

from __future__ import annotations

import hashlib
import math
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from medaug.errors import MedaugError
from medaug.sweep.site import SiteProfile, load_site
from medaug.sweep.study import Cell, Resources, Study, load_study
from medaug.sweep.trial import RunOptions, finished_row, write_outcome_row

EXECUTORS = ("local", "slurm")
RAY_ENV = {
    # a loopback Ray needs neither token auth (on by default since Ray 2.5x) nor usage stats
    "RAY_AUTH_MODE": "disabled",
    "RAY_USAGE_STATS_ENABLED": "0",
    # no CSV/JSON/TensorBoard loggers per trial: the Parquet rows are the results
    "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1",
    "RAY_AIR_NEW_OUTPUT": "0",
    "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": "60",
}
OBJECT_STORE_BYTES = 200_000_000
SLURM_TRIAL_CPU = 0.01  # a SLURM trial's Ray actor only polls; the job holds the real resources
DEFAULT_SLURM_CONCURRENCY = 32


@dataclass
class StudyOutcome:
    """What a sweep left behind."""

    study: Study
    executor: str
    out: Path
    experiment_path: Path
    rows: Any  # pandas.DataFrame of this study's rows (None when there are none)
    trials: int
    finished: int
    failed: int
    stopped: int
    waiting: list[Cell] = field(default_factory=list)
    wall_seconds: float = 0.0
    interrupted: bool = False
    last_results: list[dict[str, Any]] = field(default_factory=list)  # Tune's last result per trial
    synthetic_made: list[str] = field(default_factory=list)  # sets --make-synthetic wrote
    synthetic_failed: list[tuple[str, str]] = field(default_factory=list)  # (generator fit, error)

    @property
    def results_dir(self) -> Path:
        return self.out / "results"


def ray_init(address: str | None = None, num_cpus: int | None = None, num_gpus: int | None = None) -> bool:
    """Start (or join) Ray for the driver; True when this call started it."""
    for key, value in RAY_ENV.items():
        os.environ.setdefault(key, value)
    import ray

    if ray.is_initialized():
        return False
    kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "configure_logging": True,
                              "logging_level": "ERROR"}
    if address:
        ray.init(address=address, **kwargs)
    else:
        ray.init(num_cpus=num_cpus or os.cpu_count() or 1, num_gpus=num_gpus,
                 object_store_memory=OBJECT_STORE_BYTES, **kwargs)
    return True


def fit_resources(res: Resources, cluster: dict[str, float], say) -> Resources:
    """The local executor gives a trial what this Ray cluster can: a study written for a
    GPU node (cpus: 4, gpus: 0.25) still runs on a 2-core laptop, and says so."""
    cpus = res.cpus or 1.0
    gpus = res.gpus
    have_cpu, have_gpu = cluster.get("CPU", 1.0), cluster.get("GPU", 0.0)
    if cpus > have_cpu:
        say(f"resources.cpus {cpus:g} > the {have_cpu:g} CPUs of this Ray cluster: each trial gets {have_cpu:g}")
        cpus = have_cpu
    if gpus > 0 and have_gpu == 0:
        say(f"resources.gpus {gpus:g} but this Ray cluster has no GPU: trials run on the CPU")
        gpus = 0.0
    elif gpus > have_gpu:
        gpus = have_gpu
    return Resources(cpus=cpus, gpus=gpus, nodes=1, tasks_per_node=1, time_min=res.time_min, mem=res.mem,
                     threads=res.threads or max(1, int(math.floor(cpus))))


def param_space(study: Study, cells: list[Cell]) -> dict[str, Any]:
    from ray import tune

    space: dict[str, Any] = {"cell": tune.grid_search([
        {"index": c.index, "label": c.label, "spec": c.spec} for c in cells])}
    for p in study.search:
        space[p.field] = p.to_tune()
    return space


def search_seed(study: Study) -> int:
    """The random state of the study's search sampling: fixed by the study's name and
    search space, so a rerun or --resume samples the same configurations (same run_ids)."""
    text = "\n".join([study.name, *(f"{p.field} {p.kind} {list(p.args)!r}" for p in study.search),
                      str(study.num_samples)])
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big")


def check_out_dir(out_dir: Path, where: str) -> None:
    """Refuse, before anything starts or is written, an output folder that is a file,
    lies under a file, or cannot be written (a missing one must be creatable)."""
    probe = out_dir
    while not (probe.exists() or probe.is_symlink()) and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        what = "is a file" if probe.is_file() else "is not a folder"
        raise MedaugError(f"{where} {out_dir}: {probe if probe != out_dir else 'it'} {what}; expected a folder")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise MedaugError(f"{where} {out_dir}: {probe} is not writable")
    if probe != out_dir:
        return
    for sub in ("results", "runs", "ray", "slurm", "generators"):
        path = out_dir / sub
        if (path.exists() or path.is_symlink()) and not path.is_dir():
            raise MedaugError(f"{where} {out_dir}: {path} is not a folder; the sweep writes its {sub} there")
        if path.is_dir() and not os.access(path, os.W_OK | os.X_OK):
            raise MedaugError(f"{where} {out_dir}: {path} is not writable")


def clear_experiment(path: Path, ray_dir: Path) -> None:
    """Remove Tune's bookkeeping of an earlier run unread (a link is unlinked, never followed).
    Only a folder strictly inside OUT/ray is ever removed, whatever the study's name spells."""
    if path.parent.resolve() != ray_dir.resolve() or path.name in ("", ".", ".."):
        raise MedaugError(f"{path}: the Ray experiment folder must lie directly in {ray_dir}")
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)


def check_existing_rows(out_dir: Path) -> None:
    """Refuse a results folder holding files that are not valid result rows, in the words
    `results tables`, `results query` and `report` use: a row the sweep cannot read would
    otherwise be trained again and replaced without a word."""
    folder = out_dir / "results"
    if folder.is_dir() and any(folder.glob("*.parquet")):
        from medaug.analysis.load import read_result_rows

        read_result_rows([folder])


def run_study(study: Study | str | Path, executor: str = "local", out: str | Path | None = None, *,
              site: SiteProfile | str | Path | None = None, resume: bool = False, max_concurrent: int | None = None,
              data_root: str | Path | None = None, device: str | None = None, verify_md5: bool = True,
              ray_address: str | None = None, num_cpus: int | None = None, poll_s: float | None = None,
              progress: bool = True, stream: IO[str] | None = None, make_synthetic: bool = False,
              calibration: str | Path | None = None) -> StudyOutcome:
    """Run (or resume) every runnable trial of a study and return its rows.

    `out` defaults to the study's `results` folder relative to the working directory.
    Trials that raise are retried up to the study's `max_failures`, then recorded as
    `failed` rows; the study goes on. Cells waiting for a synthetic set are skipped
    (listed in the outcome); with `make_synthetic` their generators are fitted and the
    sets written first (`medaug.sweep.synthetic_stage`). Ctrl-C stops the trials (cancelling their SLURM jobs)
    and raises KeyboardInterrupt after the partial rows are written.
    """
    stream = stream or sys.stderr
    say = (lambda text: print(f"[{study_name}] {text}", file=stream, flush=True)) if progress else (lambda _t: None)
    if isinstance(study, (str, Path)):
        study = load_study(study)
    study_name = study.name
    if getattr(study, "kind", "classifier") == "generator":  # trials are generator fits + evaluations
        from medaug.sweep.generator_study import run_generator_study

        return run_generator_study(study, executor, out, site=site if site is None or isinstance(site, SiteProfile)
                                   else load_site(site), resume=resume, max_concurrent=max_concurrent,
                                   data_root=data_root, device=device, verify_md5=verify_md5,
                                   ray_address=ray_address, num_cpus=num_cpus, poll_s=poll_s, progress=progress,
                                   stream=stream, calibration=calibration)
    if executor not in EXECUTORS:
        raise MedaugError(f"--executor {executor!r}: expected one of {EXECUTORS}")
    site_profile = site if isinstance(site, SiteProfile) or site is None else load_site(site)
    if executor == "slurm" and site_profile is None:
        site_profile = SiteProfile(name="default")
    if executor == "local" and study.resources.tasks > 1:
        raise MedaugError(f"{study.source}: resources: {study.resources.nodes} node(s) x "
                          f"{study.resources.tasks_per_node} task(s) needs --executor slurm "
                          "(the local executor runs one process per trial)")
    if executor == "slurm" and shutil.which("sbatch") is None:
        raise MedaugError("--executor slurm: sbatch not found on PATH (is this a SLURM login node?)")
    out_dir = Path(out if out is not None else study.results).expanduser().absolute()
    check_out_dir(out_dir, "--out" if out is not None else f"{study.source}: results:")
    out_dir = out_dir.resolve()
    check_existing_rows(out_dir)
    if data_root is not None:
        data_root = Path(data_root).expanduser().resolve()
        if not data_root.is_dir():
            raise MedaugError(f"--data-root {data_root}: no such folder")
    job_root = None
    if executor == "slurm":
        # submitit's job folders (pickles a job loads) go to a private root, checked before
        # anything is submitted; job records in OUT naming another folder are not followed
        from medaug.sweep.slurm import check_job_records, check_job_root

        assert site_profile is not None
        job_root = check_job_root(site_profile)
        check_job_records(out_dir, job_root, say)
    from medaug.sweep.estimate import record_estimate

    # OUT/estimate.json: what `medaug report` sets against each trial's wall_seconds (estimate.py)
    record_estimate(study, executor, out_dir, say, site=site_profile, max_concurrent=max_concurrent, device=device,
                    calibration=calibration, data_root=data_root, verify_md5=verify_md5,
                    with_fits=make_synthetic)
    stage = None
    if make_synthetic and study.waiting_cells():
        from medaug.sweep.synthetic_stage import make_synthetic_sets

        assert site_profile is not None or executor == "local"
        stage = make_synthetic_sets(study, executor, out_dir, say, site=site_profile, data_root=data_root,
                                    verify_md5=verify_md5, device=device, max_concurrent=max_concurrent,
                                    poll_s=poll_s or (site_profile.poll_s if site_profile is not None else 2.0))
    cells = study.runnable_cells()
    waiting = study.waiting_cells()
    for cell in waiting:
        say(f"skipping cell {cell.index:03d} ({cell.label}): waits for synthetic set {cell.missing_synthetic()}")
    total = len(cells) * study.trials_per_cell
    experiment_path = out_dir / "ray" / study.name
    t0 = time.perf_counter()
    if not cells:
        say("no runnable cells")
        outcome = _outcome(study, executor, out_dir, experiment_path, [], waiting, t0, 0, 0, 0, False)
        _add_stage(outcome, stage)
        return outcome

    started_ray = ray_init(ray_address, num_cpus=num_cpus)
    try:
        import ray
        from ray import tune

        from medaug.sweep.progress import ProgressDisplay

        if executor == "local":
            res = fit_resources(study.resources, ray.cluster_resources(), say)
            opts = RunOptions(out=str(out_dir), study=study.name, data_root=str(data_root) if data_root else None,
                              device=device, verify_md5=verify_md5, threads=res.torch_threads)
            from medaug.sweep.local import local_trainable

            trainable = tune.with_resources(tune.with_parameters(local_trainable, options=opts.to_dict()),
                                            {"cpu": res.cpus or 1.0, "gpu": res.gpus})
            concurrency = max_concurrent
        else:
            assert site_profile is not None
            res = study.resources
            opts = RunOptions(out=str(out_dir), study=study.name, data_root=str(data_root) if data_root else None,
                              device=device, verify_md5=verify_md5,
                              threads=res.threads or int(math.ceil(res.cpus or site_profile.cpus_per_task or 1)))
            from medaug.sweep.slurm import make_trainable

            trainable = tune.with_resources(
                make_trainable(site_profile, res, opts.to_dict(), poll_s or site_profile.poll_s, job_root),
                {"cpu": SLURM_TRIAL_CPU})
            concurrency = max_concurrent or min(total, DEFAULT_SLURM_CONCURRENCY)

        display = ProgressDisplay(study.name, total, study.metric, study.mode, stream) if progress else None
        watch = make_watch()
        callbacks = [watch] + ([display] if display is not None else [])
        run_config = tune.RunConfig(storage_path=str(out_dir / "ray"), name=study.name, verbose=0,
                                    failure_config=tune.FailureConfig(max_failures=study.max_failures),
                                    callbacks=callbacks)
        from ray.tune.search.basic_variant import BasicVariantGenerator

        if resume:
            say(f"resuming the study from its rows in {out_dir}: finished trials are replayed, not trained; "
                "the others run (interrupted runs continue from their state.pt, running SLURM jobs are "
                "re-attached)")
        # Tune's bookkeeping of an earlier run is never read (it holds pickles): the study
        # file and the rows are the state (see the module docstring)
        clear_experiment(experiment_path, out_dir / "ray")
        out_dir.mkdir(parents=True, exist_ok=True)
        tuner = tune.Tuner(
            trainable,
            param_space=param_space(study, cells),
            tune_config=tune.TuneConfig(
                scheduler=study.scheduler.to_tune(study.max_epochs), num_samples=study.num_samples,
                search_alg=BasicVariantGenerator(max_concurrent=concurrency or 0, random_state=search_seed(study)),
                reuse_actors=executor == "local", trial_dirname_creator=_trial_dirname),
            run_config=run_config,
        )
        say(f"{total} trials on the {executor} executor -> {out_dir}")
        interrupted = False
        try:
            grid = tuner.fit()
        except KeyboardInterrupt:
            interrupted = True
            grid = None
        except BaseException:
            if executor == "slurm":
                _cancel_leftovers(out_dir, say)
            raise
        interrupted = interrupted or watch.interrupted or grid is None
        if executor == "slurm" and interrupted:
            _cancel_leftovers(out_dir, say)  # before the outcomes, which wait for jobs to settle
        finished, failed, stopped, run_ids = _record_outcomes(grid, opts, study, executor, interrupted,
                                                              watch.failures)
        if executor == "slurm":
            _cancel_leftovers(out_dir, say)
        outcome = _outcome(study, executor, out_dir, experiment_path, run_ids, waiting, t0, finished, failed,
                           stopped, interrupted)
        outcome.last_results = [dict(r.metrics or {}) for r in grid] if grid is not None else []
        _add_stage(outcome, stage)
        if interrupted:
            say(f"interrupted: {finished} finished, {failed} failed; resume with --resume")
            raise KeyboardInterrupt
        say(f"{finished} finished, {failed} failed, {stopped} stopped in {outcome.wall_seconds:.1f} s; rows in "
            f"{outcome.results_dir}, Ray experiment in {experiment_path}")
        return outcome
    finally:
        if started_ray:
            import ray

            ray.shutdown()


def _add_stage(outcome: StudyOutcome, stage: Any) -> None:
    if stage is not None:
        outcome.synthetic_made = list(stage.made)
        outcome.synthetic_failed = list(stage.failed)


def make_watch():
    """A Tune callback that counts each trial's failures and notices Ctrl-C.

    Tune's own SIGINT handler (installed when fit() starts) ends the run gracefully:
    it stops the trials' actors (an interrupted run keeps its state.pt, which --resume
    continues from). fit() then returns normally; this callback chains onto that
    handler in setup() so the driver knows it was interrupted.
    """
    import signal
    import threading

    from ray.tune import Callback

    class SweepWatch(Callback):
        def __init__(self) -> None:
            self.failures: dict[str, int] = {}
            self.interrupted = False

        def setup(self, **info: Any) -> None:
            if threading.current_thread() is not threading.main_thread():
                return
            tune_handler = signal.getsignal(signal.SIGINT)

            def on_sigint(signum: int, frame: Any) -> None:
                self.interrupted = True
                if callable(tune_handler):
                    tune_handler(signum, frame)
                else:
                    raise KeyboardInterrupt

            signal.signal(signal.SIGINT, on_sigint)

        def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            self.failures[trial.trial_id] = self.failures.get(trial.trial_id, 0) + 1

        def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            self.failures[trial.trial_id] = self.failures.get(trial.trial_id, 0) + 1

    return SweepWatch()


def _trial_dirname(trial: Any) -> str:
    index = ((trial.config or {}).get("cell") or {}).get("index")
    return f"t{index:03d}_{trial.trial_id}" if isinstance(index, int) else trial.trial_id


def _record_outcomes(grid: Any, opts: RunOptions, study: Study, executor: str, interrupted: bool,
                     failures: dict[str, int]) -> tuple[int, int, int, list[str]]:
    """Write `failed` rows (error after retries) and `stopped` rows (ASHA) for trials
    without a finished row; count outcomes. After an interruption, trials without an
    error are left alone (they may be unfinished, not stopped): --resume decides."""
    from medaug.sweep.local import trial_spec

    finished = failed = stopped = 0
    run_ids: list[str] = []
    if grid is None:
        return finished, failed, stopped, run_ids
    for result in grid:
        if not result.config or "cell" not in result.config:
            continue
        spec = trial_spec(result.config)
        run_ids.append(spec.run_id)
        if finished_row(opts, spec) is not None:
            finished += 1
            continue
        metrics = result.metrics or {}
        trial_id = metrics.get("trial_id") or _trial_id_from_path(result.path)

        def context() -> dict[str, Any]:  # only for a row written: it waits for the job's final state
            return {"executor": executor, "study": study.name, "trial_id": trial_id,
                    **_slurm_context(opts, spec.run_id)}

        if result.error is not None:
            n = failures.get(str(trial_id), 0)
            attempts = f"failed after {n} attempts: " if n else ""
            write_outcome_row(opts, spec, "failed", error=attempts + _error_text(result.error), context=context())
            failed += 1
        elif metrics and not interrupted:
            write_outcome_row(opts, spec, "stopped", context=context())
            stopped += 1
    return finished, failed, stopped, run_ids


def _trial_id_from_path(path: str | None) -> str | None:
    if not path:
        return None
    name = Path(path).name
    return name.split("_", 1)[1] if "_" in name else name


def _slurm_context(opts: RunOptions, run_id: str, settle_s: float = 60.0) -> dict[str, Any]:
    """The job of a trial that did not finish, in its final state: a job cancelled a
    moment ago is COMPLETING for a few seconds (SLURM's KillWait) before CANCELLED."""
    from medaug.sweep.slurm import JobRecord, is_active, job_status, record_path

    rec = JobRecord.read(record_path(opts.out, run_id))
    if rec is None:
        return {}
    deadline = time.monotonic() + settle_s
    state, _, nodes = job_status(rec.job_id)
    while is_active(state) and time.monotonic() < deadline:
        time.sleep(0.5)
        state, _, nodes = job_status(rec.job_id)
    return {"slurm_job_id": rec.job_id, "slurm_state": state, "slurm_nodes": nodes}


def _error_text(error: BaseException) -> str:
    cause = getattr(error, "cause", None) or error
    text = f"{type(cause).__name__}: {cause}".strip()
    lines = [ln for ln in text.splitlines() if ln.strip()]
    # Ray's wrapped tracebacks end with the original "Type: message" line
    return (lines[-1] if len(lines) > 1 and ":" in lines[-1] else " ".join(lines))[:2000]


def _cancel_leftovers(out_dir: Path, say) -> None:
    """Cancel jobs of this sweep still queued or running (after an interruption)."""
    from medaug.sweep.slurm import active_records, cancel_job

    for path, rec in active_records(out_dir):
        say(f"cancelling SLURM job {rec.job_id} ({path.parent.name})")
        cancel_job(rec.job_id)


def _outcome(study: Study, executor: str, out_dir: Path, experiment_path: Path, run_ids: list[str],
             waiting: list[Cell], t0: float, finished: int, failed: int, stopped: int,
             interrupted: bool) -> StudyOutcome:
    rows = None
    files = [out_dir / "results" / f"{rid}.parquet" for rid in dict.fromkeys(run_ids)]
    files = [f for f in files if f.is_file()]
    if files:
        import pandas as pd

        from medaug.store.results import SCHEMA

        rows = pd.read_parquet(files, schema=SCHEMA) if len(files) > 1 else pd.read_parquet(files[0])
    return StudyOutcome(study=study, executor=executor, out=out_dir, experiment_path=experiment_path, rows=rows,
                        trials=len(run_ids), finished=finished, failed=failed, stopped=stopped, waiting=waiting,
                        wall_seconds=time.perf_counter() - t0, interrupted=interrupted)
