"""`medaug generator fit` on any registered data source: sizes checked against the generator and
the source, data options recorded and reused by synthesize, StyleGAN2-ADA's periodic FID with
the default (classifier) extractor from the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import make_medmnist_npz
from medaug.data import sources
from medaug.errors import MedaugError
from medaug.generators import read_checkpoint_meta
from medaug.generators.data import accepted_sizes, check_fit_size, data_options_of
from medaug.generators.strategies import Strategy
from medaug.generators.synthesize import synthesize
from test_data_folders import make_isic
from test_generators_core import run_cli


pytestmark = pytest.mark.usefixtures("one_thread")


def test_accepted_sizes_are_generator_sizes_the_source_provides(monkeypatch):
    assert accepted_sizes("cvae", "breastmnist") == (28, 64)  # MedMNIST has no 32 px files
    assert accepted_sizes("stylegan2ada", "breastmnist") == (28, 64, 128)
    assert accepted_sizes("cgan", "isic2019") == (28, 32, 64)  # a folder source resizes to any size in range
    check_fit_size("stylegan2ada", "isic2019", 256)
    with pytest.raises(MedaugError, match=r"^--size 100: generator cvae on dataset breastmnist accepts 28, 64 "):
        check_fit_size("cvae", "breastmnist", 100)
    with pytest.raises(MedaugError, match="unknown dataset"):
        check_fit_size("cvae", "nomnist", 28)
    big = sources.DataSource("bigonly", None, sources.SOURCES["isic2019"].load, min_size=100)
    monkeypatch.setitem(sources.SOURCES, "bigonly", big)
    with pytest.raises(MedaugError, match=r"--size 28: generator cvae \(sizes 28, 32, 64\) and dataset bigonly "
                                          r"\(sizes 100..1024\) share no image size"):
        check_fit_size("cvae", "bigonly", 28)


@pytest.mark.parametrize("extra, message", [
    (["--generator", "cvae", "--size", "100"], "--size 100: generator cvae on dataset breastmnist accepts 28, 64"),
    (["--generator", "cgan", "--size", "128"], "--size 128: generator cgan on dataset breastmnist accepts 28, 64"),
    (["--generator", "cvae", "--data-option", "split_seed=1"], "takes no data options"),
    (["--generator", "cvae", "--data-option", "split_seed"], "--data-option 'split_seed': expected KEY=VALUE"),
])
def test_cli_refuses_sizes_and_options_before_writing(tmp_path, capsys, extra, message):
    root = tmp_path / "data"
    make_medmnist_npz(root / "breastmnist.npz", n=(12, 6, 6))
    out = tmp_path / "run"
    argv = ["generator", "fit", "--dataset", "breastmnist", "--out", str(out), "--data-root", str(root),
            "--no-verify-md5", *extra]
    assert run_cli(argv) == 2
    text = capsys.readouterr().out
    assert message in text and len(text.strip().splitlines()) == 1
    assert not out.exists()


def test_cli_fits_a_folder_source_and_synthesize_reloads_its_splits(tmp_path, capsys):
    """isic2019 (labels CSV + JPEGs, 3 channels, resized to 32 px) with a non-default split seed:
    the checkpoint records the option, and synthesize finds the same train split without it."""
    root = tmp_path / "isic"
    root.mkdir()
    make_isic(root, [(f"ISIC_{i:07d}", cls) for i, cls in enumerate(["MEL"] * 10 + ["NV"] * 14)])
    out = tmp_path / "run"
    argv = ["generator", "fit", "--dataset", "isic2019", "--generator", "cvae", "--size", "32", "--epochs", "1",
            "--batch-size", "4", "--set", "width=0.125", "--device", "cpu", "--data-root", str(root),
            "--data-option", "split_seed=3", "--quiet", "--out", str(out)]
    assert run_cli(argv) == 0, capsys.readouterr().out
    meta = read_checkpoint_meta(out / "checkpoint")
    assert (meta["channels"], meta["size"], meta["class_names"]) == (3, 32, ["MEL", "NV"])
    assert meta["dataset"]["name"] == "isic2019"
    assert data_options_of(meta) == {"split_seed": 3, "test_fraction": 0.15, "val_fraction": 0.15}
    result = synthesize(out / "checkpoint", Strategy("per-class", classes=("MEL",), count=3), seed=0,
                        out=tmp_path / "s.zarr", data_root=root, device="cpu")
    assert result.counts == (3, 0) and result.provenance["train_hash"] == meta["dataset"]["train_hash"]
    # another split seed gives another train split: the checkpoint's option is what made them match
    other = sources.load_dataset("isic2019", 32, root=root, options={"split_seed": 4}).splits.train
    assert other.content_hash != meta["dataset"]["train_hash"]


def test_cli_stylegan2_periodic_fid_with_default_extractor(tmp_path, capsys):
    """--set fid_kimg=K without Inception weights: FID through the penultimate layer of a classifier
    trained on the real train split, logged per tick with the extractor's name and digest."""
    from medaug.generators.evaluate import REFERENCE_DIR
    from medaug.generators.stylegan2.training_loop import STATS_FILE
    from medaug.store.generator_results import GENERATOR_EVAL_DIR

    root = tmp_path / "data"
    make_medmnist_npz(root / "breastmnist.npz", n=(16, 6, 6))
    out = tmp_path / "sg"
    tiny = dict(latent_dim=8, w_dim=8, mapping_layers=2, channel_base=64, channel_max=8, batch_size=8,
                kimg=0.016, fid_kimg=0.008, fid_images=16, tick_kimg=0.008, pl_weight=0.0, checkpoint_kimg=0.0)
    sets = [a for k, v in tiny.items() for a in ("--set", f"{k}={v}")]
    argv = ["generator", "fit", "--dataset", "breastmnist", "--generator", "stylegan2ada", "--out", str(out),
            "--data-root", str(root), "--no-verify-md5", "--device", "cpu", "--fid-classifier-epochs", "1", *sets]
    assert run_cli(argv) == 0
    printed = capsys.readouterr().out
    assert "FID every 0.008 kimg with classifier:cnn@" in printed
    rows = [json.loads(x) for x in (out / STATS_FILE).read_text().splitlines()]
    fids = [r for r in rows if "fid" in r]
    assert len(fids) == 2 and all(np.isfinite(r["fid"]) and r["fid"] >= 0 for r in fids)
    assert {r["fid_extractor"] for r in fids} == {printed.split("with ")[1].split()[0]}
    assert len(list((out / GENERATOR_EVAL_DIR / REFERENCE_DIR).glob("*.pt"))) == 1  # shared with generator eval
    assert " fid " in printed  # the status lines show it


