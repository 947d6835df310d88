"""What `medaug sweep STUDY --dry-run` promises (issue 10): a cell is called runnable only
when its inputs are there. It checks each cell's data files and their md5, the ImageNet
weights of `pretrained: true`, its synthetic set (or, with --make-synthetic, the fit that
makes it), lists what each cell lacks, and exits 2 with a one-line summary when a cell
that would run cannot. Nothing is written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from test_data_covid import make_covid_tree

from conftest import make_medmnist_npz
from medaug.cli import main
from medaug.data.medmnist import dataset_info
from sweep_helpers import REPO, write

LEROUX = REPO / "sweeps" / "leroux2021.yaml"
COVID = REPO / "sweeps" / "fedoruk2022-covid.yaml"
SEED000_SETS = ("pathmnist", "dermamnist", "octmnist", "pneumoniamnist", "breastmnist", "organamnist",
                "organcmnist", "organsmnist")


def npz(root: Path, name: str) -> Path:
    info = dataset_info(name)
    return make_medmnist_npz(root / f"{name}.npz", n=(6, 2, 2), channels=int(info["n_channels"]),
                             num_classes=len(info["label"]))


def files_under(root: Path) -> set[Path]:
    return set(root.rglob("*"))


def dry_run(tmp_path: Path, capsys, study: Path, *args: str) -> tuple[int, str, str]:
    before = files_under(tmp_path)
    capsys.readouterr()
    code = main(["sweep", str(study), "--dry-run", "--out", str(tmp_path / "out"), *args])
    out, err = capsys.readouterr()
    assert files_under(tmp_path) == before  # a dry run writes nothing
    return code, out, err


@pytest.fixture
def in_tmp(tmp_path, monkeypatch) -> Path:
    """The working directory (where `synthetic/` of the shipped studies resolves): empty."""
    tmp_path = tmp_path.resolve()
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_seed_000_with_one_of_its_eight_files_lists_the_seven_missing_per_cell(in_tmp, capsys):
    root = in_tmp / "data"
    npz(root, "breastmnist")
    code, out, err = dry_run(in_tmp, capsys, LEROUX, "--data-root", str(root), "--no-verify-md5")
    assert code == 2
    assert err == (f"medaug: error: {LEROUX}: dry run: 140 of 160 cell(s) that would run cannot: 7 input(s) missing "
                   "or invalid (listed per cell above)\n")
    assert "400 cells x 1 trial(s) per cell; 20 trials runnable, 240 cells wait for synthetic sets, 140 cells cannot " \
           "run (inputs missing)" in out
    cells = [ln for ln in out.splitlines() if re.match(r"^\s+\d+  \S+-28-cnn-", ln)]
    assert len(cells) == 400
    for line in cells:
        dataset = re.search(r"dataset=(\w+)", line).group(1)
        missing = f"data file {root / dataset}.npz not found"
        if dataset == "breastmnist":
            assert "missing" not in line, line
        elif "waits for synthetic set" in line:  # not run without --make-synthetic, but said
            assert line.endswith(f"[missing: {missing}]"), line
        else:
            assert line.endswith(f"[cannot run, missing: {missing}]"), line
    summary = out.split("140 of 160 cell(s) that would run cannot: 7 input(s) missing or invalid:\n")[1]
    listed = re.findall(r"data file (\S+) not found", summary)
    assert listed == [str(root / f"{d}.npz") for d in SEED000_SETS if d != "breastmnist"]
    assert "dry run: nothing was run" in out

    # with --make-synthetic the generator cells would run too: their fits read the same files
    code, out, err = dry_run(in_tmp, capsys, LEROUX, "--data-root", str(root), "--no-verify-md5", "--make-synthetic")
    assert code == 2 and "dry run: 350 of 400 cell(s) that would run cannot: 7 input(s)" in err


def test_seed_000_with_all_eight_files_is_runnable(in_tmp, capsys):
    root = in_tmp / "data"
    for name in SEED000_SETS:
        npz(root, name)
    code, out, err = dry_run(in_tmp, capsys, LEROUX, "--data-root", str(root), "--no-verify-md5")
    assert (code, err) == (0, "")
    assert "160 trials runnable, 240 cells wait for synthetic sets\n" in out and "missing" not in out
    code, out, err = dry_run(in_tmp, capsys, LEROUX, "--data-root", str(root), "--no-verify-md5", "--make-synthetic")
    assert (code, err) == (0, "") and "--make-synthetic: 24 generator fit(s) before the trials" in out


def test_md5_is_checked_once_per_file_and_a_wrong_file_is_named(in_tmp, capsys, monkeypatch):
    """Tiny files are not medmnist's: with the md5 check on, every cell is blocked, and each
    file is hashed once although 20 cells read it."""
    import medaug.data.medmnist as medmnist

    root = in_tmp / "data"
    for name in SEED000_SETS:
        npz(root, name)
    hashed: list[Path] = []
    real = medmnist.file_md5
    monkeypatch.setattr(medmnist, "file_md5", lambda path: hashed.append(Path(path)) or real(path))
    code, out, err = dry_run(in_tmp, capsys, LEROUX, "--data-root", str(root))
    assert code == 2 and "dry run: 160 of 160 cell(s) that would run cannot: 8 input(s)" in err
    assert sorted(hashed) == sorted(root / f"{n}.npz" for n in SEED000_SETS)
    expected = dataset_info("pathmnist")["MD5"]
    assert re.search(rf"\[cannot run, missing: {root}/pathmnist.npz: md5 [0-9a-f]{{32}} does not match medmnist "
                     rf"INFO md5 {expected} \(corrupt or other version\)\]", out)


def test_data_root_from_the_environment_and_a_file_that_is_not_an_npz(in_tmp, capsys, monkeypatch):
    root = in_tmp / "envdata"
    npz(root, "breastmnist")
    monkeypatch.setenv("MEDAUG_DATA_ROOT", str(root))
    qs = REPO / "sweeps" / "quickstart.yaml"
    code, out, err = dry_run(in_tmp, capsys, qs, "--no-verify-md5")
    assert (code, err) == (0, "") and "20 trials runnable" in out
    (root / "breastmnist.npz").write_bytes(b"not a zip")
    code, out, err = dry_run(in_tmp, capsys, qs, "--no-verify-md5")
    assert code == 2 and err.count("\n") == 1 and "20 of 20 cell(s) that would run cannot" in err
    assert f"{root}/breastmnist.npz: not a readable npz file" in out
    code, out, err = dry_run(in_tmp, capsys, qs, "--data-root", str(in_tmp / "nowhere"))
    assert (code, out) == (2, "") and err == f"medaug: error: --data-root {in_tmp / 'nowhere'}: no such folder\n"


def test_covid_study_without_data_and_weights_cannot_run(in_tmp, capsys, monkeypatch):
    """Seed 003: `pretrained: true` needs ImageNet weights; the COVID folders must be there."""
    code, out, err = dry_run(in_tmp, capsys, COVID, "--data-root", str(in_tmp))
    assert code == 2 and "dry run: 20 of 20 cell(s) that would run cannot: 3 input(s)" in err, err
    assert "COVID-19 Radiography data: " in out
    for arch in ("inception_v3", "efficientnet_b0"):
        assert (f"ImageNet weights for {arch} (pretrained: true): $MEDAUG_WEIGHTS_DIR is not set" in out), out

    data = make_covid_tree(in_tmp / "data", counts={"COVID": 2, "Normal": 2})
    weights = in_tmp / "weights"
    weights.mkdir()
    (weights / "efficientnet_b0.pth").write_bytes(b"")
    monkeypatch.setenv("MEDAUG_WEIGHTS_DIR", str(weights))
    code, out, err = dry_run(in_tmp, capsys, COVID, "--data-root", str(data))
    assert code == 2 and "dry run: 10 of 20 cell(s) that would run cannot: 1 input(s)" in err, err
    assert "$MEDAUG_WEIGHTS_DIR=" + f"{weights}: no ImageNet weights for inception_v3; expected one of" in out
    (weights / "inception_v3.pth").write_bytes(b"")
    code, out, err = dry_run(in_tmp, capsys, COVID, "--data-root", str(data))
    assert (code, err) == (0, "") and "20 trials runnable, 10 cells wait" in out


def test_a_set_that_cannot_be_made_blocks_its_cell_under_make_synthetic(in_tmp, capsys, tiny_root):
    study = write(in_tmp / "s.yaml", "name: t\nbase: {dataset: breastmnist, epochs: 1}\n"
                  f"grid: {{synthetic: [null, '{in_tmp}/named.zarr#g']}}\n")
    code, out, err = dry_run(in_tmp, capsys, study, "--data-root", str(tiny_root), "--no-verify-md5")
    assert (code, err) == (0, "") and "1 trials runnable, 1 cells wait for synthetic sets" in out
    code, out, err = dry_run(in_tmp, capsys, study, "--data-root", str(tiny_root), "--no-verify-md5",
                             "--make-synthetic")
    assert code == 2 and "dry run: 1 of 2 cell(s) that would run cannot" in err
    assert (f"synthetic set {in_tmp}/named.zarr#g cannot be made: {in_tmp}/named.zarr#g is named as a store path, "
            "not a request") in out


def test_a_searched_dataset_needs_every_value_s_file(in_tmp, capsys, tiny_root):
    study = write(in_tmp / "s.yaml", "name: t\nbase: {epochs: 1}\ngrid: {dataset: [breastmnist]}\n"
                  "search: {size: {choice: [28, 64]}}\nnum_samples: 1\n")
    code, out, err = dry_run(in_tmp, capsys, study, "--data-root", str(tiny_root), "--no-verify-md5")
    assert code == 2 and f"data file {tiny_root}/breastmnist_64.npz not found" in out


def test_strong_baselines_study_lists_its_120_trials(in_tmp, capsys):
    """Issue 11's study: 3 data sets x {seed000, fast} x {none, geometric} x {no WRS, WRS} x 5 seeds."""
    study = REPO / "sweeps" / "strong-baselines.yaml"
    root = in_tmp / "data"
    for name in ("breastmnist", "bloodmnist", "organamnist"):
        npz(root, name)
    code, out, err = dry_run(in_tmp, capsys, study, "--data-root", str(root), "--no-verify-md5")
    assert (code, err) == (0, "")
    assert "120 cells x 1 trial(s) per cell; 120 trials runnable" in out
    cells = [ln for ln in out.splitlines() if re.match(r"^\s+\d+  \S+-28-", ln)]
    assert len(cells) == 120
    assert sum("-28-fastnet-" in ln and "recipe=fast" in ln for ln in cells) == 60
    assert sum("-28-cnn-" in ln and "recipe=seed000" in ln for ln in cells) == 60
    assert len({ln.split()[1] for ln in cells}) == 120  # 120 distinct run_ids


