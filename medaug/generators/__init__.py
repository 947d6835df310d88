"""Generative augmentation: CVAE, Joint VAE, conditional GAN, DCGAN, cWGAN-GP, VAE-GAN,
StyleGAN2-ADA, EDM diffusion, the class-mean-noise baseline and `geometric` (seed 001's
geometric copies of real images, evaluated like a generator).

Every generator implements `medaug.generators.base.Generator` and is registered by
name in `GENERATORS`; a new one is one new module plus one `@GENERATORS.register`
line (and its import below).

    gen = build_generator("cvae", channels=1, size=28, num_classes=2, config={"epochs": 50})
    ckpt = gen.fit(splits.train, out_dir, val=splits.val)
    images = load_generator(ckpt).sample(labels, seed=0)   # uint8 (N, C, H, W)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from medaug.generators.base import (
    CHECKPOINT_DIR,
    GENERATORS,
    Generator,
    GeneratorConfig,
    checkpoint_hash,
    load_generator,
    read_checkpoint_meta,
    resolve_device,
)

# Importing the modules registers their generators.
from medaug.generators import baseline, edm, gan, geometric, stylegan2, vae, vaegan  # noqa: E402,F401  isort: skip


def generator_config(name: str, values: Mapping[str, Any] | GeneratorConfig | None = None,
                     **overrides: Any) -> GeneratorConfig:
    """The typed config of generator `name`: its defaults, then `values`, then `overrides`."""
    return GENERATORS.get(name).make_config(values, **overrides)


def build_generator(name: str, channels: int, size: int, num_classes: int,
                    config: Mapping[str, Any] | GeneratorConfig | None = None,
                    device: torch.device | str | None = "auto", **overrides: Any) -> Generator:
    """A new (untrained) generator by registered name; unknown names and config keys raise MedaugError."""
    cls = GENERATORS.get(name)
    return cls(channels, size, num_classes, cls.make_config(config, **overrides), device=device)


__all__ = [
    "CHECKPOINT_DIR", "GENERATORS", "Generator", "GeneratorConfig", "build_generator", "checkpoint_hash",
    "generator_config", "load_generator", "read_checkpoint_meta", "resolve_device",
]
