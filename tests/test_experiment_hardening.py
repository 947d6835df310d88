"""Issue 10, the experiment's side: every bad input to `medaug train` is one line, exit 2,
nothing written or lost, and checked before training.

Covered: non-finite and absurd numbers (CLI and study YAML), empty splits, an output
folder that cannot be written, corrupt/foreign/planted `state.pt`, one run_id per
synthetic set however its path is spelled, one process per spec at a time (flock), and a
full disk while the state or the row is written (a real tmpfs), whose rerun gives the
numbers of a run that never failed.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from conftest import make_medmnist_npz
from medaug.cli import main
from medaug.experiment import ExperimentSpec, run, run_dir
from medaug.store.results import result_path
from medaug.train.runfolder import LOCK_FILE

REPO = Path(__file__).resolve().parents[1]
TRAIN = ["train", "--dataset", "breastmnist", "--batch-size", "16", "--no-verify-md5", "--quiet"]


def train_args(out: Path, data: Path, *extra: str, epochs: int = 2) -> list[str]:
    return [*TRAIN, "--epochs", str(epochs), "--out", str(out), "--data-root", str(data), *extra]


def one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("medaug: error: "), err
    return err[0]


def files_under(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def no_training(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if a network starts training: the refusal must come first."""
    import medaug.train.loop

    def refuse(*args, **kwargs):
        raise AssertionError("training started before the bad input was refused")

    monkeypatch.setattr(medaug.train.loop, "train_classifier", refuse)


# ------------------------------------------------------------------ numbers (item 5)

@pytest.mark.parametrize(("extra", "field"), [
    (["--lr", "inf"], "lr"), (["--lr", "nan"], "lr"), (["--lr", "1e300"], "lr"), (["--lr", "0"], "lr"),
    (["--lr", "11"], "lr"), (["--weight-decay", "nan"], "weight_decay"), (["--weight-decay", "1e300"], "weight_decay"),
    (["--momentum", "inf"], "momentum"), (["--momentum", "1"], "momentum"), (["--epochs", "100001"], "epochs"),
    (["--batch-size", "0"], "batch_size"), (["--batch-size", "10000000"], "batch_size"), (["--seed", "-1"], "seed"),
    (["--seed", str(2**40)], "seed"), (["--freeze-epochs", "-1"], "freeze_epochs"), (["--size", "0"], "size"),
])
def test_non_finite_and_absurd_numbers_exit_2_before_anything(tiny_root: Path, tmp_path: Path, capsys, no_training,
                                                             extra: list[str], field: str) -> None:
    out = tmp_path / "out"
    assert main(train_args(out, tiny_root, *extra)) == 2
    line = one_error_line(capsys)
    assert line.startswith(f"medaug: error: {extra[0]}: spec field '{field}'") and "expected" in line
    assert not out.exists()


@pytest.mark.parametrize(("extra", "message"), [
    (["--data-option", "test_per_class=NaN"], "--data-option 'test_per_class=NaN': expected a finite number"),
    (["--data-option", "test_per_class=1e999"], "expected a finite number"),
    (["--device", "mps"], "--device 'mps': expected auto, cpu, cuda or cuda:N"),
    (["--device", "cpu:3"], "--device 'cpu:3'"),
])
def test_other_bad_options_exit_2_before_anything(tiny_root: Path, tmp_path: Path, capsys, no_training,
                                                  extra: list[str], message: str) -> None:
    out = tmp_path / "out"
    assert main(train_args(out, tiny_root, *extra)) == 2
    assert message in one_error_line(capsys)
    assert not out.exists()


