"""Generator interface around the models: typed configs, checkpoints (corrupted and foreign
ones refused), fit's refusals, early stopping, the `medaug generator` CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import make_medmnist_npz
from medaug.cli import build_parser
from medaug.errors import MedaugError
from medaug.generators import (
    GENERATORS,
    build_generator,
    checkpoint_hash,
    generator_config,
    load_generator,
    read_checkpoint_meta,
)
from medaug.generators.base import META_FILE, STATE_FILE
from medaug.generators.gan import PerClassDCGAN
from medaug.generators.vae import ConditionalVAE, JointVAE
from test_generators_models import TINY, tiny, tiny_set


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def cvae_ckpt(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cvae")
    return tiny("cvae", epochs=1).fit(tiny_set(), out, plots=False)


def copy_ckpt(src: Path, dst: Path) -> Path:
    dst.mkdir(parents=True)
    for f in (META_FILE, STATE_FILE):
        (dst / f).write_bytes((src / f).read_bytes())
    return dst


# --------------------------------------------------------------------------- configs

def test_config_defaults_per_generator_and_overrides():
    cvae = generator_config("cvae")
    assert (cvae.latent_dim, cvae.epochs, cvae.early_stopping_patience) == (150, 200, 10)
    jvae = generator_config("jvae")
    assert (jvae.latent_dim, jvae.disc_dim, jvae.temperature, jvae.capacity_gamma) == (100, 50, 0.67, 30.0)
    wgan = generator_config("cwgan-gp")
    assert (wgan.n_critic, wgan.gp_weight, wgan.lr, wgan.beta1, wgan.beta2) == (5, 10.0, 1e-4, 0.0, 0.9)
    assert generator_config("cgan").latent_dim == 128 and generator_config("cgan").loss == "hinge"
    assert generator_config("dcgan", {"epochs": 3}, seed=4).to_dict()["epochs"] == 3
    cfg = generator_config("cvae", epochs=5)
    assert type(cfg).from_dict(cfg.to_dict()) == cfg


@pytest.mark.parametrize("values, message", [
    ({"epochs": 0}, "epochs"),
    ({"epochs": 2.5}, "epochs"),
    ({"lr": -1}, "lr"),
    ({"batch_size": 1}, "batch_size"),
    ({"n_critic": 5}, "unknown generator config field"),  # a GAN setting given to a VAE
    ({"bogus": 1}, "unknown generator config field"),
    ({"width": True}, "width"),
])
def test_config_refuses_bad_values(values, message):
    with pytest.raises(MedaugError, match=message):
        generator_config("cvae", values)


def test_gan_config_checks_its_fields():
    with pytest.raises(MedaugError, match="loss"):
        generator_config("cgan", loss="l2")
    with pytest.raises(MedaugError, match="unknown generator"):
        build_generator("stylegan9", 1, 28, 2)


def test_bad_shapes_refused():
    with pytest.raises(MedaugError, match="size"):
        build_generator("cvae", 1, 48, 2, TINY, device="cpu")
    with pytest.raises(MedaugError, match="channels"):
        build_generator("cgan", 2, 28, 2, TINY, device="cpu")
    gen = tiny("cvae")
    with pytest.raises(MedaugError, match="labels"):
        gen.sample(np.array([0, 2]), seed=0)
    with pytest.raises(MedaugError, match="labels"):
        gen.sample(np.array([[0]]), seed=0)
    with pytest.raises(MedaugError, match="uint8"):
        gen.reconstruct(np.zeros((2, 1, 28, 28), np.float32), np.array([0, 1]))
    with pytest.raises(MedaugError, match="needs the images' labels"):
        gen.reconstruct(np.zeros((2, 1, 28, 28), np.uint8))


def test_jvae_cannot_sample_but_reconstructs_without_labels():
    gen = tiny("jvae")
    with pytest.raises(MedaugError, match="unconditional"):
        gen.sample(np.array([0, 1]), seed=0)
    images = tiny_set().images[:3]
    assert gen.reconstruct(images, seed=0).shape == images.shape
    for name in ("cgan", "dcgan", "cwgan-gp"):
        with pytest.raises(MedaugError, match="cannot reconstruct"):
            tiny(name).reconstruct(images, np.array([0, 1, 0]))


# --------------------------------------------------------------------------- checkpoints

def test_checkpoint_contents(cvae_ckpt):
    meta = read_checkpoint_meta(cvae_ckpt)
    assert meta["name"] == "cvae" and meta["epoch"] == 1 and meta["finished"] is True
    assert meta["dataset"]["train_hash"] == tiny_set().content_hash and meta["dataset"]["class_counts"] == [8, 8]
    assert meta["class_names"] == ["c0", "c1"] and meta["config"]["width"] == 0.125
    assert checkpoint_hash(cvae_ckpt) == meta["state_sha256"]
    state = torch.load(cvae_ckpt / STATE_FILE, weights_only=True)
    assert set(state["nets"]) == {"cvae"} and set(state["optims"]) == {"adam"}
    assert sorted(p.name for p in cvae_ckpt.iterdir()) == [META_FILE, STATE_FILE]  # no temporary files left


@pytest.mark.parametrize("damage, message", [
    (lambda d: (d / STATE_FILE).write_bytes((d / STATE_FILE).read_bytes()[:1000]), "sha256"),
    (lambda d: (d / STATE_FILE).unlink(), "no state.pt"),
    (lambda d: (d / META_FILE).write_text('{"name": "cvae"'), "corrupted JSON"),
    (lambda d: (d / META_FILE).unlink(), "not a generator checkpoint"),
    (lambda d: (d / META_FILE).write_text(json.dumps({**json.loads((d / META_FILE).read_text()), "epoch": "x"})),
     "'epoch'"),
])
def test_damaged_checkpoint_refused(cvae_ckpt, tmp_path, damage, message):
    ckpt = copy_ckpt(cvae_ckpt, tmp_path / "ckpt")
    damage(ckpt)
    with pytest.raises(MedaugError, match=message) as exc:
        load_generator(ckpt, device="cpu")
    assert "\n" not in str(exc.value)


def test_state_file_of_same_hash_but_garbage_refused(cvae_ckpt, tmp_path):
    ckpt = copy_ckpt(cvae_ckpt, tmp_path / "ckpt")
    (ckpt / STATE_FILE).write_bytes(b"not a torch file")
    meta = json.loads((ckpt / META_FILE).read_text())
    import hashlib

    meta["state_sha256"] = hashlib.sha256(b"not a torch file").hexdigest()
    (ckpt / META_FILE).write_text(json.dumps(meta))
    with pytest.raises(MedaugError, match="unreadable checkpoint state"):
        load_generator(ckpt, device="cpu")


def test_checkpoint_of_another_generator_refused(cvae_ckpt, tmp_path):
    with pytest.raises(MedaugError, match="holds a 'cvae' generator, not 'dcgan'"):
        PerClassDCGAN.load(cvae_ckpt, device="cpu")
    with pytest.raises(MedaugError, match="not 'jvae'"):
        load_generator(cvae_ckpt, device="cpu", expect="jvae")
    # relabelled as another generator: its state is refused
    ckpt = copy_ckpt(cvae_ckpt, tmp_path / "ckpt")
    meta = json.loads((ckpt / META_FILE).read_text())
    config = {k: v for k, v in meta["config"].items() if k != "kl_weight"}
    (ckpt / META_FILE).write_text(json.dumps({**meta, "name": "jvae", "config": config}))
    with pytest.raises(MedaugError, match="does not belong"):
        JointVAE.load(ckpt, device="cpu")
    assert isinstance(ConditionalVAE.load(cvae_ckpt, device="cpu"), ConditionalVAE)


# --------------------------------------------------------------------------- fit refusals, early stopping

def test_fit_refuses_bad_input_before_writing(tmp_path, cvae_ckpt):
    train = tiny_set()
    out = tmp_path / "out"
    with pytest.raises(MedaugError, match="train split only"):
        tiny("cvae").fit(tiny_set(split="val"), out)
    with pytest.raises(MedaugError, match="built for"):
        tiny("cvae", classes=3).fit(train, out)
    multi = tiny_set()
    multi = type(multi)("m", "train", multi.images, np.stack([multi.labels, 1 - multi.labels], 1), ("a", "b"),
                        "multi-label, binary-class")
    with pytest.raises(MedaugError, match="multi-label"):
        tiny("cvae").fit(multi, out)
    with pytest.raises(MedaugError, match="nothing to resume"):
        tiny("cvae").fit(train, out, resume=True)
    assert not out.exists()
    # a finished run is neither overwritten nor resumed on other data or with other settings
    run = cvae_ckpt.parent
    with pytest.raises(MedaugError, match="already holds"):
        tiny("cvae", epochs=1).fit(train, run)
    with pytest.raises(MedaugError, match="another train split"):
        tiny("cvae", epochs=2).fit(tiny_set(seed=5), run, resume=True)
    with pytest.raises(MedaugError, match="config differs .* lr"):
        tiny("cvae", epochs=2, lr=0.1).fit(train, run, resume=True)
    with pytest.raises(MedaugError, match="holds a 'cvae'"):
        tiny("jvae", epochs=2).fit(train, run, resume=True)


def test_early_stopping_keeps_best_weights(tmp_path, monkeypatch):
    """val loss 3, 2, 2.5, 2.6 with patience 2: stop after epoch 4 with the weights of epoch 2."""
    train, val = tiny_set(), tiny_set(8, seed=1, split="val")
    losses = iter([3.0, 2.0, 2.5, 2.6, 1.0])
    gen = tiny("cvae", epochs=10, early_stopping_patience=2)
    monkeypatch.setattr(gen, "validation_loss", lambda x, y: next(losses))
    ckpt = gen.fit(train, tmp_path / "es", val=val, plots=False)
    assert gen.epoch == 4 and gen.loop_state["best_epoch"] == 2 and gen.loop_state["stopped_early"] == 1
    two = tiny("cvae", epochs=2)
    two.fit(train, tmp_path / "two", val=val, plots=False)
    loaded = load_generator(ckpt, device="cpu")
    for n, t in two.nets["cvae"].state_dict().items():
        assert torch.equal(t, loaded.nets["cvae"].state_dict()[n]), n
    epochs = (tmp_path / "es/losses_epochs.csv").read_text().splitlines()
    assert len(epochs) == 5 and epochs[0].split(",")[:5] == ["epoch", "loss", "recon", "kl", "val_loss"]
    # resuming a run that stopped early trains no further
    again = tiny("cvae", epochs=10, early_stopping_patience=2)
    again.fit(train, tmp_path / "es", val=val, resume=True, plots=False)
    assert again.epoch == 4


def test_fit_leaves_callers_rng_alone(tmp_path):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    tiny("dcgan", epochs=1).fit(tiny_set(), tmp_path / "d", plots=False)
    assert torch.equal(torch.rand(3), expected)


# --------------------------------------------------------------------------- CLI

def run_cli(argv: list[str]) -> int:
    """The generator commands in a parser like medaug/cli.py's (exit code, MedaugError -> 2)."""
    args = build_parser(argv[0]).parse_args(argv)
    try:
        return args.handler(args)
    except MedaugError as exc:
        print(f"medaug: error: {exc}")
        return exc.exit_code


