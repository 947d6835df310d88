"""Seed 003's study end to end: sweeps/fedoruk2022-covid.yaml validates and lists its 30
trials; data options (the held-out test set) enter the spec, the run id and the row;
per-class synthetic requests resolve to the set `medaug synthesize` writes; and a tiny
copy of the study (same YAML, tiny numbers) runs through the sweep on the local executor."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from sweep_helpers import REPO, write
from test_data_covid import make_covid_tree

from medaug.errors import MedaugError
from medaug.experiment import ExperimentSpec
from medaug.sweep.study import load_study

STUDY = REPO / "sweeps" / "fedoruk2022-covid.yaml"
SEED003_OPTIONS = {"split_seed": 0, "test_per_class": 200, "val_fraction": 0.1}


# ----------------------------------------------------------------------------- the shipped study

def test_shipped_study_expands_to_seed_003s_30_trials(tmp_path, monkeypatch):
    tmp_path = tmp_path.resolve()
    monkeypatch.chdir(tmp_path)  # `synthetic/` is relative to the working directory: absent here
    s = load_study(STUDY)
    assert s.name == "fedoruk2022-covid" and len(s.cells) == 30 and s.trials_per_cell == 1
    specs = s.specs()
    assert {(sp.dataset, sp.size, sp.epochs, sp.batch_size, sp.select_metric, sp.optimizer) for sp in specs} == {
        ("covid19-radiography", 256, 6, 32, "acc", "adam")}
    assert all(sp.data_options == SEED003_OPTIONS for sp in specs)
    arms = {(dict(c.labels)["augment"], c.spec["classifier"], c.spec["seed"]) for c in s.cells}
    assert arms == {(a, k, seed) for a in ("none", "classic", "stylegan2ada")
                    for k in ("inception_v3", "efficientnet_b0") for seed in range(5)}
    by_arm = {a: [c for c in s.cells if dict(c.labels)["augment"] == a] for a in ("none", "classic", "stylegan2ada")}
    assert {c.spec["augmentation"] for c in by_arm["classic"]} == {"classic-xray"}
    assert {c.spec["augmentation"] for c in by_arm["none"] + by_arm["stylegan2ada"]} == {"none"}
    assert all(c.synthetic is None for c in by_arm["none"] + by_arm["classic"])
    expected = f"{tmp_path}/synthetic/covid19-radiography_256/stylegan2ada.zarr#per-class-COVID-2000"
    assert {c.synthetic for c in by_arm["stylegan2ada"]} == {expected}
    assert {c.generator for c in by_arm["stylegan2ada"]} == {"stylegan2ada"}
    assert len({sp.run_id for sp in specs}) == 30
    assert [c.index for c in s.waiting_cells()] == [c.index for c in by_arm["stylegan2ada"]]


def test_shipped_study_dry_run_lists_the_trials_and_the_set_to_make(tmp_path, monkeypatch, capsys):
    from medaug.cli import main
    from medaug.commands.sweep import print_dry_run

    tmp_path = tmp_path.resolve()
    monkeypatch.chdir(tmp_path)
    data = make_covid_tree(tmp_path / "data", counts={"COVID": 2, "Normal": 2})
    weights = tmp_path / "weights"  # `pretrained: true`: the dry run looks for the files, as a run does
    weights.mkdir()
    for arch in ("inception_v3", "efficientnet_b0"):
        (weights / f"{arch}.pth").write_bytes(b"")
    monkeypatch.setenv("MEDAUG_WEIGHTS_DIR", str(weights))
    s = load_study(STUDY)
    buf = io.StringIO()
    print_dry_run(s, "local", None, tmp_path / "out", buf, data_root=data)
    text = buf.getvalue()
    assert "30 cells x 1 trial(s) per cell; 20 trials runnable, 10 cells wait for synthetic sets" in text, text
    assert ('data options of covid19-radiography: {"split_seed": 0, "test_per_class": 200, "val_fraction": 0.1}'
            in text)
    lines = [ln for ln in text.splitlines() if "covid19-radiography-256-" in ln]
    assert len(lines) == 30
    waiting = [ln for ln in lines if "waits for synthetic set" in ln]
    assert len(waiting) == 10 and all("augment=stylegan2ada" in ln for ln in waiting)
    assert all(ln.endswith("stylegan2ada.zarr#per-class-COVID-2000]") for ln in waiting)
    assert sum("augment=classic classifier=inception_v3" in ln for ln in lines) == 5
    assert ("medaug synthesize --checkpoint CHECKPOINT_DIR --strategy per-class --classes COVID --count 2000 "
            f"--seed 0 --out {tmp_path}/synthetic/covid19-radiography_256/stylegan2ada.zarr "
            "--group per-class-COVID-2000") in text
    assert not (tmp_path / "out").exists()
    assert main(["sweep", str(STUDY), "--dry-run", "--data-root", str(data)]) == 0
    assert "20 trials runnable, 10 cells wait" in capsys.readouterr().out


# ----------------------------------------------------------------------------- data options

def test_data_options_enter_the_run_id_and_medmnist_run_ids_stay_as_they_were():
    # run ids computed by the code before `data_options` existed: results folders stay valid
    assert ExperimentSpec(dataset="breastmnist", seed=1).run_id == "breastmnist-28-cnn-none-nowrs-s1-cbe6885271"
    # (a spec with a synthetic set is named by the set's content since issue 10, item 7)
    old = ExperimentSpec(dataset="pathmnist", size=64, classifier="resnet18", augmentation="sharpness-contrast-flip",
                         wrs=True, optimizer="adam", lr=0.01, schedule="multistep", epochs=5, batch_size=32, seed=3)
    assert old.run_id == "pathmnist-64-resnet18-sharpness-contrast-flip-wrs-s3-0746a7c762"
    assert "data_options" not in old.canonical_json() and old.data_options == {}

    base = ExperimentSpec(dataset="covid19-radiography", size=256)
    assert base.data_options == SEED003_OPTIONS  # the defaults are written out: the row says which test set
    assert ExperimentSpec(dataset="covid19-radiography", size=256, data_options={"test_per_class": 200}) == base
    assert ExperimentSpec(dataset="covid19-radiography", size=256, data_options={"test_per_class": 200}).run_id \
        == base.run_id
    small = base.replace(data_options={"test_per_class": 50})
    assert small.run_id != base.run_id and '"test_per_class":50' in small.canonical_json()
    per_class = base.replace(data_options={"test_per_class": {"COVID": 20}})
    assert per_class.data_options["test_per_class"] == {"Normal": 0, "COVID": 20}
    assert ExperimentSpec.from_dict(json.loads(per_class.canonical_json())) == per_class
    four = ExperimentSpec(dataset="covid19-radiography-4class", size=256,
                          data_options={"test_per_class": {"Viral Pneumonia": 100}})
    assert four.data_options["test_per_class"]["Viral Pneumonia"] == 100


@pytest.mark.parametrize("dataset, options, message", [
    ("covid19-radiography", {"test_per_clas": 2},
     ("spec field data_options.test_per_clas: unknown option for dataset 'covid19-radiography' "
      "(did you mean 'test_per_class'?); expected one of: test_per_class, val_fraction, split_seed")),
    ("covid19-radiography", {"test_per_class": -1}, "data_options.test_per_class: expected an integer >= 0"),
    ("covid19-radiography", {"test_per_class": {"Lung_Opacity": 3}},
     "data_options.test_per_class.Lung_Opacity: not a class of this data set"),
    ("covid19-radiography", {"val_fraction": 1.0}, "data_options.val_fraction: expected a fraction in [0, 1)"),
    ("covid19-radiography", {"split_seed": True}, "data_options.split_seed: expected an integer >= 0"),
    ("breastmnist", {"test_per_class": 2}, "data_options.test_per_class: dataset 'breastmnist' takes no data options"),
])
def test_bad_data_options_are_a_one_line_error_naming_the_option(dataset, options, message):
    with pytest.raises(MedaugError) as err:
        ExperimentSpec(dataset=dataset, data_options=options)
    assert message in str(err.value) and "\n" not in str(err.value)


def _study(tmp_path: Path, text: str):
    return load_study(write(tmp_path / "s.yaml", text))


COVID_BASE = "name: t\nbase: {dataset: covid19-radiography, size: 256, classifier: efficientnet_b0}\n"


@pytest.mark.parametrize("text, message", [
    ("name: t\nbase: {dataset: covid19-radiography, data_options: {test_per_clas: 2}}\n",
     ("s.yaml: base.data_options.test_per_clas: unknown option for dataset 'covid19-radiography' (did you mean "
      "'test_per_class'?)")),
    ("name: t\nbase: {dataset: breastmnist}\ngrid:\n  split: {small: {data_options: {test_per_class: 2}}}\n",
     "s.yaml: grid.split.small.data_options.test_per_class: dataset 'breastmnist' takes no data options"),
    ("name: t\nbase: {dataset: covid19-radiography}\ngrid: {data_options: [{test_per_class: 2}, 5]}\n",
     "s.yaml: grid.data_options[1]: expected a mapping"),
    ("name: t\nbase: {dataset: breastmnist, size: 256}\n", "s.yaml: base.size: unsupported size 256 for breastmnist"),
    ("name: t\nbase: {dataset: breastmnist, pretrained: true}\n",
     "s.yaml: base.pretrained: only transfer classifiers"),
    ("name: t\nbase: {dataset: covid19-radiography, classifier: inception_v3}\ngrid: {size: [256, 64]}\n",
     "s.yaml: grid.size[1]: classifier 'inception_v3' needs images of at least 75 px, got 64"),
    (COVID_BASE + "grid: {synthetic: [{generator: stylegan2ada, strategy: per-class, classes: [Covid], count: 9}]}\n",
     "s.yaml: grid.synthetic[0].classes[0]: 'Covid' is not a class of covid19-radiography (did you mean 'COVID'?)"),
    (COVID_BASE + "grid: {synthetic: [{generator: stylegan2ada, strategy: per-class, classes: [COVID]}]}\n",
     "s.yaml: grid.synthetic[0]: strategy per-class needs count"),
    (COVID_BASE + "grid: {synthetic: [{generator: stylegan2ada, strategy: per-class, classes: [COVID], count: 0}]}\n",
     "s.yaml: grid.synthetic[0].count: expected an integer >= 1, got 0"),
    (COVID_BASE + ("grid: {synthetic: [{generator: stylegan2ada, strategy: per-class, classes: [COVID], count: 2, "
                   "fraction: 0.1}]}\n"),
     "s.yaml: grid.synthetic[0].fraction: strategy per-class takes no fraction (it takes classes and count)"),
    (COVID_BASE + "grid: {synthetic: [{generator: stylegan2ada, classes: [COVID], count: 2, fraction: 0.1}]}\n",
     "s.yaml: grid.synthetic[0].classes: strategy inverse-scarcity takes no classes"),
    (COVID_BASE + "grid: {synthetic: [{generator: cgan, strategy: per-class, classes: [COVID, COVID], count: 2}]}\n",
     "s.yaml: grid.synthetic[0].classes: a class is named twice"),
    (COVID_BASE + "grid:\n  method: {gan: {synthetic: {generator: cgan, strategy: ratio}}}\n",
     "s.yaml: grid.method.gan.synthetic: strategy ratio needs synthetic_per_real"),
    (COVID_BASE + "grid: {generator: [null, stylegan2ada]}\nsynthetic: {strategy: per-class, classes: [COVID]}\n",
     "s.yaml: synthetic: strategy per-class needs count"),
    ("name: t\nbase: {dataset: breastmnist, epochs: 2}\ngrid: {freeze_epochs: [1]}\n",
     "s.yaml: grid.freeze_epochs[0]: only transfer classifiers"),
])
def test_bad_study_values_are_refused_with_their_yaml_path(tmp_path, text, message):
    with pytest.raises(MedaugError) as err:
        _study(tmp_path, text)
    assert message in str(err.value), str(err.value)
    assert "\n" not in str(err.value)


def test_per_class_and_ratio_requests_resolve_like_synthesize_names_them(tmp_path):
    shorthand = _study(tmp_path, f"""
