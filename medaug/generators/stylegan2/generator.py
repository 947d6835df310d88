"""``stylegan2ada``: the conditional StyleGAN2-ADA generator behind the generator interface.

Seed 003 (Fedoruk et al. 2022) trained StyleGAN2-ADA on COVID-19 radiographs
(256 x 256, grayscale) to add 2000 synthetic COVID images to a classifier's training
set. This is that model (Karras et al. 2020, StyleGAN2 + ADA), conditional on the
class so one model serves every class; see networks.py, loss.py, augment.py and
training_loop.py for the parts.

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
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from medaug.data.imageset import ImageSet
from medaug.errors import MedaugError
from medaug.generators.base import GENERATORS, Generator, GeneratorConfig
from medaug.generators.stylegan2.augment import PIPELINES
from medaug.generators.stylegan2.rng import BatchRandom
from medaug.generators.stylegan2.training_loop import (
    StyleGAN2Trainer,
    build_nets,
    build_optimizers,
    fit_back,
    run_training,
    working_resolution,
)

#: config fields that only schedule the run; a resume may change them.
SCHEDULE_FIELDS = ("epochs", "kimg", "tick_kimg", "checkpoint_kimg", "fid_kimg", "fid_images",
                   "fid_inception_weights", "truncation_psi")
AMP_MODES = ("none", "bf16", "fp16")
RESIZE_MODES = ("pad", "resize")
MAX_RESOLUTION = 256


@dataclass(frozen=True)
class StyleGANConfig(GeneratorConfig):
    """StyleGAN2-ADA settings (see the module docstring for where the defaults come from).

    Length: ``kimg`` thousand images when > 0, else ``epochs`` passes over the train
    split. A negative ``r1_gamma`` / ``ema_kimg`` means ADA's automatic value.
    ``augment``: an ADA pipeline name (bgc, blit, geom, color) or 'none'; ``ada``:
    adapt p (else p stays ``augment_p``). ``amp``: autocast dtype on CUDA (ignored
    on CPU). ``conv_clamp`` clamps activations (0 = off). FID every ``fid_kimg``
    (0 = off) on ``fid_images`` images, with the extractor the caller sets on
    ``generator.fid_extractor`` or Inception-v3 weights from the local file
    ``fid_inception_weights``.
    """

    epochs: int = 100
    batch_size: int = 32
    lr: float = 0.0025
    latent_dim: int = 512
    beta1: float = 0.0
    beta2: float = 0.99
    kimg: float = 0.0
    w_dim: int = 512
    mapping_layers: int = 8
    channel_base: int = 16384
    channel_max: int = 512
    r1_gamma: float = -1.0
    r1_interval: int = 16
    pl_weight: float = 2.0
    pl_interval: int = 4
    style_mixing: float = 0.9
    ema_kimg: float = -1.0
    ema_rampup: float = 0.05
    mbstd_group: int = 4
    conv_clamp: float = 256.0
    augment: str = "bgc"
    ada: bool = True
    augment_p: float = 0.0
    ada_target: float = 0.6
    ada_interval: int = 4
    ada_kimg: float = 500.0
    tick_kimg: float = 4.0
    checkpoint_kimg: float = 50.0
    fid_kimg: float = 0.0
    fid_images: int = 2000
    fid_inception_weights: str = ""
    resize_mode: str = "pad"
    amp: str = "bf16"
    truncation_psi: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        self._check(self.kimg >= 0, "kimg", "a number >= 0 (0 = use epochs)")
        self._check(self.w_dim >= 1, "w_dim", "an integer >= 1")
        self._check(self.mapping_layers >= 1, "mapping_layers", "an integer >= 1")
        self._check(self.channel_base >= 16, "channel_base", "an integer >= 16")
        self._check(self.channel_max >= 1, "channel_max", "an integer >= 1")
        self._check(self.r1_interval >= 1, "r1_interval", "an integer >= 1")
        self._check(self.pl_weight >= 0, "pl_weight", "a number >= 0 (0 = off)")
        self._check(self.pl_interval >= 1, "pl_interval", "an integer >= 1")
        self._check(0 <= self.style_mixing <= 1, "style_mixing", "a probability in [0, 1]")
        self._check(0 <= self.ema_rampup <= 1, "ema_rampup", "a number in [0, 1] (0 = no ramp-up)")
        self._check(self.mbstd_group >= 1, "mbstd_group", "an integer >= 1")
        self._check(self.conv_clamp >= 0, "conv_clamp", "a number >= 0 (0 = off)")
        self._check(self.augment in (*PIPELINES, "none"), "augment", f"one of {', '.join([*PIPELINES, 'none'])}")
        self._check(0 <= self.augment_p <= 1, "augment_p", "a probability in [0, 1]")
        self._check(0 < self.ada_target < 1, "ada_target", "a number in (0, 1)")
        self._check(self.ada_interval >= 1, "ada_interval", "an integer >= 1")
        self._check(self.ada_kimg > 0, "ada_kimg", "a number > 0")
        self._check(self.tick_kimg > 0, "tick_kimg", "a number > 0")
        self._check(self.checkpoint_kimg >= 0, "checkpoint_kimg", "a number >= 0 (0 = only at the end)")
        self._check(self.fid_kimg >= 0, "fid_kimg", "a number >= 0 (0 = off)")
        self._check(self.fid_images >= 2, "fid_images", "an integer >= 2")
        self._check(self.resize_mode in RESIZE_MODES, "resize_mode", f"one of {', '.join(RESIZE_MODES)}")
        self._check(self.amp in AMP_MODES, "amp", f"one of {', '.join(AMP_MODES)}")
        self._check(0 < self.truncation_psi <= 1, "truncation_psi", "a number in (0, 1]")


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
        return run_training(self, train, Path(out_dir), val=val, resume=resume, quiet=quiet,
                            provenance=provenance, plots=plots)

    def train_step(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
        """One minibatch (all phases) on the batch (x, y) itself, for callers of the shared
        interface; ``fit`` draws its minibatches from the whole train split instead."""
        trainer = self.trainer or self.make_trainer()
        images = ((x.detach().float() + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)
        from medaug.generators.stylegan2.training_loop import fit_to

        images = fit_to(images.cpu(), self.resolution, self.config.resize_mode).to(self.device)
        return trainer.train_step(images, y.to(self.device))

    def check_resumable(self, meta: Mapping[str, Any], dataset: Mapping[str, Any]) -> None:
        """Refuse to resume another generator, data set or config (schedule fields may change)."""
        where = "checkpoint"
        if meta["name"] != self.name:
            raise MedaugError(f"{where}: holds a {meta['name']!r} generator; cannot resume it as {self.name!r}")
        if (meta["channels"], meta["size"], meta["num_classes"]) != (self.channels, self.size, self.num_classes):
            raise MedaugError(f"{where}: was trained on other shapes ({meta['channels']} ch, {meta['size']} px, "
                              f"{meta['num_classes']} classes)")
        if meta["dataset"].get("train_hash") != dataset["train_hash"]:
            raise MedaugError(f"{where}: was trained on another train split (hash "
                              f"{meta['dataset'].get('train_hash')}, now {dataset['train_hash']})")
        saved = {k: v for k, v in meta["config"].items() if k not in SCHEDULE_FIELDS}
        now = {k: v for k, v in self.config.to_dict().items() if k not in SCHEDULE_FIELDS}
        if saved != now:
            diff = sorted(k for k in set(saved) | set(now) if saved.get(k) != now.get(k))
            raise MedaugError(f"{where}: config differs from the checkpoint's in {', '.join(diff)} "
                              f"(only {', '.join(SCHEDULE_FIELDS)} may change)")

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
