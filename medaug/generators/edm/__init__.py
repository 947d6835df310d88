"""EDM-style class-conditional diffusion (Karras et al. 2022), registered as the ``edm`` generator.

Layout, lowest first (imports point down only): config.py (``EDMConfig``),
precond.py (c_skip/c_out/c_in/c_noise, noise levels, loss), networks.py (the U-Net),
sampler.py (Heun sampler, classifier-free guidance), generator.py (the medaug
``Generator`` interface, trained by the shared epoch loop).
"""

from medaug.generators.edm.config import EDMConfig
from medaug.generators.edm.generator import EDM, check_sampling
from medaug.generators.edm.networks import UNet
from medaug.generators.edm.precond import (
           Denoiser,
           coefficients,
           denoising_loss,
           loss_weight,
           sample_sigma,
)
from medaug.generators.edm.sampler import guided, heun_sample, sigma_steps

__all__ = ["EDM", "Denoiser", "EDMConfig", "UNet", "check_sampling", "coefficients", "denoising_loss", "guided",
           "heun_sample", "loss_weight", "sample_sigma", "sigma_steps"]
