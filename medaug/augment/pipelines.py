"""The seed studies' classic augmentation pipelines, batched and per-sample random.

- `none`: the identity (the "no augmentation" arm of every study).
- `sharpness-contrast-flip`: seed 000 (section 2.3), torchvision transforms.
- `rot-shift-flip`: seed 001, Keras ImageDataGenerator.
- `classic-xray`: seed 003 ("Classical augmentation"), Keras ImageDataGenerator.

Every random parameter is drawn per sample, in a fixed order, from the generator
passed in, so the same seed gives the same batch and the draws do not depend on
pixel values.
"""

from __future__ import annotations

import torch

from medaug.augment import ops
from medaug.augment.base import AUGMENTATIONS, Augmentation, bernoulli, uniform


class Identity(Augmentation):
    """No augmentation: returns its input tensor unchanged."""

    name = "none"

    def apply(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return images

    def describe(self) -> str:
        return "none"


@AUGMENTATIONS.register("none")
def build_none(channels: int) -> Augmentation:
    return Identity(channels)


class SharpnessContrastFlip(Augmentation):
    """Seed 000's geometric pipeline: random sharpness, random contrast, [hue jitter], horizontal flip.

    Seed 000 (a0b936cfc9f1546b, section 2.3) used torchvision transforms "with
    default PyTorch parameters": random sharpness adjustment, random contrast, then
    random horizontal flip; colour data sets add a hue jitter of 0.05 after
    sharpness and contrast. How that wording is read here:

    - random sharpness = `RandomAdjustSharpness`, which has no default factor:
      sharpness_factor=2 (torchvision's documentation example), p=0.5 (its default);
    - random contrast = `RandomAutocontrast(p=0.5)`, the only torchvision random
      contrast transform that has all-default parameters (`ColorJitter` has no
      contrast by default);
    - hue jitter 0.05 = `ColorJitter(hue=0.05)`: every image's hue turns by a
      shift drawn from U[-0.05, 0.05] of a turn; only for 3-channel data;
    - `RandomHorizontalFlip(p=0.5)`.

    The normalisation that ends seed 000's pipeline belongs to the training loop.
    Per sample, in order: sharpness (factor `sharpness_factor` with probability
    `sharpness_p`, else 1), autocontrast with probability `contrast_p`, hue shift,
    flip with probability `flip_p`. The ops replicate torchvision.transforms.v2's
    tensor arithmetic (tested image by image).
    """

    name = "sharpness-contrast-flip"

    def __init__(
        self,
        channels: int,
        *,
        sharpness_factor: float = 2.0,
        sharpness_p: float = 0.5,
        contrast_p: float = 0.5,
        hue: float | None = None,
        flip_p: float = 0.5,
    ) -> None:
        super().__init__(channels)
        if hue is None:
            hue = 0.05 if channels == 3 else 0.0
        if hue and channels != 3:
            raise ValueError(f"hue jitter needs 3 channels, got {channels}")
        if not 0.0 <= hue <= 0.5:
            raise ValueError(f"hue must be in [0, 0.5], got {hue}")
        self.sharpness_factor = sharpness_factor
        self.sharpness_p = sharpness_p
        self.contrast_p = contrast_p
        self.hue = hue
        self.flip_p = flip_p

    def apply(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        n = images.shape[0]
        sharpen = bernoulli(generator, n, self.sharpness_p)
        contrast = bernoulli(generator, n, self.contrast_p)
        hue_shift = uniform(generator, n, -self.hue, self.hue) if self.hue else None
        mirror = bernoulli(generator, n, self.flip_p)

        # One float conversion for the whole chain: the float kernels truncate where
        # torchvision's uint8 ops do, so this equals chaining the uint8 ops.
        factor = 1.0 + sharpen.to(torch.float32) * (self.sharpness_factor - 1.0)
        out = ops.sharpness_float(images.to(torch.float32), factor)
        out = ops.autocontrast_float(out, contrast)
        if hue_shift is not None:
            out = ops.hue_float(out, hue_shift)
        return ops.flip_float(out, mirror, dim=-1).to(torch.uint8)

    def swaps_sides(self) -> str | None:
        return f"horizontal flips (p={self.flip_p:g})" if self.flip_p > 0 else None

    def describe(self) -> str:
        hue = f", hue=±{self.hue}" if self.hue else ""
        return (
            f"{self.name}(sharpness factor={self.sharpness_factor} p={self.sharpness_p}, "
            f"autocontrast p={self.contrast_p}{hue}, hflip p={self.flip_p})"
        )


@AUGMENTATIONS.register("sharpness-contrast-flip")
def build_sharpness_contrast_flip(channels: int) -> Augmentation:
    """Seed 000's pipeline; 3-channel sets get the hue jitter of 0.05."""
    return SharpnessContrastFlip(channels)


class KerasImageDataGenerator(Augmentation):
    """Keras `ImageDataGenerator.random_transform` + brightness, on a batch at once.

    Parameters mean what they mean in Keras (keras_preprocessing 1.1):
    rotation_range in degrees (angle ~ U[-r, r]); width/height_shift_range as a
    fraction of the image side (< 1; shift ~ U[-s, s] * side); shear_range in
    DEGREES (Keras converts it with deg2rad; angle ~ U[-s, s]); zoom_range z gives
    independent row/column zooms ~ U[1-z, 1+z] (> 1 zooms out); flips with
    probability `flip_p` (0.5 in Keras; a parameter here so a test can force it);
    brightness_range (lo, hi) multiplies pixel values by ~U[lo, hi], as PIL's
    `ImageEnhance.Brightness` does. Keras' `fill_mode` default "nearest" (repeat the
    edge pixel) is grid_sample's padding_mode="border"; Keras' interpolation order 1
    is bilinear. All geometry plus flips becomes one matrix per sample and one
    `grid_sample`; brightness scales the float result before a single rounding.

    Not replicated: Keras' `apply_brightness_shift` passes the image through
    `array_to_img(scale=True)`, which also min-max stretches each image to [0, 255]
    before the brightness change; that is a side effect of its PIL round trip, not
    part of the intended transform, and is left out.
    """

    def __init__(
        self,
        channels: int,
        *,
        name: str,
        rotation_range: float = 0.0,
        width_shift_range: float = 0.0,
        height_shift_range: float = 0.0,
        shear_range: float = 0.0,
        zoom_range: float = 0.0,
        horizontal_flip: bool = False,
        vertical_flip: bool = False,
        brightness_range: tuple[float, float] | None = None,
        flip_p: float = 0.5,
    ) -> None:
        super().__init__(channels)
        if not (0.0 <= width_shift_range < 1.0 and 0.0 <= height_shift_range < 1.0):
            raise ValueError("shift ranges are fractions of the image side, in [0, 1)")
        if not 0.0 <= zoom_range < 1.0:
            raise ValueError(f"zoom_range must be in [0, 1), got {zoom_range}")
        self.name = name
        self.rotation_range = rotation_range
        self.width_shift_range = width_shift_range
        self.height_shift_range = height_shift_range
        self.shear_range = shear_range
        self.zoom_range = zoom_range
        self.horizontal_flip = horizontal_flip
        self.vertical_flip = vertical_flip
        self.brightness_range = brightness_range
        self.flip_p = flip_p

    def apply(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        n, _, h, w = images.shape
        g = generator
        rot = uniform(g, n, -self.rotation_range, self.rotation_range)
        shift_rows = uniform(g, n, -self.height_shift_range, self.height_shift_range).mul_(h)
        shift_cols = uniform(g, n, -self.width_shift_range, self.width_shift_range).mul_(w)
        shear = uniform(g, n, -self.shear_range, self.shear_range)
        zoom_rows = uniform(g, n, 1.0 - self.zoom_range, 1.0 + self.zoom_range)
        zoom_cols = uniform(g, n, 1.0 - self.zoom_range, 1.0 + self.zoom_range)
        flip_cols = bernoulli(g, n, self.flip_p if self.horizontal_flip else 0.0)
        flip_rows = bernoulli(g, n, self.flip_p if self.vertical_flip else 0.0)
        gain = uniform(g, n, *self.brightness_range) if self.brightness_range else None

        matrices = ops.keras_affine_matrices(
            h, w,
            rotation_deg=rot, shift_rows=shift_rows, shift_cols=shift_cols, shear_deg=shear,
            zoom_rows=zoom_rows, zoom_cols=zoom_cols, flip_cols=flip_cols, flip_rows=flip_rows,
        )
        return ops.warp(images, matrices, gain=gain, mode="bilinear", padding_mode="border")

    def swaps_sides(self) -> str | None:
        what = []
        if self.horizontal_flip and self.flip_p > 0:
            what.append(f"horizontal flips (p={self.flip_p:g})")
        if abs(self.rotation_range) >= 90:
            what.append(f"rotations up to {abs(self.rotation_range):g} degrees")
        return " and ".join(what) or None

    def describe(self) -> str:
        parts = [
            f"rotation=±{self.rotation_range}deg",
            f"shift=±{self.width_shift_range}w/±{self.height_shift_range}h",
            f"shear=±{self.shear_range}deg",
            f"zoom=±{self.zoom_range}",
            f"hflip={'p=' + str(self.flip_p) if self.horizontal_flip else 'no'}",
            f"vflip={'p=' + str(self.flip_p) if self.vertical_flip else 'no'}",
        ]
        if self.brightness_range:
            parts.append(f"brightness={self.brightness_range[0]}-{self.brightness_range[1]}")
        return f"{self.name}({', '.join(parts)}, fill=nearest, bilinear)"


@AUGMENTATIONS.register("rot-shift-flip")
def build_rot_shift_flip(channels: int, **overrides: object) -> Augmentation:
    """Seed 001 (c6ad80fe8f79d058): Keras ImageDataGenerator with rotation up to 90 deg,
    width/height shifts up to 0.2, horizontal and vertical flips; Keras defaults for
    the rest (fill_mode "nearest", bilinear)."""
    params: dict = dict(
        rotation_range=90.0, width_shift_range=0.2, height_shift_range=0.2,
        horizontal_flip=True, vertical_flip=True,
    )
    params.update(overrides)
    return KerasImageDataGenerator(channels, name="rot-shift-flip", **params)


@AUGMENTATIONS.register("classic-xray")
def build_classic_xray(channels: int, **overrides: object) -> Augmentation:
    """Seed 003 (1e7684e1256c6dc7), "Parameters of classical augmentation" (Keras
    ImageDataGenerator): rotation_range=5, width/height_shift_range=0.05,
    shear_range=0.05 (Keras degrees: a very small shear, kept literal), zoom_range=0.1,
    brightness_range=[0.6, 1.4], horizontal_flip=False (no flips)."""
    params: dict = dict(
        rotation_range=5.0, width_shift_range=0.05, height_shift_range=0.05,
        shear_range=0.05, zoom_range=0.1, brightness_range=(0.6, 1.4),
    )
    params.update(overrides)
    return KerasImageDataGenerator(channels, name="classic-xray", **params)
