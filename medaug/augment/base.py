"""The `Augmentation` interface and the registry that names every pipeline.

An augmentation takes a whole uint8 batch N x C x H x W on the training device and
returns a new uint8 batch of the same shape on the same device. Its random
parameters are drawn per sample from the `torch.Generator` it is given (which lives
on the batch's device), so a seed fixes them and a batch of copies of one image
comes back as many different images. Labels are never touched: every pipeline
here is label-preserving.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch

from medaug.registry import Registry

AUGMENTATIONS: Registry = Registry("augmentation")
"""name -> factory `(channels: int) -> Augmentation`."""


def same_device(a: torch.device | str, b: torch.device | str) -> bool:
    """Whether two devices are the same hardware: ``cuda`` (a generator's device) is the current ``cuda:N``."""

    def resolved(d: torch.device | str) -> torch.device:
        d = torch.device(d)
        return torch.device("cuda", torch.cuda.current_device()) if d.type == "cuda" and d.index is None else d

    return resolved(a) == resolved(b)


class Augmentation(ABC):
    """A batched, per-sample random, label-preserving image transform."""

    name: str = "augmentation"

    def __init__(self, channels: int) -> None:
        if channels < 1:
            raise ValueError(f"channels must be >= 1, got {channels}")
        self.channels = channels

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        check_batch(images, self.channels)
        if not same_device(generator.device, images.device):
            raise ValueError(
                f"{self.name}: generator on {generator.device} but images on {images.device}; "
                "create the generator on the training device"
            )
        if images.shape[0] == 0:
            return images
        return self.apply(images, generator)

    @abstractmethod
    def apply(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Transform a non-empty, checked uint8 batch (never modified in place)."""

    @abstractmethod
    def describe(self) -> str:
        """One line for logs: the name and every parameter."""

    def swaps_sides(self) -> str | None:
        """What of this pipeline can move content across the vertical midline (a horizontal flip, a
        rotation of 90 degrees or more), in words, or None: images of a class defined by its side
        keep a wrong label then (laterality.py)."""
        return None

    def __repr__(self) -> str:
        return f"<{self.describe()}>"


def check_batch(images: torch.Tensor, channels: int | None = None) -> None:
    """Raise ValueError unless `images` is a uint8 N x C x H x W tensor (with C == channels)."""
    if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8 or images.ndim != 4:
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        dtype = images.dtype if isinstance(images, torch.Tensor) else ""
        raise ValueError(f"augmentation expects a uint8 N x C x H x W tensor, got {dtype} {shape}")
    if channels is not None and images.shape[1] != channels:
        raise ValueError(f"augmentation built for {channels} channels got a batch with {images.shape[1]}")


def uniform(generator: torch.Generator, n: int, low: float, high: float) -> torch.Tensor:
    """n float32 draws from U[low, high) on the generator's device."""
    u = torch.rand(n, generator=generator, device=generator.device)
    return u.mul_(high - low).add_(low)


def bernoulli(generator: torch.Generator, n: int, p: float) -> torch.Tensor:
    """n booleans, each True with probability p (drawn even when p is 0 or 1, so draws stay aligned)."""
    return torch.rand(n, generator=generator, device=generator.device) < p
