"""``StyleGANConfig``: the settings of the StyleGAN2-ADA generator, validated once.

The lowest module of the StyleGAN2 package besides the nets: the training loop
(training_loop.py) and the generator (generator.py) both read it. Where the defaults
come from is told in generator.py's docstring.
"""

from __future__ import annotations

from dataclasses import dataclass

from medaug.generators.base import GeneratorConfig
from medaug.generators.stylegan2.augment import PIPELINES

#: config fields that only schedule the run; a resume may change them.
SCHEDULE_FIELDS = ("epochs", "kimg", "tick_kimg", "checkpoint_kimg", "fid_kimg", "fid_images",
                   "fid_inception_weights", "truncation_psi")
AMP_MODES = ("none", "bf16", "fp16")
RESIZE_MODES = ("pad", "resize")
MAX_RESOLUTION = 256


@dataclass(frozen=True)
class StyleGANConfig(GeneratorConfig):
    """StyleGAN2-ADA settings (generator.py's docstring says where the defaults come from).

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
