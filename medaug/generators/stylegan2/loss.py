"""StyleGAN2 losses: non-saturating logistic loss, lazy R1, path-length regularisation,
style mixing (Karras et al. 2020, StyleGAN2 sections 2-3; ADA keeps them unchanged).

One ``StyleGAN2Loss.accumulate(phase, ...)`` call runs the forward and backward of
one phase on this rank's share of the batch; the caller averages the gradients over
ranks and steps the optimiser. Every loss is a *mean over the local batch*, so the
rank-average of gradients equals the gradient of the global-batch mean.

Phases:
- ``Gmain``: softplus(-D(aug(G(z, c)))) (non-saturating; G wants fakes scored real).
- ``Greg``:  path-length penalty (|J_w^T y| - a)^2 * pl_weight on batch / pl_batch_shrink
  samples (``gen_c`` holds their labels), a = running mean of the lengths (decay
  pl_decay, averaged over ranks).
- ``Dmain``: softplus(D(aug(G(z, c)))) + softplus(-D(aug(x))); also returns the sum of
  sign(D(aug(x))) for ADA's r_t.
- ``Dreg``:  R1 = gamma / 2 * |grad_x D(aug(x))|^2 on reals (through the augmentation).
The lazy-regularisation gain (the interval) is passed in by the caller.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

from medaug.generators.stylegan2.augment import AugmentPipe
from medaug.generators.stylegan2.networks import StyleDiscriminator, StyleGenerator
from medaug.generators.stylegan2.rng import BatchRandom

PHASES = ("Gmain", "Greg", "Dmain", "Dreg")


class StyleGAN2Loss:
    def __init__(self, G: StyleGenerator, D: StyleDiscriminator, augment_pipe: AugmentPipe | None, *,
                 r1_gamma: float, style_mixing_prob: float = 0.9, pl_weight: float = 0.0,
                 pl_batch_shrink: int = 2, pl_decay: float = 0.01,
                 autocast: Callable[[], torch.autocast] | None = None,
                 all_mean: Callable[[torch.Tensor], torch.Tensor] | None = None) -> None:
        """``autocast``: a factory of the mixed-precision context for the main phases
        (None = fp32); ``all_mean``: the mean over DDP ranks (path-length running mean)."""
        self.G, self.D, self.augment_pipe = G, D, augment_pipe
        self.r1_gamma, self.style_mixing_prob = r1_gamma, style_mixing_prob
        self.pl_weight, self.pl_batch_shrink, self.pl_decay = pl_weight, pl_batch_shrink, pl_decay
        self.pl_mean = torch.zeros([], device=next(G.parameters()).device)
        self._autocast = autocast
        self._all_mean = all_mean or (lambda t: t)

    def _amp(self) -> contextlib.AbstractContextManager:
        return self._autocast() if self._autocast is not None else contextlib.nullcontext()

    def run_G(self, z: torch.Tensor, c: torch.Tensor | None, rng: BatchRandom,
              update_w_avg: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Generate with style mixing: with prob. style_mixing_prob the ws from a layer
        cutoff on come from a second latent (one cutoff per batch, as in the paper)."""
        ws = self.G.mapping(z, c, update_w_avg=update_w_avg)
        if self.style_mixing_prob > 0:
            cutoff = rng.shared_randint(1, ws.shape[1])
            mix = rng.shared_rand() < self.style_mixing_prob
            z2 = rng.randn(z.shape[0], z.shape[1]).to(z.device)
            if mix:
                ws2 = self.G.mapping(z2, c)
                ws = torch.cat([ws[:, :cutoff], ws2[:, cutoff:]], dim=1)
        img = self.G.synthesis(ws, rng=rng)
        return img, ws

    def run_D(self, img: torch.Tensor, c: torch.Tensor | None, rng: BatchRandom) -> torch.Tensor:
        if self.augment_pipe is not None:
            img = self.augment_pipe(img, rng)
        return self.D(img, c)

    def accumulate(self, phase: str, real: torch.Tensor, real_c: torch.Tensor | None, gen_c: torch.Tensor | None,
                   rng: BatchRandom, gain: float = 1.0,
                   scale: Callable[[torch.Tensor], torch.Tensor] | None = None) -> dict[str, float]:
        """Forward + backward of one phase; returns scalar statistics of this rank.

        ``scale`` wraps each loss before backward (fp16 loss scaling of the main phases).
        """
        scale = scale or (lambda t: t)
        n = real.shape[0]
        dev = real.device
        z_dim = self.G.z_dim
        stats: dict[str, float] = {}
        if phase == "Gmain":
            z = rng.randn(n, z_dim).to(dev)
            with self._amp():
                img, _ = self.run_G(z, gen_c, rng, update_w_avg=True)
                logits = self.run_D(img, gen_c, rng)
            loss = F.softplus(-logits.float()).mean()
            scale(loss * gain).backward()
            stats["G_loss"] = float(loss.detach())
        elif phase == "Greg":
            # the caller passes the labels of the (smaller) path-length batch as gen_c
            m = gen_c.shape[0] if gen_c is not None else max(1, n // self.pl_batch_shrink)
            z = rng.randn(m, z_dim).to(dev)
            c = gen_c
            img, ws = self.run_G(z, c, rng)  # fp32: the penalty needs second-order precision
            y = rng.randn(m, *img.shape[1:]).to(dev) / math.sqrt(img.shape[2] * img.shape[3])
            (grads,) = torch.autograd.grad((img * y).sum(), ws, create_graph=True)
            lengths = grads.square().sum(dim=2).mean(dim=1).sqrt()
            pl_mean = self.pl_mean.lerp(self._all_mean(lengths.detach().mean()), self.pl_decay)
            self.pl_mean.copy_(pl_mean.detach())
            penalty = (lengths - pl_mean).square()
            loss = (penalty * self.pl_weight).mean() + img[:, 0, 0, 0].mean() * 0
            (loss * gain).backward()
            stats["G_pl_penalty"] = float(penalty.detach().mean())
        elif phase == "Dmain":
            z = rng.randn(n, z_dim).to(dev)
            with torch.no_grad(), self._amp():
                fake, _ = self.run_G(z, gen_c, rng)
            with self._amp():
                fake_logits = self.run_D(fake.detach(), gen_c, rng)
            loss_fake = F.softplus(fake_logits.float()).mean()
            scale(loss_fake * gain).backward()
            with self._amp():
                real_logits = self.run_D(real, real_c, rng)
            loss_real = F.softplus(-real_logits.float()).mean()
            scale(loss_real * gain).backward()
            stats["D_loss"] = float(loss_fake.detach() + loss_real.detach())
            stats["D_real_score"] = float(real_logits.detach().mean())
            stats["D_fake_score"] = float(fake_logits.detach().mean())
            stats["real_sign_sum"] = float(real_logits.detach().sign().sum())
            stats["real_count"] = float(n)
        elif phase == "Dreg":
            x = real.detach().requires_grad_(True)
            logits = self.run_D(x, real_c, rng)  # fp32
            (grads,) = torch.autograd.grad(logits.sum(), x, create_graph=True)
            penalty = grads.square().sum(dim=[1, 2, 3])
            loss = (penalty * (self.r1_gamma / 2)).mean() + logits.mean() * 0
            (loss * gain).backward()
            stats["D_r1_penalty"] = float(penalty.detach().mean())
        else:
            raise ValueError(f"phase {phase!r}; expected one of {PHASES}")
        return stats

