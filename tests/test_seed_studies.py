"""Seeds 002 and 004 as studies (issue 13 item 2): `sweeps/kosheleva2020-isic.yaml` and
`sweeps/song-zhao2021.yaml` validate in a dry run with their trial counts on generated data,
carry the seeds' protocols into every spec, and analysis/kosheleva2020.py and
analysis/song_zhao2021.py render the seeds' tables from constructed rows, the published
numbers beside ours, with the arrows the rows call for."""

from __future__ import annotations

import runpy

import pytest
from analysis_rows import make_row, write_generator_eval, write_rows
from test_data_folders import make_isic
from test_sweep_study_dry_run import dry_run, in_tmp, npz  # noqa: F401  (in_tmp: a fixture)

from conftest import make_medmnist_npz
from medaug.analysis.load import load_results
from medaug.analysis.stats import StatsOptions
from medaug.data.medmnist import dataset_info
from medaug.sweep.study import load_study
from sweep_helpers import REPO

ISIC_STUDY = REPO / "sweeps" / "kosheleva2020-isic.yaml"
SONG_STUDY = REPO / "sweeps" / "song-zhao2021.yaml"
SEED004_SETS = ("pathmnist", "chestmnist", "dermamnist", "octmnist", "pneumoniamnist", "retinamnist", "breastmnist",
                "organamnist", "organcmnist", "organsmnist")
ISIC_CLASSES = ["MEL", "NV", "BCC", "AK", "BKL", "DF", "VASC", "SCC"]
SEEDS = range(5)


def script(name: str) -> dict:
    return runpy.run_path(str(REPO / "analysis" / f"{name}.py"), run_name=name)


# ------------------------------------------------------------------------------------------ studies

def test_song_zhao_study_lists_its_160_trials_and_the_one_dcgan_fit(in_tmp, capsys):
    root = in_tmp / "data"
    for name in SEED004_SETS:
        if name == "chestmnist":  # multi-label, 14 findings
            make_medmnist_npz(root / "chestmnist.npz", n=(6, 2, 2), num_classes=14, multi_label=True)
        else:
            npz(root, name)
    code, out, err = dry_run(in_tmp, capsys, SONG_STUDY, "--data-root", str(root), "--no-verify-md5")
    assert (code, err) == (0, "")
    assert "160 cells x 1 trial(s) per cell; 150 trials runnable, 10 cells wait for synthetic sets\n" in out
    cells = [ln for ln in out.splitlines() if "  case=" in ln]
    assert len(cells) == 160 and len({ln.split()[1] for ln in cells}) == 160
    assert sum("-28-resnet18-" in ln for ln in cells) == 80 and sum("-28-resnet50-" in ln for ln in cells) == 80
    assert sum("-flip-shift-rotate-noise-" in ln for ln in cells) == 20
    assert sum("-autoaugment-" in ln and ln.split()[1].startswith("retinamnist") for ln in cells) == 30
    waiting = [ln for ln in cells if "waits for synthetic set" in ln]
    assert len(waiting) == 10 and all("case=breastmnist-dcgan" in ln and "dcgan.zarr#ratio-x2]" in ln
                                      for ln in waiting)
    code, out, err = dry_run(in_tmp, capsys, SONG_STUDY, "--data-root", str(root), "--no-verify-md5",
                             "--make-synthetic")
    assert (code, err) == (0, "")
    assert "--make-synthetic: 1 generator fit(s) before the trials" in out
    assert "fit dcgan on breastmnist 28 px (epochs 50, batch 32, seed 0)" in out


def test_song_zhao_specs_follow_the_seed_protocol():
    """MedMNIST v1's train.py as the seed ran it: SGD 1e-3 m 0.9, batch 128, 100 epochs, best val AUC."""
    study = load_study(SONG_STUDY)
    assert len(study.cells) == 160 and not study.merged
    for spec in study.specs():
        assert (spec.size, spec.optimizer, spec.lr, spec.momentum, spec.schedule, spec.epochs, spec.batch_size,
                spec.select_metric, spec.wrs) == (28, "sgd", 1e-3, 0.9, "none", 100, 128, "auc", False)
        assert spec.classifier in ("resnet18", "resnet50")
    dcgan = [c for c in study.cells if c.request is not None]
    assert {c.spec["dataset"] for c in dcgan} == {"breastmnist"} and len(dcgan) == 10
    assert dcgan[0].request.strategy == "ratio" and dcgan[0].request.synthetic_per_real == 2
    assert dict(study.generators["dcgan"]) == {"epochs": 50, "batch_size": 32, "lr": 2e-4, "beta1": 0.5,
                                               "beta2": 0.999, "latent_dim": 100, "seed": 0}
    assert study.metric == "val_auc"


