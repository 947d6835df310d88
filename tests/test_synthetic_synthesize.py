"""`medaug synthesize`: from a checkpoint to a Zarr set, its CLI, and its refusals (nothing written)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest

from conftest import make_medmnist_npz
from medaug import cli
from medaug.data.medmnist import load_medmnist
from medaug.errors import MedaugError
from medaug.generators.base import GENERATORS, STATE_FILE, load_generator
from medaug.generators.baseline import ClassMeanNoise
from medaug.generators.strategies import Strategy
from medaug.generators.synthesize import synthesize
from medaug.store.synthetic import list_groups, mix_into_train, read_synthetic_set



if "test-reconstructor" not in GENERATORS:
    @GENERATORS.register("test-reconstructor")
    class Reconstructor(ClassMeanNoise):
        """A stand-in VAE: 'reconstructs' an image as its negative (tests only)."""

        name: ClassVar[str] = "test-reconstructor"
        can_sample: ClassVar[bool] = False
        can_reconstruct: ClassVar[bool] = True

        def reconstruct(self, images, labels=None, seed=0):
            return 255 - self.check_images(images)


def fit(name: str, root: Path, out: Path) -> Path:
    splits = load_medmnist("breastmnist", root=root, verify=False)
    gen = GENERATORS.get(name)(1, 28, 2, device="cpu")
    return gen.fit(splits.train, out, val=splits.val, plots=False)


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synth") / "data"
    make_medmnist_npz(root / "breastmnist.npz", n=(40, 10, 10))
    return root


@pytest.fixture(scope="module")
def shared_ckpt(data_root) -> Path:
    """One fitted class-mean-noise checkpoint for the module (tests that damage it use `ckpt`)."""
    return fit("class-mean-noise", data_root, data_root.parent / "gen")


@pytest.fixture
def ckpt(tmp_path, shared_ckpt) -> Path:
    copy = tmp_path / "gen" / "checkpoint"
    shutil.copytree(shared_ckpt, copy)
    return copy


def run_cli(argv: list[str]) -> int:
    return cli.main(argv)


def test_synthesize_inverse_scarcity_and_mix(tmp_path, data_root, ckpt):
    store = tmp_path / "sets.zarr"
    res = synthesize(ckpt, Strategy("inverse-scarcity", fraction=0.1), 3, store, data_root=data_root,
                     verify_md5=False, device="cpu")
    assert res.n == 4 and sum(res.counts) == 4  # floor(0.1 x 40), balanced classes -> 2 + 2
    s = read_synthetic_set(res.ref)
    assert s.set_id == res.set_id and len(s) == 4 and s.labels.tolist() == [0, 0, 1, 1]
    p = s.provenance
    train = load_medmnist("breastmnist", root=data_root, verify=False).train
    assert p["generator"] == "class-mean-noise" and p["train_hash"] == train.content_hash
    assert p["strategy"] == "inverse-scarcity" and p["strategy_params"] == {"fraction": 0.1} and p["seed"] == 3
    assert p["dataset"] == "breastmnist" and p["dataset_md5"] and p["dataset_version"].startswith("medmnist")
    assert len(p["checkpoint_hash"]) == 16 and p["class_names"] == list(train.class_names)
    # the images are the generator's samples for those labels and that seed
    expected = load_generator(ckpt, device="cpu").sample(s.labels, 3)
    np.testing.assert_array_equal(s.images, expected)
    mixed, info = mix_into_train(train, res.ref)
    assert len(mixed) == 44 and info["set_id"] == res.set_id
    # same checkpoint, strategy and seed -> the same set
    again = synthesize(ckpt, Strategy("inverse-scarcity", fraction=0.1), 3, store, group="again",
                       data_root=data_root, verify_md5=False, device="cpu")
    assert again.set_id == res.set_id


def test_cli_per_class_and_ratio(tmp_path, data_root, ckpt, capsys):
    store = tmp_path / "sets.zarr"
    base = ["synthesize", "--checkpoint", str(ckpt), "--seed", "0", "--out", str(store), "--data-root",
            str(data_root), "--no-verify-md5", "--device", "cpu"]
    assert run_cli([*base, "--strategy", "per-class", "--classes", "normal, benign", "--count", "3",
                    "--group", "pc"]) == 0
    assert read_synthetic_set(f"{store}#pc").labels.tolist() == [1, 1, 1]
    assert run_cli([*base, "--strategy", "ratio", "--synthetic-per-real", "2", "--group", "r2"]) == 0
    assert len(read_synthetic_set(f"{store}#r2")) == 80
    assert "wrote 80 images" in capsys.readouterr().out


@pytest.mark.parametrize("extra, message", [
    (["--strategy", "per-class", "--classes", "0,0", "--count", "3"], "named twice"),
    (["--strategy", "per-class", "--classes", "0,1,1", "--count", "3"], "has only 2"),
    (["--strategy", "per-class", "--classes", "tumour", "--count", "3"], "unknown class"),
    (["--strategy", "per-class", "--classes", "0", "--count", "-4"], "--count"),
    (["--strategy", "inverse-scarcity", "--fraction", "-0.1"], "--fraction"),
    (["--strategy", "inverse-scarcity"], "needs --fraction"),
    (["--strategy", "interleave-reconstructions"], "cannot reconstruct"),
])
def test_cli_bad_input_exit_2_nothing_written(tmp_path, data_root, ckpt, capsys, extra, message):
    store = tmp_path / "sets.zarr"
    code = run_cli(["synthesize", "--checkpoint", str(ckpt), "--seed", "0", "--out", str(store), "--data-root",
                    str(data_root), "--no-verify-md5", "--device", "cpu", *extra])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not store.exists()


def test_refuses_data_that_is_not_the_generators_train_split(tmp_path, ckpt):
    other = tmp_path / "other"
    make_medmnist_npz(other / "breastmnist.npz", n=(40, 10, 10), seed=1)
    with pytest.raises(MedaugError, match="train split hash"):
        synthesize(ckpt, Strategy("ratio", synthetic_per_real=1), 0, tmp_path / "s.zarr", data_root=other,
                   verify_md5=False)
    assert not (tmp_path / "s.zarr").exists()


def test_refuses_corrupted_checkpoint(tmp_path, data_root, ckpt):
    state = ckpt / STATE_FILE
    state.write_bytes(state.read_bytes()[:100])
    with pytest.raises(MedaugError, match="sha256"):
        synthesize(ckpt, Strategy("ratio", synthetic_per_real=1), 0, tmp_path / "s.zarr", data_root=data_root,
                   verify_md5=False)
    (ckpt / "generator.json").write_text("{")
    with pytest.raises(MedaugError, match="JSON"):
        synthesize(ckpt, Strategy("ratio", synthetic_per_real=1), 0, tmp_path / "s.zarr", data_root=data_root,
                   verify_md5=False)
    assert not (tmp_path / "s.zarr").exists()


def test_existing_group_refused_before_sampling(tmp_path, data_root, ckpt):
    store = tmp_path / "sets.zarr"
    strategy = Strategy("ratio", synthetic_per_real=1)
    synthesize(ckpt, strategy, 0, store, group="g", data_root=data_root, verify_md5=False, device="cpu")
    with pytest.raises(MedaugError, match="exists already"):
        synthesize(ckpt, strategy, 1, store, group="g", data_root=data_root, verify_md5=False, device="cpu")
    assert list_groups(store) == ["g"]


def test_interleave_reconstructions(tmp_path, data_root):
    ckpt = fit("test-reconstructor", data_root, tmp_path / "vae")
    store = tmp_path / "sets.zarr"
    res = synthesize(ckpt, Strategy("interleave-reconstructions"), 0, store, data_root=data_root,
                     verify_md5=False, device="cpu")
    train = load_medmnist("breastmnist", root=data_root, verify=False).train
    s = read_synthetic_set(res.ref)
    np.testing.assert_array_equal(s.images, 255 - train.images)  # in the real order
    np.testing.assert_array_equal(s.labels, train.labels)
    mixed, _ = mix_into_train(train, res.ref)
    np.testing.assert_array_equal(mixed.images[0::2], train.images)
    np.testing.assert_array_equal(mixed.images[1::2], 255 - train.images)
