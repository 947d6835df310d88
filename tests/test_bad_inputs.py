"""Bad inputs found by trying medaug again as a demanding user and as an attacker (issue 10's
"expect more cases"): each is one line `medaug: error: ...` naming the file, field or option
and what was expected, exit 2, with the scratch folder exactly as it was (nothing written,
nothing lost), and no code run from the data.

Table-driven: a case is (a setup that writes its inputs into the scratch folder, the command
line, words the error line must hold). Cases already pinned by tests/test_*hardening*.py,
test_analysis_query_security.py, test_store_hardening.py and test_generators_checkpoint_trust.py
are not repeated here. The full list of cases tried, with their outcome, is the red-team
table of this change (cases.md in the closing note).
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from conftest import make_medmnist_npz

from medaug.cli import main

REPO = Path(__file__).resolve().parents[1]
V = ["--no-verify-md5"]
GOOD_STUDY = "name: t\nresults: res\nbase: {dataset: breastmnist, epochs: 1, batch_size: 16}\ngrid:\n  seed: [0, 1]\n"


def tree(folder: Path) -> dict[str, str]:
    """Every path under `folder` with its content hash ('dir' for a folder, the target for a link)."""
    out = {}
    for p in sorted(folder.rglob("*")):
        rel = str(p.relative_to(folder))
        if p.is_symlink():
            out[rel] = "-> " + os.readlink(p)
        elif p.is_dir():
            out[rel] = "dir"
        elif not p.is_file():  # a pipe: never opened here either
            out[rel] = "special"
        else:
            out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def refused(argv: list[str], where: Path, capsys: pytest.CaptureFixture[str], *words: str) -> str:
    """Run the CLI in `where`; assert exit 2, one error line holding `words`, `where` unchanged."""
    before = tree(where)
    old = Path.cwd()
    os.chdir(where)
    try:
        code = main(argv)
    finally:
        os.chdir(old)
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert code == 2, (code, captured.err[-2000:])
    assert len(lines) == 1 and lines[0].startswith("medaug: error: "), lines
    for word in words:
        assert word in lines[0], (word, lines[0])
    assert "Traceback" not in captured.err
    assert tree(where) == before, "the refused command wrote, changed or removed something"
    return lines[0]


# ------------------------------------------------------------------ data files (npz)

def _tiny_arrays() -> dict[str, np.ndarray]:
    """The arrays of a tiny, valid breastmnist npz (12/6/6 images)."""
    with tempfile.TemporaryDirectory() as folder:
        path = make_medmnist_npz(Path(folder) / "b.npz", n=(12, 6, 6))
        with np.load(path) as npz:
            return {k: npz[k] for k in npz.files}


def _npz(write: Callable[[Path], None]) -> Callable[[Path], None]:
    def setup(where: Path) -> None:
        (where / "d").mkdir()
        write(where / "d" / "breastmnist.npz")
    return setup


def _empty(path: Path) -> None:
    path.write_bytes(b"")


def _pickle_bytes(path: Path) -> None:
    path.write_bytes(b"\x80\x04\x95" + os.urandom(300))  # looks like a pickle to np.load


def _truncated(path: Path) -> None:
    arrays = _tiny_arrays()
    np.savez_compressed(path, **arrays)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _object_labels(path: Path) -> None:
    arrays = _tiny_arrays()
    arrays["train_labels"] = np.array([{"a": 1}] * len(arrays["train_labels"]), dtype=object)
    with zipfile.ZipFile(path, "w") as zf:  # np.savez would pickle the objects; write the member by hand
        for key, value in arrays.items():
            member = io.BytesIO()
            np.lib.format.write_array(member, value, allow_pickle=True)
            zf.writestr(key + ".npy", member.getvalue())


def _lying_header(path: Path) -> None:
    """train_images claims 10^6 images but holds 12: numpy would try to allocate and read them."""
    arrays = _tiny_arrays()
    with zipfile.ZipFile(path, "w") as zf:
        for key, value in arrays.items():
            member = io.BytesIO()
            if key == "train_images":
                np.lib.format.write_array_header_1_0(member, {"descr": "|u1", "fortran_order": False,
                                                             "shape": (10**6, 28, 28)})
                member.write(value.tobytes())
            else:
                np.lib.format.write_array(member, value)
            zf.writestr(key + ".npy", member.getvalue())


NPZ_CASES = {
    "empty file": (_empty, ["d/breastmnist.npz", "not a readable npz file (not a zip archive"]),
    "bytes numpy takes for a pickle": (_pickle_bytes, ["d/breastmnist.npz", "not a readable npz file (not a zip archive"]),
    "truncated": (_truncated, ["d/breastmnist.npz", "not a readable npz file (not a zip archive"]),
    "object array (never unpickled)": (_object_labels, ["train_labels", "Python objects"]),
    "header claims more data than the member holds": (_lying_header, ["train_images", "damaged"]),
}


@pytest.mark.parametrize("name", list(NPZ_CASES))
def test_a_bad_npz_is_one_line_before_anything(tmp_path: Path, capsys, name: str) -> None:
    write, words = NPZ_CASES[name]
    _npz(write)(tmp_path)
    line = refused(["train", "--dataset", "breastmnist", "--data-root", "d", *V, "--epochs", "1", "--out", "out"],
                   tmp_path, capsys, *words)
    assert "allow_pickle" not in line and "pickle=" not in line  # never advice to unpickle


def test_an_npz_that_unpacks_beyond_memory_is_refused_before_inflating(tmp_path: Path, capsys, monkeypatch) -> None:
    from medaug.data import medmnist

    _npz(lambda p: np.savez_compressed(p, **_tiny_arrays()))(tmp_path)
    monkeypatch.setattr(medmnist, "_physical_memory", lambda: 10_000)  # a 10 kB machine
    refused(["data", "info", "breastmnist", "--data-root", "d", *V], tmp_path, capsys,
            "d/breastmnist.npz", "more than this machine's memory")


# ------------------------------------------------------------------ the command line itself

@pytest.mark.parametrize(("argv", "words"), [
    (["train", "--dataset", "breastmnist", "--out", "o", "--lr", "abc"], ["train: argument --lr", "invalid float"]),
    (["train", "--dataset", "breastmnist", "--out", "o", "--bogus"], ["unrecognized arguments: --bogus"]),
    (["data"], ["data: the following arguments are required: ACTION"]),
    (["nosuchcommand"], ["invalid choice: 'nosuchcommand'"]),
    (["results", "query", "r", "SELECT 1", "--format", "xml"], ["results query: argument --format"]),
])
def test_argparse_errors_are_one_line(tmp_path: Path, capsys, argv: list[str], words: list[str]) -> None:
    refused(argv, tmp_path, capsys, *words)


def test_a_reader_that_leaves_early_gets_no_traceback(tmp_path: Path) -> None:
    """`medaug generator list | head -1`: the pipe closes; medaug ends quietly (141, as SIGPIPE)."""
    proc = subprocess.Popen([sys.executable, "-c", "import sys; from medaug.cli import main; sys.exit(main())",
                             "generator", "list"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path)
    proc.stdout.close()  # the reader is gone before medaug writes a byte
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141, err
    assert "Traceback" not in err and "BrokenPipeError" not in err, err


# ------------------------------------------------------------------ data, generator, synthesize

@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(data root, checkpoint folder) of a 1-epoch class-mean-noise fit on tiny data."""
    root = tmp_path_factory.mktemp("gen")
    make_medmnist_npz(root / "data" / "breastmnist.npz", n=(24, 8, 8))
    assert main(["generator", "fit", "--dataset", "breastmnist", "--generator", "class-mean-noise", "--epochs", "1",
                 "--data-root", str(root / "data"), *V, "--quiet", "--out", str(root / "fit")]) == 0
    return root / "data", root / "fit" / "checkpoint"


