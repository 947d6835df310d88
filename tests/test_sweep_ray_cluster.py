"""A real two-node Ray cluster on 127.0.0.1: the local executor spreads trials over both nodes.

Each node is a `ray start --block` process in its own session (1 CPU each, capped
object store); the test stops them by their process groups, never with `ray stop`
(which would end every Ray on the machine).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from medaug.sweep.driver import RAY_ENV, run_study
from medaug.sweep.study import load_study
from sweep_helpers import slurm_cluster, tiny_data, wait_for, write  # noqa: F401

pytestmark = pytest.mark.ray_cluster

RAY = str(Path(sys.executable).with_name("ray"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(proc: subprocess.Popen) -> None:
    for sig, wait in ((signal.SIGTERM, 5), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


@pytest.fixture(scope="module")
def ray_two_nodes():
    env = {**os.environ, **RAY_ENV}
    port = _free_port()
    temp = tempfile.mkdtemp(prefix="rt", dir="/tmp")  # short: Unix socket paths stop at 107 bytes
    common = ["--num-cpus=1", "--object-store-memory=100000000", "--disable-usage-stats", "--block"]
    head = subprocess.Popen([RAY, "start", "--head", f"--port={port}", "--include-dashboard=false",
                             f"--temp-dir={temp}", *common], env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    nodes = [head]
    try:
        import ray

        def alive_nodes() -> int:
            res = subprocess.run([sys.executable, "-c", (
                "import ray; ray.init(address='127.0.0.1:%d', logging_level='ERROR');"
                "print(sum(n['Alive'] for n in ray.nodes()))") % port],
                env=env, capture_output=True, text=True, timeout=60)
            return int(res.stdout.strip().splitlines()[-1]) if res.returncode == 0 and res.stdout.strip() else 0

        wait_for(lambda: alive_nodes() >= 1, 120, "the Ray head", interval=1)
        worker = subprocess.Popen([RAY, "start", f"--address=127.0.0.1:{port}", *common], env=env,
                                  start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        nodes.append(worker)
        wait_for(lambda: alive_nodes() >= 2, 120, "the second Ray node", interval=1)
        yield f"127.0.0.1:{port}"
        if ray.is_initialized():
            ray.shutdown()
    finally:
        for proc in reversed(nodes):
            _stop(proc)


def test_trials_run_on_both_nodes(tmp_path, tiny_data, ray_two_nodes):  # noqa: F811
    study = load_study(write(tmp_path / "two.yaml", """
name: two-nodes
base: {dataset: breastmnist, epochs: 1, batch_size: 16, lr: 0.1}
grid:
  seed: [0, 1]
resources: {cpus: 1}
"""))
    t0 = time.monotonic()
    outcome = run_study(study, "local", tmp_path / "out", data_root=tiny_data, verify_md5=False,
                        ray_address=ray_two_nodes, progress=False)
    assert outcome.finished == 2, outcome
    import ray

    nodes = {n["NodeID"] for n in ray.nodes() if n["Alive"]} if ray.is_initialized() else None
    placed = {m.get("ray_node_id") for m in outcome.last_results}
    assert len(placed) == 2 and None not in placed, placed  # one trial per 1-CPU node
    if nodes is not None:
        assert placed <= nodes
    assert time.monotonic() - t0 < 600


@pytest.mark.slurm
def test_whole_allocation_sbatch_runs_the_study_on_a_ray_cluster(tmp_path, tiny_data, slurm_cluster):  # noqa: F811
    """hpc/slurm/ray-cluster.sbatch on the two local nodes: Ray head on n1, a worker on n2
    (srun), readiness polled, the study on the local executor against that cluster."""
    from ray.tune import ExperimentAnalysis

    from sweep_helpers import REPO, sacct_jobs

    study = write(tmp_path / "alloc.yaml", """
name: alloc
base: {dataset: breastmnist, epochs: 1, batch_size: 16, lr: 0.1}
grid:
  seed: [0, 1]
resources: {cpus: 1}
""")
    bindir = Path(sys.executable).parent
    env = {**os.environ, **RAY_ENV, "MEDAUG": f"{sys.executable} -m medaug.sweep", "RAY": str(bindir / "ray"),
           "PYTHON": sys.executable, "MEDAUG_RAY_HEAD_ADDR": "127.0.0.1"}
    job = subprocess.run(["sbatch", "--parsable", "--nodes=2", "--cpus-per-task=1", "--mem=1000M",
                          str(REPO / "hpc" / "slurm" / "ray-cluster.sbatch"), str(study), str(tmp_path / "out"),
                          "--data-root", str(tiny_data), "--no-verify-md5", "--quiet"],
                         env=env, cwd=tmp_path, capture_output=True, text=True, check=True).stdout.strip()
    state = wait_for(lambda: (s := sacct_jobs(int(job) - 1).get(job)) and s[1] not in ("PENDING", "RUNNING")
                     and s, 400, "the allocation job", interval=2)
    log = (tmp_path / f"medaug-ray-{job}.out").read_text()
    assert state[1] == "COMPLETED" and state[2] == "n[1-2]", log
    assert "2 nodes up; running the study" in log and "2 finished, 0 failed" in log, log
    trials = ExperimentAnalysis(str(tmp_path / "out" / "ray" / "alloc")).trials
    assert len({t.last_result.get("ray_node_id") for t in trials}) == 2  # one trial on each node's 1 CPU
