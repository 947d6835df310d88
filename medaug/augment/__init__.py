"""Batched, per-sample random augmentation on the training device, and weighted random sampling.

`build_augmentation(name, channels)` returns an `Augmentation`: a callable
`aug(images, generator)` on uint8 N x C x H x W batches (CPU or CUDA, the generator
on the same device) that returns a new uint8 batch of the same shape. Names:

- `none`                                    identity
- `sharpness-contrast-flip`                 seed 000 (torchvision transforms; + hue 0.05 for RGB)
- `rot-shift-flip`                          seed 001 (Keras: rotation 90, shift 0.2, flips)
- `classic-xray`                            seed 003 (Keras: rotation 5, shift/shear 0.05, zoom 0.1, brightness)
- `autoaugment-imagenet|cifar10|svhn`       seed 004 (Cubuk et al. 2018 policies)
- `flip-shift-rotate-noise`                 seed 004's simple transformations (one of its 8 variants per sample)

Weighted random sampling (seed 000's WRS) lives in `medaug.augment.sampling`.
"""

from __future__ import annotations

from medaug.augment import autoaugment as _autoaugment  # noqa: F401  (registers autoaugment-*)
from medaug.augment import pipelines as _pipelines  # noqa: F401  (registers the classic pipelines)
from medaug.augment import variants as _variants  # noqa: F401  (registers flip-shift-rotate-noise)
from medaug.augment.base import AUGMENTATIONS, Augmentation
from medaug.augment.sampling import class_balanced_weights, epoch_indices
from medaug.errors import MedaugError

__all__ = [
    "AUGMENTATIONS",
    "Augmentation",
    "build_augmentation",
    "class_balanced_weights",
    "epoch_indices",
]


def build_augmentation(name: str, channels: int) -> Augmentation:
    """The registered pipeline `name` for images with `channels` channels.

    Unknown names and channel counts a pipeline cannot handle raise MedaugError.
    """
    factory = AUGMENTATIONS.get(name)
    try:
        return factory(channels)
    except ValueError as exc:
        raise MedaugError(f"augmentation {name!r}: {exc}") from None
