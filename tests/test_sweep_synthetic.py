"""`medaug sweep --make-synthetic`: the sweep fits the generators its waiting cells need,
writes their sets at the pattern paths, then runs every cell (medaug/sweep/synthetic_stage.py).

Tiny: the breastmnist npz of `tiny_data` (120 train images), the `class-mean-noise`
baseline (one pass over the data) and a quarter-width CVAE for one epoch.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pytest

from medaug.errors import MedaugError
from medaug.commands.sweep import print_dry_run
from medaug.sweep.driver import run_study
from medaug.sweep.study import load_study
from medaug.sweep.synthetic_stage import RESULT_FILE, fit_folder
from sweep_helpers import ray_local, sacct_jobs, site_file, slurm_cluster, tiny_data, write  # noqa: F401


def _study(tmp: Path, name: str, generators: str, grid: str = "[null, class-mean-noise]",
           resources: str = "{cpus: 1}") -> Path:
    return write(tmp / f"{name}.yaml", f"""
name: {name}
base: {{dataset: breastmnist, epochs: 1, batch_size: 16, lr: 0.1}}
synthetic: {{root: {tmp / 'synthetic'}, strategy: inverse-scarcity, fraction: 0.1, seed: 3}}
eval: false   # evaluating each fit is tested in test_sweep_generator_study.py
generators:
{generators}
grid:
  generator: {grid}
