"""Shared fixtures: tiny data sets in MedMNIST's exact npz format, the real BreastMNIST."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
#: where tests find the real MedMNIST files: $MEDAUG_TEST_DATA, else shared/ beside the repository
TEST_DATA_ENV = "MEDAUG_TEST_DATA"
DEFAULT_TEST_DATA = REPO.parent / "shared" / "data" / "medmnist"


def real_data_dir() -> Path:
    """The folder of the real MedMNIST npz files the tests use ($MEDAUG_TEST_DATA or the default)."""
    value = os.environ.get(TEST_DATA_ENV, "").strip()
    return Path(value).expanduser() if value else DEFAULT_TEST_DATA


def require_real_file(name: str) -> Path:
    """The real data file `name` (e.g. breastmnist.npz) under real_data_dir().

    Absent, the test is skipped with the reason and how to point at the file; under
    CI=true it fails instead, so a CI that lost its data does not pass by skipping.
    """
    folder = real_data_dir()
    path = folder / name
    if path.is_file():
        return path
    source = f"from ${TEST_DATA_ENV}" if os.environ.get(TEST_DATA_ENV, "").strip() else "the default"
    why = (f"real data file {name} not found in {folder} ({source}); to run this test, set "
           f"{TEST_DATA_ENV} to the folder holding the MedMNIST npz files")
    if os.environ.get("CI", "").strip().lower() == "true":
        pytest.fail(f"{why} [CI=true: missing data is a failure, not a skip]", pytrace=False)
    pytest.skip(why)


def make_medmnist_npz(path: Path, *, n: tuple[int, int, int] = (60, 20, 20), size: int = 28, channels: int = 1,
                      num_classes: int = 2, multi_label: bool = False, seed: int = 0) -> Path:
    """Write a small npz in MedMNIST's format whose classes are learnable.

    Class k images carry a bright square at a class-specific position, so a few
    epochs of any classifier separate them. Shapes: images (N,H,W) for 1 channel,
    (N,H,W,3) for 3; labels (N,1), or (N,L) of 0/1 when multi-label.
    """
    rng = np.random.default_rng(seed)
    arrays: dict[str, np.ndarray] = {}
    for split, count in zip(("train", "val", "test"), n):
        if multi_label:
            labels = (rng.random((count, num_classes)) < 0.4).astype(np.uint8)
        else:
            labels = (np.arange(count) % num_classes).astype(np.uint8)[:, None]
            rng.shuffle(labels)
        imgs = rng.integers(0, 60, size=(count, size, size, channels), dtype=np.uint8)
        cell = max(size // (num_classes + 1), 2)
        for i in range(count):
            active = np.flatnonzero(labels[i]) if multi_label else [int(labels[i, 0])]
            for k in active:
                y = x = (k * cell) % (size - cell)
                imgs[i, y:y + cell, x:x + cell, :] = 200 + rng.integers(0, 55)
        arrays[f"{split}_images"] = imgs[..., 0] if channels == 1 else imgs
        arrays[f"{split}_labels"] = labels
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **arrays)
    return path


@pytest.fixture
def one_thread():
    """One intra-op thread: tiny nets gain nothing from more, and on a shared 2-core
    machine two spinning OpenMP threads per process make steps ~20x slower."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def tiny_root(tmp_path: Path) -> Path:
    """A data root with a tiny 1-channel binary 'breastmnist' and 3-channel 9-class 'pathmnist'."""
    root = tmp_path / "data"
    make_medmnist_npz(root / "breastmnist.npz", channels=1, num_classes=2)
    make_medmnist_npz(root / "pathmnist.npz", channels=3, num_classes=9, n=(90, 27, 27))
    return root


@pytest.fixture
def real_root() -> Path:
    """The folder holding the real BreastMNIST npz: $MEDAUG_TEST_DATA, default shared/data/medmnist
    beside the repository; skipped with the reason when absent (failed under CI=true)."""
    return require_real_file("breastmnist.npz").parent


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Tests never read the developer's MEDAUG_DATA_ROOT or write to their ~/.cache or
    ~/.local/state (SLURM job folders go under the session's temporary folder)."""
    monkeypatch.delenv("MEDAUG_DATA_ROOT", raising=False)
    monkeypatch.delenv("MEDAUG_WEIGHTS_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.getbasetemp() / "xdg-cache"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path_factory.getbasetemp() / "xdg-state"))
    monkeypatch.setenv("MEDAUG_JOB_DIR", str(tmp_path_factory.getbasetemp() / "medaug-jobs"))