def test_data_and_generator_options_out_of_range(tmp_path: Path, tiny_root: Path, capsys) -> None:
    d = ["--data-root", str(tiny_root), *V]
    refused(["data", "montage", "breastmnist", *d, "--per-class", str(10**8), "--out", "m.png"], tmp_path, capsys,
            "--per-class 100000000", "<= 64")  # before: minutes and gigabytes building 10^8 axes
    refused(["data", "montage", "breastmnist", *d, "--seed", "-1", "--out", "m.png"], tmp_path, capsys,
            "--seed -1")  # before: a numpy ValueError traceback
    refused(["data", "covid-prepare", "--data-root", ".", "--workers", "0", "--cache-dir", "c"], tmp_path, capsys,
            "--workers 0")
    refused(["data", "covid-prepare", "--data-root", ".", "--size", "100000", "--cache-dir", "c"], tmp_path, capsys,
            "COVID size 100000", "[8, 1024]")
    refused(["generator", "fit", "--dataset", "breastmnist", "--generator", "cvae", *d, "--set",
             f"latent_dim={10**9}", "--out", "g"], tmp_path, capsys, "latent_dim", "[1, 8192]")  # before: an
    # allocator traceback asking for 2 TB


def test_synthesize_refuses_a_set_beyond_memory_and_a_foreign_folder(tmp_path: Path, checkpoint, capsys) -> None:
    data, ckpt = checkpoint
    base = ["synthesize", "--checkpoint", str(ckpt), "--seed", "0", "--data-root", str(data), *V]
    refused([*base, "--strategy", "per-class", "--classes", "0", "--count", "2000000000", "--out", "s.zarr"],
            tmp_path, capsys, "2,000,000,000 images", "memory")  # before: 22 GB resident, the machine swapped
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("precious")
    refused([*base, "--strategy", "per-class", "--classes", "0", "--count", "2", "--out", "mine"], tmp_path, capsys,
            "mine", "not a Zarr store")  # before: the folder was made into a store