def test_kosheleva_study_needs_isic_and_vgg_weights_then_lists_15_trials_and_2_fits(in_tmp, capsys, monkeypatch):
    monkeypatch.delenv("MEDAUG_WEIGHTS_DIR", raising=False)
    code, out, err = dry_run(in_tmp, capsys, ISIC_STUDY, "--data-root", str(in_tmp))
    assert code == 2 and "dry run: 5 of 5 cell(s) that would run cannot: 2 input(s)" in err, err
    assert "ISIC 2019 data: " in out and "ImageNet weights for vgg11_bn (pretrained: true)" in out

    data = in_tmp / "isic"
    make_isic(data, [(f"ISIC_{i:07d}", c) for i, c in enumerate(ISIC_CLASSES * 3)])
    weights = in_tmp / "weights"
    weights.mkdir()
    (weights / "vgg11_bn.pth").write_bytes(b"")
    monkeypatch.setenv("MEDAUG_WEIGHTS_DIR", str(weights))
    code, out, err = dry_run(in_tmp, capsys, ISIC_STUDY, "--data-root", str(data))
    assert (code, err) == (0, "")
    assert "15 cells x 1 trial(s) per cell; 5 trials runnable, 10 cells wait for synthetic sets\n" in out
    cells = [ln for ln in out.splitlines() if "  method=" in ln]
    assert len(cells) == 15 and all(ln.split()[1].startswith("isic2019-64-vgg11_bn-none-nowrs-s") for ln in cells)
    for gen in ("dcgan", "cwgan-gp"):
        assert sum(f"{gen}.zarr#per-class-AK+DF+VASC+SCC-128]" in ln for ln in cells) == 5
    code, out, err = dry_run(in_tmp, capsys, ISIC_STUDY, "--data-root", str(data), "--make-synthetic")
    assert (code, err) == (0, "")
    assert "--make-synthetic: 2 generator fit(s) before the trials" in out
    for gen in ("dcgan", "cwgan-gp"):
        assert f"fit {gen} on isic2019 64 px" in out and f"(epochs 200, batch 64, seed 0)" in out


def test_kosheleva_specs_follow_the_seed_protocol():
    study = load_study(ISIC_STUDY)
    assert len(study.cells) == 15 and not study.merged
    for spec in study.specs():
        assert (spec.dataset, spec.size, spec.classifier, spec.pretrained, spec.augmentation, spec.wrs) == \
            ("isic2019", 64, "vgg11_bn", True, "none", False)
        assert spec.data_options == {"split_seed": 0, "test_fraction": 0.15, "val_fraction": 0.15}
    requests = [c.request for c in study.cells if c.request is not None]
    assert sorted({r.generator for r in requests}) == ["cwgan-gp", "dcgan"]
    assert all(r.strategy == "per-class" and r.classes == ("AK", "DF", "VASC", "SCC") and r.count == 128
               for r in requests)
    assert study.eval_options["tstr"] is True  # --make-synthetic evaluates each fit with TSTR (Table 4)


# ------------------------------------------------------------------------------------------ seed 002 tables

def isic_row(method: str, seed: int, f1: dict[str, float], acc: float) -> dict:
    gen = None if method == "none" else method
    row = make_row("isic2019", generator=gen, strategy="per-class", seed=seed, acc=acc, classifier="vgg11_bn",
                   size=64, epochs=20)
    k = len(ISIC_CLASSES)
    row.update(class_names=ISIC_CLASSES, task="multi-class", test_support=[10] * k,
               test_confusion=[[10 if i == j else 0 for j in range(k)] for i in range(k)],
               test_f1=[f1.get(c, 0.5) for c in ISIC_CLASSES],
               test_precision=[f1.get(c, 0.5) + 0.01 for c in ISIC_CLASSES],
               test_recall=[f1.get(c, 0.5) - 0.01 for c in ISIC_CLASSES],
               test_balanced_acc=acc - 0.2)
    return row


@pytest.fixture
def isic_results(tmp_path):
    noise = [0.0, 0.01, -0.01, 0.02, -0.02]
    rows = []
    for s in SEEDS:
        base = {"AK": 0.02 + noise[s], "DF": 0.05}
        rows.append(isic_row("none", s, base, 0.60))
        rows.append(isic_row("dcgan", s, {"AK": 0.02 - noise[s], "DF": 0.05}, 0.60 + noise[s]))  # no gain
        rows.append(isic_row("cwgan-gp", s, {"AK": 0.12 + noise[s] + 0.001 * s, "DF": 0.05}, 0.62 + 0.001 * s))
    out = write_rows(tmp_path / "out", rows)
    write_generator_eval(out, [
        {"generator": "cwgan-gp", "dataset": "isic2019", "seed": s, "class_names": ISIC_CLASSES,
         "tstr_recall_per_class": [0.5, 0.5, 0.5, 0.20 + 0.02 * s, 0.5, 0.6, 0.1, 0.0],
         "trtr_recall_per_class": [0.6] * 8, "tstr_acc": 0.4, "trtr_acc": 0.7, "tstr_balanced_acc": 0.3,
         "trtr_balanced_acc": 0.45} for s in (0, 1)])
    return out


