"""`medaug sweep --make-synthetic`: fit the generators a study's waiting cells need and
write their synthetic sets, before the classifier trials run.

A cell whose `synthetic:` is a request (`{generator, strategy, ...}`) waits for the set
its request resolved to through `synthetic.pattern`. This stage collects those sets
and groups them by what one generator fit serves: (dataset, size, data_options,
generator). Each fit then writes every group (strategy) the study asks of it. For
seed 000's study (sweeps/leroux2021.yaml) that is 8 data sets x {cvae, jvae, cgan} =
24 fits, each writing one set.

One fit (`run_fit_job`):
  1. loads the real splits exactly as the classifier trials will (`load_splits` with
     the cell's data set, size, data_options and the sweep's --data-root), so the
     train-split hash in the checkpoint is the one `mix_into_train` checks;
  2. fits `GENERATORS[name]` with the study's `generators.<name>` settings (its config
     `seed` is the generator seed, default 0) into
     OUT/generators/<dataset>_<size>[-<options hash>]/<generator>/, checkpointing every
     epoch; a checkpoint already there is resumed (`fit(..., resume=True)`), so a
     killed sweep rerun with --make-synthetic continues the fit, and a finished one
     is not trained again;
  3. writes each missing set with `medaug.generators.synthesize.synthesize` (seed:
     the study's `synthetic.seed`, default 0); a set that exists is never remade;
  4. evaluates the checkpoint with `generator eval` (the study's `eval:` options; `eval:
     false` skips it) into OUT/generator-eval/, so the study's report draws the
     fidelity-vs-utility figure with no separate step; an evaluation that exists is not
     redone, and one that fails is reported without failing the fit.
It writes `fit-result.json` (ok, or the one-line error) into its folder.

Where fits run: on the local executor, each in a plain subprocess of the driver
(`python -m medaug.sweep.synthetic_stage JOB.json`), filling the machine: as many fits
at once as there are cores (or --max-concurrent), the cores shared out as threads
(`local_layout`; one fit alone gets every core). Not Ray: the fits come before Tune starts and
need none of its bookkeeping; a subprocess keeps a crashing or out-of-memory fit away
from the driver, its log goes to a file beside the checkpoint, and Ctrl-C reaches it.
(With --ray-address the fits therefore run on the driver's machine.) On the slurm
executor each fit is one submitit job on the site profile with the study's
`resources` (one node, one task), requeue-safe like the trials (a submitit
`Checkpointable`: a requeued job resumes from the last epoch); the driver waits for
all of them. A job still running from an earlier, killed driver is re-attached, not
submitted twice. submitit's pickles and logs of a fit job go to the private job root
(`ROOT/<sha(OUT)>/fit-<key>/sub-<ns>`, see medaug.sweep.slurm), never into OUT: a job
unpickles what its folder holds. The fit's job record `slurm/job.json` stays beside
the checkpoint; one naming another folder while its job runs is refused.

While fits run, the sweep log shows each one's progress once per epoch (epoch / total,
seconds per epoch, ETA), read from the losses_epochs.csv the fit rewrites atomically
after every epoch (`FitProgress`; the same on both executors).

A fit that fails is reported in one line; its cells keep waiting, the rest of the
study goes on.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import submitit

from medaug.errors import MedaugError
from medaug.store.atomic import atomic_write_text
from medaug.sweep.study import Cell, Resources, Study

FITS_DIR = "generators"
JOB_FILE = "fit-job.json"
RESULT_FILE = "fit-result.json"
LOG_FILE = "fit.log"
RECORD_FILE = "job.json"


# ----------------------------------------------------------------------------- plan

@dataclass(frozen=True)
class SetToMake:
    """One synthetic set (store + group) and the strategy that makes it."""

    ref: str
    store: str
    group: str
    strategy: dict[str, Any]  # Strategy(**strategy)
    cells: tuple[int, ...] = ()
    filter: dict[str, Any] | None = None  # FilterSpec.from_dict(filter): the request's sample filter


@dataclass(frozen=True)
class FitJob:
    """One generator fit and the sets it writes (plain data: it travels as JSON or to a SLURM job)."""

    dataset: str
    size: int
    data_options: dict[str, Any]
    generator: str
    config: dict[str, Any]
    fit_dir: str
    sets: tuple[SetToMake, ...]
    synthesize_seed: int = 0
    data_root: str | None = None
    verify_md5: bool = True
    device: str | None = None
    threads: int = 1
    eval_options: dict[str, Any] | None = None  # None: not evaluated
    eval_out: str | None = None  # the study's OUT (rows in OUT/generator-eval/)
    study: str = ""

    @property
    def key(self) -> str:
        return f"{Path(self.fit_dir).parent.name}/{self.generator}"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["sets"] = [asdict(s) for s in self.sets]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FitJob:
        sets = tuple(SetToMake(**{**s, "cells": tuple(s.get("cells", ()))}) for s in d["sets"])
        return cls(**{**d, "sets": sets})


@dataclass
class Plan:
    """What --make-synthetic would do: fits to run, and waiting cells it cannot serve (with why)."""

    fits: list[FitJob] = field(default_factory=list)
    unmakeable: list[tuple[Cell, str]] = field(default_factory=list)


def fit_folder(out_dir: Path, dataset: str, size: int, data_options: dict[str, Any], generator: str) -> Path:
    """OUT/generators/<dataset>_<size>/<generator>; data options add a short hash of themselves
    (a COVID set with another test size is another train split, hence another fit)."""
    name = f"{dataset}_{size}"
    if data_options:
        digest = hashlib.sha256(json.dumps(data_options, sort_keys=True).encode()).hexdigest()[:8]
        name += f"-{digest}"
    return out_dir / FITS_DIR / name / generator


def plan_fits(study: Study, out_dir: str | Path, *, data_root: str | Path | None = None, verify_md5: bool = True,
              device: str | None = None, threads: int = 1) -> Plan:
    """Group the study's missing synthetic sets by the generator fit that makes them."""
    from medaug.generators import GENERATORS
    from medaug.generators.data import check_fit_size

    out_dir = Path(out_dir)
    plan = Plan()
    jobs: dict[tuple[str, int, str, str], dict[str, Any]] = {}
    for cell in study.waiting_cells():
        ref = cell.missing_synthetic()
        req = cell.request
        if req is None:
            why = (f"{ref} is named as a store path, not a request {{generator, strategy, ...}}: "
                   "--make-synthetic cannot tell which generator makes it")
            plan.unmakeable.append((cell, why))
            continue
        dataset, size = cell.spec["dataset"], int(cell.spec.get("size", 28))
        options = dict(cell.spec.get("data_options") or {})
        try:
            GENERATORS.get(req.generator)
            check_fit_size(req.generator, dataset, size, flag="size")
            strategy = req.make_strategy(dataset)
        except MedaugError as exc:
            plan.unmakeable.append((cell, str(exc)))
            continue
        key = (dataset, size, json.dumps(options, sort_keys=True), req.generator)
        entry = jobs.setdefault(key, {"options": options, "sets": {}})
        store, _, group = str(ref).partition("#")
        prior = entry["sets"].get(ref)
        cells = (prior.cells if prior else ()) + (cell.index,)
        entry["sets"][ref] = SetToMake(ref=str(ref), store=store, group=group, cells=cells, strategy={
            "name": strategy.name, "fraction": strategy.fraction, "classes": list(strategy.classes),
            "count": strategy.count, "synthetic_per_real": strategy.synthetic_per_real},
            filter=req.filter.to_dict() if req.filter is not None else None)
    for (dataset, size, _, generator), entry in jobs.items():
        config = {"seed": 0, **dict(study.generators.get(generator, {}))}
        plan.fits.append(FitJob(
            dataset=dataset, size=size, data_options=entry["options"], generator=generator, config=config,
            fit_dir=str(fit_folder(out_dir, dataset, size, entry["options"], generator)),
            sets=tuple(entry["sets"].values()), synthesize_seed=study.synthesize_seed,
            data_root=str(data_root) if data_root is not None else None, verify_md5=verify_md5, device=device,
            threads=threads, study=study.name, eval_out=str(out_dir),
            eval_options=dict(study.eval_options) if study.eval_options is not None else None))
    return plan


