"""Where the tests find the real MedMNIST file: $MEDAUG_TEST_DATA, else shared/ beside the repository.

Driven the way a user runs the suite (a pytest subprocess in a clone), for each case:
absent data is a skip whose reason says how to point at the file, a failure under
CI=true, and the file itself when the variable names its folder.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import DEFAULT_TEST_DATA, REPO, TEST_DATA_ENV

TARGET = "tests/test_data_medmnist.py::test_real_breastmnist_loads_with_official_split_sizes"


def _run_pytest(env_changes: dict[str, str | None]) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("CI", TEST_DATA_ENV, "PYTEST_ADDOPTS")}
    env.update({k: v for k, v in env_changes.items() if v is not None})
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", TARGET],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


def test_missing_real_data_is_a_skip_saying_how_to_point_at_it(tmp_path: Path) -> None:
    empty = tmp_path / "no-data"
    empty.mkdir()
    proc = _run_pytest({TEST_DATA_ENV: str(empty)})
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "1 skipped" in out and "error" not in out.lower(), out
    assert f"breastmnist.npz not found in {empty}" in out and f"set {TEST_DATA_ENV}" in out, out
    assert list(empty.iterdir()) == []


def test_missing_real_data_fails_under_ci(tmp_path: Path) -> None:
    proc = _run_pytest({TEST_DATA_ENV: str(tmp_path / "absent"), "CI": "true"})
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out  # pytest's "tests failed" (a fixture failing at setup counts as an error)
    assert ("1 error" in out or "1 failed" in out) and "CI=true: missing data is a failure" in out, out
    assert f"breastmnist.npz not found in {tmp_path / 'absent'}" in out, out


def test_the_variable_points_the_tests_at_a_copy_of_the_real_file(tmp_path: Path) -> None:
    real = DEFAULT_TEST_DATA / "breastmnist.npz"
    if not real.is_file():
        pytest.skip(f"no real BreastMNIST at {DEFAULT_TEST_DATA} to copy")
    elsewhere = tmp_path / "somewhere" / "medmnist"
    elsewhere.mkdir(parents=True)
    shutil.copy2(real, elsewhere / "breastmnist.npz")
    proc = _run_pytest({TEST_DATA_ENV: str(elsewhere), "CI": "true"})
    assert proc.returncode == 0 and "1 passed" in proc.stdout, proc.stdout + proc.stderr
