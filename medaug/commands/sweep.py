"""`medaug sweep STUDY.yaml`: run a study with Ray Tune, locally or one SLURM job per trial.

    medaug sweep sweeps/quickstart.yaml --dry-run
    medaug sweep sweeps/quickstart.yaml --executor slurm --site localhost --out /shared/results/qs
    medaug sweep sweeps/quickstart.yaml --executor slurm --site localhost --out /shared/results/qs --resume
    medaug sweep sweeps/leroux2021.yaml --make-synthetic   # fit the generators, write the sets, then train

--dry-run checks every cell's inputs (data files and their md5, ImageNet weights of
`pretrained: true`, synthetic sets or, with --make-synthetic, the fits that make them),
lists what each cell lacks, and exits 2 when a cell that would run cannot.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import IO

from medaug.errors import MedaugError
from medaug.sweep.driver import EXECUTORS, StudyOutcome, run_study
from medaug.sweep.site import SiteProfile, load_site
from medaug.sweep.study import Study, load_study, unregistered_generators

#: How many cell numbers the dry run's summary names per missing input.
SHOW_CELLS = 8


def configure(p: argparse.ArgumentParser) -> None:
    p.description = __doc__.splitlines()[0]
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.epilog = "\n".join(__doc__.splitlines()[2:])
    p.add_argument("study", type=Path, help="study file, e.g. sweeps/quickstart.yaml")
    g = p.add_argument_group("where trials run")
    g.add_argument("--executor", choices=EXECUTORS, default="local",
                   help="local: Ray workers on this machine (or --ray-address); slurm: one SLURM job per trial")
    g.add_argument("--site", default=None, metavar="NAME|PATH",
                   help="SLURM site profile: hpc/sites/NAME.yaml or a path (slurm executor)")
    g.add_argument("--ray-address", default=None, metavar="HOST:PORT", help="join a running Ray cluster")
    g.add_argument("--max-concurrent", type=int, default=None, metavar="N", help="at most N trials at once")
    g = p.add_argument_group("data and results")
    g.add_argument("--out", type=Path, default=None,
                   help="results folder (default: the study's `results`, relative to the working directory)")
    g.add_argument("--data-root", default=None, metavar="DIR", help="folder holding the MedMNIST npz files")
    g.add_argument("--no-verify-md5", dest="verify_md5", action="store_false",
                   help="do not check the npz files against medmnist's md5 (test fixtures; --dry-run too)")
    g.add_argument("--device", default=None, help="auto (default: CUDA when present), cpu, cuda")
    g = p.add_argument_group("control")
    g.add_argument("--resume", action="store_true",
                   help="continue a study from its rows: finished trials are replayed, not trained; interrupted runs "
                        "continue from their state.pt, running SLURM jobs are re-attached (Ray's own state is never read)")
    g.add_argument("--make-synthetic", action="store_true",
                   help="first fit the generators that cells waiting for a synthetic set need (settings: the "
                        "study's `generators:`), write the sets at their pattern paths, then run the trials; "
                        "fits checkpoint in OUT/generators/ and resume when rerun")
    g.add_argument("--dry-run", action="store_true", help="validate, check each cell's inputs (data and md5, weights, synthetic sets), list the "
                        "trials and the sbatch parameters; run nothing; exit 2 when a cell that would run cannot")
    g.add_argument("--quiet", action="store_true", help="no progress lines")
    g.add_argument("--calibration", type=Path, default=None, metavar="FILE",
                   help="the throughput measurements the estimate uses (default: the site's, hpc/calibration/"
                        "<site>-<device>.json, made by `medaug bench calibrate`)")
    p.set_defaults(handler=sweep_command)


def sweep_command(args: argparse.Namespace) -> int:
    study = load_study(args.study)
    site = load_site(args.site) if args.site else None
    check_run_options(args, study)
    if getattr(study, "kind", "classifier") == "generator":
        from medaug.sweep import generator_study

        if args.make_synthetic:
            raise MedaugError(f"{study.source}: --make-synthetic is for classifier studies; a generator study's "
                              "trials are the fits")
        if args.dry_run:
            generator_study.print_dry_run(study, args.executor, args.out, sys.stdout,  # type: ignore[arg-type]
                                          site=site, data_root=args.data_root, verify_md5=args.verify_md5,
                                          estimate={"max_concurrent": args.max_concurrent, "device": args.device,
                                                    "calibration": args.calibration})
            return 0
        outcome = run_study(study, args.executor, args.out, site=site, resume=args.resume,
                            max_concurrent=args.max_concurrent, data_root=args.data_root, device=args.device,
                            verify_md5=args.verify_md5, ray_address=args.ray_address, progress=not args.quiet,
                            calibration=args.calibration)
        generator_study.print_outcome(outcome, sys.stdout)
        return 1 if outcome.failed else 0
    if args.dry_run:
        blocked, would_run, problems = print_dry_run(study, args.executor, site, args.out, sys.stdout,
                                                     make_synthetic=args.make_synthetic, data_root=args.data_root,
                                                     verify_md5=args.verify_md5, estimate={
                                                         "max_concurrent": args.max_concurrent, "device": args.device,
                                                         "calibration": args.calibration})
        if blocked:
            sys.stdout.flush()
            raise MedaugError(f"{study.source}: dry run: {blocked} of {would_run} cell(s) that would run cannot: "
                              f"{problems} input(s) missing or invalid (listed per cell above)")
        return 0
    outcome = run_study(study, args.executor, args.out, site=site, resume=args.resume,
                        max_concurrent=args.max_concurrent, data_root=args.data_root, device=args.device,
                        verify_md5=args.verify_md5, ray_address=args.ray_address, progress=not args.quiet,
                        make_synthetic=args.make_synthetic, calibration=args.calibration)
    print_outcome(outcome, sys.stdout)
    return 1 if outcome.failed or outcome.synthetic_failed else 0


def check_run_options(args: argparse.Namespace, study: Study) -> None:
    """What the real run would refuse, refused for the dry run too and before Ray starts:
    a --max-concurrent below 1, a --device no trial can use, an output folder that is a file,
    lies under one or cannot be written."""
    from medaug.commands.common import check_device
    from medaug.sweep.driver import check_out_dir

    if args.max_concurrent is not None and args.max_concurrent < 1:
        raise MedaugError(f"--max-concurrent {args.max_concurrent}: expected an integer >= 1")
    check_device(args.device, here=args.executor == "local" and args.ray_address is None)
    out = args.out if args.out is not None else Path(study.results)
    check_out_dir(out.expanduser().absolute(), "--out" if args.out is not None else f"{study.source}: results:")


def print_dry_run(study: Study, executor: str, site: SiteProfile | None, out: Path | None, stream: IO[str], *,
                  make_synthetic: bool = False, data_root: str | Path | None = None,
                  verify_md5: bool = True, estimate: dict | None = None) -> tuple[int, int, int]:
    """What would run: every trial with its run_id and the inputs it lacks, the merged
    duplicates, the waiting cells (and, with `make_synthetic`, the generator fits that
    make their sets), and for SLURM the job parameters.

    Returns (cells that would run but lack an input, cells that would run, distinct
    missing inputs); `medaug sweep --dry-run` exits 2 when the first is not 0."""
    from medaug.sweep.preflight import check_inputs

    out_dir = Path(out if out is not None else study.results).expanduser().resolve()
    waiting = study.waiting_cells()
    plan = None
    if make_synthetic and waiting:
        from medaug.sweep.synthetic_stage import plan_fits

        plan = plan_fits(study, out_dir, data_root=data_root, verify_md5=verify_md5)
    report = check_inputs(study, data_root=data_root, verify_md5=verify_md5, make_synthetic=make_synthetic,
                          unmakeable={cell.index: why for cell, why in plan.unmakeable} if plan else None)
    blocked = set(report.blocked)
    runnable = [c for c in study.runnable_cells() if c.index not in blocked]
    per_cell = study.trials_per_cell
    w = stream.write
    w(f"study {study.name} ({study.source}): {len(study.cells)} cells x {per_cell} trial(s) per cell; "
      f"{len(runnable) * per_cell} trials runnable, {len(waiting)} cells wait for synthetic sets"
      + (f", {len(blocked)} cells cannot run (inputs missing)" if blocked else "") + "\n")
    if study.description:
        w(f"  {study.description}\n")
    w(f"results -> {out_dir}/results   Ray experiment -> {out_dir}/ray/{study.name}\n")
    sch = study.scheduler
    sched = "fifo" if sch.kind == "fifo" else (f"asha on {sch.metric} ({sch.mode}), grace {sch.grace_period}, "
                                               f"max_t {sch.max_t or study.max_epochs}, "
                                               f"reduction {sch.reduction_factor:g}")
    w(f"scheduler: {sched}; metric {study.metric} ({study.mode}); max_failures {study.max_failures}\n")
    r = study.resources
    w(f"resources per trial: {f'{r.cpus:g}' if r.cpus is not None else 'site default'} CPU(s), {r.gpus:g} GPU(s) per task, "
      f"{r.nodes} node(s) x {r.tasks_per_node} task(s), time {r.time_min or 'site default'} min, "
      f"mem {r.mem or 'site default'}\n")
    if study.search:
        w(f"search ({study.num_samples} sample(s) per cell): " + "; ".join(p.describe() for p in study.search) + "\n")
    missing, registered = unregistered_generators(study)
    if missing:
        w(f"generators named here but not registered in this medaug: {', '.join(missing)} "
          f"(registered: {', '.join(registered) or 'none'}); their cells run once their synthetic sets exist\n")
    options = {(c.spec["dataset"], json.dumps(c.spec.get("data_options") or {}, sort_keys=True))
               for c in study.cells if c.spec.get("data_options")}
    for dataset, opts in sorted(options):
        w(f"data options of {dataset}: {opts}\n")
    if study.merged:
        w(f"{len(study.merged)} duplicate cell(s) merged (the same experiment runs once): " + "; ".join(
            f"cell {i} ({label}) = cell {kept}" for i, label, kept in study.merged) + "\n")
    for note in study.search_merges:
        w(f"merged: {note}\n")
    w(f"\n{'#':>4}  {'run_id' if not study.search else 'run_id (before sampling)':<48}  cell\n")
    to_make: dict[str, str] = {}
    for cell in study.cells:
        spec = study.spec_for(cell.spec)
        waits = cell.missing_synthetic()
        note = f"   [waits for synthetic set {waits}]" if waits else ""
        mismatch = None if waits else cell.synthetic_mismatch()
        if mismatch:
            note = f"   [synthetic set {cell.synthetic} was not made as requested: {mismatch}]"
        if waits and cell.request is not None:
            to_make.setdefault(waits, cell.request.synthesize_command(waits, cell.spec["dataset"],
                                                                      seed=study.synthesize_seed))
        lacks = [m for m in report.missing.get(cell.index, []) if not (mismatch and m.endswith(mismatch))]
        if lacks:
            what = "cannot run, missing" if cell.index in blocked else "missing"
            note += f"   [{what}: {'; '.join(lacks)}]"
        w(f"{cell.index:>4}  {spec.run_id:<48}  {cell.label}{note}\n")
    if study.generators:
        w("\ngenerator settings (generators:): " + "; ".join(
            f"{name} " + ", ".join(f"{k}={v}" for k, v in cfg.items()) for name, cfg in study.generators.items())
          + f"; synthesize seed {study.synthesize_seed}\n")
    if to_make and make_synthetic and plan is not None:
        from medaug.sweep.synthetic_stage import describe_fit

        w(f"\n--make-synthetic: {len(plan.fits)} generator fit(s) before the trials, each writing its sets:\n")
        for job in plan.fits:
            w(f"  {describe_fit(job)}\n")
        for cell, why in plan.unmakeable:
            w(f"  cannot make the set of cell {cell.index}: {why}\n")
    elif to_make:
        w(f"\n{len(to_make)} synthetic set(s) to make: run with --make-synthetic to fit the generators and write "
          "them before the trials, or by hand (train the generator on the same data and data options; then, per set):\n")
        for command in to_make.values():
            w(f"  {command}\n")
    if executor == "slurm":
        from medaug.sweep.slurm import job_base, job_name, job_root, sbatch_script

        site = site or SiteProfile(name="default")
        first = study.spec_for(study.cells[0].spec) if study.cells else None
        run_id = first.run_id if first else "RUN_ID"
        params = site.slurm_parameters(r, job_name(study.name, run_id))
        w(f"\nsbatch parameters (site {site.name}): " + " ".join(f"{k}={v}" for k, v in sorted(params.items())) + "\n")
        folder = job_base(job_root(site), out_dir, run_id)  # the private job folder (slurm.py), only named here
        w(f"sbatch script of trial 0 (submitit writes it under {folder}/):\n")
        script = sbatch_script(site, r, job_name(study.name, run_id), folder / "sub-TIME")
        w("".join(f"  | {line}\n" for line in script.splitlines()))
    problems = report.problems()
    if problems:
        would_run = len(report.would_run)
        w(f"\n{len(blocked)} of {would_run} cell(s) that would run cannot: {len(problems)} input(s) missing or "
          "invalid:\n")
        for line, cells in problems.items():
            shown = ", ".join(str(i) for i in cells[:SHOW_CELLS]) + (", ..." if len(cells) > SHOW_CELLS else "")
            w(f"  {line}   (cell{'s' if len(cells) > 1 else ''} {shown}: {len(cells)})\n")
    if estimate is not None:  # the cost before a run (medaug/sweep/estimate.py): never a reason to exit 2
        from medaug.sweep.estimate import describe, estimate_run

        cells = [c for c in study.cells if c.index in report.would_run and c.index not in blocked]
        est = estimate_run(study, executor, site=site, fits=plan.fits if plan is not None else None, cells=cells,
                           data_root=data_root, verify_md5=verify_md5, **estimate)
        w("\n" + "\n".join(describe(est)) + "\n")
    w("\ndry run: nothing was run\n")
    return len(blocked), len(report.would_run), len(problems)


def print_outcome(outcome: StudyOutcome, stream: IO[str]) -> None:
    """One line per trial (cell label, status, metrics) and where everything was written."""
    w = stream.write
    rows = outcome.rows
    if rows is not None and len(rows):
        w(f"{'run_id':<46} {'status':<9} {'best':>4} {'val_acc':>8} {'test_acc':>8} {'test_auc':>8}\n")
        for _, row in rows.sort_values("run_id").iterrows():
            def num(v: object) -> str:
                return f"{v:8.4f}" if isinstance(v, float) and v == v else f"{'-':>8}"
            best = row.get("best_epoch")
            best_s = f"{int(best):>4}" if best is not None and best == best else f"{'-':>4}"
            w(f"{row['run_id']:<46} {row['status']:<9} {best_s} {num(row.get('val_acc'))} "
              f"{num(row.get('test_acc'))} {num(row.get('test_auc'))}\n")
            if row.get("status") == "failed" and row.get("error"):
                w(f"    error: {row['error']}\n")
    if outcome.synthetic_made or outcome.synthetic_failed:
        w(f"--make-synthetic: {len(outcome.synthetic_made)} set(s) made, {len(outcome.synthetic_failed)} "
          "generator fit(s) failed\n")
        for key, error in outcome.synthetic_failed:
            w(f"    generator fit {key} failed: {error}\n")
    w(f"{outcome.finished} finished, {outcome.failed} failed, {outcome.stopped} stopped, "
      f"{len(outcome.waiting)} cells waiting for synthetic sets\n")
    w(f"results: {outcome.results_dir}\nRay experiment: {outcome.experiment_path}\n")
