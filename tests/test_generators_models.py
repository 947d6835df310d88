"""Each generator: its losses fall, sampling is shaped/seeded/labelled, save -> load keeps
samples, resume equals an uninterrupted fit. Tiny nets (width 1/8) on 16 tiny images."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch

from medaug.data.imageset import ImageSet
from medaug.generators import GENERATORS, build_generator, load_generator
from medaug.generators.base import to_float

NAMES = ("cvae", "jvae", "cgan", "dcgan", "cwgan-gp", "vaegan")
GANS = ("cgan", "dcgan", "cwgan-gp")
TINY = {"width": 0.125, "batch_size": 8}


pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_set(n: int = 16, channels: int = 1, size: int = 28, classes: int = 2, seed: int = 0,
             split: str = "train") -> ImageSet:
    """Dark noise with a bright square whose position depends on the class."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % classes
    images = rng.integers(0, 40, size=(n, channels, size, size), dtype=np.uint8)
    for i, k in enumerate(labels):
        images[i, :, 4 + 8 * k:12 + 8 * k, 4:12] = 220
    return ImageSet("tinymnist", split, images, labels.astype(np.int64), tuple(f"c{k}" for k in range(classes)),
                    "multi-class" if classes > 2 else "binary-class")


def tiny(name: str, channels: int = 1, size: int = 28, classes: int = 2, **config):
    return build_generator(name, channels, size, classes, {**TINY, **config}, device="cpu")


def batch(data: ImageSet, single_class: bool) -> tuple[torch.Tensor, torch.Tensor]:
    idx = np.flatnonzero(data.labels == 0) if single_class else np.arange(len(data))
    return to_float(torch.from_numpy(data.images[idx])), torch.from_numpy(data.labels[idx])


def run_steps(gen, x, y, steps: int, key: str) -> list[float]:
    torch.manual_seed(0)
    gen.train_mode(True)
    out = []
    for _ in range(steps):
        out.append(gen.train_step(x, y)[key])
        gen.global_step += 1
    return out


def freeze(gen, *names: str) -> None:
    """lr 0 for the named optimizers: those nets stay fixed while the others learn."""
    for name in names:
        for group in gen.optims[name].param_groups:
            group["lr"] = 0.0


@pytest.mark.parametrize("name", ["cvae", "jvae"])
def test_vae_reconstruction_error_falls(name):
    gen = tiny(name, lr=2e-3)
    x, y = batch(tiny_set(), single_class=False)
    recon = run_steps(gen, x, y, 15, "recon")
    assert np.mean(recon[-3:]) < 0.6 * np.mean(recon[:3])


@pytest.mark.parametrize("name", GANS)
def test_gan_discriminator_loss_falls_at_fixed_generator(name):
    gen = tiny(name, lr=1e-3)
    freeze(gen, "g")
    x, y = batch(tiny_set(), single_class=name == "dcgan")
    d = run_steps(gen, x, y, 15, "d_loss")
    assert np.mean(d[-3:]) < np.mean(d[:3]) - 0.1


@pytest.mark.parametrize("name", GANS)
def test_gan_generator_loss_falls_at_fixed_discriminator(name):
    gen = tiny(name, lr=1e-3, n_critic=1)
    freeze(gen, "d")
    x, y = batch(tiny_set(), single_class=name == "dcgan")
    g = run_steps(gen, x, y, 15, "g_loss")
    assert np.mean(g[-3:]) < np.mean(g[:3])


def test_vaegan_losses_fall():
    """Discriminator alone learns to separate; encoder + decoder alone learn to match Dis_l features."""
    x, y = batch(tiny_set(), single_class=False)
    gen = tiny("vaegan", lr=1e-3)
    freeze(gen, "enc", "dec")
    d = run_steps(gen, x, y, 15, "d_loss")
    assert np.mean(d[-3:]) < np.mean(d[:3]) - 0.1
    gen = tiny("vaegan", lr=3e-3)
    freeze(gen, "dis")
    llike = run_steps(gen, x, y, 15, "llike")
    assert np.mean(llike[-3:]) < 0.9 * np.mean(llike[:3])


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("channels, size", [(1, 28), (3, 32), (3, 64)])
def test_sample_shape_dtype_seed_and_labels(name, channels, size):
    gen = tiny(name, channels, size, classes=3)
    rng = np.random.default_rng(0)
    torch.manual_seed(0)
    gen.train_mode(True)
    for k in range(3):  # a step per class, so batch-norm statistics are no longer the untrained ones
        gen.train_step(torch.rand(4, channels, size, size) * 2 - 1, torch.full((4,), k))
    labels = np.array([2, 0, 1, 2, 0])
    if not gen.can_sample:
        images = (rng.random((5, channels, size, size)) * 255).astype(np.uint8)
        rec = gen.reconstruct(images, labels, seed=1)
        assert rec.shape == images.shape and rec.dtype == np.uint8
        np.testing.assert_array_equal(rec, gen.reconstruct(images, labels, seed=1))
        assert not np.array_equal(rec, gen.reconstruct(images, labels, seed=2))
        return
    a = gen.sample(labels, seed=7)
    assert a.shape == (5, channels, size, size) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, gen.sample(labels, seed=7))

    def floats(labels, seed):  # before rounding to uint8 (a barely trained net is nearly flat)
        gen.train_mode(False)
        with torch.no_grad():
            return gen._sample(torch.tensor(labels), torch.Generator().manual_seed(seed))

    base = floats([2, 0, 1], 7)
    assert not torch.allclose(base, floats([2, 0, 1], 8))
    # image i is drawn for labels[i]: changing the other labels leaves it alone ...
    assert torch.equal(base[0], floats([2, 1, 1], 7)[0])
    if gen.conditional:  # ... and for a conditional model the label matters
        assert not torch.allclose(base[0], floats([0, 0, 1], 7)[0])
    assert gen.sample(np.array([], dtype=np.int64), seed=0).shape == (0, channels, size, size)


