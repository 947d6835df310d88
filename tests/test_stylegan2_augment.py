"""ADA augmentation pipeline and p controller (medaug/generators/stylegan2/augment.py)."""

from __future__ import annotations

import math

import pytest
import torch

from medaug.generators.stylegan2.augment import COLOUR_OPS, GEOMETRIC_OPS, OPS, AdaptiveP, AugmentPipe
from medaug.generators.stylegan2.rng import BatchRandom


def _images(channels: int, n: int = 8, size: int = 16, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, channels, size, size, generator=g) * 2 - 1


def _pipe(op: str, p: float) -> AugmentPipe:
    return AugmentPipe({op: 1.0}, p=p)


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("op", OPS)
def test_each_op_keeps_shape_changes_images_at_p1_and_is_identity_at_p0(op, channels):
    x = _images(channels)
    y0 = _pipe(op, 0.0)(x, BatchRandom.seeded(1))
    assert torch.equal(y0, x)
    y1 = _pipe(op, 1.0)(x, BatchRandom.seeded(1))
    assert y1.shape == x.shape and y1.dtype == x.dtype and torch.isfinite(y1).all()
    if channels == 1 and op in ("hue", "saturation"):
        assert torch.equal(y1, x)  # grey lies on the luma axis: documented identity
    else:
        assert not torch.allclose(y1, x, atol=1e-4), f"{op} at p=1 changed nothing"


def test_full_pipeline_identity_at_p0_and_differentiable_twice():
    x = _images(3, n=4)
    pipe = AugmentPipe("bgc", p=0.0)
    assert torch.equal(pipe(x, BatchRandom.seeded(0)), x)
    pipe.p.fill_(0.7)
    xr = x.clone().requires_grad_(True)
    y = pipe(xr, BatchRandom.seeded(0))
    # R1 differentiates D(aug(x)) w.r.t. x and then backpropagates that: second order through the pipeline
    (g,) = torch.autograd.grad((y.square() * torch.linspace(0, 1, y.numel()).reshape(y.shape)).sum(), xr,
                               create_graph=True)
    g.square().sum().backward()
    assert xr.grad is not None and torch.isfinite(xr.grad).all() and xr.grad.abs().sum() > 0


def test_pure_xflip_with_p1_flips_about_half_and_leaves_the_rest():
    x = _images(1, n=64)
    y = _pipe("xflip", 1.0)(x, BatchRandom.seeded(3))
    flipped = torch.tensor([torch.allclose(y[i], x[i].flip(-1), atol=1e-5) for i in range(64)])
    kept = torch.tensor([torch.allclose(y[i], x[i], atol=1e-5) for i in range(64)])
    assert bool((flipped | kept).all())  # every sample is exactly flipped or untouched
    # ADA's x-flip draws flip-or-not uniformly when applied: about half are flipped
    assert 16 <= int(flipped.sum()) <= 48


def test_rotate90_gives_one_of_the_four_rotations():
    x = _images(3, n=16)
    y = _pipe("rotate90", 1.0)(x, BatchRandom.seeded(4))
    seen = set()
    for i in range(16):
        matches = [k for k in range(4) if torch.allclose(y[i], torch.rot90(x[i], k, dims=(1, 2)), atol=1e-4)]
        assert matches, f"sample {i} is not a 90-degree rotation"
        seen.add(matches[0])
    assert len(seen) >= 3


def test_integer_translation_shifts_by_whole_pixels():
    x = _images(1, n=8, size=32)
    y = _pipe("xint", 1.0)(x, BatchRandom.seeded(5))
    for i in range(8):
        found = False
        for dy in range(-4, 5):
            for dx in range(-4, 5):
                ref = torch.roll(x[i], shifts=(dy, dx), dims=(1, 2))
                if torch.allclose(y[i, :, 8:24, 8:24], ref[:, 8:24, 8:24], atol=1e-4):
                    found = True
        assert found, f"sample {i} is not an integer translation (interior)"


