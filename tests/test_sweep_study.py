"""Study files: parsing, validation with YAML paths, expansion, dry runs, site profiles,
and golden files of the generated sbatch script and container command line."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from medaug.errors import MedaugError
from medaug.sweep.site import Container, SiteProfile, load_site
from medaug.sweep.study import Resources, load_study
from sweep_helpers import REPO, write

GOLDEN = Path(__file__).resolve().parent / "golden"


def study(tmp_path: Path, text: str, name: str = "s.yaml"):
    return load_study(write(tmp_path / name, text))


def refused(tmp_path: Path, text: str) -> str:
    with pytest.raises(MedaugError) as err:
        study(tmp_path, text)
    return str(err.value)


# ----------------------------------------------------------------------------- the shipped studies

def test_shipped_studies_expand_as_documented():
    qs = load_study(REPO / "sweeps" / "quickstart.yaml")
    assert len(qs.cells) == 20 and qs.trials_per_cell == 1
    assert {c.spec["dataset"] for c in qs.cells} == {"breastmnist"}
    assert {(c.spec["wrs"], c.spec["augmentation"]) for c in qs.cells} == {
        (w, a) for w in (False, True) for a in ("none", "sharpness-contrast-flip")}
    assert {c.spec["seed"] for c in qs.cells} == {0, 1, 2, 3, 4}
    assert all(c.spec["epochs"] == 20 and c.spec["lr"] == 1e-3 and c.spec["batch_size"] == 64 for c in qs.cells)

    lr = load_study(REPO / "sweeps" / "leroux2021.yaml")
    cases = {(c.spec["dataset"], c.spec["wrs"], dict(c.labels)["method"]) for c in lr.cells}
    assert len(cases) == 80 and len(lr.cells) == 80 * 5
    generator_cells = [c for c in lr.cells if c.generator]
    assert len(generator_cells) == 48 * 5 and {c.generator for c in generator_cells} == {"cvae", "jvae", "cgan"}
    # seed 000's inverse-scarcity amounts per data set resolve into the store path
    path = next(c for c in lr.cells if c.spec["dataset"] == "organamnist" and c.generator == "cgan").synthetic
    assert path.endswith("organamnist_28/cgan.zarr#inverse-scarcity-0.05")
    jvae = next(c for c in lr.cells if c.generator == "jvae").synthetic
    assert jvae.endswith("jvae.zarr#interleave-reconstructions-all")
    # the sets do not exist yet: listed as waiting, the other 160 trials run
    assert len(lr.waiting_cells()) == 240 and len(lr.runnable_cells()) == 160

    asha = load_study(REPO / "sweeps" / "asha-example.yaml")
    assert asha.scheduler.kind == "asha" and asha.scheduler.metric == "val_acc" and asha.trials_per_cell == 16
    assert {p.field for p in asha.search} == {"lr", "momentum", "batch_size"}
    assert "lr" not in asha.cells[0].spec  # searched fields come from Tune


def test_with_fields_overrides_every_cell():
    qs = load_study(REPO / "sweeps" / "quickstart.yaml").with_fields(epochs=2)
    assert {c.spec["epochs"] for c in qs.cells} == {2} and len(qs.cells) == 20
    with pytest.raises(MedaugError, match="epochs"):
        load_study(REPO / "sweeps" / "quickstart.yaml").with_fields(epochs=0)


def test_grid_order_named_axes_and_generator_shorthand(tmp_path):
    s = study(tmp_path, f"""
name: t
base: {{dataset: breastmnist, epochs: 2}}
grid:
  lr: [1, 0.1]
  method:
    plain: {{}}
    geo: {{augmentation: rot-shift-flip, wrs: true}}
  synthetic: [null, {{generator: cvae, fraction: 0.1}}]
