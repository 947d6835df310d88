"""Containers: the Apptainer definition, and jobs run through `apptainer exec`.

Apptainer itself cannot be installed on the test machine, so the execution path is
tested with a stand-in `apptainer` (tests/fake_apptainer/apptainer) that takes the same
command line and runs the command under bubblewrap: read-only host root, private /tmp,
only the bound folders writable. The real image build was not run here.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from medaug.experiment import ExperimentSpec
from medaug.store.results import result_path
from medaug.sweep.site import load_site
from medaug.sweep.slurm import SlurmExperiment, make_executor
from medaug.sweep.study import Resources
from medaug.sweep.trial import RunOptions, read_row
from sweep_helpers import REPO, slurm_cluster, tiny_data, write  # noqa: F401

FAKE = Path(__file__).resolve().parent / "fake_apptainer" / "apptainer"


def _sections(text: str) -> dict[str, str]:
    parts = re.split(r"^%(\w+)\s*$", text, flags=re.M)
    return {parts[i]: parts[i + 1] for i in range(1, len(parts) - 1, 2)}


def test_definition_file_builds_medaug_on_a_pytorch_cuda_image():
    text = (REPO / "containers" / "medaug.def").read_text()
    header = dict(re.findall(r"^(Bootstrap|From):\s*(\S+)", text, flags=re.M))
    assert header["Bootstrap"] == "docker" and re.fullmatch(r"pytorch/pytorch:[\d.]+-cuda[\d.]+-cudnn\d+-runtime",
                                                              header["From"])
    sec = _sections(text)
    assert {"files", "post", "environment", "runscript", "test", "labels", "help"} <= set(sec)
    for line in sec["files"].strip().splitlines():  # everything copied in exists in the repository
        assert (REPO / line.split()[0]).exists(), line
    assert "pip install --no-cache-dir /opt/medaug" in sec["post"]
    assert sec["runscript"].strip() == 'exec medaug "$@"'
    assert "medaug --version" in sec["test"] and "--dry-run" in sec["test"]


def test_standin_runtime_runs_commands_with_only_the_binds_writable(tmp_path):
    if shutil.which("bwrap") is None:
        pytest.skip("bubblewrap not installed: the stand-in would run without a sandbox")
    image = write(tmp_path / "medaug.sif", "stand-in image")
    bound, other = tmp_path / "results", tmp_path / "elsewhere"
    bound.mkdir()
    other.mkdir()
    site = write(tmp_path / "site.yaml", f"container: {{runtime: {FAKE}, image: {image}, binds: [{bound}]}}\n")
    container = load_site(site).container
    code = ("import pathlib, sys; pathlib.Path(sys.argv[1], 'ok').write_text('x');"
            "open(sys.argv[2] + '/no', 'w')")
    cmd = container.command([sys.executable, "-c", code, str(bound), str(REPO)])
    assert cmd[:5] == [str(FAKE), "exec", "--nv", "--bind", str(bound)]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert (bound / "ok").read_text() == "x"  # the bound folder is writable
    assert res.returncode != 0 and "Read-only file system" in res.stderr  # the rest of the host is not


@pytest.mark.slurm
def test_slurm_job_runs_inside_the_container(tmp_path, slurm_cluster, tiny_data):  # noqa: F811
    """A trial's job, with the site's container: submitit's python is
    `apptainer exec --nv --bind DATA,RESULTS IMAGE python`; the run finishes and writes
    its row through the bind."""
    image = write(tmp_path / "medaug.sif", "stand-in image")
    log = tmp_path / "apptainer.log"
    local = (REPO / "hpc" / "sites" / "localhost.yaml").read_text()
    site_path = write(tmp_path / "site.yaml", local.replace("env:\n", f"env:\n  FAKE_APPTAINER_LOG: {log}\n") + (
        f"python: {sys.executable}\ncontainer: {{runtime: {FAKE}, image: {image}, options: [--nv]}}\n"))
    site = load_site(site_path)
    spec = ExperimentSpec(dataset="breastmnist", epochs=1, batch_size=16, lr=0.1)
    out = tmp_path / "out"
    opts = RunOptions(out=str(out), study="container", data_root=str(tiny_data), verify_md5=False)
    executor = make_executor(out / "slurm" / "sub", site, Resources(cpus=1), "medaug-container",
                             binds=(str(tiny_data), str(out)))
    job = executor.submit(SlurmExperiment(spec.to_dict(), opts.to_dict(), "t0"))
    summary = job.result()
    assert summary["status"] == "finished"
    row = read_row(result_path(out, spec.run_id))
    assert row["executor"] == "slurm" and row["slurm_job_id"] == job.job_id
    invocation = log.read_text()
    assert f"--bind={tiny_data}" in invocation and f"--bind={out}" in invocation
    assert str(image) in invocation and "submitit.core._submit" in invocation
    script = next((out / "slurm" / "sub").glob("*_submission.sh")).read_text()
    assert f"{FAKE} exec --nv --bind {tiny_data},{out} {image} {sys.executable} -u -m submitit.core._submit" in script
    assert os.environ.get("SLURM_CONF")
