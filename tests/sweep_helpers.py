"""Helpers and fixtures for the sweep tests (imported by tests/test_sweep_*.py).

- `slurm_cluster`: the local two-node SLURM of hpc/localslurm/localslurm.sh. Uses a
  running one (SLURM_CONF exported and answering, as .ci/run leaves it), else starts
  it (root, packages installed) and stops it at the end; skips when neither works.
- `ray_local`: one Ray instance (2 CPUs) shared by a test module, so each test does
  not pay Ray's start-up.
- `tiny_data`: a data root with a tiny learnable breastmnist npz (MedMNIST format).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LOCALSLURM = REPO / "hpc" / "localslurm" / "localslurm.sh"
sys.path.insert(0, str(Path(__file__).resolve().parent))

from conftest import make_medmnist_npz  # noqa: E402


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _slurm_answers(env: dict[str, str]) -> bool:
    try:
        res = subprocess.run(["scontrol", "ping"], env=env, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return res.returncode == 0 and "UP" in res.stdout


@pytest.fixture(scope="session")
def slurm_cluster():
    """SLURM_CONF of a running local cluster (exported into os.environ for the session)."""
    env = dict(os.environ)
    started = False
    if not (env.get("SLURM_CONF") and _slurm_answers(env)):
        if shutil.which("slurmctld") is None or os.geteuid() != 0:
            pytest.skip("no local SLURM: run hpc/localslurm/localslurm.sh install && start (as root)")
        res = subprocess.run(["bash", str(LOCALSLURM), "start"], capture_output=True, text=True, timeout=180)
        if res.returncode != 0:
            pytest.fail(f"localslurm start failed: {res.stderr[-2000:]}")
        conf = res.stdout.strip().split("SLURM_CONF=")[-1]
        os.environ["SLURM_CONF"] = conf
        started = True
        # the controller may take a moment to answer after start (a first sbatch once
        # failed with "Unable to contact slurm controller")
        wait_for(lambda: _slurm_answers(dict(os.environ)), 60, "slurmctld to answer", interval=1.0)
    yield os.environ["SLURM_CONF"]
    if started:
        subprocess.run(["bash", str(LOCALSLURM), "stop"], capture_output=True, timeout=120)


def sacct_jobs(since_id: int = 0) -> dict[str, tuple[str, str, str]]:
    """job id -> (name, state, nodes) for jobs above `since_id`, from accounting."""
    out = subprocess.run(["sacct", "-X", "-n", "-P", "-S", "now-1days", "-o", "JobID,JobName,State,NodeList"],
                         capture_output=True, text=True, timeout=60).stdout
    jobs = {}
    for line in out.splitlines():
        jid, name, state, nodes = line.split("|")
        if jid.isdigit() and int(jid) > since_id:
            jobs[jid] = (name, state.split()[0], nodes)
    return jobs


def last_job_id() -> int:
    ids = [int(j) for j in sacct_jobs()]
    return max(ids, default=0)


def wait_for(predicate, timeout: float, what: str, interval: float = 0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


@pytest.fixture(scope="module")
def ray_local():
    from medaug.sweep.driver import ray_init

    started = ray_init(num_cpus=2)
    yield
    if started:
        import ray

        ray.shutdown()


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> Path:
    """breastmnist (120/40/40 images, 2 classes): lr 0.1 reaches val_acc 0.9 after one epoch, lr 1e-5 stays at 0.5."""
    root = tmp_path_factory.mktemp("sweepdata")
    make_medmnist_npz(root / "breastmnist.npz", n=(120, 40, 40))
    return root


def site_file(tmp: Path, **env: str) -> Path:
    """The localhost site profile with extra job environment (e.g. MEDAUG_EPOCH_PAUSE_S)."""
    text = (REPO / "hpc" / "sites" / "localhost.yaml").read_text()
    if env:
        text = text.replace("env:\n", "env:\n" + "".join(f"  {k}: \"{v}\"\n" for k, v in env.items()))
    return write(tmp / "site.yaml", text)