synthetic: {{root: {tmp_path}/SYN, pattern: "{{root}}/{{dataset}}-{{generator}}.zarr#{{strategy}}"}}
""")
    assert [c.label for c in s.cells[:4]] == ["lr=1 method=plain synthetic=none", "lr=1 method=plain synthetic=cvae",
                                             "lr=1 method=geo synthetic=none", "lr=1 method=geo synthetic=cvae"]
    assert s.cells[0].spec["lr"] == 1.0 and isinstance(s.cells[0].spec["lr"], float)  # YAML 1 == 1.0: same run_id
    assert s.cells[2].spec["augmentation"] == "rot-shift-flip" and s.cells[2].spec["wrs"] is True
    assert s.cells[0].synthetic is None and s.cells[0].generator is None
    assert s.cells[1].synthetic == f"{tmp_path}/SYN/breastmnist-cvae.zarr#inverse-scarcity"
    assert s.cells[1].generator == "cvae" and s.cells[1].missing_synthetic() == s.cells[1].synthetic
    assert [c.index for c in s.waiting_cells()] == [1, 3, 5, 7]
    (tmp_path / "SYN" / "breastmnist-cvae.zarr" / "inverse-scarcity").mkdir(parents=True)
    assert s.cells[1].missing_synthetic() is None and len(s.runnable_cells()) == 8


def test_generator_axis_shorthand_uses_the_synthetic_defaults(tmp_path):
    s = study(tmp_path, f"""
name: t
grid:
  dataset: [breastmnist, dermamnist]
  generator: [null, cgan]
synthetic: {{root: {tmp_path}, strategy: inverse-scarcity, fraction: {{breastmnist: 0.1, dermamnist: 0.1}}}}
""")
    assert [c.generator for c in s.cells] == [None, "cgan", None, "cgan"]
    assert s.cells[3].synthetic == f"{tmp_path}/dermamnist_28/cgan.zarr#inverse-scarcity-0.1"
    assert "fraction" in refused(tmp_path, "name: t\nbase: {dataset: breastmnist}\ngrid: {generator: [cvae]}\n")


@pytest.mark.parametrize("text, message", [
    ("name: t\nbase: {dataset: breastmnist}\ngrid: {wrs: [true, 'yes']}\n", "s.yaml: grid.wrs[1]: expected true or false"),
    ("name: t\nbase: {dataset: breastmnist}\ngrid: {seeds: [1, 2]}\n", "grid.seeds: unknown ExperimentSpec field (did you mean 'seed'?)"),
    ("name: t\nbase: {dataset: breastmnist, lr: -1}\n", "base.lr: expected "),
    ("name: t\nbase: {dataset: breastmnist}\ngrid: {augmentation: [none, sharpen]}\n",
     "grid.augmentation[1]: unknown augmentation 'sharpen'"),
    ("name: t\nbase: {dataset: nomnist}\n", "base.dataset: unknown dataset 'nomnist'"),
    ("name: t\nbase: {dataset: breastmnist}\nresorces: {cpus: 1}\n", "resorces: unknown key (did you mean 'resources'?)"),
    ("name: t\nbase: {dataset: breastmnist}\nresources: {time: soon}\n", "resources.time: expected a time limit"),
    ("name: t\nbase: {dataset: breastmnist}\nresources: {gpus: 1.5}\n", "resources.gpus: expected a fraction below 1"),
    ("name: t\nbase: {dataset: breastmnist}\nsearch: {lr: {normal: [0, 1]}}\n", "search.lr.normal: unknown key"),
    ("name: t\nbase: {dataset: breastmnist}\nsearch: {batch_size: {uniform: [8, 64]}}\n",
     "search.batch_size.uniform: uniform gives real numbers"),
    ("name: t\nbase: {dataset: breastmnist}\nsearch: {lr: {loguniform: [0, 1]}}\n", "search.lr.loguniform[0]: loguniform needs low > 0"),
    ("name: t\nbase: {dataset: breastmnist, lr: 0.1}\nsearch: {lr: {choice: [0.1, 0.2]}}\n", "search.lr: 'lr' is also set in base"),
    ("name: t\nbase: {dataset: breastmnist}\nscheduler: {type: hyperband}\n", "scheduler.type: expected one of: fifo, asha"),
    ("name: t\nbase: {dataset: breastmnist}\nscheduler: {type: asha, metric: test_acc}\n", "scheduler.metric: expected one of"),
    ("name: t\nbase: {dataset: breastmnist}\ngrid: {synthetic: [{generator: cvae, fraction: {breastmnist: 0}}]}\n",
     "grid.synthetic[0].fraction.breastmnist: expected a number > 0"),
    ("name: t\nbase: {dataset: breastmnist}\ngrid: {synthetic: [{generator: cvae}]}\n",
     "grid.synthetic[0]: strategy inverse-scarcity needs a fraction"),
    ("name: t\nbase: {dataset: breastmnist}\ngrid: {synthetic: [{generator: jvae, strategy: interleave-reconstructions, "
     "fraction: 0.1}]}\n", "grid.synthetic[0].fraction: strategy interleave-reconstructions takes no fraction"),
    ("name: t\nbase: {dataset: breastmnist}\ngrid: {synthetic: [{generator: cvae, strategy: mixup}]}\n",
     "grid.synthetic[0].strategy: expected one of: inverse-scarcity, interleave-reconstructions"),
    ("name: t\nbase: {dataset: pathmnist}\ngrid: {synthetic: [{generator: cvae, fraction: {breastmnist: 0.1}}]}\n",
     "grid.synthetic[0].fraction: no fraction for dataset 'pathmnist'"),
    ("name: 'a b'\nbase: {dataset: breastmnist}\n", "name: expected a name of letters"),
    ("name: t\ngrid: {wrs: [true]}\n", "base: no dataset"),
    ("name: t\nbase: {dataset: breastmnist}\ngrid: {method: [a, b]}\n", "grid.method: unknown ExperimentSpec field"),
    ("name: t\nbase: {dataset: breastmnist}\ngrid: {method: {geo: {augmentaton: rot-shift-flip}}}\n",
     "grid.method.geo.augmentaton: unknown ExperimentSpec field (did you mean 'augmentation'?)"),
    ("name: t\nbase: {dataset: breastmnist\n", "not valid YAML (line"),
])
def test_bad_studies_are_refused_with_the_yaml_path(tmp_path, text, message):
    got = refused(tmp_path, text)
    assert message in got, got
    assert got.startswith(str(tmp_path / "s.yaml")) and "\n" not in got


def test_search_space_maps_to_ray_tune(tmp_path):
    from ray import tune

    s = study(tmp_path, """