resources: {resources}
""")


def _train_split(data_root: Path):
    from medaug.generators.data import load_splits

    return load_splits("breastmnist", 28, data_root, verify_md5=False)


def test_make_synthetic_makes_the_set_then_runs_every_cell_and_never_remakes_it(tmp_path, tiny_data,  # noqa: F811
                                                                                ray_local):  # noqa: F811
    study = load_study(_study(tmp_path, "mk", "  class-mean-noise: {epochs: 1, seed: 2}"))
    ref = study.cells[1].synthetic
    assert ref == f"{tmp_path}/synthetic/breastmnist_28/class-mean-noise.zarr#inverse-scarcity-0.1"
    assert [c.index for c in study.waiting_cells()] == [1]
    out = tmp_path / "out"
    log = io.StringIO()
    outcome = run_study(study, "local", out, data_root=tiny_data, verify_md5=False, stream=log,
                        make_synthetic=True)
    text = log.getvalue()
    assert outcome.synthetic_made == [ref] and outcome.synthetic_failed == [], text
    assert (outcome.finished, outcome.failed) == (2, 0) and outcome.waiting == [], text
    store = Path(ref.partition("#")[0])
    assert (store / "inverse-scarcity-0.1" / "zarr.json").is_file()
    fit_dir = fit_folder(out, "breastmnist", 28, {}, "class-mean-noise")
    assert (fit_dir / "checkpoint" / "generator.json").is_file() and (fit_dir / "fit.log").is_file()

    # the generator cell's row records the set and its provenance
    row = outcome.rows[outcome.rows.synthetic.notna()].iloc[0]
    assert row.synthetic == ref and row.n_synthetic == 12  # 10 % of 120 train images
    prov = json.loads(row.synthetic_provenance)
    assert prov["generator"] == "class-mean-noise" and prov["generator_config"]["seed"] == 2
    assert prov["seed"] == 3 and prov["strategy"] == "inverse-scarcity" and prov["dataset"] == "breastmnist"
    assert prov["train_hash"] == _train_split(tiny_data).train.content_hash
    # the checkpoint is located relative to the store's folder (no machine path), identified by its hashes
    assert not Path(prov["checkpoint"]).is_absolute() and prov["checkpoint_hash"] and prov["state_sha256"]
    assert (store.parent / prov["checkpoint"]).resolve() == (fit_dir / "checkpoint").resolve()

    # a second run finds the set: no fit, no write
    stamps = {p: p.stat().st_mtime_ns for p in [*store.rglob("*"), fit_dir / RESULT_FILE] if p.is_file()}
    again = run_study(load_study(tmp_path / "mk.yaml"), "local", out, data_root=tiny_data, verify_md5=False,
                      progress=False, make_synthetic=True)
    assert again.synthetic_made == [] and again.finished == 2
    assert stamps == {p: p.stat().st_mtime_ns for p in stamps}


def test_make_synthetic_resumes_a_killed_fit_and_reports_a_failed_one(tmp_path, tiny_data, ray_local):  # noqa: F811
    """A fit dir holding the checkpoint of an interrupted fit (1 of 2 epochs) is resumed;
    a fit that cannot run (its folder holds a CVAE of another seed) is reported in one
    line, its cell keeps waiting, and the other cells still run."""
    from medaug.generators import build_generator

    splits = _train_split(tiny_data)
    out = tmp_path / "out"
    cmn = fit_folder(out, "breastmnist", 28, {}, "class-mean-noise")
    build_generator("class-mean-noise", 1, 28, 2, {"epochs": 1}, device="cpu").fit(splits.train, cmn, plots=False)
    cvae = fit_folder(out, "breastmnist", 28, {}, "cvae")
    build_generator("cvae", 1, 28, 2, {"epochs": 1, "width": 0.25, "seed": 7}, device="cpu").fit(
        splits.train, cvae, val=splits.val, plots=False)
    study = load_study(_study(tmp_path, "rs", "  class-mean-noise: {epochs: 2}\n  cvae: {epochs: 1, width: 0.25}",
                              grid="[class-mean-noise, cvae]"))
    log = io.StringIO()
    outcome = run_study(study, "local", out, data_root=tiny_data, verify_md5=False, stream=log,
                        make_synthetic=True, max_concurrent=2)
    text = log.getvalue()
    assert len(outcome.synthetic_made) == 1 and "class-mean-noise" in outcome.synthetic_made[0], text
    result = json.loads((cmn / RESULT_FILE).read_text())
    assert result["resumed"] is True and result["epochs"] == 2
    assert [key for key, _ in outcome.synthetic_failed] == ["breastmnist_28/cvae"], text
    error = outcome.synthetic_failed[0][1]
    assert "config differs" in error and "seed" in error and "\n" not in error
    assert "generator fit breastmnist_28/cvae failed: " in text
    assert outcome.finished == 1 and [c.label for c in outcome.waiting] == ["generator=cvae"]


def test_generators_section_is_validated_with_yaml_paths_and_listed_by_dry_run(tmp_path, capsys,
                                                                               tiny_data):  # noqa: F811
    for body, where in (("  cvae: {epoch: 3}", "generators.cvae.epoch: not a cvae setting (did you mean 'epochs'?)"),
                        ("  cvea: {epochs: 3}", "generators.cvea: unknown generator (did you mean 'cvae'?)"),
                        ("  cvae: {epochs: 0}", "generators.cvae.epochs: "),
                        ("  cvae: [1, 2]", "generators.cvae: expected a mapping")):
        path = _study(tmp_path, "bad", body)
        with pytest.raises(MedaugError) as err:
            load_study(path)
        assert f"{path}: {where}" in str(err.value)
    with pytest.raises(MedaugError, match=r"synthetic\.seed: "):
        load_study(write(tmp_path / "seed.yaml", _study(tmp_path, "s", "  cvae: {}").read_text()
                         .replace("seed: 3", "seed: -1")))

    study = load_study(_study(tmp_path, "dry", "  cvae: {epochs: 200, batch_size: 64}", grid="[null, cvae]"))
    assert study.generators == {"cvae": {"epochs": 200, "batch_size": 64}} and study.synthesize_seed == 3
    buf = io.StringIO()
    print_dry_run(study, "local", None, tmp_path / "out", buf, make_synthetic=True, data_root=tiny_data,
                  verify_md5=False)
    text = buf.getvalue()
    assert "generator settings (generators:): cvae epochs=200, batch_size=64; synthesize seed 3" in text
    assert ("fit cvae on breastmnist 28 px (epochs 200, batch 64, seed 0) -> "
            f"{tmp_path / 'out' / 'generators' / 'breastmnist_28' / 'cvae'}; writes "
            f"{tmp_path}/synthetic/breastmnist_28/cvae.zarr#inverse-scarcity-0.1 (synthesize seed 3)") in text
    assert not (tmp_path / "out").exists()
    buf = io.StringIO()
    print_dry_run(study, "local", None, tmp_path / "out", buf, data_root=tiny_data, verify_md5=False)
    assert "--seed 3 --out" in buf.getvalue() and "run with --make-synthetic" in buf.getvalue()
    # the command line flag reaches the dry run
    from medaug.cli import main

    assert main(["sweep", str(tmp_path / "dry.yaml"), "--dry-run", "--make-synthetic", "--out",
                 str(tmp_path / "out"), "--data-root", str(tiny_data), "--no-verify-md5"]) == 0
    assert "--make-synthetic: 1 generator fit(s) before the trials" in capsys.readouterr().out


@pytest.mark.slurm
def test_make_synthetic_on_slurm_fits_in_a_slurm_job(tmp_path, slurm_cluster, tiny_data, ray_local):  # noqa: F811
    first = max((int(j) for j in sacct_jobs()), default=0)
    study = load_study(_study(tmp_path, "sl", "  class-mean-noise: {epochs: 1}", grid="[class-mean-noise]",
                              resources="{cpus: 1, time: 10, mem: 500M}"))
    log = io.StringIO()
    outcome = run_study(study, "slurm", tmp_path / "out", site=site_file(tmp_path), data_root=tiny_data,
                        verify_md5=False, stream=log, make_synthetic=True)
    text = log.getvalue()
    assert len(outcome.synthetic_made) == 1 and (outcome.finished, outcome.failed) == (1, 0), text
    fit_dir = fit_folder(tmp_path / "out", "breastmnist", 28, {}, "class-mean-noise")
    record = json.loads((fit_dir / "slurm" / "job.json").read_text())
    jobs = sacct_jobs(first)
    assert record["job_id"] in jobs and jobs[record["job_id"]][0] == "medaug-sl-fit-breastmnist_28-class-mean-noise"
    assert outcome.rows.iloc[0].slurm_job_id != record["job_id"]
    assert os.path.isfile(fit_dir / "checkpoint" / "state.pt")


def test_a_local_fit_ends_when_its_driver_is_killed(tmp_path, tiny_data):  # noqa: F811
    """kill -9 of the driver must not leave an orphan fit writing the checkpoint a rerun resumes."""
    import signal
    import subprocess
    import sys
    import time

    from medaug.sweep.synthetic_stage import JOB_FILE, FitJob
    from sweep_helpers import wait_for

    fit_dir = tmp_path / "fit"
    fit_dir.mkdir()
    job = FitJob(dataset="breastmnist", size=28, data_options={}, generator="class-mean-noise",
                 config={"epochs": 100000}, fit_dir=str(fit_dir), sets=(), data_root=str(tiny_data),
                 verify_md5=False, device="cpu")
    (fit_dir / JOB_FILE).write_text(json.dumps(job.to_dict()))
    driver = subprocess.Popen([sys.executable, "-c", f"""