name: t
base: {{dataset: covid19-radiography, size: 256, classifier: efficientnet_b0}}
grid: {{generator: [null, stylegan2ada]}}
synthetic: {{root: {tmp_path}/syn, strategy: per-class, classes: COVID, count: 2000}}
""")
    assert [c.synthetic for c in shorthand.cells] == [
        None, f"{tmp_path}/syn/covid19-radiography_256/stylegan2ada.zarr#per-class-COVID-2000"]
    s = _study(tmp_path, f"""
name: t
base: {{dataset: covid19-radiography-4class, size: 128, classifier: efficientnet_b0}}
grid:
  method:
    plain: {{}}
    vp: {{synthetic: {{generator: cgan, strategy: per-class, classes: ["Viral Pneumonia", COVID], count: 64}}}}
    ratio: {{synthetic: {{generator: cgan, strategy: ratio, synthetic_per_real: 2}}}}
synthetic: {{root: {tmp_path}/syn}}
""")
    refs = {c.label: c.synthetic for c in s.cells}
    store = f"{tmp_path}/syn/covid19-radiography-4class_128"
    assert refs == {"method=plain": None, "method=vp": f"{store}/cgan.zarr#per-class-Viral_Pneumonia+COVID-64",
                    "method=ratio": f"{store}/cgan.zarr#ratio-x2"}
    vp = s.cells[1]
    assert vp.generator == "cgan" and vp.request.strategy_params("covid19-radiography-4class") == {
        "classes": ["Viral Pneumonia", "COVID"], "count": 64}
    assert "--classes 'Viral Pneumonia' --classes COVID --count 64" in vp.request.synthesize_command(
        vp.synthetic, "covid19-radiography-4class")
    # older patterns with {fraction} still work, and read the same amount text
    old = _study(tmp_path, f"""
