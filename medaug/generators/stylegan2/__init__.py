"""StyleGAN2-ADA (Karras et al. 2020), registered as the ``stylegan2ada`` generator.

Layout after NVlabs' training/ package: networks.py (G, D), augment.py (ADA),
loss.py (losses and regularisers), training_loop.py (the kimg loop, DDP launch),
generator.py (the medaug ``Generator`` interface), rng.py (rank-sliced randomness).
"""

from medaug.generators.stylegan2.augment import AdaptiveP, AugmentPipe
from medaug.generators.stylegan2.generator import StyleGAN2ADA, StyleGANConfig
from medaug.generators.stylegan2.networks import StyleDiscriminator, StyleGenerator
from medaug.generators.stylegan2.training_loop import StyleGAN2Trainer, spawn_fit

__all__ = ["AdaptiveP", "AugmentPipe", "StyleDiscriminator", "StyleGAN2ADA", "StyleGAN2Trainer", "StyleGANConfig",
           "StyleGenerator", "spawn_fit"]
