"""StyleGAN2-ADA (Karras et al. 2020), registered as the ``stylegan2ada`` generator.

Layout after NVlabs' training/ package, lowest first (imports point down only):
rng.py (rank-sliced randomness), networks.py (G, D), augment.py (ADA), loss.py
(losses and regularisers), config.py (``StyleGANConfig``), training_loop.py (the
kimg loop), generator.py (the medaug ``Generator`` interface), launch.py
(multi-process fits on one machine).
"""

from medaug.generators.stylegan2.augment import AdaptiveP, AugmentPipe
from medaug.generators.stylegan2.config import StyleGANConfig
from medaug.generators.stylegan2.generator import StyleGAN2ADA
from medaug.generators.stylegan2.launch import spawn_fit
from medaug.generators.stylegan2.networks import StyleDiscriminator, StyleGenerator
from medaug.generators.stylegan2.training_loop import StyleGAN2Trainer

__all__ = ["AdaptiveP", "AugmentPipe", "StyleDiscriminator", "StyleGAN2ADA", "StyleGAN2Trainer", "StyleGANConfig",
           "StyleGenerator", "spawn_fit"]
