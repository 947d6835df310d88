"""VAE-GAN ("CVAEDCGAN" of seed 001; Larsen et al. 2015), conditional on labels.

An encoder and a decoder as in the conditional VAE (seed 000 Figs. 19-20; seed 001
reuses its CVAE decoder as the DCGAN generator) and a DCGAN discriminator with a
projection head for the label. Reconstruction is measured on the discriminator's
last convolutional features Dis_l instead of on pixels. Seed 001 Algorithm 1, per
mini-batch X with labels Y:

    Z ~ Enc(X, Y)                         L_prior = KL(q(Z|X, Y) || N(0, I))
    X~ = Dec(Z, Y)                        L_llike = 1/2 ||Dis_l(X~, Y) - Dis_l(X, Y)||^2
    Z_p ~ N(0, I),  X_p = Dec(Z_p, Y)     L_GAN = log Dis(X) + log(1 - Dis(X~)) + log(1 - Dis(X_p))
    theta_Enc <- -grad(L_prior + L_llike)
    theta_Dec <- -grad(gamma * L_llike - L_GAN)
    theta_Dis <- -grad(L_GAN)  (i.e. Dis maximises L_GAN: binary cross-entropy)

All three gradients are taken on the same forward pass, before any net changes, as in
the algorithm. The decoder's GAN term is the usual non-saturating form
(-log Dis(X~) - log Dis(X_p)) rather than log(1 - Dis(.)), which has no gradient
early in training (Goodfellow et al. 2014); Larsen et al. do the same. The likelihood
is a unit-variance Gaussian on the flattened Dis_l features, summed per image.
Works at the data's own size (28 px as in the figures, 32, 64).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F

from medaug.generators import distributed as ddp
from medaug.generators.base import GENERATORS, GeneratorConfig
from medaug.generators.nets import ConvDiscriminator
from medaug.generators.vae import ConditionalVAE, CVAEModel, kl_normal


@dataclass(frozen=True)
class VAEGANConfig(GeneratorConfig):
    """`gamma` weighs the Dis_l likelihood against the GAN term in the decoder's
    update (Larsen et al.'s gamma); `kl_weight` scales the prior term."""

    gamma: float = 1e-2
    kl_weight: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        self._check(self.gamma >= 0, "gamma", "a number >= 0")
        self._check(self.kl_weight > 0, "kl_weight", "a number > 0")


@GENERATORS.register("vaegan")
class VAEGAN(ConditionalVAE):
    """Conditional VAE-GAN: CVAE encoder/decoder + projection discriminator; three Adam optimizers.

    Samples and reconstructions as the conditional VAE (z ~ N(0, I), or z ~ q(z|x, y)).
    """

    name = "vaegan"
    conditional = True
    kind: ClassVar[str] = "gan"  # adversarial: no validation loss, no early stopping
    config_class = VAEGANConfig
    defaults = {"epochs": 100, "lr": 2e-4, "latent_dim": 128, "beta1": 0.5, "beta2": 0.999}

    def build(self) -> None:
        cfg = self.config
        self.model = CVAEModel(self.channels, self.size, self.num_classes, cfg.latent_dim, cfg.width)
        self.dis = ConvDiscriminator(self.channels, self.size, cfg.width, batch_norm=True,
                                     num_classes=self.num_classes)
        self.nets = {"vae": self.model, "dis": self.dis}

    def build_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        m = self.model
        return {"enc": self.adam(m.embed_class, m.embed_data, m.encoder, m.fc_mu, m.fc_logvar),
                "dec": self.adam(m.decoder), "dis": self.adam(self.dis)}

    def train_step(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
        cfg = self.config
        m = self.model
        mu, logvar = m.encode(x, y)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
        x_rec = m.decode(z, y)
        x_p = m.decode(torch.randn_like(mu), y)

        d_real, f_real = self.dis(x, y, features=True)
        d_rec, f_rec = self.dis(x_rec, y, features=True)
        d_p = self.dis(x_p, y)

        prior = cfg.kl_weight * kl_normal(mu, logvar).mean()
        llike = 0.5 * (f_rec - f_real.detach()).pow(2).sum(1).mean()
        gan_dis = F.softplus(-d_real).mean() + F.softplus(d_rec).mean() + F.softplus(d_p).mean()  # = -L_GAN
        gan_dec = F.softplus(-d_rec).mean() + F.softplus(-d_p).mean()  # non-saturating

        groups = {"enc": (prior + llike, self.optims["enc"]),
                  "dec": (cfg.gamma * llike + gan_dec, self.optims["dec"]),
                  "dis": (gan_dis, self.optims["dis"])}
        grads = {}
        for k, (loss, opt) in groups.items():
            params = [p for g in opt.param_groups for p in g["params"]]
            grads[k] = torch.autograd.grad(loss, params, retain_graph=True)
        for k, (_, opt) in groups.items():
            for p, g in zip((p for grp in opt.param_groups for p in grp["params"]), grads[k]):
                p.grad = g
            ddp.step(opt)
            opt.zero_grad(set_to_none=True)
        return {"prior": float(prior.detach()), "llike": float(llike.detach()), "d_loss": float(gan_dis.detach()),
                "g_loss": float(gan_dec.detach())}

    def validation_loss(self, x: torch.Tensor, y: torch.Tensor) -> None:
        return None  # adversarial training has no loss that validation data would track