def describe_fit(job: FitJob) -> str:
    """One line for --dry-run and progress: what is fitted where, and the sets it writes."""
    from medaug.generators import GENERATORS

    try:
        cfg = GENERATORS.get(job.generator).make_config(job.config).to_dict()
        settings = f"epochs {cfg['epochs']}, batch {cfg['batch_size']}, seed {cfg['seed']}"
    except MedaugError as exc:
        settings = str(exc)
    opts = f" {json.dumps(job.data_options, sort_keys=True)}" if job.data_options else ""
    resume = " (resumes its checkpoint)" if (Path(job.fit_dir) / "checkpoint" / "generator.json").is_file() else ""
    groups = ", ".join(s.ref for s in job.sets)
    return (f"fit {job.generator} on {job.dataset} {job.size} px{opts} ({settings}) -> {job.fit_dir}{resume}; "
            f"writes {groups} (synthesize seed {job.synthesize_seed})")


# ----------------------------------------------------------------------------- one fit (in the worker)

def run_fit_job(job: FitJob | dict[str, Any]) -> dict[str, Any]:
    """Fit (or resume) one generator and write its missing sets; the result as a dict.

    Raises MedaugError/any error of the fit; `fit_main` turns that into fit-result.json.
    """
    from medaug.generators import GENERATORS
    from medaug.generators.base import CHECKPOINT_DIR, META_FILE
    from medaug.generators.data import checked_data_options, load_splits
    from medaug.generators.filters import FilterSpec
    from medaug.generators.strategies import Strategy
    from medaug.generators.synthesize import synthesize
    from medaug.sweep.trial import set_threads

    job = job if isinstance(job, FitJob) else FitJob.from_dict(job)
    set_threads(max(1, job.threads))
    fit_dir = Path(job.fit_dir)
    fit_dir.mkdir(parents=True, exist_ok=True)
    cls = GENERATORS.get(job.generator)
    config = cls.make_config(job.config)
    options = checked_data_options(job.dataset, job.data_options)
    splits = load_splits(job.dataset, job.size, job.data_root, verify_md5=job.verify_md5, options=options)
    ckpt = fit_dir / CHECKPOINT_DIR
    resume = (ckpt / META_FILE).is_file()
    gen = cls(splits.train.channels, splits.train.size, splits.train.num_classes, config,
              device=job.device or "auto")
    provenance: dict[str, Any] = {"version": splits.version, "md5": splits.md5}
    if options:
        provenance["data_options"] = options
    t0 = time.perf_counter()
    # not quiet: one status line per epoch into fit.log (the sweep log reads losses_epochs.csv)
    ckpt = gen.fit(splits.train, fit_dir, val=splits.val, resume=resume, quiet=False, provenance=provenance)
    made, kept = [], []
    for s in job.sets:
        if set_exists(s.store, s.group):
            kept.append(s.ref)
            continue
        st = dict(s.strategy)
        strategy = Strategy(name=st["name"], fraction=st.get("fraction"), classes=tuple(st.get("classes") or ()),
                            count=st.get("count"), synthetic_per_real=st.get("synthetic_per_real"))
        Path(s.store).parent.mkdir(parents=True, exist_ok=True)
        # a filter's classifier is trained once per data set into OUT/generator-eval/reference/ (OUT: the
        # study's output folder, fit_dir.parents[2] by fit_folder), shared with the study's generator evaluations
        result = synthesize(ckpt, strategy, job.synthesize_seed, s.store, group=s.group, splits=splits,
                            device=job.device or "auto", verify_md5=job.verify_md5,
                            sample_filter=FilterSpec.from_dict(s.filter) if s.filter else None,
                            classifier_cache=job.eval_out or fit_dir.parents[2])
        made.append(result.ref)
    evaluated, eval_error = evaluate_fit(job, ckpt, splits, gen)
    return {"ok": True, "checkpoint": str(ckpt), "resumed": resume, "epochs": gen.epoch, "made": made,
            "kept": kept, "seconds": round(time.perf_counter() - t0, 2), "evaluated": evaluated,
            "eval_error": eval_error}