name: t
base: {{dataset: breastmnist}}
grid: {{synthetic: [{{generator: cgan, strategy: per-class, classes: [malignant], count: 5}}]}}
synthetic: {{root: {tmp_path}, pattern: "{{root}}/{{generator}}.zarr#{{strategy}}-{{fraction}}"}}
""")
    assert old.cells[0].synthetic == f"{tmp_path}/cgan.zarr#per-class-malignant-5"


# ----------------------------------------------------------------------------- end to end, tiny

TEST_PER_CLASS = 2


def _tiny_study_text(syn_root: Path, generator: str, count: int) -> str:
    """The shipped study with tiny numbers: same keys, same grid structure."""
    doc = yaml.safe_load(STUDY.read_text())
    doc["name"] = "fedoruk2022-covid-tiny"
    doc["base"].update(size=32, epochs=1, batch_size=8, lr=1e-3,
                       data_options={"test_per_class": TEST_PER_CLASS, "val_fraction": 0.25, "split_seed": 0})
    doc["grid"]["augment"]["stylegan2ada"]["synthetic"].update(generator=generator, count=count)
    doc["grid"]["classifier"] = ["cnn"]
    assert doc["base"].pop("pretrained") is True  # the shipped study demands ImageNet weights; a CNN has none
    doc["grid"]["seed"] = [0]
    doc["synthetic"]["root"] = str(syn_root)
    doc["resources"] = {"cpus": 1}
    assert set(doc["grid"]) == {"augment", "classifier", "seed"}
    return yaml.safe_dump(doc, sort_keys=False)


def test_tiny_copy_of_the_study_runs_end_to_end(tmp_path, monkeypatch):
    """COVID layout -> generator on the study's train split -> per-class set -> 3 arms through
    the sweep; the rows carry the test set (size, file names, options) and the set's provenance."""
    from medaug.data.sources import load_dataset
    from medaug.generators.base import GENERATORS
    from medaug.generators.strategies import Strategy
    from medaug.generators.synthesize import synthesize
    from medaug.store.synthetic import read_synthetic_set
    from medaug.sweep.driver import run_study

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # the COVID Zarr cache (Ray workers inherit it)
    data = make_covid_tree(tmp_path / "data", counts={"COVID": 10, "Normal": 10})
    study_path = write(tmp_path / "tiny.yaml", _tiny_study_text(tmp_path / "syn", "class-mean-noise", 6))
    study = load_study(study_path)
    assert len(study.cells) == 3 and len(study.waiting_cells()) == 1
    gen_cell = study.waiting_cells()[0]

    # the generator trains on the very train split the trials use (same size and data options)
    spec = study.spec_for(gen_cell.spec)
    splits = load_dataset(spec.dataset, spec.size, root=data, options=spec.data_options).splits
    gen = GENERATORS.get("class-mean-noise")(1, 32, 2, device="cpu")
    ckpt = gen.fit(splits.train, tmp_path / "gen", plots=False)
    store, group = gen_cell.synthetic.split("#")
    made = synthesize(ckpt, Strategy("per-class", classes=("COVID",), count=6), 0, store, group=group,
                      splits=splits, device="cpu")
    assert made.ref == gen_cell.synthetic and made.counts == (0, 6)
    assert study.waiting_cells() == [] and gen_cell.synthetic_mismatch() is None

    out = tmp_path / "out"
    outcome = run_study(study, "local", out, data_root=data, num_cpus=1, progress=False)
    assert (outcome.finished, outcome.failed) == (3, 0)
    rows = outcome.rows
    assert len(rows) == 3 and (rows.status == "finished").all()
    arms = {("synthetic" if isinstance(r.synthetic, str) else r.augmentation) for r in rows.itertuples()}
    assert arms == {"none", "classic-xray", "synthetic"}

    usable = {"COVID": 9, "Normal": 9}  # COVID-3 has no mask, Normal-2 an empty one (make_covid_tree)
    test_files = None
    for r in outcome.rows.itertuples():
        assert sum(r.test_support) == 2 * TEST_PER_CLASS and list(r.test_support) == [TEST_PER_CLASS] * 2
        assert len(r.test_files) == 2 * TEST_PER_CLASS
        assert sorted(f.split("/")[0] for f in r.test_files) == ["COVID"] * 2 + ["Normal"] * 2
        assert test_files is None or list(r.test_files) == test_files  # one test set for the whole study
        test_files = list(r.test_files)
        assert json.loads(r.data_options) == {"split_seed": 0, "test_per_class": TEST_PER_CLASS, "val_fraction": 0.25}
        prov = json.loads(r.data_provenance)
        assert prov["test_per_class"] == {"Normal": TEST_PER_CLASS, "COVID": TEST_PER_CLASS}
        assert prov["counts"]["train"] == {c: n - TEST_PER_CLASS - 2 for c, n in usable.items()}
        assert r.n_skipped == 2 and r.n_train == sum(usable.values()) - 2 * TEST_PER_CLASS - 4
        assert json.loads(r.spec_json)["data_options"]["test_per_class"] == TEST_PER_CLASS
    syn = next(r for r in outcome.rows.itertuples() if isinstance(r.synthetic, str))
    assert syn.n_synthetic == 6 and syn.synthetic_id == read_synthetic_set(syn.synthetic).set_id
    sprov = json.loads(syn.synthetic_provenance)
    assert sprov["generator"] == "class-mean-noise" and sprov["strategy"] == "per-class"
    assert sprov["strategy_params"] == {"classes": ["COVID"], "count": 6}
    assert sprov["train_hash"] == splits.train.content_hash and sprov["dataset"] == "covid19-radiography"
    for r in outcome.rows.itertuples():
        if not isinstance(r.synthetic, str):
            assert r.n_synthetic == 0 and pd.isna(r.synthetic_provenance) and pd.isna(r.synthetic_id)
    assert np.isfinite(outcome.rows.test_acc).all()