@pytest.mark.parametrize(("changes", "field"), [
    ({"lr": float("inf")}, "lr"), ({"lr": "0.1"}, "lr"), ({"lr": True}, "lr"), ({"momentum": float("nan")}, "momentum"),
    ({"weight_decay": -1e-9}, "weight_decay"), ({"epochs": 2.5}, "epochs"), ({"epochs": True}, "epochs"),
    ({"size": "28"}, "size"), ({"milestones": ["a"]}, "milestones"), ({"milestones": 0.5}, "milestones"),
    ({"milestones": [float("nan")]}, "milestones"), ({"milestones": [0.5, float("inf")]}, "milestones"),
    ({"classifier": 5}, "classifier"), ({"synthetic": 5}, "synthetic"),
])
def test_spec_refuses_every_bad_number_or_type_by_field(changes: dict, field: str) -> None:
    """Values a YAML study or a trial config can carry (strings, bools, NaN, non-lists):
    the spec itself refuses them, so every caller gets the same one-line error."""
    from medaug.errors import MedaugError

    with pytest.raises(MedaugError, match=f"spec field '{field}'") as info:
        ExperimentSpec.from_dict({"dataset": "breastmnist", **changes})
    assert "\n" not in str(info.value)


def test_numbers_at_the_stated_bounds_are_accepted_and_ints_hash_like_floats() -> None:
    spec = ExperimentSpec(dataset="breastmnist", lr=10, momentum=0.0, weight_decay=1, epochs=10_000, seed=2**32 - 1)
    assert isinstance(spec.lr, float) and isinstance(spec.weight_decay, float)
    assert spec.run_id == ExperimentSpec(dataset="breastmnist", lr=10.0, weight_decay=1.0, momentum=0.0,
                                         epochs=10_000, seed=2**32 - 1).run_id


def test_study_yaml_with_an_infinite_lr_is_refused(tmp_path: Path, capsys) -> None:
    study = tmp_path / "s.yaml"
    study.write_text("name: s\nresults: res\nbase:\n  dataset: breastmnist\n  lr: .inf\ngrid:\n  seed: [0, 1]\n")
    assert main(["sweep", str(study), "--dry-run"]) == 2
    line = one_error_line(capsys)
    assert "lr" in line and "inf" in line
    assert not (tmp_path / "res").exists()


# ------------------------------------------------------------------ empty splits (item 6)

@pytest.mark.parametrize("split", ["train", "val", "test"])
def test_empty_split_is_refused_naming_file_and_split(tmp_path: Path, capsys, no_training, split: str) -> None:
    counts = {"train": 60, "val": 20, "test": 20, split: 0}
    data = tmp_path / "data"
    npz = make_medmnist_npz(data / "breastmnist.npz", n=(counts["train"], counts["val"], counts["test"]))
    out = tmp_path / "out"
    assert main(train_args(out, data)) == 2
    line = one_error_line(capsys)
    assert str(npz) in line and f"the {split} split is empty" in line
    assert not out.exists()


# ------------------------------------------------------------------ --out (former tracebacks)

def test_out_is_a_file_or_under_a_file(tiny_root: Path, tmp_path: Path, capsys, no_training) -> None:
    a_file = tmp_path / "results.txt"
    a_file.write_text("keep me\n")
    for out in (a_file, a_file / "sub"):
        assert main(train_args(out, tiny_root)) == 2
        line = one_error_line(capsys)
        assert str(a_file) in line and "not a folder" in line
    assert a_file.read_text() == "keep me\n"
    # OUT/results (or OUT/runs) taken by a file
    out = tmp_path / "out"
    out.mkdir()
    (out / "results").write_text("x")
    assert main(train_args(out, tiny_root)) == 2
    assert str(out / "results") in one_error_line(capsys)
    assert files_under(out) == {"results": b"x"}