def evaluate_fit(job: FitJob, ckpt: Path, splits: Any, gen: Any) -> tuple[str | None, str | None]:
    """`generator eval` of a fitted checkpoint into the study's OUT/generator-eval/:
    (eval_id, None), (None, None) when switched off or already there, or (None, one-line error)."""
    if job.eval_options is None or not job.eval_out:
        return None, None
    from medaug.generators.evaluate import evaluate_generator
    from medaug.sweep.generator_study import make_eval_options

    extra = {"study": job.study, "status": "finished", "fit_epochs": int(gen.epoch),
             "generator_config": json.dumps(gen.config.to_dict(), sort_keys=True)}
    try:
        options = make_eval_options(job.eval_options, device=job.device or "auto", overwrite=False)
        row = evaluate_generator(ckpt, job.eval_out, options, splits=splits, verify_md5=job.verify_md5,
                                 extra_columns=extra)
    except MedaugError as exc:
        if "this evaluation exists" in str(exc):
            return None, None
        return None, one_line(exc)
    except Exception as exc:  # noqa: BLE001 - the sets are made: an evaluation failure is reported, not fatal
        return None, one_line(exc)
    return str(row["eval_id"]), None


def set_exists(store: str | Path, group: str) -> bool:
    """A group folder of the store exists (complete or not: an incomplete one is not
    overwritten here; reading it refuses it with its own message)."""
    return (Path(store) / group).exists()