def test_brightness_adds_and_contrast_scales_per_sample():
    x = _images(3)
    yb = _pipe("brightness", 1.0)(x, BatchRandom.seeded(6))
    d = (yb - x).flatten(1)
    assert torch.allclose(d, d[:, :1].expand_as(d), atol=1e-5)
    yc = _pipe("contrast", 1.0)(x, BatchRandom.seeded(6))
    r = (yc / x).flatten(1)
    assert torch.allclose(r, r[:, :1].expand_as(r), atol=1e-3)


def test_grayscale_lumaflip_negates_about_mid_grey():
    x = _images(1, n=32)
    y = _pipe("lumaflip", 1.0)(x, BatchRandom.seeded(7))
    for i in range(32):
        assert torch.allclose(y[i], x[i], atol=1e-5) or torch.allclose(y[i], -x[i], atol=1e-5)
    assert any(torch.allclose(y[i], -x[i], atol=1e-5) for i in range(32))


@pytest.mark.parametrize("op", ["hue", "saturation"])
def test_hue_and_saturation_keep_the_luma_of_rgb(op):
    x = _images(3)
    y = _pipe(op, 1.0)(x, BatchRandom.seeded(8))
    assert torch.allclose(y.mean(dim=1), x.mean(dim=1), atol=1e-5)


def test_geometric_and_colour_groups_cover_the_issue_list():
    assert set(GEOMETRIC_OPS) == {"xflip", "rotate90", "xint", "scale", "rotate", "aniso", "xfrac"}
    assert set(COLOUR_OPS) == {"brightness", "contrast", "lumaflip", "hue", "saturation"}
    with pytest.raises(ValueError):
        AugmentPipe({"cutout": 1.0})
    with pytest.raises(ValueError):
        _pipe("xflip", 1.0)(_images(1)[:, :1].repeat(1, 2, 1, 1))


def test_same_rng_state_gives_the_same_augmentation():
    x = _images(3)
    pipe = AugmentPipe("bgc", p=0.5)
    assert torch.equal(pipe(x, BatchRandom.seeded(9)), pipe(x, BatchRandom.seeded(9)))
    assert not torch.equal(pipe(x, BatchRandom.seeded(9)), pipe(x, BatchRandom.seeded(10)))


# ----------------------------------------------------------------------------- the p controller


def test_ada_p_moves_up_when_rt_above_target_by_the_ada_speed():
    ada = AdaptiveP(target=0.6, interval=4, ada_kimg=500)
    p = 0.0
    for step in range(4):
        ada.add(sign_sum=30, count=32)  # r_t = 0.9375: D is confident on reals (overfitting)
        p = ada.step(p, batch_size=32)
        if step < 3:
            assert p == 0.0  # adjusted only every `interval` minibatches
    assert ada.last_rt == pytest.approx(30 / 32)
    assert p == pytest.approx(32 * 4 / (500 * 1000))


def test_ada_p_moves_down_when_rt_below_target_and_stays_in_0_1():
    ada = AdaptiveP(target=0.6, interval=1, ada_kimg=0.1)
    p = 0.5
    ada.add(sign_sum=0, count=64)  # r_t = 0: no overfitting
    p = ada.step(p, batch_size=32)
    assert p == pytest.approx(0.5 - 32 / 100)
    ada.add(sign_sum=0, count=64)
    assert ada.step(p, batch_size=32) == 0.0
    ada.add(sign_sum=64, count=64)
    assert ada.step(0.9, batch_size=64) == 1.0


def test_ada_state_round_trip():
    ada = AdaptiveP(interval=4)
    ada.add(5, 8)
    ada.step(0.0, 8)
    other = AdaptiveP(interval=4)
    other.load_state_dict(ada.state_dict())
    assert other.state_dict() == ada.state_dict()
    assert math.isclose(other.sign_sum, 5)