@pytest.fixture
def data_root(tmp_path) -> Path:
    root = tmp_path / "data"
    make_medmnist_npz(root / "breastmnist.npz", n=(12, 6, 6))
    return root


def test_cli_fit_writes_checkpoint_tables_and_figures(tmp_path, data_root, capsys):
    out = tmp_path / "run"
    base = ["generator", "fit", "--dataset", "breastmnist", "--generator", "cvae", "--seed", "1", "--out", str(out),
            "--data-root", str(data_root), "--no-verify-md5", "--batch-size", "6", "--device", "cpu",
            "--set", "width=0.125"]
    assert run_cli([*base, "--epochs", "1"]) == 0
    assert {p.name for p in out.iterdir()} == {"checkpoint", "losses_steps.csv", "losses_epochs.csv",
                                               "loss_curves.png", "samples.png"}
    meta = read_checkpoint_meta(out / "checkpoint")
    assert meta["config"]["seed"] == 1 and meta["config"]["batch_size"] == 6 and meta["dataset"]["name"] == "breastmnist"
    assert meta["dataset"]["version"].startswith("medmnist") and len(meta["dataset"]["md5"]) == 32
    assert (out / "samples.png").read_bytes()[:4] == b"\x89PNG"
    assert "cvae epoch 1/1" in capsys.readouterr().out
    assert run_cli([*base, "--epochs", "2", "--resume", "--quiet"]) == 0
    assert read_checkpoint_meta(out / "checkpoint")["epoch"] == 2


