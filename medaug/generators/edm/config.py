"""``EDMConfig``: the settings of the ``edm`` diffusion generator, validated once.

The lowest module of the edm package: the preconditioning, the nets, the sampler and
the generator all read it. Values named after Karras et al. 2022 ("Elucidating the
Design Space of Diffusion-Based Generative Models", EDM) keep the paper's defaults;
the net's size is medaug's (a CPU must train a 28 px model, see generator.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from medaug.generators.base import GeneratorConfig

AMP_MODES = ("none", "bf16")
MAX_STEPS = 1000
MAX_GUIDANCE = 100.0


@dataclass(frozen=True)
class EDMConfig(GeneratorConfig):
    """EDM settings (training, net, EMA, and the sampler's defaults).

    Training: noise levels ln(sigma) ~ N(``p_mean``, ``p_std``^2), data std
    ``sigma_data``; Adam (``lr``, ``beta1``, ``beta2``) with the learning rate ramped up
    linearly over the first ``lr_rampup_kimg`` thousand images; EMA of the weights with
    a half-life of ``ema_halflife_kimg`` thousand images, capped at ``ema_rampup`` x
    the images seen so far (EDM's ramp-up); the EMA is what samples. Net: a U-Net of
    ``model_channels`` x ``width`` channels at full resolution, ``num_blocks`` residual
    blocks per resolution, self-attention at every resolution <= ``attention_res`` px,
    ``dropout`` in the residual blocks. Labels are replaced by the learned "no class"
    token with probability ``label_dropout`` (classifier-free guidance). Sampler
    defaults (each can be chosen again at sampling time): ``sample_steps`` Heun steps
    from ``sigma_max`` to ``sigma_min`` spaced by ``rho``, guidance scale ``guidance``
    (1 = the conditional model, 0 = the unconditional one). ``amp``: bf16 autocast of
    the U-Net on CUDA (ignored on CPU). ``latent_dim`` is unused (the latent is the
    image-sized noise).
    """

    epochs: int = 100
    batch_size: int = 64
    lr: float = 1e-3
    beta1: float = 0.9
    beta2: float = 0.999
    model_channels: int = 32
    num_blocks: int = 1
    attention_res: int = 8
    dropout: float = 0.1
    label_dropout: float = 0.1
    sigma_data: float = 0.5
    p_mean: float = -1.2
    p_std: float = 1.2
    lr_rampup_kimg: float = 2.0
    ema_halflife_kimg: float = 500.0
    ema_rampup: float = 0.05
    sample_steps: int = 18
    guidance: float = 1.0
    sigma_min: float = 0.002
    sigma_max: float = 80.0
    rho: float = 7.0
    amp: str = "bf16"

    def __post_init__(self) -> None:
        super().__post_init__()
        self._check(1 <= self.model_channels <= 1024, "model_channels", "an integer in [1, 1024]")
        self._check(1 <= self.num_blocks <= 8, "num_blocks", "an integer in [1, 8]")
        self._check(0 <= self.attention_res <= 256, "attention_res", "an integer in [0, 256] (0 = no attention)")
        self._check(0 <= self.dropout < 1, "dropout", "a number in [0, 1)")
        self._check(0 <= self.label_dropout <= 1, "label_dropout", "a probability in [0, 1]")
        self._check(self.sigma_data > 0, "sigma_data", "a number > 0")
        self._check(self.p_std > 0, "p_std", "a number > 0")
        self._check(self.lr_rampup_kimg >= 0, "lr_rampup_kimg", "a number >= 0 (0 = no ramp-up)")
        self._check(self.ema_halflife_kimg >= 0, "ema_halflife_kimg", "a number >= 0 (0 = no EMA)")
        self._check(0 <= self.ema_rampup <= 1, "ema_rampup", "a number in [0, 1] (0 = no ramp-up)")
        self._check(1 <= self.sample_steps <= MAX_STEPS, "sample_steps", f"an integer in [1, {MAX_STEPS}]")
        self._check(0 <= self.guidance <= MAX_GUIDANCE, "guidance", f"a number in [0, {MAX_GUIDANCE:g}]")
        self._check(0 < self.sigma_min < self.sigma_max <= 1e4, "sigma_min",
                    "a number in (0, sigma_max), with sigma_max <= 10000")
        self._check(self.rho > 0, "rho", "a number > 0")
        self._check(self.amp in AMP_MODES, "amp", f"one of {', '.join(AMP_MODES)}")