PARENT_ENV = "MEDAUG_FIT_PARENT_PID"


def _die_with_parent() -> None:
    """A local fit's subprocess ends when its driver is gone (kill -9 included): a rerun
    must not find an orphan still writing the same checkpoint. Checkpoints are atomic,
    so stopping anywhere is safe; the rerun resumes from the last epoch."""
    import threading

    parent = int(os.environ.get(PARENT_ENV, "0") or 0)
    if not parent:
        return

    def watch() -> None:
        while True:
            if os.getppid() != parent:
                os._exit(1)
            time.sleep(1.0)

    threading.Thread(target=watch, daemon=True, name="die-with-parent").start()


def fit_main(job_file: str | Path) -> int:
    """Run the fit described by JOB.json; write fit-result.json beside it (never raises)."""
    _die_with_parent()
    job_file = Path(job_file)
    job = FitJob.from_dict(json.loads(job_file.read_text()))
    try:
        result = run_fit_job(job)
    except BaseException as exc:  # noqa: BLE001 - recorded for the driver, which reports it in one line
        result = {"ok": False, "error": one_line(exc)}
    atomic_write_text(Path(job.fit_dir) / RESULT_FILE, json.dumps(result, indent=2) + "\n")
    return 0 if result["ok"] else 1


def one_line(exc: BaseException) -> str:
    text = " ".join(f"{type(exc).__name__}: {exc}".split()) if not isinstance(exc, MedaugError) else \
        " ".join(str(exc).split())
    return text[:500] or type(exc).__name__


class SlurmFit(submitit.helpers.Checkpointable):
    """One fit as a requeue-safe SLURM job: on preemption/timeout submitit requeues the
    same object and the fit resumes from its last epoch checkpoint."""

    def __init__(self, job_file: str) -> None:
        self.job_file = job_file

    def __call__(self) -> int:
        return fit_main(self.job_file)


# ----------------------------------------------------------------------------- driver side

