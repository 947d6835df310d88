"""scripts/gpu-check without CUDA: exit 2, one line saying why, nothing written (run the way a user runs it)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
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


def _source_venv(probe: str, **env: str) -> subprocess.CompletedProcess:
    """Source scripts/_venv.sh the way scripts/test does, then run `probe` in that shell."""
    script = f'EXTRAS=test; source "{REPO}/scripts/_venv.sh"; cd "{REPO}"; {probe}'
    return subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=120,
                          cwd="/", env={**os.environ, "PIP_NO_INDEX": "1", **env})


def test_medaug_python_uses_an_existing_environment_as_it_is(tmp_path):
    """An offline GPU node: no venv is made and nothing installed; `python` is that interpreter."""
    venv = tmp_path / "never-made"
    python = REPO / ".venv" / "bin" / "python"
    if not python.exists():
        pytest.skip("needs the project's .venv")
    proc = _source_venv('python -c "import sys, medaug; print(sys.executable); print(medaug.__file__)"',
                        MEDAUG_PYTHON=os.path.relpath(python, "/"), MEDAUG_VENV=str(venv))
    assert proc.returncode == 0, proc.stderr
    exe, module = proc.stdout.split()
    assert Path(exe) == python and Path(module).is_relative_to(REPO)
    assert "nothing installed" in proc.stderr and "installing" not in proc.stderr.replace("nothing installed", "")
    assert not venv.exists()


def test_medaug_python_without_torch_is_one_line_exit_2(tmp_path):
    python = shutil.which("python3")
    proc = _source_venv("echo reached", MEDAUG_PYTHON=str(tmp_path / "no-such-python"))
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.strip().splitlines() == [
        f"MEDAUG_PYTHON={tmp_path / 'no-such-python'}: expected a Python >= 3.11 that can import torch"]
    if python and subprocess.run([python, "-c", "import torch"], capture_output=True).returncode != 0:
        proc = _source_venv("echo reached", MEDAUG_PYTHON=python)
        assert proc.returncode == 2 and "expected a Python >= 3.11 that can import torch" in proc.stderr


def test_the_gpu_step_collects_only_files_that_hold_gpu_tests():
    """The files gpu-check hands to pytest import nothing the cluster side alone needs."""
    files = subprocess.run(["bash", "-c", 'grep -l "pytest.mark.gpu" tests/test_*.py'], cwd=REPO,
                           capture_output=True, text=True).stdout.split()
    assert {"tests/test_augment.py", "tests/test_stylegan2_cuda.py", "tests/test_edm_cuda.py"} <= set(files)
    blocked = ("ray", "submitit", "duckdb", "zarr")
    probe = ("import sys\n"
             f"class Block:\n  def find_spec(self, name, path=None, target=None):\n"
             f"    if name.split('.')[0] in {blocked!r}: raise ImportError('blocked ' + name)\n"
             "sys.meta_path.insert(0, Block())\n"
             "import pytest\n"
             "sys.exit(pytest.main(['-p', 'no:cacheprovider', '-q', '--collect-only', '-m', 'gpu', *sys.argv[1:]]))\n")
    proc = subprocess.run([sys.executable, "-c", probe, *files], cwd=REPO, capture_output=True, text=True,
                          timeout=300, env={**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"})
    assert proc.returncode == 0, proc.stdout[-2000:]
