"""`class-mean-noise`: the "per-class mean image + noise" baseline of issue 4's quality bar.

Not a learned generator: fitting records, per class, the mean image and the per-pixel
standard deviation of the real training images (one pass; more epochs leave both
unchanged, since every epoch adds the same sums). Sampling draws, per pixel,
mean + std x N(0, 1), clipped to the pixel range: a diagonal Gaussian per class. Every
conditional generator must beat it on FID; a generator that cannot is no better than
blurring the class average.

A class without training images falls back to the statistics of all images. Under
DDP each rank accumulates its own shard and rank 0's statistics are kept (the loop
broadcasts rank 0's buffers), i.e. the estimate then uses 1/world of the data.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import torch
from torch import nn

from medaug.generators.base import GENERATORS, GeneratorConfig
from medaug.generators.training import EpochGenerator


class ClassMoments(nn.Module):
    """Per-class running sums of images and squared images (float64 buffers)."""

    def __init__(self, num_classes: int, channels: int, size: int) -> None:
        super().__init__()
        shape = (num_classes, channels, size, size)
        self.register_buffer("count", torch.zeros(num_classes, dtype=torch.float64))
        self.register_buffer("total", torch.zeros(shape, dtype=torch.float64))
        self.register_buffer("total_sq", torch.zeros(shape, dtype=torch.float64))

    def add(self, x: torch.Tensor, y: torch.Tensor) -> None:
        x = x.double()
        self.count.index_add_(0, y, torch.ones_like(y, dtype=torch.float64))
        self.total.index_add_(0, y, x)
        self.total_sq.index_add_(0, y, x * x)

    def moments(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-class mean and std (K, C, H, W); classes never seen get the pooled moments."""
        n_all = self.count.sum().clamp_min(1.0)
        mean_all = self.total.sum(0) / n_all
        var_all = (self.total_sq.sum(0) / n_all - mean_all ** 2).clamp_min(0.0)
        n = self.count.view(-1, 1, 1, 1)
        seen = n > 0
        mean = torch.where(seen, self.total / n.clamp_min(1.0), mean_all)
        var = torch.where(seen, (self.total_sq / n.clamp_min(1.0) - mean ** 2).clamp_min(0.0), var_all)
        return mean, var.sqrt()


@GENERATORS.register("class-mean-noise")
class ClassMeanNoise(EpochGenerator):
    """Per-class mean image + per-pixel Gaussian noise of the class's pixel std (baseline)."""

    name: ClassVar[str] = "class-mean-noise"
    conditional: ClassVar[bool] = True
    kind: ClassVar[str] = "gan"  # no validation loss, no early stopping
    config_class: ClassVar[type[GeneratorConfig]] = GeneratorConfig
    defaults: ClassVar[Mapping[str, Any]] = {"epochs": 1, "batch_size": 256}

    def build(self) -> None:
        self.nets = {"moments": ClassMoments(self.num_classes, self.channels, self.size)}
        self._cache: tuple[torch.Tensor, torch.Tensor] | None = None

    def build_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {}

    def train_step(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
        moments: ClassMoments = self.nets["moments"]  # type: ignore[assignment]
        moments.add(x, y)
        self._cache = None
        mean, _ = moments.moments()
        # Loss logged for the curves: squared distance of the batch to its class means.
        return {"mse_to_class_mean": float(((x.double() - mean[y]) ** 2).mean())}

    def after_load(self) -> None:
        self._cache = None

    def _sample(self, y: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        if self._cache is None:
            moments: ClassMoments = self.nets["moments"]  # type: ignore[assignment]
            mean, std = moments.moments()
            self._cache = (mean.float(), std.float())
        mean, std = self._cache
        noise = torch.randn((len(y), self.channels, self.size, self.size), generator=gen).to(self.device)
        return (mean[y] + std[y] * noise).clamp_(-1.0, 1.0)
