"""Site profiles: what a SLURM cluster needs in every job (`hpc/sites/NAME.yaml`).

A study says what a trial needs (CPUs, GPUs, nodes, tasks, time, memory); a site
profile says how to ask this cluster for it (partition, account, QOS, constraint,
extra sbatch options), what to run first in the job (setup lines: modules, a venv),
and optionally a container every job runs in:

```yaml
name: generic-gpu
partition: gpu
account: myproject
qos: normal
constraint: a100
gpus_per_node: 4          # what one node has (caps a trial's request)
cpus_per_task: 8          # default when the study does not say
mem: 64G                  # default per node
time: "04:00:00"          # default time limit
extra_sbatch: {exclude: node13}
setup: ["module load cuda/12.4"]
signal_delay_s: 120       # USR2 this long before the time limit (submitit checkpoints then)
max_num_timeout: 3        # requeues after a *time-out* (preemptions requeue without limit)
poll_s: 30                # how often a trial asks squeue about its job (be kind to slurmctld)
env: {}                   # exported in the job (e.g. MASTER_ADDR for single-host test clusters)
job_dir: /scratch/$USER/medaug-jobs   # submitit's private job folders (default
                          # ~/.local/state/medaug/slurm; $MEDAUG_JOB_DIR wins): see slurm.py
container:
  runtime: apptainer
  image: /shared/containers/medaug.sif
  binds: [/shared/data, /shared/results]
  options: [--nv]
```

A job inside the container sees only its image plus the binds: the site's, the run's
data root and output folder, and - when the site names a host `python` (a venv's
interpreter run inside the image) - that venv and the source trees of its editable
installs (medaug's repository), read-only, at the same paths. So a job runs wherever
the repository and its .venv live, /tmp included (a container's /tmp is not the host's).
The job root (`job_dir`) is bound too: the job reads submitit's pickle from it.

`job_dir` is where submitit keeps each job's pickled callable and logs. A job unpickles
what it finds there, so it must be private (owned by you, writable by no one else, on a
file system the compute nodes share); it is never the output folder. `~` and `$VAR`
(e.g. `$USER`) are expanded.
"""

from __future__ import annotations

import json
import math
import os
import shlex
from dataclasses import dataclass, field
from urllib.parse import unquote, urlparse
from pathlib import Path
from typing import Any

from medaug.sweep import schema
from medaug.sweep.schema import Doc, join
from medaug.sweep.study import Resources

SITE_KEYS = ("name", "description", "partition", "account", "qos", "constraint", "gpus_per_node", "cpus_per_task",
             "mem", "time", "extra_sbatch", "setup", "signal_delay_s", "max_num_timeout", "env", "container",
             "python", "poll_s", "job_dir")
CONTAINER_KEYS = ("runtime", "image", "binds", "options")
SITES_DIR = Path(__file__).resolve().parents[2] / "hpc" / "sites"


@dataclass(frozen=True)
class Container:
    """Run each job's command inside an image: `RUNTIME exec OPTIONS --bind B1,B2 IMAGE CMD...`."""

    image: str
    runtime: str = "apptainer"
    binds: tuple[str, ...] = ()
    options: tuple[str, ...] = ("--nv",)

    def command(self, argv: list[str], extra_binds: tuple[str, ...] = ()) -> list[str]:
        binds = list(dict.fromkeys([*self.binds, *extra_binds]))
        cmd = [self.runtime, "exec", *self.options]
        if binds:
            cmd += ["--bind", ",".join(binds)]
        return [*cmd, self.image, *argv]


def interpreter_binds(python: str | None) -> tuple[str, ...]:
    """Read-only binds (`SRC:SRC:ro`) a host interpreter needs inside a container.

    For a venv's python (`VENV/bin/python`, VENV holding pyvenv.cfg): VENV itself and
    the source folder of every editable install in it (PEP 610 direct_url.json; for
    medaug, its repository). Nothing for a bare name (`python3`: the image's own) or an
    interpreter outside a venv (binding a system prefix would hide the image's). The
    venv's base interpreter (pyvenv.cfg `home`) is not bound: it must exist in the image
    at the same path, as /usr/bin/python3 of a matching image does.
    """
    if not python or not Path(python).is_absolute():
        return ()
    venv = Path(python).parent.parent  # not resolved: a venv's bin/python links out of it
    if not (venv / "pyvenv.cfg").is_file():
        return ()
    folders = [venv]
    for url_file in sorted(venv.glob("lib*/python*/site-packages/*.dist-info/direct_url.json")):
        try:
            info = json.loads(url_file.read_text())
        except (OSError, UnicodeDecodeError, ValueError):
            continue
        if not isinstance(info, dict) or not isinstance(info.get("dir_info"), dict):
            continue
        url = urlparse(str(info.get("url", "")))
        if info["dir_info"].get("editable") and url.scheme == "file":
            source = Path(unquote(url.path))
            if source.is_dir() and not source.is_relative_to(venv):
                folders.append(source)
    return tuple(f"{f}:{f}:ro" for f in dict.fromkeys(folders) if "," not in str(f) and ":" not in str(f))


