"""Issue 10, the store's share: file modes follow the umask, a full disk is one line with
nothing left behind, the md5 cache cannot be fooled by a swapped file, provenance holds no
machine path, synthetic sets are validated when opened, and `data montage|distribution`
refuse an --out they cannot write. Each case is driven through the CLI as a user hits it.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import zarr

from conftest import make_medmnist_npz
from medaug.cli import main
from medaug.data.imageset import content_hash
from medaug.data.medmnist import load_medmnist
from medaug.errors import MedaugError
from medaug.store import results as results_store
from medaug.store import synthetic as syn
from medaug.store.results import write_row
from medaug.store.synthetic import read_set_id, read_synthetic_set, write_synthetic_set

TRAIN = ["train", "--dataset", "breastmnist", "--epochs", "1", "--batch-size", "32", "--quiet",
         "--no-verify-md5", "--device", "cpu"]


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("medaug: error: "), err
    return err


def files_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() or p.is_symlink()) if folder.exists() else []


def train(data: Path, out: Path, *extra: str) -> int:
    return main([*TRAIN, "--data-root", str(data), "--out", str(out), *extra])


@pytest.fixture
def umask():
    """Set the process umask for one test and put the old one back."""
    old = os.umask(0o022)
    os.umask(old)
    yield os.umask
    os.umask(old)


# --- tiny file systems: a real full disk -----------------------------------------------------

@pytest.fixture
def small_fs(tmp_path):
    """A 64 KiB tmpfs at tmp_path/fs (root only; unmounted afterwards)."""
    mount = tmp_path / "fs"
    mount.mkdir()
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("mounting a tmpfs needs root; the injected-ENOSPC tests cover the same code")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.decode().strip()}); injected-ENOSPC tests cover it")
    yield mount
    subprocess.run(["umount", str(mount)], check=False)
    if os.path.ismount(mount):
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(mount: Path, leave: int = 0) -> Path:
    """Fill the file system at `mount` with one file, leaving about `leave` bytes free."""
    filler = mount / "filler"
    with open(filler, "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\1" * 4096)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    if leave:
        os.truncate(filler, max(0, filler.stat().st_size - leave))
    return filler


@pytest.fixture
def data(tmp_path) -> Path:
    root = tmp_path / "data"
    make_medmnist_npz(root / "breastmnist.npz", n=(40, 10, 10))
    return root


# --- item 3: the umask is respected -------------------------------------------------------------

@pytest.mark.parametrize("mask", [0o022, 0o002])
def test_rows_specs_sets_and_figures_follow_the_umask(tmp_path, data, umask, one_thread, capsys, mask):
    umask(mask)
    out = tmp_path / "out"
    assert train(data, out) == 0
    row = next((out / "results").glob("*.parquet"))
    spec = next((out / "runs").glob("*/spec.json"))
    figure = tmp_path / "figs" / "m.png"
    assert main(["data", "montage", "breastmnist", "--data-root", str(data), "--no-verify-md5",
                 "--out", str(figure)]) == 0
    splits = load_medmnist("breastmnist", root=data, verify=False)
    store = tmp_path / "sets" / "s.zarr"
    write_synthetic_set(store, "g", *synth(), provenance(splits.train))
    set_files = [p for p in store.rglob("*") if p.is_file()]
    set_dirs = [store, *(p for p in store.rglob("*") if p.is_dir())]
    assert len(set_files) >= 5 and len(set_dirs) >= 4
    for path in (row, spec, figure, *set_files):
        assert oct(path.stat().st_mode & 0o777) == oct(0o666 & ~mask), path
    for path in (out / "results", spec.parent, figure.parent, *set_dirs):
        assert oct(path.stat().st_mode & 0o777) == oct(0o777 & ~mask), path


# --- disk full: one line, nothing left behind, the target untouched ---------------------------

def test_disk_full_writing_state_pt_is_one_line_and_leaves_no_temporary(tmp_path, data, small_fs, one_thread,
                                                                          capsys):
    out = tmp_path / "out"
    out.mkdir()
    (small_fs / "runs").mkdir()
    (out / "runs").symlink_to(small_fs / "runs")  # state.pt (tens of KB) goes to the 64 KiB disk
    fill(small_fs, leave=16 << 10)
    assert train(data, out) == 2
    err = one_line_error(capsys)
    assert "no space left writing" in err and "state.pt (nothing written" in err
    assert not [p for p in (small_fs / "runs").rglob("*") if p.name.endswith(".tmp") or p.name == "state.pt"]
    assert not (out / "results").exists() or not files_under(out / "results")


def test_disk_full_writing_the_row_keeps_the_state_and_the_rerun_gives_the_same_numbers(
        tmp_path, data, small_fs, one_thread, capsys):
    reference = tmp_path / "reference"
    assert train(data, reference) == 0
    out = tmp_path / "out"
    out.mkdir()
    (small_fs / "results").mkdir()
    (out / "results").symlink_to(small_fs / "results")
    filler = fill(small_fs)
    assert train(data, out) == 2
    err = one_line_error(capsys)
    assert "no space left writing" in err and ".parquet" in err
    assert list((small_fs / "results").iterdir()) == []  # no temporary, no half row
    filler.unlink()  # free space, rerun: the same numbers as a run that never hit a full disk
    assert train(data, out) == 0
    got, want = (pd.read_parquet(next((d / "results").glob("*.parquet"))) for d in (out, reference))
    for column in ("run_id", "test_acc", "test_auc", "val_acc", "best_epoch"):
        assert got[column].iloc[0] == want[column].iloc[0], column


def test_disk_full_writing_a_synthetic_set_leaves_no_store(tmp_path, data, small_fs, capsys):
    from medaug.generators.base import GENERATORS

    splits = load_medmnist("breastmnist", root=data, verify=False)
    ckpt = GENERATORS.get("class-mean-noise")(1, 28, 2, device="cpu").fit(splits.train, tmp_path / "gen",
                                                                          plots=False)
    fill(small_fs, leave=8 << 10)
    store = small_fs / "sets.zarr"
    code = main(["synthesize", "--checkpoint", str(ckpt), "--strategy", "ratio", "--synthetic-per-real", "4",
                 "--seed", "0", "--out", str(store), "--group", "g", "--data-root", str(data), "--no-verify-md5",
                 "--device", "cpu"])
    err = one_line_error(capsys)
    assert code == 2 and f"no space left writing {store}#g" in err
    assert sorted(p.name for p in small_fs.iterdir()) == ["filler"]


def test_injected_enospc_leaves_the_old_row_untouched(tmp_path, monkeypatch):
    """The same promise where no tmpfs can be mounted: ENOSPC from the Parquet writer."""
    row = {"run_id": "r1", "status": "finished", "test_acc": 0.5}
    path = write_row(row, tmp_path)
    before = path.read_bytes()

    def full(table, where, **kwargs):
        Path(where).write_bytes(b"PAR1 partial")
        raise OSError(errno.ENOSPC, "Error writing bytes to file. Detail: [errno 28] No space left on device")

    monkeypatch.setattr(results_store.pq, "write_table", full)
    with pytest.raises(MedaugError, match=rf"^no space left writing {path}"):
        write_row({**row, "test_acc": 0.9}, tmp_path)
    assert path.read_bytes() == before
    assert [p.name for p in path.parent.iterdir()] == [path.name]


def test_injected_enospc_writing_a_set_leaves_the_store_as_it_was(tmp_path, monkeypatch):
    train_split = load_medmnist("breastmnist", root=make_root(tmp_path), verify=False).train
    store = tmp_path / "s.zarr"
    write_synthetic_set(store, "first", *synth(), provenance(train_split))
    real = syn._write_group

    def full(store_path, name, data, prov, set_id):
        real(store_path, name, data, prov, set_id)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(syn, "_write_group", full)
    with pytest.raises(MedaugError, match=rf"^no space left writing {store}#second"):
        write_synthetic_set(store, "second", *synth(), provenance(train_split))
    assert sorted(p.name for p in store.iterdir()) == ["first", "zarr.json"]


# --- item 10: a swapped data file cannot borrow the official md5 --------------------------------

@pytest.mark.parametrize("how", ["in-place", "renamed-over"])
def test_same_size_file_with_restored_mtime_is_hashed_again_and_refused(tmp_path, real_root, monkeypatch, capsys,
                                                                       how):
    from medaug.data import medmnist as mm

    monkeypatch.setattr(mm, "CACHE_MIN_AGE_S", 0.0)  # the copy is fresh; remember its pass at once
    root = tmp_path / "data"
    root.mkdir()
    path = root / "breastmnist.npz"
    shutil.copy2(real_root / "breastmnist.npz", path)
    assert main(["data", "info", "breastmnist", "--data-root", str(root)]) == 0
    assert "750601b1f35ba3300ea97c75c52ff8f6" in capsys.readouterr().out
    assert len(json.loads(mm._md5_cache_path().read_text())) >= 1

    st = path.stat()
    forged = bytearray(path.read_bytes())
    forged[len(forged) // 2] ^= 0xFF  # same size, other bytes
    if how == "in-place":
        with open(path, "r+b") as f:
            f.write(forged)
    else:
        (root / "forged").write_bytes(forged)
        os.replace(root / "forged", path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert (path.stat().st_size, path.stat().st_mtime_ns) == (st.st_size, st.st_mtime_ns)

    assert main(["data", "info", "breastmnist", "--data-root", str(root)]) == 2
    err = one_line_error(capsys)
    assert f"{path}: md5 " in err and "does not match medmnist INFO md5 750601b1" in err


@pytest.mark.parametrize("content", ["[1, 2]", "{\"a\": [1]}", "\x00\xff not json", ""])
def test_a_foreign_md5_cache_file_is_ignored(tmp_path, real_root, capsys, content):
    from medaug.data import medmnist as mm

    cache = mm._md5_cache_path()
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(content)
    assert main(["data", "info", "breastmnist", "--data-root", str(real_root)]) == 0
    assert "750601b1f35ba3300ea97c75c52ff8f6" in capsys.readouterr().out


# --- item 12: provenance names the checkpoint by hash and relative path -----------------------

def test_provenance_holds_no_machine_path_and_old_sets_stay_readable(tmp_path, data, capsys):
    from medaug.generators.base import GENERATORS
    from medaug.generators.synthesize import checkpoint_location

    splits = load_medmnist("breastmnist", root=data, verify=False)
    ckpt = GENERATORS.get("class-mean-noise")(1, 28, 2, device="cpu").fit(splits.train, tmp_path / "fits" / "cmn",
                                                                          plots=False)
    store = tmp_path / "sets" / "s.zarr"
    assert main(["synthesize", "--checkpoint", str(ckpt), "--strategy", "ratio", "--synthetic-per-real", "1",
                 "--seed", "0", "--out", str(store), "--group", "g", "--data-root", str(data), "--no-verify-md5",
                 "--device", "cpu"]) == 0
    prov = read_synthetic_set(f"{store}#g").provenance
    assert prov["checkpoint"] == "../fits/cmn/checkpoint"
    assert (store.parent / prov["checkpoint"]).resolve() == Path(ckpt).resolve()
    assert len(prov["checkpoint_hash"]) == 16 and len(prov["state_sha256"]) == 64
    assert str(tmp_path) not in json.dumps(prov)
    assert checkpoint_location("/srv/a/checkpoint", "/home/b/s.zarr") is None  # nothing shared but /

    # a set written before this change (absolute checkpoint path) is still read and mixed
    old = provenance(splits.train, checkpoint="/home/someone/runs/checkpoint")
    write_synthetic_set(store, "old", *synth(), old)
    assert read_synthetic_set(f"{store}#old").provenance["checkpoint"] == "/home/someone/runs/checkpoint"
    assert train(data, tmp_path / "out", "--synthetic", f"{store}#old") == 0


# --- item 6 (sets): a set is validated when it is opened for training ---------------------------

CLASSES = ["malignant", "normal, benign"]


def make_root(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    if not (root / "breastmnist.npz").exists():
        make_medmnist_npz(root / "breastmnist.npz", n=(40, 10, 10))
    return root


def provenance(train_split, **changes) -> dict:
    prov = {"generator": "class-mean-noise", "generator_config": {}, "checkpoint_hash": "0" * 16,
            "train_hash": train_split.content_hash, "dataset": "breastmnist", "dataset_version": "medmnist-3",
            "dataset_md5": "0" * 32, "class_names": CLASSES, "task": "binary-class", "strategy": "per-class",
            "strategy_params": {}, "seed": 0}
    prov.update(changes)
    return prov


def synth(n: int = 5, channels: int = 1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (n, channels, 28, 28), dtype=np.uint8), (np.arange(n) % 2).astype(np.int64)


def craft(store: Path, group: str, images: np.ndarray, labels: np.ndarray, prov: dict, **attrs) -> str:
    """Write a group the way plain zarr would (no medaug checks), as a foreign or damaged set."""
    g = zarr.open_group(str(store), mode="a", zarr_format=3).create_group(group)
    for key, arr in (("images", images), ("labels", labels)):
        a = g.create_array(key, shape=arr.shape, dtype=arr.dtype, chunks=tuple(max(1, s) for s in arr.shape))
        if arr.size:
            a[...] = arr
    shape = images.shape
    g.attrs.update({syn.FORMAT_KEY: syn.FORMAT_VERSION, "set_id": content_hash(images, labels), "n": shape[0],
                    "channels": shape[1] if len(shape) > 1 else 0, "size": shape[-1], "provenance": prov,
                    "complete": True, **attrs})
    return f"{store}#{group}"


def bad_sets():
    images, labels = synth()
    return {
        "empty": (lambda: (images[:0], labels[:0]), {}, {}, "holds 0 images"),
        "labels (N, 1)": (lambda: (images, labels[:, None]), {}, {}, "reshape(-1)"),
        "labels int32": (lambda: (images, labels.astype(np.int32)), {}, {}, "labels are int32"),
        "images float": (lambda: (images.astype(np.float32), labels), {}, {}, "images are float32"),
        "two channels": (lambda: (np.repeat(images, 2, axis=1), labels), {}, {}, "1 or 3 channels"),
        "class id 7": (lambda: (images, np.full(5, 7, np.int64)), {}, {}, "class ids 7..7 out of range"),
        "negative id": (lambda: (images, np.full(5, -1, np.int64)), {}, {}, "out of range"),
        "n differs": (lambda: (images, labels), {"n": 9}, {}, "as its attributes say"),
        "set_id junk": (lambda: (images, labels), {"set_id": "../../etc"}, {}, "expected 16 hex digits"),
        "n is text": (lambda: (images, labels), {"n": "5"}, {}, "attribute 'n'"),
        "task unknown": (lambda: (images, labels), {}, {"task": "regression"}, "provenance task"),
        "no classes": (lambda: (images, labels), {}, {"class_names": []}, "class_names"),
    }


@pytest.mark.parametrize("case", list(bad_sets()))
def test_a_bad_set_is_one_line_at_train_time_and_nothing_is_written(tmp_path, one_thread, capsys, case):
    root = make_root(tmp_path)
    arrays, attrs, prov_changes, message = bad_sets()[case]
    train_split = load_medmnist("breastmnist", root=root, verify=False).train
    ref = craft(tmp_path / "s.zarr", "g", *arrays(), provenance(train_split, **prov_changes), **attrs)
    out = tmp_path / "out"
    assert train(root, out, "--synthetic", ref) == 2
    err = one_line_error(capsys)
    assert ref in err and message in err, err
    assert files_under(out) == []


def test_a_set_with_an_unknown_codec_is_refused_before_decoding(tmp_path, capsys):
    root = make_root(tmp_path)
    train_split = load_medmnist("breastmnist", root=root, verify=False).train
    ref = craft(tmp_path / "s.zarr", "g", *synth(), provenance(train_split))
    meta_file = tmp_path / "s.zarr" / "g" / "labels" / "zarr.json"
    meta = json.loads(meta_file.read_text())
    meta["codecs"] = [{"name": "numcodecs.pickle", "configuration": {}}]
    meta_file.write_text(json.dumps(meta))
    with pytest.raises(MedaugError, match=rf"^{ref}: .*'labels'") as info:
        read_synthetic_set(ref)
    assert "\n" not in str(info.value)
    out = tmp_path / "out"
    assert train(root, out, "--synthetic", ref) == 2
    assert ref in one_line_error(capsys) and files_under(out) == []


def test_a_set_claiming_more_images_than_memory_is_refused_before_reading(tmp_path, capsys):
    root = make_root(tmp_path)
    train_split = load_medmnist("breastmnist", root=root, verify=False).train
    n = 10**12
    ref = craft(tmp_path / "s.zarr", "g", *synth(), provenance(train_split), n=n)
    for key, shape in (("images", [n, 1, 28, 28]), ("labels", [n])):
        meta_file = tmp_path / "s.zarr" / "g" / key / "zarr.json"
        meta = json.loads(meta_file.read_text())
        meta["shape"] = shape
        meta_file.write_text(json.dumps(meta))
    out = tmp_path / "out"
    assert train(root, out, "--synthetic", ref) == 2
    err = one_line_error(capsys)
    assert ref in err and "more than this machine's memory" in err and files_under(out) == []


def test_a_set_whose_codec_is_registered_but_not_allowed_is_refused(tmp_path):
    root = make_root(tmp_path)
    train_split = load_medmnist("breastmnist", root=root, verify=False).train
    ref = craft(tmp_path / "s.zarr", "g", *synth(), provenance(train_split))
    meta_file = tmp_path / "s.zarr" / "g" / "labels" / "zarr.json"
    meta = json.loads(meta_file.read_text())
    meta["codecs"].append({"name": "numcodecs.delta", "configuration": {"dtype": "<i8"}})  # a filter after bytes
    meta_file.write_text(json.dumps(meta))
    with pytest.raises(MedaugError, match=rf"^{ref}: "):
        read_synthetic_set(ref)


# --- item 7 support: a set's content id from any reference to it, cheaply ------------------

def test_read_set_id_is_the_same_for_every_spelling_and_reads_no_pixels(tmp_path, monkeypatch):
    root = make_root(tmp_path)
    train_split = load_medmnist("breastmnist", root=root, verify=False).train
    (tmp_path / "syn").mkdir()
    set_id = write_synthetic_set(tmp_path / "syn" / "s.zarr", "g", *synth(), provenance(train_split))
    monkeypatch.chdir(tmp_path)
    refs = [f"{tmp_path}/syn/s.zarr#g", "syn/s.zarr#g", "./syn//s.zarr#g"]
    assert {read_set_id(r) for r in refs} == {set_id}
    for chunk in (tmp_path / "syn" / "s.zarr" / "g" / "images" / "c").rglob("*"):
        if chunk.is_file():
            chunk.write_bytes(b"garbage")  # metadata only: the id is still read, the pixels are refused
    assert read_set_id(refs[1]) == set_id
    with pytest.raises(MedaugError, match="corrupt"):
        read_synthetic_set(refs[1])
    empty = craft(tmp_path / "syn" / "s.zarr", "empty", *(a[:0] for a in synth()), provenance(train_split))
    with pytest.raises(MedaugError, match="holds 0 images"):
        read_set_id(empty)


# --- errors that were tracebacks: data montage|distribution --out ------------------------------

@pytest.mark.parametrize("command", ["montage", "distribution"])
@pytest.mark.parametrize("where, message", [
    ("a_file/m.png", "is a file, not a folder"),
    ("a_file/deeper/m.png", "is a file, not a folder"),
    ("a_folder", "is a folder; expected a file path"),
    ("m.xyz", "unknown figure format 'xyz'"),
])
def test_figure_out_that_cannot_be_written_is_one_line_and_nothing_is_written(tmp_path, data, capsys, command,
                                                                            where, message):
    (tmp_path / "a_file").write_text("keep me")
    (tmp_path / "a_folder").mkdir()
    before = {p: p.read_bytes() for p in files_under(tmp_path)}
    dirs = sorted(p for p in tmp_path.rglob("*") if p.is_dir())
    assert main(["data", command, "breastmnist", "--data-root", str(data), "--no-verify-md5",
                 "--out", str(tmp_path / where)]) == 2
    assert message in one_line_error(capsys)
    assert {p: p.read_bytes() for p in files_under(tmp_path)} == before
    assert sorted(p for p in tmp_path.rglob("*") if p.is_dir()) == dirs


def test_montage_per_class_below_one_is_one_line(tmp_path, data, capsys):
    out = tmp_path / "m.png"
    assert main(["data", "montage", "breastmnist", "--data-root", str(data), "--no-verify-md5", "--per-class", "0",
                 "--out", str(out)]) == 2
    assert "--per-class 0: expected an integer >= 1" in one_line_error(capsys)
    assert not out.exists()