# ------------------------------------------------------------------ sweep (nothing starts Ray)

def _study(text: str, site: str | None = None) -> Callable[[Path], None]:
    def setup(where: Path) -> None:
        (where / "s.yaml").write_text(text)
        if site is not None:
            (where / "site.yaml").write_text(site)
        (where / "f").write_text("a file")
    return setup


SWEEP_CASES = {
    # a name ".." made OUT/ray/.. the Ray experiment: a rerun's clean-up removed the whole OUT
    "study name '..'": (_study("name: '..'\nbase: {dataset: breastmnist}\n"), [], ["s.yaml: name", "'..'"]),
    "study name '.'": (_study("name: '.'\nbase: {dataset: breastmnist}\n"), [], ["s.yaml: name", "'.'"]),
    "study name of 5000 characters": (_study("name: " + "a" * 5000 + "\nbase: {dataset: breastmnist}\n"), [],
                                      ["s.yaml: name", "1-100"]),
    "study name with a newline": (_study('name: "a\\nb"\nbase: {dataset: breastmnist}\n'), [],
                                  ["s.yaml: name", "control characters", "'a\\nb'"]),
    "site partition with a newline (#SBATCH injection)": (
        _study(GOOD_STUDY, 'name: x\npartition: "gpu\\n#SBATCH --wrap=rm -rf /"\n'),
        ["--executor", "slurm", "--site", "site.yaml"], ["site.yaml: partition", "control characters"]),
    "site extra_sbatch key with a newline": (
        _study(GOOD_STUDY, 'name: x\nextra_sbatch: {"gres=gpu\\n#SBATCH --x": 1}\n'),
        ["--executor", "slurm", "--site", "site.yaml"], ["site.yaml: extra_sbatch.gres=gpu\\n#SBATCH --x"]),
    "site env value with a newline": (_study(GOOD_STUDY, 'name: x\nenv: {X: "1\\ntouch /tmp/p"}\n'),
                                      ["--executor", "slurm", "--site", "site.yaml"], ["site.yaml: env.X"]),
    "--max-concurrent 0 in a dry run": (_study(GOOD_STUDY), ["--max-concurrent", "0"], ["--max-concurrent 0"]),
    "--device that is no device": (_study(GOOD_STUDY), ["--device", "tpu"], ["--device 'tpu'"]),
    "--out that is a file, dry run": (_study(GOOD_STUDY), ["--out", "f"], ["--out", "is a file"]),
    "results: under a file, dry run": (_study("name: t\nresults: f/r\nbase: {dataset: breastmnist}\n"), [],
                                       ["s.yaml: results:", "is a file"]),
}


@pytest.mark.parametrize("name", list(SWEEP_CASES))
def test_sweep_dry_run_refuses(tmp_path: Path, tiny_root: Path, capsys, name: str) -> None:
    setup, extra, words = SWEEP_CASES[name]
    setup(tmp_path)
    refused(["sweep", "s.yaml", "--dry-run", "--data-root", str(tiny_root), *V, *extra], tmp_path, capsys, *words)