@dataclass
class StageOutcome:
    made: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (fit key, error)
    evaluated: list[str] = field(default_factory=list)  # eval ids written to OUT/generator-eval/
    eval_failed: list[tuple[str, str]] = field(default_factory=list)  # (fit key, error)


def make_synthetic_sets(study: Study, executor: str, out_dir: Path, say, *, site: Any = None,
                        data_root: str | Path | None = None, verify_md5: bool = True, device: str | None = None,
                        max_concurrent: int | None = None, poll_s: float = 2.0) -> StageOutcome:
    """Run every fit the study's waiting cells need on `executor`; report each in one line."""
    threads = _threads(study.resources, executor, site)
    plan = plan_fits(study, out_dir, data_root=data_root, verify_md5=verify_md5, device=device, threads=threads)
    concurrent = 1
    if executor != "slurm" and plan.fits:
        concurrent, threads = local_layout(len(plan.fits), max_concurrent, study.resources.threads)
        plan.fits = [dataclasses.replace(job, threads=threads) for job in plan.fits]
    outcome = StageOutcome()
    for cell, why in plan.unmakeable:
        say(f"cannot make the synthetic set of cell {cell.index:03d} ({cell.label}): {why}")
    if not plan.fits:
        return outcome
    layout = f", {concurrent} at once with {threads} thread(s) each" if executor != "slurm" else ""
    say(f"--make-synthetic: {len(plan.fits)} generator fit(s) on the {executor} executor{layout}")
    for job in plan.fits:
        say(f"  {describe_fit(job)}")
        folder = Path(job.fit_dir)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / RESULT_FILE).unlink(missing_ok=True)
        atomic_write_text(folder / JOB_FILE, json.dumps(job.to_dict(), indent=2) + "\n")
    t0 = time.perf_counter()
    progress = FitProgress(plan.fits, say)
    if executor == "slurm":
        _run_slurm(study, plan.fits, site, out_dir, data_root, poll_s, progress)
    else:
        _run_local(plan.fits, concurrent, threads, progress)
    progress.poll()
    for job in plan.fits:
        result = _read_result(Path(job.fit_dir))
        if result.get("ok"):
            outcome.made.extend(result.get("made", []))
            say(f"made {', '.join(result.get('made') or ['nothing new'])} with {job.key} "
                f"({result.get('epochs')} epochs{', resumed' if result.get('resumed') else ''}, "
                f"{result.get('seconds', 0):.1f} s)")
            if result.get("evaluated"):
                outcome.evaluated.append(result["evaluated"])
                say(f"evaluated {job.key}: {Path(job.eval_out or '') / 'generator-eval' / result['evaluated']}.parquet")
            elif result.get("eval_error"):
                outcome.eval_failed.append((job.key, result["eval_error"]))
                say(f"generator eval of {job.key} failed: {result['eval_error']} (its sets are made)")
        else:
            error = result.get("error", "no result")
            outcome.failed.append((job.key, error))
            say(f"generator fit {job.key} failed: {error} (its cells keep waiting; log in {job.fit_dir})")
    say(f"--make-synthetic: {len(outcome.made)} set(s) made, {len(outcome.failed)} fit(s) failed in "
        f"{time.perf_counter() - t0:.1f} s")
    return outcome


def _threads(res: Resources, executor: str, site: Any) -> int:
    if executor == "slurm":
        return res.threads or max(1, int(res.cpus or getattr(site, "cpus_per_task", None) or 1))
    return max(1, min(res.threads or int(res.cpus or 1), os.cpu_count() or 1))


