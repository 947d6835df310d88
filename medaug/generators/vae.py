"""Variational autoencoders of seed 000: the conditional VAE (`cvae`) and Joint VAE (`jvae`).

Both are trained by the shared loop (`training.py`) with one Adam step per batch on
their loss, evaluated on the validation split after every epoch for early stopping
(seed 000: "200 epochs (with early stopping)"); the best-validation weights are kept.
They work at the data's own size (28 px exactly as in seed 000's figures; 32, 64).

Reconstruction term: the per-image sum of squared errors on images scaled to
[-1, 1] (a Gaussian likelihood; decoders end in tanh as in Figs. 19 and 22).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from medaug.errors import MedaugError
from medaug.generators import distributed as ddp
from medaug.generators.base import GENERATORS, SAMPLE_BATCH, GeneratorConfig, to_float, to_uint8
from medaug.generators.nets import ConvDecoder, ConvEncoder, one_hot
from medaug.generators.training import EpochGenerator


def kl_normal(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)) per row, summed over dimensions."""
    return -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(1)


def squared_error(x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Sum of squared errors per image."""
    return (x_hat - x).pow(2).flatten(1).sum(1)


class VAEGenerator(EpochGenerator):
    """Shared parts of the VAEs: one Adam over the model, a loss per batch, reconstruct."""

    kind: ClassVar[str] = "vae"
    can_reconstruct: ClassVar[bool] = True

    model: nn.Module

    def build_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"adam": self.adam(self.model)}

    def train_step(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
        loss, terms = self.loss(x, y)
        opt = self.optims["adam"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        ddp.step(opt)
        return {k: float(v) for k, v in terms.items()}

    def loss(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        raise NotImplementedError

    def reconstruct(self, images: np.ndarray, labels: np.ndarray | None = None, seed: int = 0) -> np.ndarray:
        """uint8 reconstructions: encode, draw the latent from the posterior (seeded), decode.

        Drawing from q(z|x) rather than taking its mean gives each reconstruction some
        variation around the original (what seed 000 interleaves to add intra-class
        variability); the same seed gives the same images.
        """
        images = self.check_images(images)
        if self.conditional:
            if labels is None:
                raise MedaugError(f"{self.name}: reconstruct needs the images' labels (the encoder is conditional)")
            labels = self.check_labels(labels)
            if len(labels) != len(images):
                raise MedaugError(f"{self.name}: {len(images)} images but {len(labels)} labels")
        gen = torch.Generator().manual_seed(int(seed))
        out = np.empty_like(images)
        self.train_mode(False)
        with torch.no_grad():
            for start in range(0, len(images), SAMPLE_BATCH):
                x = to_float(torch.from_numpy(images[start:start + SAMPLE_BATCH]).to(self.device))
                y = None
                if self.conditional:
                    y = torch.from_numpy(labels[start:start + SAMPLE_BATCH]).to(self.device)
                out[start:start + len(x)] = to_uint8(self._reconstruct(x, y, gen))
        return out

    def _reconstruct(self, x: torch.Tensor, y: torch.Tensor | None, gen: torch.Generator) -> torch.Tensor:
        raise NotImplementedError


# --------------------------------------------------------------------------- conditional VAE

@dataclass(frozen=True)
class CVAEConfig(GeneratorConfig):
    """`kl_weight` scales the KL term against the per-image sum of squared errors; 1.0 is
    the ELBO of a Gaussian likelihood with variance 1/2 on pixels scaled to [-1, 1]."""

    kl_weight: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        self._check(self.kl_weight > 0, "kl_weight", "a number > 0")


class CVAEModel(nn.Module):
    """Seed 000 Figs. 19-20 (PyTorch-VAE's ConditionalVAE): the label enters the encoder
    as an extra image channel (a learned Linear(one-hot) -> H x W map) and the decoder
    as a one-hot vector concatenated to the latent."""

    def __init__(self, channels: int, size: int, num_classes: int, latent_dim: int, width: float) -> None:
        super().__init__()
        self.size = size
        self.num_classes = num_classes
        self.embed_class = nn.Linear(num_classes, size * size)
        self.embed_data = nn.Conv2d(channels, channels, 1)
        self.encoder = ConvEncoder(channels + 1, size, width)
        self.fc_mu = nn.Linear(self.encoder.out_features, latent_dim)
        self.fc_logvar = nn.Linear(self.encoder.out_features, latent_dim)
        self.decoder = ConvDecoder(latent_dim + num_classes, channels, size, width)

    def encode(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        label_map = self.embed_class(one_hot(y, self.num_classes)).view(-1, 1, self.size, self.size)
        h = self.encoder(torch.cat([self.embed_data(x), label_map], dim=1))
        return self.fc_mu(h), self.fc_logvar(h)

    def decode(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.decoder(torch.cat([z, one_hot(y, self.num_classes)], dim=1))


@GENERATORS.register("cvae")
class ConditionalVAE(VAEGenerator):
    """Conditional VAE (Sohn et al. 2015), latent 150, architecture of seed 000 Figs. 19-20.

    (The figures' decoder input of 109 = 100 + 9 classes disagrees with the text's
    latent 150; the text is followed.) Samples: z ~ N(0, I) decoded with the label.
    """

    name = "cvae"
    conditional = True
    config_class = CVAEConfig
    defaults = {"epochs": 200, "lr": 1e-3, "latent_dim": 150, "beta1": 0.9, "early_stopping_patience": 10}

    def build(self) -> None:
        cfg = self.config
        self.model = CVAEModel(self.channels, self.size, self.num_classes, cfg.latent_dim, cfg.width)
        self.nets = {"cvae": self.model}

    def loss(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        mu, logvar = self.model.encode(x, y)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
        recon = squared_error(self.model.decode(z, y), x).mean()
        kl = kl_normal(mu, logvar).mean()
        loss = recon + self.config.kl_weight * kl
        return loss, {"loss": loss.detach(), "recon": recon.detach(), "kl": kl.detach()}

    def validation_loss(self, x: torch.Tensor, y: torch.Tensor) -> float:
        """The loss with the posterior mean as latent (deterministic)."""
        mu, logvar = self.model.encode(x, y)
        recon = squared_error(self.model.decode(mu, y), x).mean()
        return float(recon + self.config.kl_weight * kl_normal(mu, logvar).mean())

    def _sample(self, y: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        return self.model.decode(self.noise(len(y), gen), y)

    def _reconstruct(self, x: torch.Tensor, y: torch.Tensor | None, gen: torch.Generator) -> torch.Tensor:
        mu, logvar = self.model.encode(x, y)
        eps = torch.randn(mu.shape, generator=gen).to(self.device)
        return self.model.decode(mu + eps * (0.5 * logvar).exp(), y)


# --------------------------------------------------------------------------- Joint VAE

@dataclass(frozen=True)
class JointVAEConfig(GeneratorConfig):
    """Joint VAE settings (Dupont 2018). `latent_dim` is the continuous part (100),
    `disc_dim` the categorical one (50). Both KL terms are pulled towards capacities
    that grow linearly from 0 to their maximum over `capacity_iters` optimisation
    steps, with weight `capacity_gamma`; the discrete capacity is capped at
    log(disc_dim), the most a categorical variable can carry.

    `capacity_iters` = 0 (the default) ramps over the first half of the planned run
    (epochs x batches per epoch / 2). Dupont's fixed 25000 steps were ~27 of 100
    MNIST epochs; on MedMNIST's small sets they are most of forever (BreastMNIST, 9
    batches per epoch: 200 epochs reach 7 % of the capacity), and with gamma 30 a
    capacity near 0 collapses the posterior: reconstructions become the data mean."""

    disc_dim: int = 50
    temperature: float = 0.67
    cont_capacity_max: float = 25.0
    disc_capacity_max: float = 25.0
    capacity_iters: int = 0
    capacity_gamma: float = 30.0

    def __post_init__(self) -> None:
        super().__post_init__()
        self._check(self.disc_dim >= 2, "disc_dim", "an integer >= 2")
        self._check(self.temperature > 0, "temperature", "a number > 0")
        self._check(self.cont_capacity_max >= 0, "cont_capacity_max", "a number >= 0")
        self._check(self.disc_capacity_max >= 0, "disc_capacity_max", "a number >= 0")
        self._check(self.capacity_iters >= 0, "capacity_iters", "an integer >= 0 (0 = half the run)")
        self._check(self.capacity_gamma > 0, "capacity_gamma", "a number > 0")


class JointVAEModel(nn.Module):
    """Seed 000 Figs. 22-23: the VAE encoder without label, heads for the continuous
    posterior (mean, log-variance) and the categorical one (logits); the decoder reads
    [z, c] (continuous + one-hot-like discrete code)."""

    def __init__(self, channels: int, size: int, cont_dim: int, disc_dim: int, width: float) -> None:
        super().__init__()
        self.encoder = ConvEncoder(channels, size, width)
        self.fc_mu = nn.Linear(self.encoder.out_features, cont_dim)
        self.fc_logvar = nn.Linear(self.encoder.out_features, cont_dim)
        self.fc_logits = nn.Linear(self.encoder.out_features, disc_dim)
        self.decoder = ConvDecoder(cont_dim + disc_dim, channels, size, width)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        h = self.encoder(x)
        return self.fc_mu(h), self.fc_logvar(h), self.fc_logits(h)

    def decode(self, z: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        return self.decoder(torch.cat([z, c], dim=1))


@GENERATORS.register("jvae")
class JointVAE(VAEGenerator):
    """Joint VAE (Dupont 2018): continuous latent 100 + one categorical latent of 50
    (Gumbel-softmax relaxation, temperature 0.67), capacity-annealed KL terms:

        loss = recon + gamma * |KL(q(z|x) || N(0, I)) - C_z| + gamma * |KL(q(c|x) || U) - C_c|

    It is unconditional: seed 000 used it only to interleave every training image with
    its reconstruction (`reconstruct`, labels ignored). `sample(labels)` therefore
    raises a MedaugError rather than invent a label for a random draw; train a `cvae`
    (or run one jvae per class subset) for labelled samples. Early stopping watches the
    validation reconstruction error (posterior mean, most likely category): the
    capacity objective itself changes every step and is no fixed yardstick.
    """

    name = "jvae"
    conditional = False
    can_sample = False
    config_class = JointVAEConfig
    defaults = {"epochs": 200, "lr": 5e-4, "latent_dim": 100, "beta1": 0.9, "early_stopping_patience": 10}

    def build(self) -> None:
        cfg = self.config
        self.model = JointVAEModel(self.channels, self.size, cfg.latent_dim, cfg.disc_dim, cfg.width)
        self.nets = {"jvae": self.model}

    def batch_indices(self, labels: np.ndarray, batch_size: int, generator: torch.Generator, rank: int = 0,
                      world: int = 1) -> list[np.ndarray]:
        batches = super().batch_indices(labels, batch_size, generator, rank, world)
        self.steps_per_epoch = len(batches)  # sizes the default capacity ramp
        return batches

    def capacity_steps(self) -> int:
        """Steps over which the capacities grow: `capacity_iters`, or (0) half the planned run."""
        cfg = self.config
        if cfg.capacity_iters > 0:
            return cfg.capacity_iters
        return max(1, cfg.epochs * getattr(self, "steps_per_epoch", 1) // 2)

    def capacities(self, step: int) -> tuple[float, float]:
        """(C_z, C_c) after `step` optimisation steps."""
        cfg = self.config
        frac = min(1.0, step / self.capacity_steps())
        return cfg.cont_capacity_max * frac, min(cfg.disc_capacity_max, math.log(cfg.disc_dim)) * frac

    def loss(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        cfg = self.config
        mu, logvar, logits = self.model.encode(x)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
        c = F.gumbel_softmax(logits, tau=cfg.temperature, hard=False)
        recon = squared_error(self.model.decode(z, c), x).mean()
        kl_z = kl_normal(mu, logvar).mean()
        log_q = F.log_softmax(logits, dim=1)
        kl_c = (log_q.exp() * log_q).sum(1).mean() + math.log(cfg.disc_dim)
        cap_z, cap_c = self.capacities(self.global_step)
        loss = recon + cfg.capacity_gamma * ((kl_z - cap_z).abs() + (kl_c - cap_c).abs())
        return loss, {"loss": loss.detach(), "recon": recon.detach(), "kl_z": kl_z.detach(), "kl_c": kl_c.detach()}

    def validation_loss(self, x: torch.Tensor, y: torch.Tensor) -> float:
        mu, _, logits = self.model.encode(x)
        c = one_hot(logits.argmax(1), self.config.disc_dim)
        return float(squared_error(self.model.decode(mu, c), x).mean())

    def cannot_sample_reason(self) -> str:
        return ("generator 'jvae' is unconditional and cannot sample labelled images; use its reconstructions "
                "(strategy interleave-reconstructions) or a conditional generator such as cvae")

    def _reconstruct(self, x: torch.Tensor, y: torch.Tensor | None, gen: torch.Generator) -> torch.Tensor:
        """z ~ q(z|x) and c ~ q(c|x) (a categorical draw by the Gumbel-max trick), seeded."""
        mu, logvar, logits = self.model.encode(x)
        eps = torch.randn(mu.shape, generator=gen).to(self.device)
        u = torch.rand(logits.shape, generator=gen).clamp_(1e-10, 1 - 1e-10).to(self.device)
        c = one_hot((logits - torch.log(-torch.log(u))).argmax(1), self.config.disc_dim)
        return self.model.decode(mu + eps * (0.5 * logvar).exp(), c)