def test_generators_breastmnist_study_lists_one_budgeted_fit_per_generator(in_tmp, capsys):
    """The shipped generator study: every learned generator plus the two untrained references,
    each with its stated epoch budget, TSTR in the evaluation."""
    from medaug.sweep.study import load_study

    study = load_study(REPO / "sweeps" / "generators-breastmnist.yaml")
    budget = {c.fields["generator"]: c.fields.get("epochs") for c in study.cells}
    assert budget == {"class-mean-noise": None, "geometric": None, "cvae": 100, "cgan": 60, "dcgan": 150,
                      "cwgan-gp": 150, "vaegan": 40, "edm": 30}
    assert study.eval_options["tstr"] is True
    root = in_tmp / "data"
    npz(root, "breastmnist")
    code, out, err = dry_run(in_tmp, capsys, REPO / "sweeps" / "generators-breastmnist.yaml",
                             "--data-root", str(root), "--no-verify-md5")
    assert (code, err) == (0, "")
    assert "8 cells x 1 trial(s) per cell = 8 generator fits" in out


@pytest.mark.parametrize("dataset, epochs", [
    ("bloodmnist", {"cvae": 11, "cgan": 7, "dcgan": 15, "cwgan-gp": 15, "vaegan": 5, "edm": 3}),
    ("organamnist", {"cvae": 4, "cgan": 2, "dcgan": 5, "cwgan-gp": 5, "vaegan": 2, "edm": 1}),
])
def test_generator_studies_of_the_big_sets_budget_each_fit_and_cap_tstr(in_tmp, capsys, dataset, epochs):
    """The same ~10 CPU-minute budget per learned generator (epochs from the measured img/s and
    the set's size), TSTR and TRTR on 2,000 images each."""
    from medaug.sweep.study import load_study

    path = REPO / "sweeps" / f"generators-{dataset}.yaml"
    study = load_study(path)
    budget = {c.fields["generator"]: c.fields.get("epochs") for c in study.cells}
    assert budget == {"class-mean-noise": None, "geometric": None, **epochs}
    assert study.eval_options["tstr"] is True and study.eval_options["tstr_n"] == 2000
    root = in_tmp / "data"
    npz(root, dataset)
    code, out, err = dry_run(in_tmp, capsys, path, "--data-root", str(root), "--no-verify-md5")
    assert (code, err) == (0, "")
    assert "8 cells x 1 trial(s) per cell = 8 generator fits" in out