@pytest.mark.parametrize("extra, message", [
    (["--generator", "nope"], "unknown generator 'nope'"),
    (["--generator", "cvae", "--epochs", "0"], "'epochs' = 0"),
    (["--generator", "cvae", "--set", "beta=1"], "unknown generator config field"),
    (["--generator", "cvae", "--set", "width"], "KEY=VALUE"),
    (["--generator", "cvae", "--device", "tpu"], "device"),
    (["--generator", "cvae", "--dataset", "nomnist"], "unknown dataset"),
])
def test_cli_bad_input_exit_2_nothing_written(tmp_path, data_root, capsys, extra, message):
    out = tmp_path / "run"
    argv = ["generator", "fit", "--dataset", "breastmnist", "--out", str(out), "--data-root", str(data_root),
            "--no-verify-md5"]
    assert run_cli(argv + extra) == 2
    text = capsys.readouterr().out
    assert message in text and len(text.strip().splitlines()) == 1
    assert not out.exists()


def test_cli_lists_every_generator(capsys):
    assert run_cli(["generator", "list"]) == 0
    out = capsys.readouterr().out
    assert [name for name in GENERATORS.names() if name not in out] == []


def test_every_generator_is_documented():
    for name in GENERATORS.names():
        cls = GENERATORS.get(name)
        assert cls.__doc__ and cls.name == name
