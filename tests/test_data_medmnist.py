"""MedMNIST npz loading: the real file, the tiny generated ones, and every kind of bad input."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from conftest import make_medmnist_npz
from medaug.data.imageset import ImageSet, content_hash
from medaug.data.medmnist import DATA_ROOT_ENV, DATASETS_2D, default_root, file_name, load_medmnist
from medaug.errors import MedaugError


def test_real_breastmnist_loads_with_official_split_sizes(real_root: Path) -> None:
    data = load_medmnist("breastmnist", root=real_root)
    assert [len(data.split(s)) for s in ("train", "val", "test")] == [546, 78, 156]
    assert data.train.images.shape == (546, 1, 28, 28) and data.train.images.dtype == np.uint8
    assert data.train.class_counts().tolist() == [147, 399]
    assert data.md5 == "750601b1f35ba3300ea97c75c52ff8f6"
    assert data.train.class_names == ("malignant", "normal, benign")
    assert data.train.task == "binary-class" and data.license == "CC BY 4.0"
    assert len(set(data.split_hashes.values())) == 3


def test_all_twelve_2d_sets_known_with_their_file_names() -> None:
    assert len(DATASETS_2D) == 12
    assert file_name("pathmnist", 28) == "pathmnist.npz"
    assert file_name("chestmnist", 224) == "chestmnist_224.npz"
    with pytest.raises(MedaugError, match="unsupported size 32"):
        file_name("pathmnist", 32)


def test_env_var_sets_default_root(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(DATA_ROOT_ENV, str(tmp_path))
    assert default_root() == tmp_path


def test_three_channel_set_is_transposed_to_nchw(tiny_root: Path) -> None:
    data = load_medmnist("pathmnist", root=tiny_root, verify=False)
    assert data.train.images.shape == (90, 3, 28, 28)
    assert data.train.num_classes == 9 and data.train.task == "multi-class"


def test_multi_label_labels_stay_two_dimensional(tmp_path: Path) -> None:
    make_medmnist_npz(tmp_path / "chestmnist.npz", num_classes=14, multi_label=True)
    data = load_medmnist("chestmnist", root=tmp_path, verify=False)
    assert data.train.labels.shape == (60, 14) and data.train.multi_label


def test_content_hash_changes_with_one_pixel() -> None:
    images = np.zeros((4, 1, 8, 8), np.uint8)
    labels = np.zeros(4, np.int64)
    before = content_hash(images, labels)
    images[2, 0, 3, 3] = 1
    assert content_hash(images, labels) != before


# --- bad input: one clear line naming the thing and what was expected --------------------

def test_missing_file_names_path_and_env_var(tmp_path: Path) -> None:
    with pytest.raises(MedaugError, match=rf"breastmnist.npz: data file not found.*{DATA_ROOT_ENV}"):
        load_medmnist("breastmnist", root=tmp_path)


def test_md5_mismatch_is_refused(tiny_root: Path) -> None:
    with pytest.raises(MedaugError, match="md5 .* does not match medmnist INFO md5 750601b1"):
        load_medmnist("breastmnist", root=tiny_root)


def test_unknown_dataset_and_size() -> None:
    with pytest.raises(MedaugError, match="unknown dataset 'brestmnist'"):
        load_medmnist("brestmnist")
    with pytest.raises(MedaugError, match="unsupported size 100"):
        load_medmnist("breastmnist", size=100)


def _rewrite(path: Path, **changes: np.ndarray | None) -> None:
    with np.load(path) as npz:
        arrays = {k: npz[k] for k in npz.files}
    for key, value in changes.items():
        if value is None:
            del arrays[key]
        else:
            arrays[key] = value
    np.savez(path, **arrays)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda a: {"val_labels": None}, r"missing keys \['val_labels'\]"),
        (lambda a: {"train_images": a["train_images"].astype(np.float32)}, "dtype float32; expected uint8"),
        (lambda a: {"train_images": a["train_images"][:, :20]}, "are 20x28; expected 28x28"),
        (lambda a: {"test_images": np.zeros((20, 28, 28, 3), np.uint8)}, r"expected \(N, H, W\)"),
        (lambda a: {"train_labels": np.full((60, 1), 5, np.uint8)}, r"out of range: 5..5, expected 0..1"),
        (lambda a: {"train_labels": a["train_labels"][:10]}, r"labels has shape \(10, 1\)"),
        (lambda a: {"val_labels": a["val_labels"].astype(np.float64)}, "dtype float64; expected an integer"),
    ],
)
def test_malformed_npz_is_refused(tiny_root: Path, change, message: str) -> None:
    path = tiny_root / "breastmnist.npz"
    with np.load(path) as npz:
        arrays = {k: npz[k] for k in npz.files}
    _rewrite(path, **change(arrays))
    with pytest.raises(MedaugError, match=message):
        load_medmnist("breastmnist", root=tiny_root, verify=False)


def test_not_a_zip_is_refused(tmp_path: Path) -> None:
    (tmp_path / "breastmnist.npz").write_bytes(b"not an npz")
    with pytest.raises(MedaugError, match="not a readable npz"):
        load_medmnist("breastmnist", root=tmp_path, verify=False)


def test_md5_pass_is_remembered(tiny_root: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from medaug.data import medmnist as mm

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    path = tiny_root / "breastmnist.npz"
    md5 = hashlib.md5(path.read_bytes()).hexdigest()
    calls = []
    real = mm.file_md5
    monkeypatch.setattr(mm, "file_md5", lambda p: calls.append(p) or real(p))
    # a file changed within the last CACHE_MIN_AGE_S (a clock tick could hide a rewrite) is not remembered
    assert mm.verify_md5(path, md5) == md5
    assert mm.verify_md5(path, md5) == md5
    assert len(calls) == 2
    monkeypatch.setattr(mm, "CACHE_MIN_AGE_S", 0.0)
    assert mm.verify_md5(path, md5) == md5
    assert mm.verify_md5(path, md5) == md5
    assert len(calls) == 3


def test_imageset_refuses_bad_labels() -> None:
    with pytest.raises(MedaugError, match="labels out of range"):
        ImageSet("x", "train", np.zeros((2, 1, 4, 4), np.uint8), np.array([0, 3]), ("a", "b"), "multi-class")