@contextlib.contextmanager
def mounted_tmpfs(path: Path, options: str):
    """A real tmpfs at `path` (root only): a read-only or a small, fillable file system."""
    path.mkdir(parents=True, exist_ok=True)
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True, text=True)
    if res.returncode != 0:
        pytest.skip(f"needs root to mount a tmpfs ({res.stderr.strip() or res.returncode})")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def test_out_not_writable_is_refused_before_training(tiny_root: Path, tmp_path: Path, capsys, no_training) -> None:
    if os.geteuid() == 0:  # root writes through permission bits: a read-only file system it is
        ctx = mounted_tmpfs(tmp_path / "ro", "ro,size=1m")
    else:
        (tmp_path / "ro").mkdir()
        (tmp_path / "ro").chmod(0o500)
        ctx = contextlib.nullcontext(tmp_path / "ro")
    with ctx as ro:
        assert main(train_args(ro / "out", tiny_root)) == 2
        line = one_error_line(capsys)
        assert str(ro) in line and ("not writable" in line or "cannot write" in line)
        assert list(ro.iterdir()) == []


# ------------------------------------------------------------------ state.pt (former tracebacks)

class _Planted:
    """A pickle whose loading would create a marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _interrupt_after(spec: ExperimentSpec, out: Path, data: Path, epoch: int) -> None:
    """Run `spec` and stop it (like Ctrl-C) right after `epoch` was saved."""
    def stop(record: dict) -> None:
        if record["epoch"] == epoch:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(spec, out, data_root=data, verify_md5=False, on_epoch=stop)


SPEC = ExperimentSpec(dataset="breastmnist", epochs=2, batch_size=16)


@pytest.mark.parametrize("content", ["random", "planted-pickle", "planted-zip", "not-a-dict", "old-version"])
def test_corrupt_or_planted_state_is_refused_naming_the_file(tiny_root: Path, tmp_path: Path, capsys, one_thread,
                                                            content: str) -> None:
    import torch

    out = tmp_path / "out"
    state = run_dir(out, SPEC) / "state.pt"
    state.parent.mkdir(parents=True)
    marker = tmp_path / "marker"
    if content == "random":
        state.write_bytes(os.urandom(3000))
    elif content == "planted-pickle":
        state.write_bytes(pickle.dumps({"version": 2, "x": _Planted(marker)}))
    elif content == "planted-zip":
        torch.save({"version": 2, "x": _Planted(marker)}, state)
    elif content == "not-a-dict":
        torch.save([1, 2, 3], state)
    else:
        torch.save({"version": 1, "epoch": 1}, state)
    before = state.read_bytes()
    assert main(train_args(out, tiny_root)) == 2
    line = one_error_line(capsys)
    assert str(state) in line and "delete it" in line and "weights_only" not in line
    assert not marker.exists()
    assert state.read_bytes() == before and not result_path(out, SPEC.run_id).exists()
    state.unlink()  # what the message says: then the run starts over and finishes
    assert main(train_args(out, tiny_root)) == 0


def test_foreign_state_is_refused_and_own_state_resumes_identically(tiny_root: Path, tmp_path: Path, capsys,
                                                                     one_thread) -> None:
    other = SPEC.replace(lr=0.01)
    _interrupt_after(other, tmp_path / "o", tiny_root, 1)
    out = tmp_path / "out"
    state = run_dir(out, SPEC) / "state.pt"
    state.parent.mkdir(parents=True)
    shutil.copy(run_dir(tmp_path / "o", other) / "state.pt", state)
    assert main(train_args(out, tiny_root)) == 2
    line = one_error_line(capsys)
    assert str(state) in line and "another run" in line
    assert not result_path(out, SPEC.run_id).exists()

    # its own state (same spec and data) resumes; the numbers are those of a run never stopped
    state.unlink()
    _interrupt_after(SPEC, out, tiny_root, 1)
    assert main(train_args(out, tiny_root)) == 0
    assert main(train_args(tmp_path / "ref", tiny_root)) == 0
    got = pd.read_parquet(result_path(out, SPEC.run_id)).iloc[0]
    ref = pd.read_parquet(result_path(tmp_path / "ref", SPEC.run_id)).iloc[0]
    assert [h["train_loss"] for h in got.history] == [h["train_loss"] for h in ref.history]
    assert (got.test_acc, got.test_auc, got.best_epoch) == (ref.test_acc, ref.test_auc, ref.best_epoch)
    lines = (run_dir(out, SPEC) / "progress.jsonl").read_text().splitlines()
    assert [json.loads(x)["epoch"] for x in lines] == [1, 2]

    # a state of the same spec on other data (same file name, other images) is foreign too
    _interrupt_after(SPEC, tmp_path / "o2", tiny_root, 1)
    data2 = tmp_path / "data2"
    make_medmnist_npz(data2 / "breastmnist.npz", seed=7)
    state2 = run_dir(tmp_path / "o2", SPEC) / "state.pt"
    assert main(train_args(tmp_path / "o2", data2)) == 2
    assert "another run" in one_error_line(capsys) and state2.is_file()


# ------------------------------------------------------------------ synthetic run_id (item 7)

def _write_set(store: Path, group: str, data: Path, seed: int = 0) -> str:
    from medaug.data.medmnist import load_medmnist
    from medaug.store.synthetic import write_synthetic_set

    train = load_medmnist("breastmnist", root=data, verify=False).train
    prov = {"generator": "test", "dataset": "breastmnist", "train_hash": train.content_hash,
            "class_names": list(train.class_names), "task": train.task, "strategy": "per-class", "seed": seed}
    pick = slice(seed, seed + 6)
    return write_synthetic_set(store, group, train.images[pick], train.labels[pick], prov)


def test_one_run_id_per_synthetic_set_however_spelled(tiny_root: Path, tmp_path: Path, capsys, one_thread,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    set_id = _write_set(tmp_path / "syn" / "s.zarr", "g", tiny_root)
    refs = [f"{tmp_path}/syn/s.zarr#g", "syn/s.zarr#g", "./syn//s.zarr#g", "syn/../syn/s.zarr#g"]
    run_ids = {ExperimentSpec(dataset="breastmnist", synthetic=r).run_id for r in refs}
    assert len(run_ids) == 1
    out = tmp_path / "out"
    assert main(train_args(out, tiny_root, "--synthetic", refs[1])) == 0
    capsys.readouterr()
    for ref in (refs[0], refs[2]):
        assert main(train_args(out, tiny_root, "--synthetic", ref)) == 2
        assert "finished result for this spec exists" in one_error_line(capsys)
    rows = pd.read_parquet(out / "results")
    assert len(rows) == 1 and rows.loc[0, "synthetic_id"] == set_id

    # the same relative reference from another folder names another set: another run_id
    elsewhere = tmp_path / "elsewhere"
    _write_set(elsewhere / "syn" / "s.zarr", "g", tiny_root, seed=6)
    monkeypatch.chdir(elsewhere)
    assert ExperimentSpec(dataset="breastmnist", synthetic=refs[1]).run_id not in run_ids
    # specs without a set keep the run_ids older rows carry
    assert ExperimentSpec(dataset="breastmnist", seed=1).run_id == "breastmnist-28-cnn-none-nowrs-s1-cbe6885271"


def test_unusable_synthetic_set_is_one_line(tiny_root: Path, tmp_path: Path, capsys, no_training) -> None:
    """A missing group or store is the store's one-line MedaugError, surfaced unchanged."""
    _write_set(tmp_path / "s.zarr", "g", tiny_root)
    out = tmp_path / "out"
    for ref, says in ((f"{tmp_path}/s.zarr#nope", "no group"), (f"{tmp_path}/none.zarr#g", "no Zarr v3 store")):
        assert main(train_args(out, tiny_root, "--synthetic", ref)) == 2
        assert says in one_error_line(capsys)
    assert main(train_args(out, tiny_root, "--synthetic", "no-hash-sign.zarr")) == 2
    assert "STORE.zarr#GROUP" in one_error_line(capsys)
    assert not out.exists()


