"""Hardening of `medaug sweep` on the local executor (issue 10), each driven through the CLI:

- ASHA keeps the results of trials that reach their last epoch (they end `finished`,
  with their test numbers, not `stopped`);
- `--resume` never unpickles anything in the output folder (planted pickles whose
  `__reduce__` would create a marker file), yet keeps the finished rows and reruns the rest;
- an output folder that is a file (or lies under one) is refused before Ray starts;
- `--executor slurm --dry-run` previews the sbatch script on a machine without SLURM.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

from medaug.cli import main
from medaug.sweep.trial import RunOptions, read_row, write_outcome_row
from sweep_helpers import REPO, ray_local, tiny_data, write  # noqa: F401  (fixtures)


def _asha_copy(tmp: Path, name: str = "asha-short") -> Path:
    """sweeps/asha-example.yaml with epochs 4, max_t 4, grace_period 1, num_samples 4 (the issue's repro)."""
    text = (REPO / "sweeps" / "asha-example.yaml").read_text()
    for old, new in (("name: asha-example", f"name: {name}"), ("  epochs: 20", "  epochs: 4"),
                     ("  max_t: 20", "  max_t: 4"), ("  grace_period: 2", "  grace_period: 1"),
                     ("num_samples: 16", "num_samples: 4")):
        assert old in text, old
        text = text.replace(old, new)
    return write(tmp / f"{name}.yaml", text)


def _rows(out: Path) -> dict[str, dict]:
    return {p.stem: read_row(p) for p in sorted((out / "results").glob("*.parquet"))}


def test_asha_trials_that_reach_the_last_epoch_are_finished_with_test_results(tmp_path, tiny_data,  # noqa: F811
                                                                              capsys, monkeypatch):
    """Before the fix, every trial here ended 'stopped' without test_acc although its
    progress.jsonl held 4/4 epochs: ASHA stopped it at max_t on the last epoch's report,
    in the middle of its test evaluation. A 1-s pause after each epoch stands for the
    test evaluation of real data (on the tiny set it is too quick to lose the race)."""
    import ray

    assert not ray.is_initialized()  # the sweep starts its own Ray, whose workers see the pause
    monkeypatch.setenv("MEDAUG_EPOCH_PAUSE_S", "1")
    out = tmp_path / "out"
    code = main(["sweep", str(_asha_copy(tmp_path)), "--out", str(out), "--data-root", str(tiny_data),
                 "--no-verify-md5"])
    printed = capsys.readouterr()
    assert code == 0, printed.out + printed.err
    rows = _rows(out)
    assert len(rows) == 4, printed.out
    complete = {rid: r for rid, r in rows.items() if len(r["history"] or []) == 4}
    assert complete, printed.out  # the best trials at least ran all their epochs
    for rid, row in complete.items():
        assert row["status"] == "finished", (rid, row["status"], printed.out)
        assert row["test_acc"] is not None and row["test_auc"] is not None, rid
        epochs = [line for line in (out / "runs" / rid / "progress.jsonl").read_text().splitlines() if line]
        assert len(epochs) == 4
    for rid, row in rows.items():  # the others were stopped at a rung, before their last epoch
        if rid not in complete:
            assert row["status"] == "stopped" and len(row["history"] or []) < 4, (rid, row["status"])
    finished = sum(r["status"] == "finished" for r in rows.values())
    assert f"{finished} finished, 0 failed, {4 - finished} stopped" in printed.out


class _Marker:
    """A pickle that, when loaded, creates a file (what an attacker's payload would do)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (os.system, (f"touch {self.path}",))


def _plant_pickles(out: Path, study: str, marker: Path) -> tuple[list[Path], bytes]:
    """Pickles wherever Ray's restore (or a careless reader) would look: the Tuner, the
    trainable, the searcher, trial params and checkpoints; plus SLURM result pickles."""
    payload = pickle.dumps(_Marker(marker))
    exp = out / "ray" / study
    planted = [exp / "tuner.pkl", exp / "trainable.pkl", exp / "searcher-state-2025-01-01_00-00-00.pkl",
               exp / "t000_00000" / "params.pkl", exp / "t000_00000" / "checkpoint_000000" / "data.pkl",
               exp / "t000_00000" / "checkpoint_000000" / "_dict_checkpoint.pkl",
               out / "slurm" / "x" / "sub-1" / "1_0_result.pkl"]
    for path in planted:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(payload)
    # experiment state as Ray writes it (JSON that embeds cloudpickled trials as hex)
    (exp / "experiment_state-2025-01-01_00-00-00.json").write_text(
        '{"trial_data": [["' + payload.hex() + '", "' + payload.hex() + '"]], "runner_data": {}}')
    return planted, payload


def test_resume_never_unpickles_the_output_folder_and_keeps_finished_rows(tmp_path, tiny_data, ray_local,  # noqa: F811
                                                                          capsys):
    study = write(tmp_path / "pk.yaml", """
name: pickle-resume
base: {dataset: breastmnist, epochs: 2, batch_size: 16, lr: 0.1}
grid:
  seed: [0, 1]
resources: {cpus: 1}
""")
    out = tmp_path / "out"
    args = ["sweep", str(study), "--out", str(out), "--data-root", str(tiny_data), "--no-verify-md5"]
    assert main(args) == 0
    rows = _rows(out)
    assert [r["status"] for r in rows.values()] == ["finished", "finished"]
    # one trial "failed" (e.g. a node died): --resume must run it again
    kept, redo = sorted(rows)
    from medaug.experiment import ExperimentSpec

    spec = ExperimentSpec.from_dict({k: rows[redo][k] for k in ("dataset", "epochs", "batch_size", "lr", "seed")})
    write_outcome_row(RunOptions(out=str(out), study="pickle-resume"), spec, "failed", error="node lost")
    kept_file = out / "results" / f"{kept}.parquet"
    before = kept_file.read_bytes(), kept_file.stat().st_mtime_ns
    marker = tmp_path / "MARKER"
    planted, payload = _plant_pickles(out, "pickle-resume", marker)
    capsys.readouterr()

    code = main([*args, "--resume"])
    printed = capsys.readouterr()
    assert code == 0, printed.out + printed.err
    assert not marker.exists(), "a pickle from the output folder was loaded"
    assert "resuming the study" in printed.err
    after = _rows(out)
    assert sorted(after) == [kept, redo] and all(r["status"] == "finished" for r in after.values())
    assert (out / "results" / f"{kept}.parquet").read_bytes() == before[0]  # replayed, not retrained
    assert (out / "results" / f"{kept}.parquet").stat().st_mtime_ns == before[1]
    assert after[redo]["test_acc"] is not None and after[redo]["error"] is None
    # the old Ray experiment was cleared unread (Tune writes a tuner.pkl of its own)
    assert not any(p.exists() and p.read_bytes() == payload for p in planted[:-1])


def test_results_path_that_is_a_file_is_refused_before_ray_starts(tmp_path, tiny_data, capsys,  # noqa: F811
                                                                   monkeypatch):
    """`results:` a file, or a folder under a file, or --out a file, or OUT/results a
    file: one line, exit 2, nothing written, and Ray never started."""
    from medaug.sweep import driver

    started: list[object] = []
    real_init = driver.ray_init
    monkeypatch.setattr(driver, "ray_init", lambda *a, **k: started.append(a) or real_init(*a, **k))
    blocker = tmp_path / "taken"
    blocker.write_text("not a folder\n")
    cases = [("results", str(blocker)), ("results", str(blocker / "sub")), ("--out", str(blocker))]
    occupied = tmp_path / "occupied"
    (occupied).mkdir()
    (occupied / "results").write_text("a file where the rows go\n")
    cases.append(("--out", str(occupied)))
    for how, where in cases:
        results = where if how == "results" else str(tmp_path / "unused")
        study = write(tmp_path / "file.yaml", f"""
name: file-out
results: {results}
base: {{dataset: breastmnist, epochs: 1, batch_size: 16, lr: 0.1}}
""")
        listing = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
        argv = ["sweep", str(study), "--data-root", str(tiny_data), "--no-verify-md5"]
        if how == "--out":
            argv += ["--out", where]
        code = main(argv)
        err = capsys.readouterr().err
        assert code == 2, (how, where, err)
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("medaug: error: "), err
        assert ("--out" if how == "--out" else "results:") in lines[0] and "folder" in lines[0], err
        assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == listing
        assert started == []
    assert blocker.read_text() == "not a folder\n"


def test_slurm_dry_run_previews_the_sbatch_script_without_slurm(tmp_path, tiny_data):  # noqa: F811
    """No sbatch/srun on PATH (a laptop): the preview still prints the parameters and the
    script, exits 0 and writes nothing."""
    study = write(tmp_path / "dry.yaml", """
name: dry-slurm
base: {dataset: breastmnist, epochs: 1}
grid:
  seed: [0, 1]
resources: {cpus: 2, time: 30, mem: 2G}
""")
    bare = tmp_path / "bin"  # PATH holds only this empty folder: no SLURM binaries anywhere
    bare.mkdir()
    out = tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM")}
    env["PATH"] = str(bare)
    check = subprocess.run([sys.executable, "-c", "import shutil; print(shutil.which('srun'), shutil.which('sbatch'))"],
                           capture_output=True, text=True, env=env, timeout=60)
    assert check.stdout.strip() == "None None"
    res = subprocess.run([sys.executable, "-m", "medaug.cli", "sweep", str(study), "--executor", "slurm", "--dry-run",
                          "--out", str(out), "--data-root", str(tiny_data), "--no-verify-md5"],
                         capture_output=True, text=True, env=env, cwd=REPO, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "Traceback" not in res.stderr
    assert "sbatch parameters (site default): " in res.stdout and "cpus_per_task=2" in res.stdout
    assert "#SBATCH --cpus-per-task=2" in res.stdout and "#SBATCH --time=30" in res.stdout
    assert "medaug-dry-slurm-" in res.stdout and "dry run: nothing was run" in res.stdout
    assert not out.exists()


def test_resume_of_a_random_search_samples_the_same_trials_and_trains_none_again(tmp_path, tiny_data,  # noqa: F811
                                                                                 ray_local, capsys):
    """--resume rebuilds the Tuner from the study file: its search is sampled with a seed
    fixed by the study, so the same configurations (run_ids) come out and, their rows
    being finished, none is trained again."""
    study = write(tmp_path / "search.yaml", """
name: seeded-search
base: {dataset: breastmnist, epochs: 1, batch_size: 16}
search:
  lr: {loguniform: [1.0e-3, 1.0e-1]}
  momentum: {uniform: [0.5, 0.99]}
num_samples: 2
resources: {cpus: 1}
""")
    out = tmp_path / "out"
    args = ["sweep", str(study), "--out", str(out), "--data-root", str(tiny_data), "--no-verify-md5"]
    assert main(args) == 0
    first = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in (out / "results").glob("*.parquet")}
    assert len(first) == 2
    lrs = {read_row(out / "results" / name)["lr"] for name in first}
    assert len(lrs) == 2  # two samples, two configurations
    capsys.readouterr()
    assert main([*args, "--resume"]) == 0
    printed = capsys.readouterr()
    again = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in (out / "results").glob("*.parquet")}
    assert again == first, printed.out
    assert "2 finished, 0 failed, 0 stopped" in printed.out


def test_a_results_folder_with_a_file_that_is_not_a_row_is_refused_before_ray_starts(tmp_path, tiny_data,  # noqa: F811
                                                                                     capsys, monkeypatch):
    """`results tables`, `results query` and `report` refuse a folder holding junk named
    *.parquet; the sweep refuses it in the same words instead of training over it."""
    from medaug.sweep import driver

    started: list[object] = []
    monkeypatch.setattr(driver, "ray_init", lambda *a, **k: started.append(a))
    out = tmp_path / "out"
    (out / "results").mkdir(parents=True)
    junk = out / "results" / "junk.parquet"
    junk.write_bytes(b"not parquet at all")
    study = write(tmp_path / "junk.yaml", """
name: junk-rows
base: {dataset: breastmnist, epochs: 1, batch_size: 16, lr: 0.1}
""")
    listing = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    code = main(["sweep", str(study), "--out", str(out), "--resume", "--data-root", str(tiny_data),
                 "--no-verify-md5"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert f"{junk}: not a readable Parquet file" in err
    assert started == [] and sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == listing
    assert main(["results", "query", str(out), "SELECT 1"]) == 2
    assert f"{junk}: not a readable Parquet file" in capsys.readouterr().err


def test_only_a_folder_inside_out_ray_is_ever_cleared(tmp_path):
    """Whatever a study's name spells, the clean-up of Tune's old bookkeeping never
    reaches beyond OUT/ray (a study named '..' once removed the whole output folder)."""
    import pytest

    from medaug.errors import MedaugError
    from medaug.sweep.driver import clear_experiment

    out = tmp_path / "out"
    (out / "results").mkdir(parents=True)
    (out / "results" / "kept.parquet").write_bytes(b"row")
    (out / "ray" / "study").mkdir(parents=True)
    for bad in (out / "ray" / "..", out / "ray" / ".", out / "ray" / "a" / "..", out / "elsewhere"):
        with pytest.raises(MedaugError, match="must lie directly in"):
            clear_experiment(bad, out / "ray")
    assert (out / "results" / "kept.parquet").read_bytes() == b"row"
    clear_experiment(out / "ray" / "study", out / "ray")
    assert not (out / "ray" / "study").exists() and (out / "ray").is_dir()