name: t
base: {dataset: breastmnist}
search:
  lr: {loguniform: [1.0e-4, 1.0e-1]}
  momentum: {uniform: [0.5, 0.9]}
  batch_size: {grid: [16, 32]}
  epochs: {randint: [1, 3]}
num_samples: 3
scheduler: {type: asha, grace_period: 1, max_t: 3}
""")
    assert s.trials_per_cell == 6
    space = {p.field: p.to_tune() for p in s.search}
    assert isinstance(space["lr"], tune.search.sample.Float) and space["lr"].lower == 1e-4
    assert space["batch_size"] == {"grid_search": [16, 32]}
    assert space["epochs"].upper == 4  # inclusive upper bound in the study, exclusive in Tune
    asha = s.scheduler.to_tune(s.max_epochs)
    assert asha._time_attr == "epoch" and asha._max_t == 3
    spec = s.spec_for(s.cells[0].spec, {"lr": 0.01, "momentum": 0.7, "batch_size": 16, "epochs": 2})
    assert (spec.lr, spec.batch_size, spec.epochs) == (0.01, 16, 2)


# ----------------------------------------------------------------------------- site profiles, sbatch, containers

def test_site_profiles_load_and_map_resources():
    local = load_site("localhost")
    gpu = load_site(REPO / "hpc" / "sites" / "generic-gpu.yaml")
    res = Resources(cpus=2, gpus=0.25, nodes=2, tasks_per_node=2, time_min=30, mem="3G")
    p = gpu.slurm_parameters(res, "job")
    assert p["gpus_per_node"] == 2  # fractional study GPUs become one whole GPU per task on SLURM
    assert (p["nodes"], p["ntasks_per_node"], p["cpus_per_task"], p["time"], p["mem"]) == (2, 2, 2, 30, "3G")
    assert (p["partition"], p["account"], p["qos"]) == ("gpu", "myproject", "normal")
    assert "gpus_per_node" not in local.slurm_parameters(res, "job")  # the test cluster has no GPUs
    assert local.slurm_parameters(Resources(), "j")["cpus_per_task"] == 1
    assert "export MASTER_ADDR=127.0.0.1" in local.slurm_parameters(Resources(), "j")["setup"]


def test_bad_site_profile_is_refused(tmp_path):
    path = write(tmp_path / "site.yaml", "partition: gpu\ncontainer: {binds: [/a]}\n")
    with pytest.raises(MedaugError, match=r"site.yaml: container: missing required key 'image'"):
        load_site(path)
    path = write(tmp_path / "site.yaml", "partiton: gpu\n")
    with pytest.raises(MedaugError, match=r"partiton: unknown key \(did you mean 'partition'\?\)"):
        load_site(path)


def _golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("MEDAUG_UPDATE_GOLDEN"):
        write(path, text)
    assert path.is_file(), f"missing golden file {path}: rerun with MEDAUG_UPDATE_GOLDEN=1"
    assert text == path.read_text(), f"{name} changed; if intended, rerun with MEDAUG_UPDATE_GOLDEN=1"


def test_sbatch_script_golden():
    """The whole sbatch script of one trial, as submitit writes it (submitit's own practice)."""
    from medaug.sweep.slurm import sbatch_script

    site = load_site(REPO / "hpc" / "sites" / "generic-gpu.yaml")
    res = Resources(cpus=4, gpus=1, nodes=2, tasks_per_node=1, time_min=90, mem="16G")
    script = sbatch_script(site, res, "medaug-study-run", Path("/results/slurm/RUN/sub-1"), binds=("/data", "/results"))
    _golden("sweep_generic_gpu.sbatch", script)
    assert "#SBATCH --signal=USR2@120" in script and "#SBATCH --requeue" in script
    local = SiteProfile(name="x", partition="debug", python="python3", env={"MASTER_ADDR": "127.0.0.1"})
    _golden("sweep_localhost.sbatch", sbatch_script(local, Resources(cpus=1), "medaug-x", Path("/r/slurm/R/sub-1")))


def test_container_command_line_golden():
    from medaug.sweep.slurm import describe_command

    site = load_site(REPO / "hpc" / "sites" / "generic-gpu.yaml")
    line = describe_command(site, ["medaug", "sweep", "sweeps/quickstart.yaml", "--out", "/shared/results/qs"],
                            binds=("/shared/results", "/scratch/data"))
    # duplicate binds are folded; the order is the site's, then the run's
    _golden("sweep_apptainer_command.txt", line + "\n")
    assert site.python_command(("/x",)) == ("apptainer exec --nv --bind /shared/data/medmnist,/shared/results,/x "
                                            "/shared/containers/medaug.sif python3")
    bare = Container(image="img.sif", options=())
    assert bare.command(["medaug", "--version"]) == ["apptainer", "exec", "img.sif", "medaug", "--version"]


# ----------------------------------------------------------------------------- the CLI's dry run

def leroux_data(root: Path) -> Path:
    """A data root with a tiny npz for each of seed 000's 8 data sets (channels as MedMNIST's)."""
    from conftest import make_medmnist_npz
    from medaug.data.medmnist import dataset_info

    for name in ("pathmnist", "dermamnist", "octmnist", "pneumoniamnist", "breastmnist", "organamnist",
                 "organcmnist", "organsmnist"):
        info = dataset_info(name)
        make_medmnist_npz(root / f"{name}.npz", n=(6, 2, 2), channels=int(info["n_channels"]),
                          num_classes=len(info["label"]))
    return root


def test_dry_run_lists_trials_waiting_cells_and_sbatch(tmp_path, capsys):
    from medaug.commands.sweep import print_dry_run

    s = load_study(REPO / "sweeps" / "leroux2021.yaml")
    import io

    buf = io.StringIO()
    print_dry_run(s, "slurm", load_site("localhost"), tmp_path / "out", buf, data_root=leroux_data(tmp_path / "data"),
                  verify_md5=False)
    text = buf.getvalue()
    assert "400 cells x 1 trial(s) per cell; 160 trials runnable, 240 cells wait for synthetic sets" in text
    assert re.search(r"^\s+399  organsmnist-28-cnn-none-wrs-s4-\w+\s+dataset=organsmnist wrs=true method=cgan seed=4"
                     r"\s+\[waits for synthetic set \S+organsmnist_28/cgan.zarr#inverse-scarcity-0.1\]$", text, re.M)
    assert "#SBATCH --partition=debug" in text and "#SBATCH --time=120" in text and "#SBATCH --mem=8G" in text
    assert "dry run: nothing was run" in text
    assert not (tmp_path / "out").exists()


def test_cli_dry_run_and_bad_study_exit_codes(tmp_path, capsys, tiny_root):
    from medaug.cli import main

    assert main(["sweep", str(REPO / "sweeps" / "quickstart.yaml"), "--dry-run", "--data-root", str(tiny_root),
                 "--no-verify-md5"]) == 0
    assert "20 trials runnable" in capsys.readouterr().out
    bad = write(tmp_path / "bad.yaml", "name: t\nbase: {dataset: breastmnist}\ngrid: {wrs: [1]}\n")
    assert main(["sweep", str(bad), "--dry-run"]) == 2
    assert "bad.yaml: grid.wrs[0]: expected true or false" in capsys.readouterr().err
