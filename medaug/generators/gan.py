"""GANs: seed 000's conditional GAN (`cgan`), DCGAN one per class (`dcgan`; seeds 001,
002, 004) and seed 002's conditional WGAN with gradient penalty (`cwgan-gp`).

All three share one step (`GANGenerator.train_step`): a discriminator step on a real
batch and as many fakes with the same labels, then, every `n_critic` steps, a
generator step. They work at 32 px (64 px data at 64): 28 px images are padded with
black borders to 32 going in and the centre 28 x 28 is cut out of every generated
image coming out (seed 000 resized 28 -> 32 -> 28 for TorchFusion instead; padding
and cropping are exact, with no interpolation blur). Weights start as in Radford et
al. (N(0, 0.02)), except the spectrally normalised cGAN discriminator (PyTorch's init).
Projection embeddings start at N(0, 0.02) (nn.Embedding's N(0, 1) gives scores of
size sqrt(features) and a discriminator that saturates at once).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from medaug.errors import MedaugError
from medaug.generators import distributed as ddp
from medaug.generators.base import GENERATORS, GeneratorConfig, split_batches
from medaug.generators.nets import ConvDiscriminator, ConvGenerator, crop_to, dcgan_init, one_hot, pad_to
from medaug.generators.training import EpochGenerator

LOSSES = ("bce", "hinge", "wasserstein")


@dataclass(frozen=True)
class GANConfig(GeneratorConfig):
    """GAN settings: `loss` bce (non-saturating), hinge or wasserstein; `n_critic`
    discriminator steps (each on a new real batch) per generator step; `gp_weight`
    the gradient-penalty weight (0 = none; WGAN-GP: 10)."""

    loss: str = "bce"
    n_critic: int = 1
    gp_weight: float = 0.0

    def __post_init__(self) -> None:
        super().__post_init__()
        self._check(self.loss in LOSSES, "loss", f"one of {LOSSES}")
        self._check(self.n_critic >= 1, "n_critic", "an integer >= 1")
        self._check(self.gp_weight >= 0, "gp_weight", "a number >= 0")


def d_loss(kind: str, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """Discriminator loss from its scores on real and fake images."""
    if kind == "bce":
        return F.softplus(-real).mean() + F.softplus(fake).mean()
    if kind == "hinge":
        return F.relu(1 - real).mean() + F.relu(1 + fake).mean()
    return fake.mean() - real.mean()


def g_loss(kind: str, fake: torch.Tensor) -> torch.Tensor:
    """Generator loss from the discriminator's scores on fakes (bce: non-saturating)."""
    return F.softplus(-fake).mean() if kind == "bce" else -fake.mean()