# ------------------------------------------------------------------ one process per spec (item 8)

GATED_RUN = """
import os, sys, time
from medaug.experiment import ExperimentSpec, run
spec = ExperimentSpec(dataset="breastmnist", epochs=int(sys.argv[3]), batch_size=16)
def gate(record):
    print("epoch", record["epoch"], flush=True)
    deadline = time.time() + 300
    while record["epoch"] == 1 and not os.path.exists(sys.argv[4]) and time.time() < deadline:
        time.sleep(0.1)
run(spec, sys.argv[1], data_root=sys.argv[2], verify_md5=False, on_epoch=gate)
print("done", flush=True)
"""


def _start_gated(out: Path, data: Path, epochs: int, gate: Path) -> subprocess.Popen:
    """A run of SPEC (with `epochs`) in another process that waits after epoch 1 until `gate` exists."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-c", GATED_RUN, str(out), str(data), str(epochs), str(gate)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _wait_for_epoch(proc: subprocess.Popen, epoch: int) -> None:
    for line in proc.stdout:
        if line.strip() == f"epoch {epoch}":
            return
    raise AssertionError(f"the first run ended before epoch {epoch}: {proc.stderr.read()}")


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "medaug.cli", *args], capture_output=True, text=True, env=env,
                          timeout=300, cwd=REPO)


def test_second_process_of_a_running_spec_is_refused(tiny_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    gate = tmp_path / "go"
    first = _start_gated(out, tiny_root, epochs=3, gate=gate)
    try:
        _wait_for_epoch(first, 1)
        for extra in ([], ["--overwrite"]):
            second = _cli(*train_args(out, tiny_root, *extra, epochs=3))
            err = second.stderr.strip().splitlines()
            assert second.returncode == 2 and len(err) == 1, second.stderr
            assert SPEC.replace(epochs=3).run_id in err[0] and "running in another process" in err[0]
            assert f"pid {first.pid}" in err[0]
        gate.touch()
        rest, errs = first.communicate(timeout=300)
    finally:
        first.kill()
    assert first.returncode == 0 and "done" in rest, errs
    row = pd.read_parquet(out / "results")
    assert len(row) == 1 and row.loc[0, "status"] == "finished" and len(row.loc[0, "history"]) == 3
    run_id = SPEC.replace(epochs=3).run_id
    epochs = [json.loads(x)["epoch"] for x in (out / "runs" / run_id / "progress.jsonl").read_text().splitlines()]
    assert epochs == [1, 2, 3]
    # the lock went with its process: the same spec runs again (here: replaces its row)
    again = _cli(*train_args(out, tiny_root, "--overwrite", epochs=3))
    assert again.returncode == 0, again.stderr


def test_lock_of_a_killed_run_is_released_and_the_rerun_resumes(tiny_root: Path, tmp_path: Path) -> None:
    """kill -9 (or a requeued SLURM job's old process): the kernel drops the flock."""
    out = tmp_path / "out"
    first = _start_gated(out, tiny_root, epochs=3, gate=tmp_path / "never")
    try:
        _wait_for_epoch(first, 1)
        os.kill(first.pid, signal.SIGKILL)
        first.wait(timeout=60)
    finally:
        first.kill()
    assert (run_dir(out, SPEC.replace(epochs=3)) / LOCK_FILE).is_file()
    rerun = _cli(*train_args(out, tiny_root, epochs=3))
    assert rerun.returncode == 0, rerun.stderr
    run_id = SPEC.replace(epochs=3).run_id
    epochs = [json.loads(x)["epoch"] for x in (out / "runs" / run_id / "progress.jsonl").read_text().splitlines()]
    assert epochs == [1, 2, 3]


def test_torchrun_ranks_all_refuse_a_locked_spec(tiny_root: Path, tmp_path: Path) -> None:
    """Rank 0 takes the lock for the job and tells the other ranks: none hangs, none trains."""
    out = tmp_path / "out"
    lock = run_dir(out, SPEC) / LOCK_FILE
    lock.parent.mkdir(parents=True)
    with open(lock, "w") as held:
        held.write("pid 1 on elsewhere\n")
        held.flush()
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        res = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                              "-m", "medaug.cli", *train_args(out, tiny_root)], capture_output=True, text=True,
                             env=env, timeout=300, cwd=REPO)
    assert res.returncode != 0
    assert res.stderr.count("running in another process (pid 1 on elsewhere)") == 2, res.stderr
    assert sorted(p.name for p in lock.parent.iterdir()) == [LOCK_FILE]
    assert not (out / "results").exists()


