"""EDM's deterministic sampler: 2nd-order Heun steps along the probability-flow ODE.

Algorithm 1 of Karras et al. 2022 (their Algorithm 2 with S_churn = 0): noise levels

    t_i = (sigma_max^(1/rho) + i / (N - 1) (sigma_min^(1/rho) - sigma_max^(1/rho)))^rho,  i < N;  t_N = 0

start from x_0 = t_0 z (z standard normal); each step takes an Euler step of
dx/dt = (x - D(x; t)) / t and, except into t_N = 0, corrects it with the slope at its
end (Heun): 2N - 1 denoiser evaluations for N steps. The state is kept in float64
as in the reference code. Defaults: N = 18, rho = 7, sigma in [0.002, 80].

Classifier-free guidance (Ho & Salimans 2022) mixes the conditional and the
unconditional denoiser: D_w = D_uncond + w (D_cond - D_uncond); w = 1 is the plain
conditional model and w = 0 the unconditional one (each then evaluated alone).
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import pairwise

import torch

DenoiseFn = Callable[[torch.Tensor, float], torch.Tensor]
SAMPLER = "edm-heun"


def sigma_steps(steps: int, sigma_min: float = 0.002, sigma_max: float = 80.0, rho: float = 7.0) -> torch.Tensor:
    """The N + 1 noise levels t_0 = sigma_max > ... > t_{N-1} = sigma_min > t_N = 0 (float64).

    One step goes from sigma_max straight to 0 (t_0 = sigma_max only)."""
    if steps < 1:
        raise ValueError(f"steps = {steps}; expected >= 1")
    if steps == 1:
        return torch.tensor([sigma_max, 0.0], dtype=torch.float64)
    i = torch.arange(steps, dtype=torch.float64)
    lo, hi = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    t = (hi + i / (steps - 1) * (lo - hi)) ** rho
    return torch.cat([t, torch.zeros(1, dtype=torch.float64)])


def heun_sample(denoise: DenoiseFn, latents: torch.Tensor, steps: int = 18, sigma_min: float = 0.002,
                sigma_max: float = 80.0, rho: float = 7.0) -> torch.Tensor:
    """Images from standard normal ``latents`` by EDM Algorithm 1; returns float32.

    ``denoise(x, sigma)`` is D(x; sigma) for a float32 batch x and a scalar sigma.
    """
    t = sigma_steps(steps, sigma_min, sigma_max, rho).tolist()
    x = latents.to(torch.float64) * t[0]
    for t_cur, t_next in pairwise(t):
        d = (x - denoise(x.float(), t_cur).double()) / t_cur
        x_next = x + (t_next - t_cur) * d
        if t_next > 0:
            d_next = (x_next - denoise(x_next.float(), t_next).double()) / t_next
            x_next = x + (t_next - t_cur) * (0.5 * d + 0.5 * d_next)
        x = x_next
    return x.float()


def guided(denoiser: Callable[..., torch.Tensor], labels: torch.Tensor, guidance: float) -> DenoiseFn:
    """D_w(x; sigma) for class ``labels``: ``denoiser(x, sigma, labels)`` conditional,
    ``denoiser(x, sigma, None)`` unconditional; both in one batch when 0 < w != 1."""
    if guidance == 1:
        return lambda x, sigma: denoiser(x, sigma, labels)
    if guidance == 0:
        return lambda x, sigma: denoiser(x, sigma, None)

    def mixed(x: torch.Tensor, sigma: float) -> torch.Tensor:
        n = len(x)
        drop = torch.cat([torch.zeros(n, dtype=torch.bool), torch.ones(n, dtype=torch.bool)]).to(x.device)
        both = denoiser(torch.cat([x, x]), sigma, torch.cat([labels, labels]), drop)
        cond, uncond = both[:n], both[n:]
        return uncond + guidance * (cond - uncond)

    return mixed