def gradient_penalty(critic, real: torch.Tensor, fake: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """(||grad_x D(x_hat, y)|| - 1)^2 at random points between real and fake (Gulrajani et al. 2017)."""
    alpha = torch.rand(len(real), 1, 1, 1, device=real.device)
    x_hat = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
    grad, = torch.autograd.grad(critic(x_hat, y).sum(), x_hat, create_graph=True)
    return (grad.flatten(1).norm(2, dim=1) - 1).pow(2).mean()


class GANGenerator(EpochGenerator):
    """One generator G and one discriminator D (or one pair per class), Adam each."""

    kind: ClassVar[str] = "gan"
    config_class = GANConfig

    @property
    def work_size(self) -> int:
        return 64 if self.size == 64 else 32

    def build_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"g": self.adam(self.nets["G"]), "d": self.adam(self.nets["D"])}

    def generate(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def discriminate(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def train_step(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
        cfg = self.config
        real = pad_to(x, self.work_size)
        opt_g, opt_d = self.optims["g"], self.optims["d"]

        with torch.no_grad():
            fake = self.generate(torch.randn(len(y), cfg.latent_dim, device=self.device), y)
        loss_d = d_loss(cfg.loss, self.discriminate(real, y), self.discriminate(fake, y))
        out = {"d_loss": float(loss_d.detach())}
        if cfg.gp_weight > 0:
            gp = gradient_penalty(self.discriminate, real, fake, y)
            loss_d = loss_d + cfg.gp_weight * gp
            out["gp"] = float(gp.detach())
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        ddp.step(opt_d)

        if (self.global_step + 1) % cfg.n_critic == 0:
            fake = self.generate(torch.randn(len(y), cfg.latent_dim, device=self.device), y)
            loss_g = g_loss(cfg.loss, self.discriminate(fake, y))
            opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
            ddp.step(opt_g)
            out["g_loss"] = float(loss_g.detach())
        return out

    def _sample(self, y: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        return crop_to(self.generate(self.noise(len(y), gen), y), self.size)


@GENERATORS.register("cgan")
class ConditionalGAN(GANGenerator):
    """Conditional GAN of seed 000 (Figs. 25-26, TorchFusion's StandardGenerator and
    StandardProjectionDiscriminator), latent 128, hinge loss, Adam(2e-4, (0.5, 0.999)).

    G: z -> 256@4 -> 128@8 -> 64@16 -> C@32, transposed convs with conditional batch
    norm (per-class scale/shift) and LeakyReLU. D: 3x3 stem, strided convs with
    spectral norm, a self-attention block at 16 x 16, a linear score plus the
    projection of a class embedding (Miyato & Koyama 2018).
    """

    name = "cgan"
    conditional = True
    defaults = {"epochs": 100, "lr": 2e-4, "latent_dim": 128, "beta1": 0.5, "beta2": 0.999, "loss": "hinge"}

    def build(self) -> None:
        cfg = self.config
        self.nets = {
            "G": ConvGenerator(cfg.latent_dim, self.channels, self.work_size, cfg.width,
                               num_classes=self.num_classes, activation="lrelu"),
            "D": ConvDiscriminator(self.channels, self.work_size, cfg.width, batch_norm=False, spectral=True,
                                   stem=True, attention=True, num_classes=self.num_classes),
        }
        dcgan_init(self.nets["G"])  # D keeps PyTorch's init under spectral norm

    def generate(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.nets["G"](z, y)

    def discriminate(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.nets["D"](x, y)


@GENERATORS.register("cwgan-gp")
class ConditionalWGANGP(GANGenerator):
    """Conditional Wasserstein GAN with gradient penalty (seed 002; Gulrajani et al. 2017):
    G reads [z, one-hot label] (DCGAN generator, batch norm + ReLU); the critic is a
    DCGAN discriminator without batch norm (the penalty is per sample) with a
    projection head for the label. Penalty weight 10, 5 critic steps per generator
    step, Adam(1e-4, (0.0, 0.9)) - the settings of the WGAN-GP paper.
    """

    name = "cwgan-gp"
    conditional = True
    defaults = {"epochs": 100, "lr": 1e-4, "latent_dim": 128, "beta1": 0.0, "beta2": 0.9, "loss": "wasserstein",
                "n_critic": 5, "gp_weight": 10.0}

    def build(self) -> None:
        cfg = self.config
        self.nets = {
            "G": ConvGenerator(cfg.latent_dim + self.num_classes, self.channels, self.work_size, cfg.width),
            "D": ConvDiscriminator(self.channels, self.work_size, cfg.width, batch_norm=False,
                                   num_classes=self.num_classes),
        }
        for net in self.nets.values():
            dcgan_init(net)

    def generate(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.nets["G"](torch.cat([z, one_hot(y, self.num_classes)], dim=1))

    def discriminate(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.nets["D"](x, y)


@GENERATORS.register("dcgan")
class PerClassDCGAN(GANGenerator):
    """DCGAN (Radford et al. 2016), one unconditional G/D pair per class (seeds 001, 002, 004).

    For labelled augmentation each class gets its own DCGAN trained on that class's
    images only; `sample(labels)` draws each image from its class's generator. Every
    batch holds one class (batches of all classes are shuffled together), so one
    Adam over all pairs updates exactly the pair that saw the batch (the other pairs
    have no gradient and Adam leaves them alone). Latent 100, BCE, Adam(2e-4, (0.5, 0.999)).
    """

    name = "dcgan"
    conditional = False
    defaults = {"epochs": 100, "lr": 2e-4, "latent_dim": 100, "beta1": 0.5, "beta2": 0.999, "loss": "bce"}

    def build(self) -> None:
        cfg = self.config
        self.nets = {
            "G": nn.ModuleList(ConvGenerator(cfg.latent_dim, self.channels, self.work_size, cfg.width)
                               for _ in range(self.num_classes)),
            "D": nn.ModuleList(ConvDiscriminator(self.channels, self.work_size, cfg.width, batch_norm=True)
                               for _ in range(self.num_classes)),
        }
        for net in self.nets.values():
            dcgan_init(net)

    def batch_indices(self, labels: np.ndarray, batch_size: int, generator: torch.Generator, rank: int = 0,
                      world: int = 1) -> list[np.ndarray]:
        """Single-class batches of every class, in one shuffled order (the same on all ranks)."""
        batches: list[np.ndarray] = []
        for k in range(self.num_classes):
            members = np.flatnonzero(labels == k)
            perm = members[torch.randperm(len(members), generator=generator).numpy()]
            perm = perm[:len(perm) - len(perm) % world][rank::world]
            if len(perm) >= 2:
                batches += split_batches(perm, batch_size)
        order = torch.randperm(len(batches), generator=generator).numpy()
        return [batches[i] for i in order]

    def generate(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        ks = torch.unique(y).tolist()
        if len(ks) == 1:
            return self.nets["G"][ks[0]](z)
        out = torch.empty(len(z), self.channels, self.work_size, self.work_size, device=z.device)
        for k in ks:
            mask = y == k
            out[mask] = self.nets["G"][k](z[mask])
        return out

    def discriminate(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        ks = torch.unique(y).tolist()
        if len(ks) != 1:
            raise RuntimeError("dcgan trains on single-class batches")
        return self.nets["D"][ks[0]](x)

    def sample(self, labels: np.ndarray, seed: int) -> np.ndarray:
        labels = self.check_labels(labels)
        counts = self.dataset.get("class_counts")
        if counts is not None:
            untrained = sorted({int(k) for k in labels if counts[int(k)] < 2})
            if untrained:
                names = ", ".join(self.class_names[k] for k in untrained)
                raise MedaugError(f"dcgan: no model for class(es) {names}: fewer than 2 training images")
        return super().sample(labels, seed)
