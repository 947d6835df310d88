"""StyleGAN2-ADA training: losses, ADA p, EMA, conditional sampling, save/resume, config checks."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from medaug.data.imageset import ImageSet
from medaug.errors import MedaugError
from medaug.generators.base import STATE_FILE, load_generator
from medaug.generators.stylegan2 import StyleGAN2ADA, StyleGANConfig
from medaug.generators.stylegan2.rng import BatchRandom
from medaug.generators.stylegan2.training_loop import (
    STATS_FILE,
    StyleGAN2Trainer,
    build_nets,
    build_optimizers,
    fit_back,
    fit_to,
)

TINY = dict(latent_dim=8, w_dim=8, mapping_layers=2, channel_base=64, channel_max=8, batch_size=8)


def toy(n: int = 32, size: int = 28, seed: int = 0) -> ImageSet:
    """Class 0 dark (50..89), class 1 bright (190..229): separable by mean brightness."""
    rng = np.random.default_rng(seed)
    labels = (np.arange(n) % 2).astype(np.int64)
    base = np.where(labels[:, None, None, None] == 1, 190, 50)
    images = (base + rng.integers(0, 40, (n, 1, size, size))).astype(np.uint8)
    return ImageSet("toy", "train", images, labels, ("dark", "bright"), "binary-class")


def trainer16(**overrides) -> StyleGAN2Trainer:
    cfg = StyleGANConfig(**{**TINY, "pl_weight": 0.0, **overrides})
    with torch.random.fork_rng():
        torch.manual_seed(cfg.seed)
        nets = build_nets(cfg, 1, 16, 2)
    return StyleGAN2Trainer(nets, build_optimizers(nets, cfg), cfg, num_classes=2, device=torch.device("cpu"))


def toy16(n: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    data = toy(n, size=16)
    return torch.from_numpy(data.images), torch.from_numpy(data.labels)


# ----------------------------------------------------------------------------- losses


def test_d_steps_lower_the_d_loss_and_g_steps_lower_the_g_loss_on_fixed_batches():
    tr = trainer16(augment="none", seed=1)
    images, labels = toy16(8)
    real = images.float() / 127.5 - 1
    c = F.one_hot(labels, 2).float()
    z = torch.randn(8, 8, generator=torch.Generator().manual_seed(0))

    def fixed_fake() -> torch.Tensor:
        with torch.no_grad():
            return tr.G(z, c, rng=BatchRandom.seeded(0))

    def d_loss() -> float:
        with torch.no_grad():
            return float(F.softplus(tr.D(fixed_fake(), c)).mean() + F.softplus(-tr.D(real, c)).mean())

    def g_loss() -> float:
        with torch.no_grad():
            return float(F.softplus(-tr.D(fixed_fake(), c)).mean())

    before = d_loss()
    for _ in range(8):
        tr.phase("Dmain", real, c, c)
    after = d_loss()
    assert after < before - 0.05, (before, after)

    before = g_loss()
    for _ in range(8):
        tr.phase("Gmain", real, c, c)
    after = g_loss()
    assert after < before - 0.05, (before, after)


def test_regularisers_produce_finite_penalties_and_update_weights():
    tr = trainer16(pl_weight=2.0, r1_gamma=1.0, augment_p=0.5)
    images, labels = toy16(8)
    before = {k: v.clone() for k, v in tr.D.state_dict().items()}
    stats = tr.train_step(images, labels)  # step 0 runs all four phases
    for key in ("G_loss", "G_pl_penalty", "D_loss", "D_r1_penalty"):
        assert np.isfinite(stats[key]), key
    assert stats["D_r1_penalty"] > 0 and stats["G_pl_penalty"] >= 0
    assert any(not torch.equal(before[k], v) for k, v in tr.D.state_dict().items())
    assert float(tr.loss.pl_mean) > 0


def test_bf16_autocast_path_trains_with_fp32_weights():
    # CUDA runs the main phases under bf16 autocast; CPU autocast exercises the same dtype mixing here
    tr = trainer16(pl_weight=2.0, augment_p=0.5)
    tr.loss._autocast = lambda: torch.autocast("cpu", dtype=torch.bfloat16)
    images, labels = toy16(8)
    for _ in range(2):
        stats = tr.train_step(images, labels)
    assert all(np.isfinite(v) for v in stats.values())
    assert all(p.dtype == torch.float32 and torch.isfinite(p).all() for p in tr.G.parameters())
    assert tr.G.mapping.w_avg.dtype == torch.float32


# ----------------------------------------------------------------------------- ADA


class OffsetD(nn.Module):
    """D with a constant added to its logits: fixes the sign of every D(real)."""

    def __init__(self, D: nn.Module, offset: float) -> None:
        super().__init__()
        self.D, self.offset = D, offset

    def forward(self, img: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        return self.D(img, c) + self.offset


def test_ada_p_rises_when_d_overfits_a_handful_of_reals():
    tr = trainer16(ada_interval=1, ada_kimg=0.2, seed=2)
    images, labels = toy16(4)  # four real images
    real = images.float() / 127.5 - 1
    c = F.one_hot(labels, 2).float()
    for _ in range(15):  # D alone learns them by heart
        stats = tr.phase("Dmain", real, c, c)
    assert stats["real_sign_sum"] == stats["real_count"]  # every real scored real
    assert tr.p == 0.0
    for _ in range(3):
        tr.train_step(images, labels)
    assert tr.ada.last_rt > 0.6
    assert tr.p == pytest.approx(3 * 8 / 200)


def test_ada_p_falls_when_d_does_not_overfit():
    tr = trainer16(ada_interval=1, ada_kimg=0.2, augment_p=0.5)
    tr.loss.D = OffsetD(tr.D, -20.0)  # every real scored fake: r_t = -1 < 0.6
    images, labels = toy16(8)
    for _ in range(3):
        tr.train_step(images, labels)
    assert tr.ada.last_rt == -1.0
    assert tr.p == pytest.approx(0.5 - 3 * 8 / 200)
    tr.loss.D = OffsetD(tr.D, +20.0)  # every real scored real: r_t = 1 > 0.6
    tr.train_step(images, labels)
    assert tr.p == pytest.approx(0.5 - 2 * 8 / 200)


def test_fixed_p_when_ada_is_off():
    tr = trainer16(ada=False, augment_p=0.3)
    images, labels = toy16(8)
    stats = tr.train_step(images, labels)
    assert tr.p == pytest.approx(0.3) and stats["augment_p"] == pytest.approx(0.3)


# ----------------------------------------------------------------------------- the generator interface


def test_ema_differs_from_g_and_is_what_sample_uses(tmp_path):
    cfg = dict(TINY, kimg=0.016, ema_kimg=0.01, ema_rampup=0.0, pl_weight=0.0, checkpoint_kimg=0.0)
    gen = StyleGAN2ADA(1, 28, 2, cfg)
    gen.fit(toy(16), tmp_path / "run", plots=False)
    G, G_ema = gen.nets["G"], gen.nets["G_ema"]
    diff = max(float((a - b).abs().max()) for a, b in zip(G.parameters(), G_ema.parameters()))
    assert diff > 1e-4

    labels = np.array([0, 1, 1, 0])
    out = gen.sample(labels, seed=11)

    def by_hand(net: nn.Module) -> np.ndarray:
        g = torch.Generator().manual_seed(11)
        z = torch.randn(4, 8, generator=g)
        with torch.no_grad():
            img = net(z, F.one_hot(torch.from_numpy(labels), 2).float(), rng=BatchRandom(g))
        img = fit_back(img, 28, "pad").clamp(-1, 1)
        return ((img + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).numpy()

    assert out.shape == (4, 1, 28, 28) and out.dtype == np.uint8
    assert np.array_equal(out, by_hand(G_ema))
    assert not np.array_equal(out, by_hand(G))
    assert np.array_equal(out, gen.sample(labels, seed=11))


def test_conditional_samples_follow_labels_on_a_dark_bright_toy_set(tmp_path):
    cfg = dict(TINY, kimg=0.256, w_dim=16, channel_max=16, pl_weight=0.0, checkpoint_kimg=0.0, seed=0)
    gen = StyleGAN2ADA(1, 28, 2, cfg)
    gen.fit(toy(32), tmp_path / "run", plots=False)
    labels = np.repeat([0, 1], 32)
    brightness = gen.sample(labels, seed=5).reshape(64, -1).mean(axis=1)
    predicted = (brightness > 140).astype(int)  # fixed classifier: midpoint of the two classes' means
    accuracy = float((predicted == labels).mean())
    assert accuracy >= 0.75, accuracy  # chance is 0.5
    assert brightness[32:].mean() > brightness[:32].mean() + 40


def test_save_and_resume_continue_identically(tmp_path):
    cfg = dict(TINY, kimg=0.032, r1_interval=2, pl_interval=2, pl_weight=2.0, ada_interval=1, ada_kimg=0.5,
               augment_p=0.2, tick_kimg=0.008, checkpoint_kimg=0.016, seed=4)
    train = toy(16)
    straight = StyleGAN2ADA(1, 28, 2, cfg)
    ck_a = straight.fit(train, tmp_path / "a", plots=False)

    first = StyleGAN2ADA(1, 28, 2, {**cfg, "kimg": 0.016})
    first.fit(train, tmp_path / "b", plots=False)
    assert first.finished and first.global_step == 2
    resumed = StyleGAN2ADA(1, 28, 2, cfg)  # a fresh process would build it the same way
    ck_b = resumed.fit(train, tmp_path / "b", resume=True, plots=False)

    sa = torch.load(ck_a / STATE_FILE, weights_only=True)
    sb = torch.load(ck_b / STATE_FILE, weights_only=True)
    assert sa["global_step"] == sb["global_step"] == 4
    for net in sa["nets"]:
        for k, t in sa["nets"][net].items():
            assert torch.equal(t, sb["nets"][net][k]), f"{net}.{k}"
    for opt in sa["optims"]:
        for pid, st in sa["optims"][opt]["state"].items():
            for k, t in st.items():
                assert torch.equal(torch.as_tensor(t), torch.as_tensor(sb["optims"][opt]["state"][pid][k]))
    assert torch.equal(sa["stylegan"]["rng_state"], sb["stylegan"]["rng_state"])
    rows_a = [json.loads(x) for x in (tmp_path / "a" / STATS_FILE).read_text().splitlines()]
    rows_b = [json.loads(x) for x in (tmp_path / "b" / STATS_FILE).read_text().splitlines()]
    strip = ("seconds", "sec_per_kimg")
    assert [{k: v for k, v in r.items() if k not in strip} for r in rows_a] == \
           [{k: v for k, v in r.items() if k not in strip} for r in rows_b]

    # a finished checkpoint loads for sampling; a resume with another model config is refused
    loaded = load_generator(ck_b, device="cpu")
    assert np.array_equal(loaded.sample(np.array([0, 1]), seed=1), resumed.sample(np.array([0, 1]), seed=1))
    with pytest.raises(MedaugError, match="r1_gamma"):
        StyleGAN2ADA(1, 28, 2, {**cfg, "r1_gamma": 5.0}).fit(train, tmp_path / "b", resume=True, plots=False)
    with pytest.raises(MedaugError, match="already holds"):
        StyleGAN2ADA(1, 28, 2, cfg).fit(train, tmp_path / "b", plots=False)


def test_periodic_fid_uses_the_given_extractor_and_is_skipped_without_one(tmp_path):
    def brightness_features(images: np.ndarray) -> np.ndarray:
        x = images.reshape(len(images), -1).astype(np.float64)
        return np.stack([x.mean(1), x.std(1)], axis=1)

    cfg = dict(TINY, kimg=0.016, fid_kimg=0.008, fid_images=16, tick_kimg=0.008, pl_weight=0.0, checkpoint_kimg=0.0)
    gen = StyleGAN2ADA(1, 28, 2, cfg)
    gen.fid_extractor = brightness_features
    gen.fit(toy(16), tmp_path / "with", plots=False)
    rows = [json.loads(x) for x in (tmp_path / "with" / STATS_FILE).read_text().splitlines()]
    assert len(rows) == 2 and all(np.isfinite(r["fid"]) and r["fid"] >= 0 for r in rows)

    plain = StyleGAN2ADA(1, 28, 2, cfg)
    plain.fit(toy(16), tmp_path / "without", plots=False)
    rows = [json.loads(x) for x in (tmp_path / "without" / STATS_FILE).read_text().splitlines()]
    assert rows and all("fid" not in r for r in rows)


# ----------------------------------------------------------------------------- sizes and config


def test_28px_is_reflect_padded_to_32_and_cropped_back_exactly():
    images = torch.from_numpy(toy(4).images)
    padded = fit_to(images, 32, "pad")
    assert padded.shape == (4, 1, 32, 32)
    assert torch.equal(fit_back(padded.float(), 28, "pad").to(torch.uint8), images)
    assert fit_to(images, 32, "resize").shape == (4, 1, 32, 32)
    assert fit_back(padded.float(), 28, "resize").shape == (4, 1, 28, 28)
    assert StyleGAN2ADA(1, 28, 2, TINY).resolution == 32


@pytest.mark.parametrize("size,channels", [(64, 3), (256, 1)])
def test_untrained_generator_samples_at_64_and_256_px(size, channels):
    gen = StyleGAN2ADA(channels, size, 2, dict(TINY, channel_base=256, channel_max=4))
    assert gen.resolution == size
    out = gen.sample(np.array([0, 1]), seed=0)
    assert out.shape == (2, channels, size, size) and out.dtype == np.uint8
    with pytest.raises(MedaugError, match="image size"):
        StyleGAN2ADA(1, 512, 2, TINY)


@pytest.mark.parametrize("field,value", [("augment", "cutout"), ("amp", "fp8"), ("ada_target", 1.5),
                                         ("resize_mode", "crop"), ("r1_interval", 0), ("kimg", -1.0)])
def test_bad_config_values_are_refused_with_the_field_name(field, value):
    with pytest.raises(MedaugError, match=field):
        StyleGANConfig(**{field: value})


def test_unknown_config_keys_are_refused_and_defaults_follow_ada():
    with pytest.raises(MedaugError, match="unknown generator config"):
        StyleGANConfig.from_dict({"gamma": 1.0})
    cfg = StyleGANConfig()
    assert (cfg.lr, cfg.beta1, cfg.beta2, cfg.ada_target, cfg.ada_kimg, cfg.mapping_layers) == \
           (0.0025, 0.0, 0.99, 0.6, 500.0, 8)
