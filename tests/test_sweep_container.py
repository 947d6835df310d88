"""Containers: the Apptainer definition, and jobs run through `apptainer exec`.

Apptainer itself cannot be installed on the test machine, so the execution path is
tested with a stand-in `apptainer` (tests/fake_apptainer/apptainer) that takes the same
command line and runs the command under bubblewrap: read-only host root, private /tmp,
only the bound folders writable. The real image build was not run here. Because /tmp is
private, these tests also hold where the repository and its .venv live under /tmp:
the job's interpreter (a venv) and the repository are bound read-only.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from medaug.experiment import ExperimentSpec
from medaug.store.results import result_path
from medaug.sweep.site import interpreter_binds, load_site
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
    cmd = container.command([sys.executable, "-c", code, str(bound), str(REPO)], interpreter_binds(sys.executable))
    assert cmd[:4] == [str(FAKE), "exec", "--nv", "--bind"] and cmd[4].split(",")[0] == str(bound)
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert (bound / "ok").read_text() == "x", res.stderr  # the bound folder is writable
    assert res.returncode != 0 and "Read-only file system" in res.stderr  # the rest of the host (the repo) is not


def _tmp_venv_with_editable_package(where: Path) -> tuple[Path, Path]:
    """A real venv (no pip) under `where` with an editable-style install of a package whose
    source is also under `where`: PEP 610 metadata plus the .pth an editable install writes."""
    venv, src = where / ".venv", where / "src"
    subprocess.run([getattr(sys, "_base_executable", sys.executable), "-m", "venv", "--without-pip", str(venv)],
                   check=True, timeout=120)
    write(src / "probe_pkg" / "__init__.py", "WHERE = __file__\n")
    site_packages = next(venv.glob("lib*/python*/site-packages"))
    write(site_packages / "__editable__.probe_pkg-0.pth", f"{src}\n")
    write(site_packages / "probe_pkg-0.dist-info" / "METADATA", "Metadata-Version: 2.1\nName: probe_pkg\nVersion: 0\n")
    write(site_packages / "probe_pkg-0.dist-info" / "direct_url.json",
          json.dumps({"url": src.as_uri(), "dir_info": {"editable": True}}))
    return venv / "bin" / "python", src


def test_a_venv_and_editable_source_under_tmp_run_inside_the_container():
    """The container's /tmp is not the host's: a clone and its .venv under /tmp vanish
    inside it unless bound. The interpreter's venv and its editable sources are bound
    read-only at the same paths; without them the job cannot even start."""
    if shutil.which("bwrap") is None:
        pytest.skip("bubblewrap not installed: the stand-in would run without a sandbox")
    where = Path(tempfile.mkdtemp(prefix="medaug-clone-", dir="/tmp"))
    try:
        python, src = _tmp_venv_with_editable_package(where)
        image = write(where / "medaug.sif", "stand-in image")
        out = where / "out"
        out.mkdir()
        container = load_site(write(where / "site.yaml", f"container: {{runtime: {FAKE}, image: {image}}}\n")).container
        code = "import pathlib, sys, probe_pkg; pathlib.Path(sys.argv[1], 'ran').write_text(probe_pkg.WHERE)"
        binds = interpreter_binds(str(python))
        assert binds == (f"{where / '.venv'}:{where / '.venv'}:ro", f"{src}:{src}:ro")
        bare = subprocess.run(container.command([str(python), "-c", code, str(out)], (str(out),)),
                              capture_output=True, text=True, timeout=120)
        assert bare.returncode != 0 and "No such file or directory" in bare.stderr  # the failure the binds fix
        res = subprocess.run(container.command([str(python), "-c", code, str(out)], (str(out), *binds)),
                             capture_output=True, text=True, timeout=120)
        assert res.returncode == 0, res.stderr
        assert (out / "ran").read_text() == str(src / "probe_pkg" / "__init__.py")
        denied = subprocess.run(container.command([str(python), "-c", f"open({str(src / 'x')!r}, 'w')"],
                                                  (str(out), *binds)), capture_output=True, text=True, timeout=120)
        assert denied.returncode != 0 and "Read-only file system" in denied.stderr  # bound read-only
        assert not (src / "x").exists()
    finally:
        shutil.rmtree(where, ignore_errors=True)


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
    venv = Path(sys.executable).parent.parent
    if (venv / "pyvenv.cfg").is_file():  # the job's interpreter (this venv) is bound read-only
        assert f"--bind={venv}:{venv}:ro" in invocation
    assert str(image) in invocation and "submitit.core._submit" in invocation
    script = next((out / "slurm" / "sub").glob("*_submission.sh")).read_text()
    binds = ",".join([str(tiny_data), str(out), *interpreter_binds(sys.executable)])
    assert f"{FAKE} exec --nv --bind {binds} {image} {sys.executable} -u -m submitit.core._submit" in script
    assert os.environ.get("SLURM_CONF")