def test_bad_run_options_are_refused_before_ray_starts(tmp_path: Path, tiny_root: Path, capsys, monkeypatch) -> None:
    """Before: `sweep --max-concurrent 0` ran the whole study and `quickstart --device gpu9` started
    twelve trials that each failed on the device."""
    from medaug.sweep import driver

    def no_ray(*args, **kwargs):
        raise AssertionError("Ray started before the bad option was refused")

    monkeypatch.setattr(driver, "ray_init", no_ray)
    _study(GOOD_STUDY)(tmp_path)
    refused(["sweep", "s.yaml", "--data-root", str(tiny_root), *V, "--max-concurrent", "0"], tmp_path, capsys,
            "--max-concurrent 0", ">= 1")
    refused(["quickstart", "--epochs", "1", "--device", "gpu9", "--data-root", str(tiny_root), *V, "--out", "q"],
            tmp_path, capsys, "--device 'gpu9'")


def test_sweep_device_is_checked_only_for_spelling_when_trials_run_elsewhere(tmp_path: Path, tiny_root: Path,
                                                                            capsys, monkeypatch) -> None:
    _study(GOOD_STUDY)(tmp_path)
    monkeypatch.chdir(tmp_path)
    assert main(["sweep", "s.yaml", "--dry-run", "--data-root", str(tiny_root), *V, "--executor", "slurm",
                 "--device", "cuda"]) == 0  # a SLURM node has the GPU this machine lacks
    assert "sbatch parameters" in capsys.readouterr().out


# ------------------------------------------------------------------ results query and tables

