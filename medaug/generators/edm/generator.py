"""``edm``: a class-conditional diffusion model with EDM preconditioning, behind the generator interface.

Karras et al. 2022 ("Elucidating the Design Space of Diffusion-Based Generative
Models"): the preconditioned denoiser, log-normal noise levels and loss weighting of
precond.py, trained on a U-Net (networks.py) that handles every medaug size natively
(28 px at 28/14/7, no padding); sampled from the EMA weights with the deterministic
Heun sampler of sampler.py, with classifier-free guidance (labels dropped with
probability ``label_dropout`` in training teach the same net the unconditional
denoiser). The number of sampler steps and the guidance scale are the config's
``sample_steps`` / ``guidance`` unless chosen at sampling time (``sample(...,
steps=, guidance=)``, ``medaug synthesize --steps N --guidance W``); every synthetic
set records them (``sampling_provenance``).

Training is the shared epoch loop (medaug/generators/training.py): checkpoints every
epoch, resumable, DDP by explicit gradient averaging under torchrun.
``batch_size`` is per process, as for the other epoch-trained generators. All the
random numbers of a step (noise levels, noise, label dropout) are drawn for the
global batch from a generator seeded by (seed, step) and each rank keeps its rows,
so W processes make the same update as one process with W times the batch (dropout
masks aside), and a resumed run continues exactly.

Defaults: EDM's (lr 1e-3, Adam betas (0.9, 0.999), P_mean -1.2, P_std 1.2,
sigma_data 0.5, EMA half-life 500 kimg with a 5% ramp-up, 18 Heun steps, rho 7,
sigma 0.002..80) except the net and the lr ramp-up, which are sized so that a 28 px
model trains at a useful rate on 2 CPU cores (32 channels, channel multipliers
1, 2, 2, one block per resolution, attention at 7 px; ramp-up over 2 kimg instead of
10 Mimg). Measured at 28 px, batch 64, one thread of this project's 2-core CPU
while another job held the other: 1.1 M parameters, 0.31 GFLOP a net evaluation,
training 56 img/s; sampling 5.4 img/s at 18 steps, 10 at 10 and 18 at 6 (guidance
other than 0 or 1 halves these). ``--set width=0.5`` (0.28 M parameters): training
131 img/s, sampling 14 / 27 / 43 img/s. Larger images or a GPU want ``--set
model_channels=128 --set num_blocks=2 --set attention_res=16`` or more. On an H200 (bench/
edm_gpu.py) bf16 autocast trains that net 1.15-1.19x faster than float32 with 22% less
memory; the default net gains nothing from it, within noise.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import torch

from medaug.errors import MedaugError
from medaug.generators import distributed as ddp
from medaug.generators.base import GENERATORS, GeneratorConfig
from medaug.generators.edm.config import MAX_GUIDANCE, MAX_STEPS, EDMConfig
from medaug.generators.edm.networks import UNet
from medaug.generators.edm.precond import Denoiser, denoising_loss, sample_sigma
from medaug.generators.edm.sampler import SAMPLER, guided, heun_sample
from medaug.generators.training import EpochGenerator

__all__ = ["EDM", "EDMConfig", "check_sampling", "step_seed"]


def step_seed(seed: int, step: int) -> int:
    """The seed of the random draws of one training step (the same on every rank)."""
    return (seed * 1_000_003 + step * 7_919 + 424_242) % (2**63 - 1)


def check_sampling(steps: Any = None, guidance: Any = None) -> None:
    """Refuse (one line, naming the option) a step count or guidance scale the sampler cannot use."""
    if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int)
                              or not 1 <= steps <= MAX_STEPS):
        raise MedaugError(f"--steps {steps!r}: expected an integer in [1, {MAX_STEPS}]")
    if guidance is not None and (isinstance(guidance, bool) or not isinstance(guidance, (int, float))
                                 or not math.isfinite(guidance) or not 0 <= guidance <= MAX_GUIDANCE):
        raise MedaugError(f"--guidance {guidance!r}: expected a number in [0, {MAX_GUIDANCE:g}] "
                          "(1 = conditional, 0 = unconditional)")


@GENERATORS.register("edm")
class EDM(EpochGenerator):
    """Class-conditional diffusion (EDM preconditioning, Heun sampler, classifier-free guidance)."""

    name: ClassVar[str] = "edm"
    conditional: ClassVar[bool] = True
    kind: ClassVar[str] = "diffusion"
    config_class: ClassVar[type[GeneratorConfig]] = EDMConfig
    sizes: ClassVar[tuple[int, ...]] = (28, 32, 64, 128, 256)
    #: options ``sample`` (and ``medaug synthesize``) take at sampling time
    sampling_options: ClassVar[tuple[str, ...]] = ("steps", "guidance")
    check_sampling = staticmethod(check_sampling)
    config: EDMConfig

    def __init__(self, channels: int, size: int, num_classes: int,
                 config: GeneratorConfig | Mapping[str, Any] | None = None,
                 device: torch.device | str | None = "cpu") -> None:
        super().__init__(channels, size, num_classes, config, device)
        amp = torch.bfloat16 if self.device.type == "cuda" and self.config.amp == "bf16" else None
        for net in self.nets.values():
            net.autocast_dtype = amp
        self.steps = self.config.sample_steps
        self.guidance = self.config.guidance

    # -- construction -----------------------------------------------------------------------------

    def build(self) -> None:
        cfg = self.config
        unet = UNet(self.channels, self.size, self.num_classes, model_channels=max(1, round(cfg.model_channels
                                                                                              * cfg.width)),
                    num_blocks=cfg.num_blocks, attention_res=cfg.attention_res, dropout=cfg.dropout)
        net = Denoiser(unet, self.num_classes, cfg.sigma_data)
        ema = Denoiser(copy.deepcopy(unet), self.num_classes, cfg.sigma_data)
        ema.requires_grad_(False)
        self.nets = {"net": net, "ema": ema}

    def build_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"adam": self.adam(self.nets["net"])}

    # -- training ---------------------------------------------------------------------------------

    def step_randomness(self, n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(sigma, noise, drop) for this rank's ``n`` rows of the global batch of this step."""
        cfg = self.config
        rank, world = ddp.rank_world()
        total = n * world
        gen = torch.Generator(device=self.device).manual_seed(step_seed(cfg.seed, self.global_step))
        kw = {"generator": gen, "device": self.device}
        normal = torch.randn(total, **kw)
        noise = torch.randn(total, self.channels, self.size, self.size, **kw)
        drop = torch.rand(total, **kw) < cfg.label_dropout
        # rank r's local row j is row j * world + r of the global batch (the loop's shards interleave)
        mine = slice(rank, None, world)
        return sample_sigma(normal[mine], cfg.p_mean, cfg.p_std), noise[mine], drop[mine]

    def train_step(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
        """One Adam step on the EDM loss of the batch, then the EMA update."""
        cfg = self.config
        net, opt = self.nets["net"], self.optims["adam"]
        world = ddp.rank_world()[1]
        batch = len(x) * world
        nimg = (self.global_step + 1) * batch
        lr = cfg.lr * min(nimg / (cfg.lr_rampup_kimg * 1000), 1.0) if cfg.lr_rampup_kimg > 0 else cfg.lr
        for group in opt.param_groups:
            group["lr"] = lr
        sigma, noise, drop = self.step_randomness(len(x))
        loss = denoising_loss(net, x, y, sigma, noise, drop).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        params = [p for p in net.parameters() if p.grad is not None]
        ddp.average_gradients(params)
        for p in params:
            torch.nan_to_num(p.grad, nan=0.0, posinf=1e5, neginf=-1e5, out=p.grad)
        opt.step()
        self.update_ema(nimg, batch)
        return {"loss": float(loss.detach()), "lr": lr}

    def update_ema(self, nimg: int, batch: int) -> None:
        """EMA with a half-life of ema_halflife_kimg thousand images, capped at ema_rampup x nimg."""
        cfg = self.config
        ema_nimg = cfg.ema_halflife_kimg * 1000
        if cfg.ema_rampup > 0:
            ema_nimg = min(ema_nimg, nimg * cfg.ema_rampup)
        beta = 0.5 ** (batch / max(ema_nimg, 1e-8)) if ema_nimg > 0 else 0.0
        with torch.no_grad():
            for p_ema, p in zip(self.nets["ema"].parameters(), self.nets["net"].parameters()):
                p_ema.copy_(p.detach().lerp(p_ema, beta))

    # -- sampling ---------------------------------------------------------------------------------

    def set_sampling(self, steps: int | None = None, guidance: float | None = None) -> None:
        """Choose the Heun step count and guidance scale of the next samples (None keeps the current)."""
        check_sampling(steps, guidance)
        if steps is not None:
            self.steps = int(steps)
        if guidance is not None:
            self.guidance = float(guidance)

    def sample(self, labels: np.ndarray, seed: int, *, steps: int | None = None,
               guidance: float | None = None) -> np.ndarray:
        """uint8 images for ``labels``, the same for the same seed; ``steps``/``guidance`` for this call only."""
        before = (self.steps, self.guidance)
        self.set_sampling(steps, guidance)
        try:
            return super().sample(labels, seed)
        finally:
            self.steps, self.guidance = before

    def _sample(self, y: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        cfg = self.config
        latents = torch.randn(len(y), self.channels, self.size, self.size, generator=gen).to(self.device)
        denoise = guided(self.nets["ema"], y, self.guidance)
        x = heun_sample(denoise, latents, self.steps, cfg.sigma_min, cfg.sigma_max, cfg.rho)
        return x.clamp(-1, 1)

    def sampling_provenance(self) -> dict[str, Any]:
        """What a synthetic set records about how it was sampled."""
        cfg = self.config
        per_step = 2 if self.guidance not in (0.0, 1.0) else 1
        return {"sampler": SAMPLER, "steps": self.steps, "guidance": self.guidance, "weights": "ema",
                "sigma_min": cfg.sigma_min, "sigma_max": cfg.sigma_max, "rho": cfg.rho, "s_churn": 0.0,
                "net_evaluations": (2 * self.steps - 1) * per_step}