def local_layout(fits: int, max_concurrent: int | None, threads: int | None = None,
                 cores: int | None = None) -> tuple[int, int]:
    """(fits at once, threads per fit) for the local executor: fill the machine.

    As many fits at once as there are cores (at most --max-concurrent, at most the number
    of fits), the cores shared out among them: one fit alone gets every core. Several
    single-thread processes beat one process with every thread for these small networks:
    on a 2-core machine (shared, load average 4-5), two CVAE fits on 600 28-px images
    took 128.6 s two at once with one thread each against 338.1 s one after another with
    two threads (4 epochs each; 40.1 s against 231.3 s for 2 epochs, run in the other order).
    `resources.threads`, when the study sets it, fixes the threads per fit.
    """
    cores = max(1, cores or os.cpu_count() or 1)
    concurrent = max(1, min(fits, max_concurrent or max(1, cores // (threads or 1))))
    per_fit = threads or max(1, cores // concurrent)
    return concurrent, per_fit


class FitProgress:
    """One log line per finished epoch of each running fit: epoch / total, s/epoch, ETA.

    Reads `losses_epochs.csv` in each fit folder (rewritten atomically after every
    epoch by the fit, wherever it runs: a local subprocess or a SLURM job)."""

    def __init__(self, jobs: list[FitJob], say, min_interval_s: float = 1.0) -> None:
        from medaug.generators import GENERATORS

        self.say = say
        self.min_interval_s = min_interval_s
        self._last_poll = 0.0
        self.fits: list[dict[str, Any]] = []
        for job in jobs:
            try:
                total = int(GENERATORS.get(job.generator).make_config(job.config).epochs)
            except (MedaugError, AttributeError, TypeError, ValueError):
                total = 0
            fit = {"job": job, "total": total, "seen": 0, "mtime": None}
            rows = self._read(fit)  # epochs of an earlier, interrupted run are not news
            fit["seen"] = int(rows[-1]["epoch"]) if rows else 0
            self.fits.append(fit)

    def poll(self, force: bool = True) -> None:
        now = time.monotonic()
        if not force and now - self._last_poll < self.min_interval_s:
            return
        self._last_poll = now
        for fit in self.fits:
            self._check(fit)

    @staticmethod
    def _read(fit: dict[str, Any]) -> list[dict[str, str]]:
        """The epoch rows of a fit's losses_epochs.csv when it changed since the last read."""
        from medaug.generators.training import EPOCHS_FILE

        path = Path(fit["job"].fit_dir) / EPOCHS_FILE
        try:
            mtime = path.stat().st_mtime_ns
            if mtime == fit["mtime"]:
                return []
            with open(path, newline="") as f:
                rows = list(csv.DictReader(f))
        except (OSError, csv.Error):
            return []
        fit["mtime"] = mtime
        return [r for r in rows if (r.get("epoch") or "").isdigit()]

    def _check(self, fit: dict[str, Any]) -> None:
        epochs = self._read(fit)
        if not epochs:
            return
        last = int(epochs[-1]["epoch"])
        if last <= fit["seen"]:
            fit["seen"] = min(fit["seen"], last)
            return
        total = fit["total"]
        for i, row in enumerate(epochs):  # one line per epoch, even when several ended since the last look
            epoch = int(row["epoch"])
            if epoch <= fit["seen"]:
                continue
            seconds = [float(r["seconds"]) for r in epochs[max(0, i - 4):i + 1] if _is_number(r.get("seconds"))]
            per_epoch = sum(seconds) / len(seconds) if seconds else None
            eta = ""
            if per_epoch is not None:
                eta = f", {per_epoch:.1f} s/epoch"
                if total:
                    eta += f", ETA {_duration(per_epoch * max(total - epoch, 0))}"
            self.say(f"  fit {fit['job'].key}: epoch {epoch}/{total or '?'}{eta}")
        fit["seen"] = last


def _is_number(text: Any) -> bool:
    try:
        float(text)
    except (TypeError, ValueError):
        return False
    return True


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def _read_result(folder: Path) -> dict[str, Any]:
    path = folder / RESULT_FILE
    if not path.is_file():
        return {"ok": False, "error": f"the fit ended without writing {RESULT_FILE}"}
    try:
        return json.loads(path.read_text())
    except ValueError:
        return {"ok": False, "error": f"{path}: unreadable"}


def _run_local(jobs: list[FitJob], max_concurrent: int, threads: int, progress: FitProgress | None = None) -> None:
    """Each fit in a subprocess (`python -m medaug.sweep.synthetic_stage JOB.json`), at most
    `max_concurrent` at once; Ctrl-C stops them (their checkpoints stay for a rerun)."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
           PARENT_ENV: str(os.getpid())}
    pending = list(jobs)
    running: list[tuple[subprocess.Popen, Any]] = []
    try:
        while pending or running:
            while pending and len(running) < max(1, max_concurrent):
                job = pending.pop(0)
                log = open(Path(job.fit_dir) / LOG_FILE, "ab")  # noqa: SIM115 - closed when the process ends
                proc = subprocess.Popen([sys.executable, "-m", "medaug.sweep.synthetic_stage",
                                         str(Path(job.fit_dir) / JOB_FILE)], stdout=log, stderr=subprocess.STDOUT,
                                        env=env)
                running.append((proc, log))
            time.sleep(0.2)
            if progress is not None:
                progress.poll(force=False)
            for item in list(running):
                if item[0].poll() is not None:
                    item[1].close()
                    running.remove(item)
    except BaseException:
        for proc, log in running:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
            log.close()
        raise


def _run_slurm(study: Study, jobs: list[FitJob], site: Any, out_dir: Path, data_root: str | Path | None,
               poll_s: float, progress: FitProgress | None = None) -> None:
    """One submitit job per fit (re-attached when one from an earlier driver still runs); wait for all."""
    from medaug.sweep.slurm import (
        JobRecord,
        cancel_job,
        check_job_root,
        is_active,
        job_name,
        job_status,
        make_executor,
        new_job_folder,
        trusted_record_folder,
        untrusted_record_error,
    )

    res = dataclasses.replace(study.resources, nodes=1, tasks_per_node=1)
    root = check_job_root(site)
    binds = tuple(dict.fromkeys(str(p) for p in (data_root, out_dir, study.synthetic_root, root) if p))
    def key_of(job: FitJob) -> str:
        return f"fit-{job.key.replace('/', '-')}"

    def running(job: FitJob) -> JobRecord | None:
        """The record of the fit's job if that job still runs (re-attached, not resubmitted)."""
        rec = JobRecord.read(Path(job.fit_dir) / "slurm" / RECORD_FILE)
        if rec is None:
            return None
        state, jname, _ = job_status(rec.job_id)
        return rec if is_active(state) and (jname is None or jname == rec.job_name) else None

    for job in jobs:  # before anything is submitted: a running job's record must name one of our folders
        rec = running(job)
        if rec is not None and trusted_record_folder(rec, root, out_dir, key_of(job)) is None:
            raise untrusted_record_error(Path(job.fit_dir) / "slurm" / RECORD_FILE, rec, root, out_dir, key_of(job))
    ids: list[str] = []
    try:
        for job in jobs:
            folder = Path(job.fit_dir)
            record = folder / "slurm" / RECORD_FILE
            key = key_of(job)
            name = job_name(study.name, key)
            rec = running(job)
            if rec is not None and trusted_record_folder(rec, root, out_dir, key) is not None:
                ids.append(rec.job_id)
                continue
            job_folder = new_job_folder(root, out_dir, key)
            executor = make_executor(job_folder, site, res, name, binds)
            submitted = executor.submit(SlurmFit(str(folder / JOB_FILE)))
            record.parent.mkdir(parents=True, exist_ok=True)
            JobRecord(job_id=str(submitted.job_id), folder=str(job_folder), job_name=name,
                      submitted_at=time.time()).write(record)
            ids.append(str(submitted.job_id))
        while True:
            active = [j for j in ids if is_active(job_status(j)[0])]
            if progress is not None:
                progress.poll()
            if not active:
                return
            time.sleep(poll_s)
    except BaseException:
        for j in ids:
            if is_active(job_status(j)[0]):
                cancel_job(j)
        raise


if __name__ == "__main__":  # python -m medaug.sweep.synthetic_stage JOB.json (a local fit's subprocess)
    sys.exit(fit_main(sys.argv[1]))