@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A results folder of one finished row (1 epoch on tiny data)."""
    import torch

    root = tmp_path_factory.mktemp("res")
    make_medmnist_npz(root / "data" / "breastmnist.npz", n=(24, 8, 8))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert main(["train", "--dataset", "breastmnist", "--data-root", str(root / "data"), *V, "--quiet",
                     "--epochs", "1", "--batch-size", "8", "--out", str(root / "out")]) == 0
    finally:
        torch.set_num_threads(threads)
    return root / "out"


@pytest.mark.parametrize(("extra", "words"), [
    (["SELECT 1", "--max-rows", "-1"], ["--max-rows -1"]),
    (["SELECT 1", "--timeout", "0"], ["--timeout 0"]),
    (["SELECT 1", "--timeout", "nan"], ["--timeout nan"]),
    # before: ran until killed (DuckDB has no statement timeout of its own)
    (["WITH RECURSIVE t(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM t) SELECT count(*) FROM t", "--timeout", "1"],
     ["stopped after 1 s (--timeout)"]),
    (["SELECT '\udcff'"], ["SQL: not UTF-8"]),  # a non-UTF-8 byte on the command line; before: a TypeError
])
def test_results_query_options_and_endless_sql(results: Path, tmp_path: Path, capsys, extra, words) -> None:
    before = tree(results)
    refused(["results", "query", str(results), *extra], tmp_path, capsys, *words)
    assert tree(results) == before


@pytest.mark.parametrize("alpha", ["2", "0", "nan"])
def test_alpha_outside_zero_one_names_the_option(results: Path, tmp_path: Path, capsys, alpha: str) -> None:
    refused(["results", "tables", str(results), "--alpha", alpha], tmp_path, capsys, f"--alpha {alpha}", "(0, 1)")
    refused(["report", str(results), "--out", "rep", "--alpha", alpha], tmp_path, capsys, f"--alpha {alpha}")


# ------------------------------------------------------------------ a read-only output folder

@pytest.fixture
def read_only_fs(tmp_path: Path):
    """A tmpfs at tmp_path/ro holding out/keep.txt, remounted read-only (root only; unmounted after).
    As root, permission bits do not stop a write; a read-only mount does."""
    mount = tmp_path / "ro"
    mount.mkdir()
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("a read-only tmpfs needs root and mount")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True,
                          check=False)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.decode().strip()})")
    try:
        (mount / "out").mkdir()
        (mount / "out" / "keep.txt").write_text("precious")
        subprocess.run(["mount", "-o", "remount,ro", str(mount)], check=True)
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=False)
        if os.path.ismount(mount):
            subprocess.run(["umount", "-l", str(mount)], check=False)


def test_read_only_out_is_refused_before_any_training(read_only_fs: Path, checkpoint, results: Path, capsys,
                                                      monkeypatch) -> None:
    """Before: `generator fit` trained an epoch and `generator eval` its reference classifier, and
    `report` drew figures, before the read-only folder stopped them."""
    import medaug.train.loop

    def refuse(*args, **kwargs):
        raise AssertionError("training started before the read-only folder was refused")

    monkeypatch.setattr(medaug.train.loop, "train_classifier", refuse)
    data, ckpt = checkpoint
    out = str(read_only_fs / "out")
    refused(["generator", "fit", "--dataset", "breastmnist", "--generator", "cvae", "--epochs", "1", "--data-root",
             str(data), *V, "--quiet", "--out", out], read_only_fs, capsys, "--out", "not writable")
    refused(["generator", "eval", "--checkpoint", str(ckpt), "--data-root", str(data), *V, "--quiet",
             "--classifier-epochs", "1", "--out", out], read_only_fs, capsys, "--out", "not writable")
    refused(["report", str(results), "--out", out], read_only_fs, capsys, "report folder", "not writable")


# ------------------------------------------------------------------ planted links in a run folder

@pytest.mark.parametrize("plant", ["run folder is a link", "lock is a folder", "lock is a link"])
def test_a_planted_run_folder_or_lock_is_refused(tmp_path: Path, tiny_root: Path, capsys, plant: str) -> None:
    """Before: OUT/runs/<run_id> linked to another folder made the run write its spec, log and
    state there (a folder the planter could not write to themselves)."""
    from medaug.experiment import ExperimentSpec, run_dir

    spec = ExperimentSpec(dataset="breastmnist", epochs=1, batch_size=16)
    run_id, folder = spec.run_id, run_dir(tmp_path / "out", spec)
    folder.parent.mkdir(parents=True)
    (tmp_path / "victim").mkdir()
    (tmp_path / "victim" / "precious.txt").write_text("x")
    if plant == "run folder is a link":
        folder.symlink_to(tmp_path / "victim", target_is_directory=True)
        words = [run_id, "symbolic link"]
    else:
        folder.mkdir()
        if plant == "lock is a folder":
            (folder / "lock").mkdir()
        else:
            (folder / "lock").symlink_to(tmp_path / "victim" / "precious.txt")
        words = [f"{run_id}/lock", "not a plain file"]
    refused(["train", "--dataset", "breastmnist", "--data-root", str(tiny_root), *V, "--quiet", "--epochs", "1",
             "--batch-size", "16", "--out", "out"], tmp_path, capsys, *words)


# ------------------------------------------------------------------ pipes planted where a file is read

@pytest.mark.timeout(120)
def test_a_pipe_named_like_a_result_file_is_refused_not_waited_on(results: Path, tmp_path: Path, capsys) -> None:
    """Before: `results tables|query` and `report` opened OUT/results/x.parquet, a FIFO, and waited forever."""
    shutil.copytree(results, tmp_path / "r")
    os.mkfifo(tmp_path / "r" / "results" / "planted.parquet")
    for argv in (["results", "tables", "r"], ["results", "query", "r", "SELECT 1"], ["report", "r", "--out", "rep"]):
        refused(argv, tmp_path, capsys, "planted.parquet", "not a regular file")


@pytest.mark.timeout(120)
def test_a_pipe_inside_a_synthetic_set_is_refused_not_waited_on(checkpoint, tmp_path: Path, capsys) -> None:
    """Before: `train --synthetic` (its run_id reads the group's zarr.json) and the sweep's dry run
    waited forever on a FIFO planted as the group's metadata; a chunk is checked the same way."""
    data, ckpt = checkpoint
    assert main(["synthesize", "--checkpoint", str(ckpt), "--seed", "0", "--data-root", str(data), *V,
                 "--strategy", "per-class", "--classes", "0", "--count", "3", "--group", "g",
                 "--out", str(tmp_path / "s.zarr")]) == 0
    capsys.readouterr()
    (tmp_path / "s.zarr" / "g" / "zarr.json").unlink()
    os.mkfifo(tmp_path / "s.zarr" / "g" / "zarr.json")
    ref = f"{tmp_path / 's.zarr'}#g"
    refused(["train", "--dataset", "breastmnist", "--data-root", str(data), *V, "--quiet", "--epochs", "1",
             "--synthetic", ref, "--out", "out"], tmp_path, capsys, "g/zarr.json", "not a regular file")
    (tmp_path / "s.yaml").write_text(f"name: t\nresults: res\nbase: {{dataset: breastmnist, synthetic: '{ref}'}}\n")
    before = tree(tmp_path)
    old = Path.cwd()
    os.chdir(tmp_path)
    try:
        code = main(["sweep", "s.yaml", "--dry-run", "--data-root", str(data), *V])
    finally:
        os.chdir(old)
    captured = capsys.readouterr()
    assert code == 2 and "g/zarr.json is not a regular file" in captured.out
    assert captured.err.startswith("medaug: error: s.yaml: dry run: 1 of 1 cell(s) that would run cannot")
    assert tree(tmp_path) == before
