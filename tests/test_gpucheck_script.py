"""scripts/gpu-check without CUDA: exit 2, one line saying why, nothing written (run the way a user runs it)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import REPO

SCRIPT = REPO / "scripts" / "gpu-check"


def _run(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **env})


def _no_gpu_here() -> bool:
    return shutil.which("nvidia-smi") is None and not list(Path("/dev").glob("nvidia[0-9]*"))


@pytest.mark.parametrize("hide", [True, False], ids=["gpus-hidden", "as-is"])
def test_without_cuda_it_exits_2_with_one_line_and_writes_nothing(tmp_path, hide):
    if not hide and not _no_gpu_here():
        pytest.skip("this machine has a GPU: only the hidden-GPU case applies")
    out = tmp_path / "results"
    proc = _run(str(out), **({"CUDA_VISIBLE_DEVICES": ""} if hide else {}))
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gpu-check: no CUDA device here ("), proc.stderr
    assert "run it on a machine with an NVIDIA GPU" in lines[0] and proc.stdout == ""
    assert not out.exists()  # nothing written, not even the folder
    empty = tmp_path / "empty"
    empty.mkdir()
    assert _run(str(empty), CUDA_VISIBLE_DEVICES="").returncode == 2 and list(empty.iterdir()) == []


def test_bad_usage_is_one_line_exit_2(tmp_path):
    proc = _run()
    assert proc.returncode == 2 and proc.stderr.strip() == (
        "gpu-check: usage: scripts/gpu-check OUT (a new or empty folder for the results)")
    full = tmp_path / "full"
    full.mkdir()
    (full / "keep.txt").write_text("earlier results")
    proc = _run(str(full))
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    assert f"{full}: exists and is not an empty folder" in proc.stderr
    assert sorted(p.name for p in full.iterdir()) == ["keep.txt"] and (full / "keep.txt").read_text() == "earlier results"


def test_the_script_parses():
    assert subprocess.run(["bash", "-n", str(SCRIPT)], capture_output=True).returncode == 0
    assert os.access(SCRIPT, os.X_OK)