def test_seed_002_tables_put_the_published_numbers_beside_ours(isic_results, tmp_path, capsys):
    k = script("kosheleva2020")
    t2, t3, acc, t4 = k["build"](load_results(isic_results), StatsOptions())

    assert t2.cell("NV", "published R").plain() == "0.77" and t2.cell("AK", "published F1").plain() == "0.00"
    ours_ak = t2.cell("AK", "ours F1").value
    assert ours_ak.n == 5 and ours_ak.mean == pytest.approx(0.02)
    assert t2.cell("DF", "ours P").value.mean == pytest.approx(0.06)
    assert [label for label, _ in t2.rows] == ISIC_CLASSES

    assert t3.header[:3] == ["published P", "published R", "published F1"]
    assert t3.cell("VASC", "published F1").plain() == "0.03"
    assert t3.cell("AK", "cWGAN-GP F1").value.mean == pytest.approx(0.122)
    assert t3.cell("AK", "cWGAN-GP F1").mark == "up"  # +0.10 F1 on all 5 seeds
    assert t3.cell("AK", "DCGAN F1").mark == ""  # mirrored noise: no gain
    assert t3.cell("DF", "cWGAN-GP F1").mark == ""  # identical values: never a claim
    assert "improved" in t3.cell("AK", "cWGAN-GP F1").detail and "n=5" in t3.cell("AK", "cWGAN-GP F1").detail

    assert acc.cell("real only", "published ACC").plain() == "0.33"
    assert acc.cell("+ 128 x 4 cWGAN-GP", "published ACC").plain() == "0.39"
    assert acc.cell("+ 128 x 4 cWGAN-GP", "ours ACC").mark == "up"
    assert acc.cell("real only", "ours balanced ACC").value.mean == pytest.approx(0.40)

    assert [label for label, _ in t4.rows][:4] == ["AK", "DF", "VASC", "SCC"]
    assert t4.cell("DF", "published R").plain() == "0.68"
    tstr = t4.cell("AK", "cWGAN-GP TSTR R").value
    assert (tstr.n, tstr.mean) == (2, pytest.approx(0.21))
    assert t4.cell("SCC", "cWGAN-GP TRTR R").value.mean == pytest.approx(0.6)
    assert t4.cell("all classes: balanced ACC", "cWGAN-GP TSTR R").value.mean == pytest.approx(0.3)
    assert "DCGAN TSTR R" not in t4.header  # no evaluation rows of the DCGAN

    assert k["main"]([str(isic_results), "--out", str(tmp_path / "t")]) == 0
    for key in ("table2", "table3", "accuracy", "table4"):
        for ext in ("md", "tex", "csv"):
            assert (tmp_path / "t" / f"{key}.{ext}").is_file()
    assert "AK,0.05,0.01,0.02," in (tmp_path / "t" / "table3.csv").read_text()
    assert "Seed 002 Table 4" in capsys.readouterr().out


def test_seed_002_script_refuses_results_without_isic(tmp_path, capsys):
    out = write_rows(tmp_path / "out", [make_row("breastmnist", seed=s) for s in range(2)])
    assert script("kosheleva2020")["main"]([str(out), "--out", str(tmp_path / "t")]) == 2
    assert "no finished runs of seed 002's data sets (isic2019) in these results (breastmnist)" in \
        capsys.readouterr().err


# ------------------------------------------------------------------------------------------ seed 004 tables

def medmnist_row(dataset: str, net: str, seed: int, auc: float, acc: float, *, augmentation: str = "none",
                 generator: str | None = None, best_epoch: int = 10) -> dict:
    row = make_row(dataset, augmentation=augmentation, generator=generator, strategy="ratio", seed=seed, acc=acc,
                   auc=auc, classifier=net, epochs=100)
    row.update(lr=1e-3, batch_size=128, select_metric="auc", best_epoch=best_epoch)
    return row


@pytest.fixture
def song_results(tmp_path):
    jitter = [0.0, 0.004, -0.004, 0.002, -0.002]
    rows = []
    for s in SEEDS:
        j = jitter[s]
        for net, base_acc in (("resnet18", 0.80), ("resnet50", 0.84)):
            rows.append(medmnist_row("breastmnist", net, s, 0.85 + j, base_acc + j, best_epoch=1))
            rows.append(medmnist_row("breastmnist", net, s, 0.84 - j, base_acc - j,
                                     augmentation="flip-shift-rotate-noise"))
            rows.append(medmnist_row("breastmnist", net, s, 0.90 + j + 0.001 * s, base_acc + 0.05 + j + 0.001 * s,
                                     generator="dcgan"))
        rows.append(medmnist_row("retinamnist", "resnet18", s, 0.72 + j, 0.52 + j))
        rows.append(medmnist_row("retinamnist", "resnet18", s, 0.70 + j, 0.50 - j + 0.001 * s,
                                 augmentation="autoaugment-svhn"))
    return write_rows(tmp_path / "out", rows)