def test_cli_fid_with_inception_weights_trains_no_classifier(tmp_path, capsys):
    """With fid_inception_weights set, the training loop builds Inception from that local file; the
    CLI trains no reference classifier, and a missing file is refused before anything is written."""
    root = tmp_path / "data"
    make_medmnist_npz(root / "breastmnist.npz", n=(16, 6, 6))
    out = tmp_path / "sg"
    tiny = dict(latent_dim=8, w_dim=8, mapping_layers=2, channel_base=64, channel_max=8, batch_size=8, kimg=0.008,
                fid_kimg=0.008, fid_inception_weights=str(tmp_path / "missing.pth"))
    sets = [a for k, v in tiny.items() for a in ("--set", f"{k}={v}")]
    argv = ["generator", "fit", "--dataset", "breastmnist", "--generator", "stylegan2ada", "--out", str(out),
            "--data-root", str(root), "--no-verify-md5", "--device", "cpu", *sets]
    assert run_cli(argv) == 2
    text = capsys.readouterr().out
    assert "missing.pth: file not found" in text and len(text.strip().splitlines()) == 1
    assert not out.exists()


def test_checkpoints_without_recorded_options_load_with_defaults():
    assert data_options_of({"dataset": {"name": "breastmnist"}}) == {}
    assert data_options_of({"dataset": {"data_options": "junk"}}) == {}