import os, subprocess, sys, time
env = {{**os.environ, "MEDAUG_FIT_PARENT_PID": str(os.getpid())}}
child = subprocess.Popen([sys.executable, "-m", "medaug.sweep.synthetic_stage", {str(fit_dir / JOB_FILE)!r}], env=env)
print(child.pid, flush=True)
time.sleep(600)
"""], stdout=subprocess.PIPE, text=True)
    child = int(driver.stdout.readline())
    meta = fit_dir / "checkpoint" / "generator.json"
    wait_for(meta.is_file, 60, "the fit's first checkpoint")
    driver.send_signal(signal.SIGKILL)
    driver.wait()

    def gone() -> bool:
        try:
            return Path(f"/proc/{child}/status").read_text().split("State:")[1].split()[0] in ("Z", "X")
        except (OSError, IndexError):
            return True

    wait_for(gone, 15, "the orphaned fit to end")
    epochs = json.loads(meta.read_text())["epoch"]
    time.sleep(1.5)
    assert json.loads(meta.read_text())["epoch"] == epochs < 100000
    assert not (fit_dir / RESULT_FILE).exists()


@pytest.mark.slurm
def test_a_slurm_fit_outlives_its_killed_driver_and_the_rerun_waits_for_it(tmp_path, slurm_cluster,  # noqa: F811
                                                                           tiny_data):  # noqa: F811
    """kill -9 of the driver while its fit runs as a SLURM job: the job goes on, and the
    rerun re-attaches to it (no second submission) and collects the set it writes."""
    import signal
    import subprocess
    import sys

    from medaug.sweep.site import load_site
    from medaug.sweep.slurm import is_active, job_status
    from medaug.sweep.synthetic_stage import make_synthetic_sets
    from sweep_helpers import wait_for

    first = max((int(j) for j in sacct_jobs()), default=0)
    # ~100 epochs/s: ~15 s of fitting (more under load), long enough to kill the driver once the
    # job runs (polled every 0.5 s) and to start another
    study_file = _study(tmp_path, "ra", "  class-mean-noise: {epochs: 1500}", grid="[class-mean-noise]",
                        resources="{cpus: 1, time: 10, mem: 500M}")
    site, out = site_file(tmp_path), tmp_path / "out"
    driver = subprocess.Popen([sys.executable, "-c", f"""
from medaug.sweep.site import load_site
from medaug.sweep.study import load_study
from medaug.sweep.synthetic_stage import make_synthetic_sets
make_synthetic_sets(load_study({str(study_file)!r}), "slurm", __import__("pathlib").Path({str(out)!r}), print,
                    site=load_site({str(site)!r}), data_root={str(tiny_data)!r}, verify_md5=False)
"""], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    fit_dir = fit_folder(out, "breastmnist", 28, {}, "class-mean-noise")
    record = fit_dir / "slurm" / "job.json"
    try:
        wait_for(lambda: record.is_file() and job_status(json.loads(record.read_text())["job_id"])[0] == "RUNNING",
                 120, "the fit's SLURM job to run")
    finally:
        driver.send_signal(signal.SIGKILL)
        driver.wait()
    job_id = json.loads(record.read_text())["job_id"]
    assert is_active(job_status(job_id)[0]) and not (fit_dir / RESULT_FILE).exists()

    log: list[str] = []
    outcome = make_synthetic_sets(load_study(study_file), "slurm", out, log.append, site=load_site(site),
                                  data_root=tiny_data, verify_md5=False, poll_s=0.5)
    study = load_study(study_file)
    assert outcome.made == [study.cells[0].synthetic] and outcome.failed == [], log
    assert json.loads(record.read_text())["job_id"] == job_id
    fits = [j for j, (name, _, _) in sacct_jobs(first).items() if name.endswith("-fit-breastmnist_28-class-mean-noise")]
    assert fits == [job_id]
    assert json.loads((fit_dir / "checkpoint" / "generator.json").read_text())["epoch"] == 1500
