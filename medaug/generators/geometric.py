"""`geometric`: geometric copies of real training images, behind the generator interface.

Seed 001 (Fricker, Table 2) scores "Geometric" beside its CVAE, DCGAN and CVAEDCGAN:
the classifier's mean confidence on 100 geometrically augmented images, as if the
augmentation were one more generative model. This generator makes that column (and
FID, TSTR, near-copy share of the same images) come out of `medaug generator eval`
and of generator studies like every other model's.

Not a learned generator: a fit keeps a bank of at most `bank_per_class` real train
images per class (the first ones of each class in the epoch's seeded random order:
a random subset; one epoch fills it, more change nothing). Sampling a label draws one
banked image of that class and transforms it with the `augmentation` pipeline (default
`rot-shift-flip`: seed 001's Keras ImageDataGenerator, rotation 90, shifts 0.2, flips),
all from the sampling seed. Every sample is a transformed real image, so its near-copy
share measures the check itself as much as the generator.

The bank has fixed shapes (classes x bank_per_class x C x H x W uint8), so checkpoints
load like any other; at the default 512 per class an 11-class 3-channel 28 px set holds
13 MB.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from medaug.augment import AUGMENTATIONS
from medaug.augment.laterality import side_swap_warning
from medaug.data.imageset import ImageSet
from medaug.errors import MedaugError
from medaug.generators.base import GENERATORS, GeneratorConfig
from medaug.generators.training import EpochGenerator

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GeometricConfig(GeneratorConfig):
    """`augmentation`: a registered pipeline (`medaug.augment.AUGMENTATIONS`); `bank_per_class`:
    real train images kept per class."""

    augmentation: str = "rot-shift-flip"
    bank_per_class: int = 512

    def __post_init__(self) -> None:
        super().__post_init__()
        self._check(1 <= self.bank_per_class <= 100_000, "bank_per_class", "an integer in [1, 100000]")
        self._check(self.augmentation in AUGMENTATIONS.names(), "augmentation",
                    f"one of {', '.join(AUGMENTATIONS.names())}")


class ImageBank(nn.Module):
    """Up to K uint8 images per class, and how many each class holds."""

    def __init__(self, num_classes: int, per_class: int, channels: int, size: int) -> None:
        super().__init__()
        self.register_buffer("images", torch.zeros((num_classes, per_class, channels, size, size), dtype=torch.uint8))
        self.register_buffer("count", torch.zeros(num_classes, dtype=torch.int64))

    def add(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """Keep the batch's images (uint8) in the free slots of their classes."""
        per_class = self.images.shape[1]
        for image, label in zip(x, y.tolist()):
            k = int(self.count[label])
            if k < per_class:
                self.images[label, k] = image
                self.count[label] = k + 1


@GENERATORS.register("geometric")
class Geometric(EpochGenerator):
    """Geometric copies of real train images (seed 001's Geometric column; not learned)."""

    name: ClassVar[str] = "geometric"
    conditional: ClassVar[bool] = True
    kind: ClassVar[str] = "gan"  # no validation loss, no early stopping
    config_class: ClassVar[type[GeneratorConfig]] = GeometricConfig
    defaults: ClassVar[Mapping[str, Any]] = {"epochs": 1, "batch_size": 256}

    def build(self) -> None:
        cfg: GeometricConfig = self.config  # type: ignore[assignment]
        self.nets = {"bank": ImageBank(self.num_classes, cfg.bank_per_class, self.channels, self.size)}

    def build_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {}

    def fit(self, train: ImageSet, out_dir: str | Path, **kwargs: Any) -> Path:
        """Bank the train images (EpochGenerator.fit); warn first when the pipeline can swap the sides
        of a set whose classes come in left/right pairs."""
        pipeline = AUGMENTATIONS.get(self.config.augmentation)(self.channels)  # type: ignore[attr-defined]
        if swap := side_swap_warning(pipeline, train.name, train.class_names):
            log.warning("geometric: %s", swap)
        return super().fit(train, out_dir, **kwargs)

    def train_step(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
        bank: ImageBank = self.nets["bank"]  # type: ignore[assignment]
        bank.add(((x + 1.0) * 127.5).round_().clamp_(0, 255).to(torch.uint8), y)
        return {"banked": float(bank.count.sum())}

    def _sample(self, y: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        bank: ImageBank = self.nets["bank"]  # type: ignore[assignment]
        counts = bank.count[y].cpu()
        if bool((counts == 0).any()):
            missing = sorted({int(k) for k in y[counts.to(y.device) == 0].tolist()})
            raise MedaugError(f"geometric: no banked train image of class(es) {missing}; fit it on a train split "
                              "holding every class")
        pick = (torch.rand(len(y), generator=gen) * counts).long().clamp_max_(counts - 1)
        images = bank.images[y.cpu(), pick].to(self.device)
        aug_gen = torch.Generator(device=self.device).manual_seed(int(torch.randint(0, 2**62, (1,), generator=gen)))
        pipeline = AUGMENTATIONS.get(self.config.augmentation)(self.channels)  # type: ignore[attr-defined]
        out = pipeline(images, aug_gen)
        return out.float().mul_(1 / 127.5).sub_(1.0)
