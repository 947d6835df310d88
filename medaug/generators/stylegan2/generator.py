"""``stylegan2ada``: the conditional StyleGAN2-ADA generator behind the generator interface.

Seed 003 (Fedoruk et al. 2022) trained StyleGAN2-ADA on COVID-19 radiographs
(256 x 256, grayscale) to add 2000 synthetic COVID images to a classifier's training
set. This is that model (Karras et al. 2020, StyleGAN2 + ADA), conditional on the
class so one model serves every class; see networks.py, loss.py, augment.py,
config.py and training_loop.py for the parts, launch.py for multi-process fits.

Sizes: the nets work at a power of two from 32 to 256 px. Smaller images (MedMNIST's
28 px) are reflect-padded to the next power of two for training and the generated
images are cropped back to the data's size (``resize_mode='pad'``), or resized both
ways with antialiased bilinear interpolation (``resize_mode='resize'``).

Defaults follow ADA's "auto" configuration where it has one (lr 0.0025, Adam betas
(0, 0.99), R1 gamma 0.0002 * res^2 / batch, EMA half-life batch * 10 / 32 kimg with a
5% ramp-up, ADA target 0.6, ada_kimg 500, style mixing 0.9, minibatch-stddev group 4)
and the StyleGAN2 paper otherwise (8 mapping layers, path length weight 2, lazy R1
every 16 and path length every 4 minibatches). ``channel_base``/``channel_max``
(scaled by ``width``) size the nets: features at resolution r are
min(channel_base / r, channel_max); ADA used 16384 / 512 below 512 px; the tests use
a few dozen channels.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from medaug.data.imageset import ImageSet
from medaug.errors import MedaugError
from medaug.generators.base import GENERATORS, Generator, GeneratorConfig
from medaug.generators.stylegan2.config import MAX_RESOLUTION, StyleGANConfig
from medaug.generators.stylegan2.rng import BatchRandom
from medaug.generators.stylegan2.training_loop import (
    StyleGAN2Trainer,
    build_nets,
    build_optimizers,
    fit_back,
    fit_to,
    run_training,
    working_resolution,
)

__all__ = ["StyleGAN2ADA", "StyleGANConfig"]


@GENERATORS.register("stylegan2ada")
class StyleGAN2ADA(Generator):
    """Conditional StyleGAN2 with adaptive discriminator augmentation (seed 003)."""

    name: ClassVar[str] = "stylegan2ada"
    conditional: ClassVar[bool] = True
    kind: ClassVar[str] = "gan"
    config_class: ClassVar[type[GeneratorConfig]] = StyleGANConfig
    sizes: ClassVar[tuple[int, ...]] = (28, 32, 64, 128, 256)
    config: StyleGANConfig

    # -- construction ------------------------------------------------------------------------------

    @property
    def resolution(self) -> int:
        return working_resolution(self.size)

    def build(self) -> None:
        if self.resolution > MAX_RESOLUTION:
            raise MedaugError(f"{self.name}: image size {self.size} needs {self.resolution} px; at most "
                              f"{MAX_RESOLUTION} px is supported (resize the data)")
        self.nets = build_nets(self.config, self.channels, self.resolution, self.num_classes)
        self.trainer: StyleGAN2Trainer | None = None
        self.trainer_state: Mapping[str, Any] = {}
        #: optional ``uint8 images -> (N, D) features`` for periodic FID (see training_loop.resolve_fid)
        self.fid_extractor: Callable[[np.ndarray], np.ndarray] | None = None

    def build_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return build_optimizers(self.nets, self.config)

    def make_trainer(self, rank: int = 0, world: int = 1) -> StyleGAN2Trainer:
        self.trainer = StyleGAN2Trainer(self.nets, self.optims, self.config, num_classes=self.num_classes,
                                        device=self.device, rank=rank, world=world)
        return self.trainer

    # -- training ---------------------------------------------------------------------------------

    def fit(self, train: ImageSet, out_dir: str | Path, *, val: ImageSet | None = None, resume: bool = False,
            quiet: bool = True, provenance: Mapping[str, Any] | None = None, plots: bool = True) -> Path:
        """Train for ``kimg`` (or ``epochs``) on ``train``; returns out_dir/checkpoint.

        The kimg loop of training_loop.py (not the epoch loop shared by the other
        generators): StyleGAN2's phases, lazy regularisation, EMA and ADA do not fit
        one ``train_step``. ``val`` is not used (no early stopping for GANs).
        """
        return run_training(self, train, Path(out_dir), make_trainer=self.make_trainer, val=val, resume=resume,
                            quiet=quiet, provenance=provenance, plots=plots)

    def train_step(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
        """One minibatch (all phases) on the batch (x, y) itself, for callers of the shared
        interface; ``fit`` draws its minibatches from the whole train split instead."""
        trainer = self.trainer or self.make_trainer()
        images = ((x.detach().float() + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)
        images = fit_to(images.cpu(), self.resolution, self.config.resize_mode).to(self.device)
        return trainer.train_step(images, y.to(self.device))

    # -- checkpoints --------------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        state = super().state()
        trainer = self.trainer
        state["stylegan"] = trainer.state() if trainer is not None else dict(self.trainer_state)
        return state

    def load_state(self, state: Mapping[str, Any], *, optimizers: bool = True) -> None:
        super().load_state(state, optimizers=optimizers)
        self.trainer_state = dict(state.get("stylegan", {}))

    # -- generation --------------------------------------------------------------------------------

    def _sample(self, y: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """G_ema images for labels y; latents and noise inputs drawn on CPU from ``gen``."""
        G_ema = self.nets["G_ema"]
        z = torch.randn(len(y), self.config.latent_dim, generator=gen).to(self.device)
        c = F.one_hot(y, self.num_classes).float()
        img = G_ema(z, c, truncation_psi=self.config.truncation_psi, noise_mode="random", rng=BatchRandom(gen))
        return fit_back(img.float(), self.size, self.config.resize_mode).clamp(-1, 1)
