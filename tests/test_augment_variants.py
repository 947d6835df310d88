"""Seed 004's simple transformations (`flip-shift-rotate-noise`, medaug/augment/variants.py):
each of its 8 variants is exactly what the seed's selfaug.py meant, and the pipeline draws
one per sample, uniformly."""

from __future__ import annotations

import pytest
import torch

from medaug.augment import build_augmentation
from medaug.augment.variants import VARIANTS, FlipShiftRotateNoise, rotate, shift


def _images(n: int = 4, channels: int = 1, size: int = 28) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 200, (n, channels, size, size), generator=g, dtype=torch.uint8)
    x[:, :, 3:9, 5:14] = 250
    return x


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_rotation_is_counter_clockwise_about_the_centre():
    x = _images(3, channels=3)
    assert torch.equal(rotate(x, 90.0), torch.rot90(x, 1, dims=(-2, -1)))  # numpy/torch rot90: counter-clockwise
    assert torch.equal(rotate(x, -90.0), torch.rot90(x, -1, dims=(-2, -1)))
    assert torch.equal(rotate(x, 0.0), x)
    r = rotate(x, 30.0)
    assert r[:, :, 0, 0].eq(0).all() and r[:, :, -1, -1].eq(0).all()  # corners come from outside: zero fill


def test_shifts_move_content_and_fill_zero():
    x = _images(2)
    right = shift(x, 0, 3)
    assert torch.equal(right[..., 3:], x[..., :-3]) and right[..., :3].eq(0).all()
    left = shift(x, 0, -3)
    assert torch.equal(left[..., :-3], x[..., 3:]) and left[..., -3:].eq(0).all()
    up = shift(x, -3, 0)
    assert torch.equal(up[..., :-3, :], x[..., 3:, :]) and up[..., -3:, :].eq(0).all()
    assert shift(x, 0, 40).eq(0).all()


@pytest.mark.parametrize("k", range(len(VARIANTS)))
def test_forcing_one_variant_gives_exactly_that_variant(k):
    x = _images(5)
    probs = tuple(1.0 if i == k else 0.0 for i in range(len(VARIANTS)))
    aug = FlipShiftRotateNoise(1, probabilities=probs)
    out = aug(x, _gen(1))
    name = VARIANTS[k]
    expected = {"identity": x, "flip": x.flip(-1), "shift-right": shift(x, 0, 3), "shift-left": shift(x, 0, -3),
                "shift-up": shift(x, -3, 0), "rotate-a": rotate(x, 30.0), "rotate-b": rotate(x, 110.0)}.get(name)
    if expected is not None:
        assert torch.equal(out, expected), name
    else:  # noise: + U{0..4} per pixel, saturating; 255 stays 255
        diff = out.to(torch.int16) - x.to(torch.int16)
        assert diff.min() >= 0 and diff.max() <= 4 and diff.max() == 4
        assert len(torch.unique(diff)) == 5
        sat = torch.full((1, 1, 4, 4), 253, dtype=torch.uint8)
        assert aug(sat, _gen(0)).max() == 255 and aug(torch.full_like(sat, 255), _gen(0)).eq(255).all()


def test_each_sample_draws_one_of_the_eight_variants_uniformly():
    x = _images(1).expand(1600, 1, 28, 28).contiguous()
    aug = build_augmentation("flip-shift-rotate-noise", 1)
    out = aug(x, _gen(3))
    fixed = {name: FlipShiftRotateNoise(1).variant(name, x[:1], _gen(0)) for name in VARIANTS if name != "noise"}
    counts = {name: 0 for name in VARIANTS}
    for img in out:
        match = [name for name, ref in fixed.items() if torch.equal(img, ref[0])]
        counts[match[0] if match else "noise"] += 1
    assert all(150 <= c <= 250 for c in counts.values()), counts  # 200 expected each
    assert torch.equal(aug(x, _gen(3)), out)  # seeded: the same batch again
    assert "shift 3px zero fill" in aug.describe() and "30/110deg" in aug.describe()