def _loss_rows(path: Path) -> list[dict[str, str]]:
    with open(path) as f:
        return [{k: v for k, v in r.items() if k not in ("seconds", "images_per_s")} for r in csv.DictReader(f)]


def _same_state(a, b) -> None:
    for key, net in a.nets.items():
        other = b.nets[key].state_dict()
        for n, t in net.state_dict().items():
            assert torch.equal(t, other[n]), f"{key}.{n} differs"


@pytest.mark.parametrize("name", NAMES)
def test_resume_matches_uninterrupted_fit_and_save_load_keeps_samples(name, tmp_path):
    train, val = tiny_set(), tiny_set(8, seed=1, split="val")
    # The interruption is simulated by a 1-epoch run resumed to 2 epochs; jvae's default capacity
    # ramp follows the planned length, so it gets a fixed ramp here to plan the same in both runs.
    fixed = {"capacity_iters": 3} if name == "jvae" else {}
    full = tiny(name, epochs=2, **fixed)
    ckpt = full.fit(train, tmp_path / "full", val=val, plots=False)

    first = tiny(name, epochs=1, **fixed)
    first.fit(train, tmp_path / "resumed", val=val, plots=False)
    resumed = tiny(name, epochs=2, **fixed)
    assert resumed.fit(train, tmp_path / "resumed", val=val, resume=True, plots=False) == tmp_path / "resumed/checkpoint"
    assert resumed.epoch == full.epoch == 2 and resumed.global_step == full.global_step
    _same_state(full, resumed)
    for table in ("losses_steps.csv", "losses_epochs.csv"):
        assert _loss_rows(tmp_path / "full" / table) == _loss_rows(tmp_path / "resumed" / table)

    loaded = load_generator(ckpt, device="cpu")
    assert type(loaded) is type(full) and loaded.epoch == 2 and loaded.class_names == ("c0", "c1")
    assert loaded.dataset["train_hash"] == train.content_hash
    _same_state(full, loaded)
    labels = np.array([0, 1, 1, 0])
    if full.can_sample:
        np.testing.assert_array_equal(full.sample(labels, 3), loaded.sample(labels, 3))
    if full.can_reconstruct:
        np.testing.assert_array_equal(full.reconstruct(train.images[:4], labels, 3),
                                      loaded.reconstruct(train.images[:4], labels, 3))


def test_interrupted_epoch_resumes_from_last_checkpoint(tmp_path, monkeypatch):
    """A crash in the middle of epoch 2 leaves epoch 1's checkpoint; resume redoes epoch 2 exactly."""
    train = tiny_set()
    full = tiny("cvae", epochs=2)
    full.fit(train, tmp_path / "full", plots=False)

    crashing = tiny("cvae", epochs=2)
    real_step = crashing.train_step
    calls = []

    def step(x, y):
        calls.append(1)
        if len(calls) == 3:  # first step of epoch 2 (2 steps per epoch)
            raise KeyboardInterrupt
        return real_step(x, y)

    monkeypatch.setattr(crashing, "train_step", step)
    with pytest.raises(KeyboardInterrupt):
        crashing.fit(train, tmp_path / "run", plots=False)
    assert load_generator(tmp_path / "run/checkpoint", device="cpu").epoch == 1
    resumed = tiny("cvae", epochs=2)
    resumed.fit(train, tmp_path / "run", resume=True, plots=False)
    _same_state(full, resumed)
    assert _loss_rows(tmp_path / "full/losses_steps.csv") == _loss_rows(tmp_path / "run/losses_steps.csv")


def test_registered_names():
    assert set(NAMES) <= set(GENERATORS.names())


def test_jvae_capacity_ramp_defaults_to_half_the_run():
    """capacity_iters 0: the KL capacities reach their maximum after half the planned steps (a fixed
    25000 steps would leave a small set's posterior collapsed for the whole run); > 0: that many steps."""
    import math

    gen = tiny("jvae", epochs=4)
    batches = gen.batch_indices(tiny_set().labels, 8, torch.Generator().manual_seed(0))
    assert len(batches) == 2 and gen.capacity_steps() == 4
    cz, cc = gen.capacities(2)
    assert cz == pytest.approx(12.5) and cc == pytest.approx(math.log(50) / 2)
    assert gen.capacities(4) == gen.capacities(40) == (25.0, pytest.approx(math.log(50)))
    fixed = tiny("jvae", epochs=4, capacity_iters=10)
    fixed.batch_indices(tiny_set().labels, 8, torch.Generator().manual_seed(0))
    assert fixed.capacity_steps() == 10 and fixed.capacities(5)[0] == pytest.approx(12.5)