def test_a_set_made_with_other_parameters_is_flagged_in_the_dry_run(tmp_path, monkeypatch):
    """The store path exists, but its set holds 5 images where the study asks for 6."""
    from medaug.data.sources import load_dataset
    from medaug.generators.base import GENERATORS
    from medaug.generators.strategies import Strategy
    from medaug.generators.synthesize import synthesize
    from medaug.commands.sweep import print_dry_run

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    data = make_covid_tree(tmp_path / "data", counts={"COVID": 6, "Normal": 6})
    study = load_study(write(tmp_path / "tiny.yaml", _tiny_study_text(tmp_path / "syn", "class-mean-noise", 6)))
    cell = study.waiting_cells()[0]
    spec = study.spec_for(cell.spec)
    splits = load_dataset(spec.dataset, spec.size, root=data, options=spec.data_options).splits
    ckpt = GENERATORS.get("class-mean-noise")(1, 32, 2, device="cpu").fit(splits.train, tmp_path / "gen", plots=False)
    store, group = cell.synthetic.split("#")
    synthesize(ckpt, Strategy("per-class", classes=("COVID",), count=5), 0, store, group=group, splits=splits,
               device="cpu")
    assert cell.synthetic_mismatch() == ("strategy_params {'classes': ['COVID'], 'count': 5} (requested "
                                         "{'classes': ['COVID'], 'count': 6})")
    buf = io.StringIO()
    print_dry_run(study, "local", None, tmp_path / "out", buf)
    assert "was not made as requested: strategy_params" in buf.getvalue()