def test_seed_004_tables_put_the_published_numbers_beside_ours(song_results, tmp_path, capsys):
    sz = script("song_zhao2021")
    t1, t2, t4, t5 = sz["build"](load_results(song_results), StatsOptions())

    assert t1.cell("breastmnist", "ResNet-18 AUC published").plain() == "0.49603"
    assert t1.cell("octmnist", "ResNet-18 ACC published").plain() == "0.75226"
    r18 = t1.cell("breastmnist", "ResNet-18 ACC ours").value
    assert (r18.n, r18.mean) == (5, pytest.approx(0.80))
    assert t1.cell("breastmnist", "ResNet-50 ACC ours").mark == "up"  # +0.04 on every matched seed
    assert t1.cell("breastmnist", "ResNet-50 AUC ours").mark == ""  # equal AUCs
    assert t1.cell("pathmnist", "ResNet-18 ACC ours").plain() == "—"  # not run: published alone

    assert [label for label, _ in t2.rows] == [f"{n}: {a}" for n in ("ResNet-18", "ResNet-50")
                                               for a in ("Original", "Augmented", "DCGAN")]
    assert t2.cell("ResNet-18: DCGAN", "best epoch published").plain() == "73"
    assert t2.cell("ResNet-50: Augmented", "test AUC published").plain() == "0.59273"
    assert t2.cell("ResNet-18: Original", "best epoch ours").value.mean == 0.0  # medaug's epoch 1, counted from 0
    assert t2.cell("ResNet-18: DCGAN", "best epoch ours").value.mean == 9.0
    assert t2.cell("ResNet-18: DCGAN", "test ACC ours").mark == "up"
    assert t2.cell("ResNet-50: DCGAN", "test AUC ours").mark == "up"
    assert t2.cell("ResNet-18: Augmented", "test ACC ours").mark == ""  # mirrored jitter: mean 0, n.s.
    assert t2.cell("ResNet-18: Original", "test ACC ours").mark == ""  # the baseline itself

    assert t4.cell("ResNet-18: Augmented", "test ACC published").plain() == "0.80609"
    assert t4.cell("ResNet-50: Augmented", "test ACC published").plain() == "—"
    assert t4.cell("ResNet-18: Original", "test AUC ours").plain() == "—"  # no PneumoniaMNIST rows

    assert t5.cell("ResNet-18: SVHN", "val ACC published").plain() == "0.50625"
    assert t5.cell("ResNet-18: SVHN", "test AUC ours").mark == "down"  # -0.02 on every seed
    assert t5.cell("ResNet-18: SVHN", "test AUC ours").value.mean == pytest.approx(0.70)
    assert t5.cell("ResNet-50: SVHN", "test AUC published").plain() == "—"

    assert any("Holm-corrected over the 8 tested comparison(s)" in n for n in t2.notes)  # 2 nets x 2 arms x AUC, ACC
    assert t4.notes[1].startswith("No test AUC / ACC comparison") and t4.cell("ResNet-18: Augmented",
                                                                               "test ACC ours").mark == ""

    assert sz["main"]([str(song_results), "--out", str(tmp_path / "t")]) == 0
    printed = capsys.readouterr().out
    assert "not in these results (seed 004 has them): pathmnist, chestmnist, dermamnist, octmnist" in printed
    for key in ("table1", "table2", "table4", "table5"):
        assert (tmp_path / "t" / f"{key}.csv").is_file() and (tmp_path / "t" / f"{key}.tex").is_file()


def test_seed_004_shows_one_setting_and_names_the_others(song_results, tmp_path):
    """Runs of the same data set and network under another training setting (here 50
    epochs) are another context: never mixed into the seed's numbers, named in a note."""
    extra = [medmnist_row("breastmnist", "resnet18", s, 0.5, 0.5) for s in range(2)]
    for r in extra:
        r.update(epochs=50, run_id=r["run_id"] + "-e50")
    write_rows(song_results, extra)
    t1, *_ = script("song_zhao2021")["build"](load_results(song_results), StatsOptions())
    assert t1.cell("breastmnist", "ResNet-18 ACC ours").value.mean == pytest.approx(0.80)
    assert any("several training settings" in n and "(2 runs)" in n for n in t1.notes), t1.notes