# ------------------------------------------------------------------ disk full (former tracebacks)

def _fill(folder: Path) -> Path:
    """Fill the file system of `folder` to the last byte; returns the filler file."""
    filler = folder / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        for size in (1 << 16, 1 << 12, 1 << 8, 1):
            while True:
                try:
                    os.write(fd, b"\0" * size)
                except OSError as exc:
                    assert exc.errno == errno.ENOSPC
                    break
    finally:
        os.close(fd)
    return filler


@pytest.mark.parametrize(("full_after", "writing"), [(1, "state.pt"), (2, ".parquet")])
def test_disk_full_is_one_line_and_the_rerun_gives_identical_numbers(tiny_root: Path, tmp_path: Path, capsys,
                                                                     one_thread, monkeypatch: pytest.MonkeyPatch,
                                                                     full_after: int, writing: str) -> None:
    """A real full tmpfs: it fills right after epoch `full_after` is logged, so the next
    write (epoch 2's state, or the row after the last epoch) meets ENOSPC."""
    import medaug.experiment as experiment

    assert main(train_args(tmp_path / "ref", tiny_root)) == 0
    ref = pd.read_parquet(tmp_path / "ref" / "results").iloc[0]
    capsys.readouterr()
    with mounted_tmpfs(tmp_path / "disk", "size=16m") as disk:  # a state.pt is 2.8 MB
        out = disk / "out"
        real_append = experiment.append_line

        def append_then_fill(path: Path, line: str, **kw) -> None:
            real_append(path, line, **kw)
            if json.loads(line)["epoch"] == full_after:
                _fill(disk)

        monkeypatch.setattr(experiment, "append_line", append_then_fill)
        assert main(train_args(out, tiny_root)) == 2
        line = one_error_line(capsys)
        assert "no space left writing" in line and writing in line
        assert not list(out.glob("results/*.parquet"))
        assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]
        monkeypatch.undo()
        (disk / "filler").unlink()
        assert main(train_args(out, tiny_root)) == 0
        got = pd.read_parquet(out / "results").iloc[0]
        assert [h["train_loss"] for h in got.history] == [h["train_loss"] for h in ref.history]
        assert [h["val_acc"] for h in got.history] == [h["val_acc"] for h in ref.history]
        assert (got.test_acc, got.test_auc, got.best_epoch) == (ref.test_acc, ref.test_auc, ref.best_epoch)
        lines = (run_dir(out, SPEC) / "progress.jsonl").read_text().splitlines()
        assert [json.loads(x)["epoch"] for x in lines] == [1, 2]


def test_disk_full_while_logging_progress_leaves_no_half_line(tmp_path: Path) -> None:
    from medaug.errors import MedaugError
    from medaug.train.runfolder import append_line

    with mounted_tmpfs(tmp_path / "disk", "size=1m") as disk:
        log = disk / "progress.jsonl"
        append_line(log, json.dumps({"epoch": 1}))
        _fill(disk)
        with pytest.raises(MedaugError, match=f"no space left writing {log}"):
            append_line(log, json.dumps({"epoch": 2, "pad": "x" * 20000}))
        assert log.read_text() == '{"epoch": 1}\n'