@dataclass(frozen=True)
class SiteProfile:
    name: str = "default"
    description: str = ""
    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    constraint: str | None = None
    gpus_per_node: int | None = None
    cpus_per_task: int | None = None
    mem: str | None = None
    time_min: int = 60
    extra_sbatch: dict[str, Any] = field(default_factory=dict)
    setup: tuple[str, ...] = ()
    signal_delay_s: int = 90
    max_num_timeout: int = 3
    env: dict[str, str] = field(default_factory=dict)
    container: Container | None = None
    python: str | None = None
    poll_s: float = 30.0
    job_dir: str | None = None
    source: str = ""

    def python_command(self, extra_binds: tuple[str, ...] = ()) -> str:
        """What submitit runs as `python` in the job: the venv's python, or the container's.

        A host `python` run inside the container also gets its venv (and editable
        sources) bound read-only: see `interpreter_binds`."""
        if self.container is not None:
            binds = (*extra_binds, *interpreter_binds(self.python))
            return shlex.join(self.container.command([self.python or "python3"], binds))
        return self.python or ""

    def slurm_parameters(self, res: Resources, job_name: str) -> dict[str, Any]:
        """submitit SlurmExecutor parameters for one trial of `res` on this site."""
        cpus = math.ceil(res.cpus) if res.cpus is not None else (self.cpus_per_task or 1)
        params: dict[str, Any] = {
            "job_name": job_name,
            "time": res.time_min or self.time_min,
            "nodes": res.nodes,
            "ntasks_per_node": res.tasks_per_node,
            "cpus_per_task": cpus,
            "signal_delay_s": self.signal_delay_s,
        }
        if res.gpus > 0:
            # SLURM hands out whole GPUs; a fractional study request becomes one GPU per task.
            per_node = math.ceil(res.gpus) * res.tasks_per_node
            if self.gpus_per_node is not None:
                per_node = min(per_node, self.gpus_per_node)
            if per_node > 0:
                params["gpus_per_node"] = per_node
        for key in ("partition", "account", "qos", "constraint"):
            if getattr(self, key):
                params[key] = getattr(self, key)
        mem = res.mem or self.mem
        if mem:
            params["mem"] = mem
        setup = list(self.setup)
        if self.env:
            setup += [f"export {k}={shlex.quote(str(v))}" for k, v in sorted(self.env.items())]
        if setup:
            params["setup"] = setup
        if self.extra_sbatch:
            params["additional_parameters"] = dict(self.extra_sbatch)
        return params


def resolve_site_path(name_or_path: str | Path) -> Path:
    """`localhost` -> hpc/sites/localhost.yaml; a path is taken as given."""
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") or p.exists():
        return p
    return SITES_DIR / f"{name_or_path}.yaml"


def _job_dir(doc: Doc, value: Any) -> str | None:
    """`job_dir`: an absolute path once `~` and `$VAR` are expanded (checked for privacy at submit)."""
    text = schema.optional_string(doc, value, "job_dir")
    if text is None:
        return None
    if not Path(os.path.expandvars(text)).expanduser().is_absolute():
        raise doc.error("job_dir", f"expected an absolute path (or one starting with ~ or $VAR), got {text!r}")
    return text


def load_site(path: str | Path | None) -> SiteProfile:
    if path is None:
        return SiteProfile(name="default")
    doc = Doc.load(resolve_site_path(path))
    m = schema.mapping(doc, doc.data, "", allowed=SITE_KEYS)
    opt = schema.optional_string
    container = None
    if m.get("container") is not None:
        c = schema.mapping(doc, m["container"], "container", allowed=CONTAINER_KEYS, required=("image",))
        container = Container(
            image=schema.string(doc, c["image"], "container.image"),
            runtime=schema.string(doc, c.get("runtime", "apptainer"), "container.runtime"),
            binds=tuple(schema.string_list(doc, c.get("binds"), "container.binds")),
            options=tuple(schema.string_list(doc, c.get("options", ["--nv"]), "container.options")),
        )
    env = {k: str(v) for k, v in schema.mapping(doc, m.get("env"), "env").items()}
    for k, v in env.items():
        schema.string(doc, k, join("env", k), pattern=r"[A-Za-z_][A-Za-z0-9_]*", what="an environment variable name")
        if v:  # each value is one line of the job script
            schema.string(doc, v, join("env", k), what="a value")
    extra = schema.mapping(doc, m.get("extra_sbatch"), "extra_sbatch")
    for k, v in extra.items():
        schema.string(doc, k, join("extra_sbatch", k), pattern=r"[A-Za-z][A-Za-z0-9_-]*", what="an sbatch option name")
        if not isinstance(v, (str, int, float, bool)):
            raise doc.error(join("extra_sbatch", k), "expected a string, number or boolean")
        if isinstance(v, str) and v:  # one #SBATCH line each
            schema.string(doc, v, join("extra_sbatch", k), what="a value")
    return SiteProfile(
        name=schema.string(doc, m.get("name", Path(doc.source).stem), "name"),
        description=opt(doc, m.get("description"), "description") or "",
        partition=opt(doc, m.get("partition"), "partition"),
        account=opt(doc, m.get("account"), "account"),
        qos=opt(doc, m.get("qos"), "qos"),
        constraint=opt(doc, m.get("constraint"), "constraint"),
        gpus_per_node=None if m.get("gpus_per_node") is None
        else schema.integer(doc, m["gpus_per_node"], "gpus_per_node", minimum=0),
        cpus_per_task=None if m.get("cpus_per_task") is None
        else schema.integer(doc, m["cpus_per_task"], "cpus_per_task", minimum=1),
        mem=schema.memory(doc, m["mem"], "mem") if m.get("mem") is not None else None,
        time_min=schema.minutes(doc, m["time"], "time") if m.get("time") is not None else 60,
        extra_sbatch=extra,
        setup=tuple(schema.string_list(doc, m.get("setup"), "setup")),
        signal_delay_s=schema.integer(doc, m.get("signal_delay_s", 90), "signal_delay_s", minimum=1),
        max_num_timeout=schema.integer(doc, m.get("max_num_timeout", 3), "max_num_timeout", minimum=0),
        env=env,
        container=container,
        python=opt(doc, m.get("python"), "python"),
        poll_s=schema.number(doc, m.get("poll_s", 30), "poll_s", positive=True),
        job_dir=_job_dir(doc, m.get("job_dir")),
        source=doc.source,
    )
