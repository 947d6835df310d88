"""Seed 004's "simple transformations" (section 5.1.1), as an online, per-sample pipeline.

The seed's code (`selfaug.py` of its repository, run on BreastMNIST) expands the train
split offline into 8 copies of every image: the image itself, its left-right mirror,
the image moved 3 px right, 3 px left and 3 px up (zero fill), rotated by 30 and by
110 degrees counter-clockwise (OpenCV `warpAffine`: bilinear, zero fill), and the
image plus integer noise drawn from {0, ..., 4} per pixel.

`flip-shift-rotate-noise` draws one of those 8 variants per sample, uniformly, every
time a batch is augmented: over an epoch each variant is seen with probability 1/8,
which is the offline 8x expansion in expectation without an epoch 8 times as long
(a study that wants the seed's number of optimiser steps sets `min_steps`).

Differences from the seed's code, all deliberate:
- its shift and noise functions write into the source image in place, so its
  "original" and later copies carry the earlier copies' shifts; here every variant
  starts from the untouched image;
- its noise wraps around above 255 (uint8 arithmetic on pixels 252-254); here it
  saturates at 255 (pixels at 255 stay 255, as there);
- OpenCV rotates about pixel (14, 14) of a 28 px image; here the rotation is about
  the exact centre (13.5, 13.5), so that 90 degrees is exactly `rot90`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from medaug.augment.base import AUGMENTATIONS, Augmentation

VARIANTS = ("identity", "flip", "shift-right", "shift-left", "shift-up", "rotate-a", "rotate-b", "noise")


def shift(images: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """Every image moved by (dy down, dx right) whole pixels, the uncovered border zero."""
    n, c, h, w = images.shape
    out = torch.zeros_like(images)
    if abs(dy) >= h or abs(dx) >= w:
        return out
    src_rows = slice(max(0, -dy), h - max(0, dy))
    dst_rows = slice(max(0, dy), h - max(0, -dy))
    src_cols = slice(max(0, -dx), w - max(0, dx))
    dst_cols = slice(max(0, dx), w - max(0, -dx))
    out[:, :, dst_rows, dst_cols] = images[:, :, src_rows, src_cols]
    return out


def rotate(images: torch.Tensor, degrees: float) -> torch.Tensor:
    """Every image rotated counter-clockwise (as displayed) by `degrees` about its centre,
    bilinear, the corners outside the source zero (OpenCV's warpAffine defaults)."""
    n, c, h, w = images.shape
    t = math.radians(degrees)
    cos, sin = math.cos(t), math.sin(t)
    # affine_grid maps output to input coordinates (x right, y down, normalised to [-1, 1]):
    # input = R(-t) output in display terms; aspect ratios keep pixels square on non-square images
    theta = torch.tensor([[cos, -sin * h / w, 0.0], [sin * w / h, cos, 0.0]], dtype=torch.float32,
                         device=images.device).expand(n, 2, 3)
    grid = F.affine_grid(theta, [n, c, h, w], align_corners=False)
    out = F.grid_sample(images.to(torch.float32), grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return out.round_().clamp_(0.0, 255.0).to(torch.uint8)


class FlipShiftRotateNoise(Augmentation):
    """One of seed 004's 8 fixed variants per sample (module docstring)."""

    name = "flip-shift-rotate-noise"

    def __init__(self, channels: int, *, shift_px: int = 3, angles: tuple[float, float] = (30.0, 110.0),
                 noise_max: int = 4, probabilities: tuple[float, ...] | None = None) -> None:
        super().__init__(channels)
        if shift_px < 0 or noise_max < 0:
            raise ValueError("shift_px and noise_max must be >= 0")
        probs = probabilities or (1.0 / len(VARIANTS),) * len(VARIANTS)
        if len(probs) != len(VARIANTS) or any(p < 0 for p in probs) or sum(probs) <= 0:
            raise ValueError(f"probabilities: {len(VARIANTS)} weights >= 0, one per variant {VARIANTS}")
        self.shift_px = shift_px
        self.angles = angles
        self.noise_max = noise_max
        self.probabilities = tuple(float(p) for p in probs)

    def variant(self, name: str, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Variant `name` of every image of a batch (noise drawn from `generator`)."""
        s = self.shift_px
        if name == "identity":
            return images
        if name == "flip":
            return images.flip(-1)
        if name == "shift-right":
            return shift(images, 0, s)
        if name == "shift-left":
            return shift(images, 0, -s)
        if name == "shift-up":
            return shift(images, -s, 0)
        if name in ("rotate-a", "rotate-b"):
            return rotate(images, self.angles[0 if name == "rotate-a" else 1])
        if name == "noise":
            noise = torch.randint(0, self.noise_max + 1, images.shape, generator=generator,
                                  device=generator.device, dtype=torch.int16)
            return (images.to(torch.int16) + noise).clamp_(0, 255).to(torch.uint8)
        raise ValueError(f"unknown variant {name!r}")

    def choices(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """The variant index of each of n samples."""
        weights = torch.tensor(self.probabilities, device=generator.device)
        return torch.multinomial(weights, n, replacement=True, generator=generator)

    def apply(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        choice = self.choices(len(images), generator)
        out = images.clone()
        for k, name in enumerate(VARIANTS):
            idx = (choice == k).nonzero().flatten()
            if len(idx):
                out[idx] = self.variant(name, images[idx], generator)
        return out

    def swaps_sides(self) -> str | None:
        p = dict(zip(VARIANTS, self.probabilities))
        total = sum(self.probabilities)
        what = [f"horizontal flips (p={p['flip'] / total:.3g})"] if p.get("flip", 0) > 0 else []
        for name, angle in (("rotate-a", self.angles[0]), ("rotate-b", self.angles[1])):
            if p.get(name, 0) > 0 and 90 <= abs(angle) % 360 <= 270:
                what.append(f"rotations by {angle:g} degrees (p={p[name] / total:.3g})")
        return " and ".join(what) or None

    def describe(self) -> str:
        return (f"{self.name}(one of {', '.join(VARIANTS)} per sample, p={self.probabilities[0]:.3g} each; "
                f"shift {self.shift_px}px zero fill, rotations {self.angles[0]:g}/{self.angles[1]:g}deg ccw "
                f"bilinear, noise U{{0..{self.noise_max}}})")


@AUGMENTATIONS.register("flip-shift-rotate-noise")
def build_flip_shift_rotate_noise(channels: int, **overrides: object) -> Augmentation:
    """Seed 004 (1699ee19099735b5), section 5.1.1, as its `selfaug.py` does it."""
    return FlipShiftRotateNoise(channels, **overrides)  # type: ignore[arg-type]
