"""Metrics of generated images: distribution distances on features, manifold metrics, pixel similarity.

Feature-space metrics take two float arrays (N, D) of features (see
`medaug.metrics.features` for the extractors):

- `frechet_distance`: FID (Heusel et al. 2017): ||mu_r - mu_g||^2 + Tr(S_r + S_g - 2 (S_r S_g)^(1/2)),
  computed by torchmetrics' `FrechetInceptionDistance` fed with precomputed features
  (an identity "extractor"), in float64.
- `kernel_distance`: KID (Binkowski et al. 2018): unbiased MMD^2 with the cubic polynomial
  kernel (x.y / D + 1)^3, mean and std over random subsets of min(1000, N/2) points;
  torchmetrics' `KernelInceptionDistance`, its subset draws seeded here.
- `precision_recall`: improved precision and recall (Kynkaanniemi et al. 2019, k = 3): a
  generated point is "precise" when it falls inside some real point's k-NN ball; a real
  point is "recalled" when it falls inside some generated point's k-NN ball.
- `density_coverage` (Naeem et al. 2020, k = 5 as the paper recommends): density counts
  how many real k-NN balls hold each generated point, / k; coverage is the share of real
  balls holding at least one generated point. Balls are closed (distance <= radius).

Pixel metrics (seed 003's image comparison: RMSE, PSNR, SRE, SAM) compare each
generated image with its nearest real image (Euclidean distance in pixel space, over
the whole real set) and average over the generated images; pixels are scaled to [0, 1]:

- RMSE = sqrt(mean((g - r)^2)).
- PSNR = 10 log10(1 / MSE) dB; an exact copy (MSE 0) is capped at `PSNR_CAP` dB.
- SRE (signal to reconstruction error ratio, Lanaras et al. 2018) =
  10 log10(mean(r)^2 / MSE) dB per channel, averaged over channels; capped likewise.
- SAM (spectral angle mapper, degrees): the angle between the channel vectors of g and
  r at each pixel, averaged over pixels where neither vector is zero. For one-channel
  images a per-pixel angle is always 0, so SAM there is the angle between the two
  images taken as vectors (stated in the result; a common fallback, not a standard).
"""

from __future__ import annotations

import math

import numpy as np
import torch

#: PSNR/SRE of an exact copy (zero error) are reported as this many dB, not infinity.
PSNR_CAP = 100.0
PR_K = 3
DC_K = 5
_CHUNK = 1024


def _as_features(x: np.ndarray | torch.Tensor, name: str) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x).double().cpu()
    if t.ndim != 2 or len(t) < 2:
        raise ValueError(f"{name}: expected a (N >= 2, D) feature array, got shape {tuple(t.shape)}")
    if not torch.isfinite(t).all():
        raise ValueError(f"{name}: features contain NaN or infinity")
    return t


class _Features(torch.nn.Module):
    """Identity 'extractor': lets torchmetrics' FID/KID take precomputed features."""

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.num_features = num_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def frechet_distance(real: np.ndarray | torch.Tensor, fake: np.ndarray | torch.Tensor) -> float:
    """FID between two feature sets (N, D) and (M, D), in float64 (torchmetrics)."""
    from torchmetrics.image.fid import FrechetInceptionDistance

    r, f = _as_features(real, "real features"), _as_features(fake, "generated features")
    if r.shape[1] != f.shape[1]:
        raise ValueError(f"feature dimensions differ: {r.shape[1]} vs {f.shape[1]}")
    metric = FrechetInceptionDistance(feature=_Features(r.shape[1]), reset_real_features=True)
    metric.set_dtype(torch.float64)
    for start in range(0, len(r), _CHUNK):
        metric.update(r[start:start + _CHUNK], real=True)
    for start in range(0, len(f), _CHUNK):
        metric.update(f[start:start + _CHUNK], real=False)
    # The trace of sqrt(S_r S_g) can pick up a tiny negative rounding error: clamp at 0.
    return max(float(metric.compute()), 0.0)


def frechet_distance_gaussians(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """The closed form between N(mu1, sigma1) and N(mu2, sigma2) (scipy's sqrtm); used to check FID."""
    from scipy import linalg

    covmean = linalg.sqrtm(np.asarray(sigma1) @ np.asarray(sigma2))
    covmean = np.real(covmean)
    diff = np.asarray(mu1) - np.asarray(mu2)
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


def kernel_distance(real: np.ndarray | torch.Tensor, fake: np.ndarray | torch.Tensor, *, subsets: int = 100,
                    subset_size: int | None = None, seed: int = 0) -> tuple[float, float]:
    """KID: mean and std over `subsets` random subsets (torchmetrics).

    Subsets hold `subset_size` points (capped at min(N, M)); by default min(1000, N/2, M/2),
    so that subsets differ and the std means something.
    """
    from torchmetrics.image.kid import KernelInceptionDistance

    r, f = _as_features(real, "real features"), _as_features(fake, "generated features")
    if r.shape[1] != f.shape[1]:
        raise ValueError(f"feature dimensions differ: {r.shape[1]} vs {f.shape[1]}")
    smaller = min(len(r), len(f))
    size = max(2, min(1000, smaller // 2)) if subset_size is None else max(2, min(subset_size, smaller))
    metric = KernelInceptionDistance(feature=_Features(r.shape[1]), subsets=subsets, subset_size=size,
                                     reset_real_features=True)
    metric.update(r, real=True)
    metric.update(f, real=False)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # torchmetrics draws its subsets from the global generator
        mean, std = metric.compute()
    return float(mean), float(std)


def _pairwise(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Euclidean distances (len(a), len(b)) in float64, chunked over a."""
    return torch.cat([torch.cdist(a[i:i + _CHUNK], b) for i in range(0, len(a), _CHUNK)])


def knn_radii(points: torch.Tensor, k: int) -> torch.Tensor:
    """Distance from each point to its k-th nearest other point."""
    if len(points) <= k:
        raise ValueError(f"k-NN radii need more than k = {k} points, got {len(points)}")
    out = []
    for i in range(0, len(points), _CHUNK):
        d = torch.cdist(points[i:i + _CHUNK], points)
        # index 0 of the sorted row is the point itself (distance 0)
        out.append(d.kthvalue(k + 1, dim=1).values)
    return torch.cat(out)


def _inside_counts(query: torch.Tensor, centres: torch.Tensor, radii: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For each query point: how many balls hold it; for each ball: whether any query point is in it."""
    counts = torch.zeros(len(query), dtype=torch.long)
    hit = torch.zeros(len(centres), dtype=torch.bool)
    for i in range(0, len(query), _CHUNK):
        inside = torch.cdist(query[i:i + _CHUNK], centres) <= radii[None, :]
        counts[i:i + _CHUNK] = inside.sum(dim=1)
        hit |= inside.any(dim=0)
    return counts, hit


def precision_recall(real: np.ndarray | torch.Tensor, fake: np.ndarray | torch.Tensor, k: int = PR_K) -> tuple[float, float]:
    """Improved precision and recall (Kynkaanniemi et al. 2019)."""
    r, f = _as_features(real, "real features"), _as_features(fake, "generated features")
    in_real, _ = _inside_counts(f, r, knn_radii(r, k))
    in_fake, _ = _inside_counts(r, f, knn_radii(f, k))
    return float((in_real > 0).double().mean()), float((in_fake > 0).double().mean())


def density_coverage(real: np.ndarray | torch.Tensor, fake: np.ndarray | torch.Tensor, k: int = DC_K) -> tuple[float, float]:
    """Density and coverage (Naeem et al. 2020)."""
    r, f = _as_features(real, "real features"), _as_features(fake, "generated features")
    counts, hit = _inside_counts(f, r, knn_radii(r, k))
    density = float(counts.double().sum()) / (k * len(f))
    return density, float(hit.double().mean())


# ------------------------------------------------------------------ pixel similarity (seed 003)

def _to_unit(images: np.ndarray) -> torch.Tensor:
    images = np.asarray(images)
    if images.ndim != 4:
        raise ValueError(f"expected images N x C x H x W, got shape {images.shape}")
    t = torch.from_numpy(np.ascontiguousarray(images)).double()
    return t / 255.0 if images.dtype == np.uint8 else t


def nearest_real(generated: np.ndarray, real: np.ndarray, chunk: int = 4096) -> np.ndarray:
    """Index into `real` of each generated image's nearest real image (pixel-space L2).

    Works through both sets in chunks (float32), so a 90,000-image real set never sits
    in memory as floats at once.
    """
    generated, real = np.asarray(generated), np.asarray(real)
    if generated.shape[1:] != real.shape[1:]:
        raise ValueError(f"image shapes differ: {generated.shape[1:]} vs {real.shape[1:]}")
    scale = 1 / 255.0 if real.dtype == np.uint8 else 1.0

    def block(a: np.ndarray, i: int) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(a[i:i + chunk])).flatten(1).float() * scale

    best_d = torch.full((len(generated),), math.inf)
    best_i = torch.zeros(len(generated), dtype=torch.long)
    for j in range(0, len(real), chunk):
        r = block(real, j)
        r_sq = (r * r).sum(1)
        for i in range(0, len(generated), chunk):
            g = block(generated, i)
            # ||g - r||^2 - ||g||^2 = ||r||^2 - 2 g.r  (||g||^2 is the same for every real image)
            d, k = (r_sq[None, :] - 2 * g @ r.T).min(dim=1)
            better = d < best_d[i:i + chunk]
            best_d[i:i + chunk] = torch.where(better, d, best_d[i:i + chunk])
            best_i[i:i + chunk] = torch.where(better, k + j, best_i[i:i + chunk])
    return best_i.numpy()


def _cap_db(values: torch.Tensor) -> torch.Tensor:
    return torch.nan_to_num(values, nan=PSNR_CAP, posinf=PSNR_CAP).clamp(max=PSNR_CAP)


def pair_metrics(generated: np.ndarray, reference: np.ndarray) -> dict[str, np.ndarray]:
    """Per-pair RMSE, PSNR, SRE, SAM of generated[i] against reference[i] (see module doc)."""
    g, r = _to_unit(generated), _to_unit(reference)
    if g.shape != r.shape:
        raise ValueError(f"image shapes differ: {tuple(g.shape)} vs {tuple(r.shape)}")
    err = (g - r) ** 2
    mse = err.mean(dim=(1, 2, 3))
    rmse = mse.sqrt()
    psnr = _cap_db(10 * torch.log10(1.0 / mse))
    mse_c = err.mean(dim=(2, 3))                      # (N, C)
    mean_c = r.mean(dim=(2, 3))                       # (N, C)
    sre_c = 10 * torch.log10(mean_c ** 2 / mse_c)     # 0/0 (black channel copied exactly) -> NaN -> 0 dB
    sre = _cap_db(torch.nan_to_num(sre_c, nan=0.0, neginf=-PSNR_CAP)).mean(dim=1)
    sam = spectral_angle(g, r)
    return {"rmse": rmse.numpy(), "psnr": psnr.numpy(), "sre": sre.numpy(), "sam": sam.numpy()}


def spectral_angle(g: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """Mean spectral angle in degrees per image pair (per pixel over channels; whole image for C = 1)."""
    if g.shape[1] == 1:
        g, r = g.flatten(1)[:, None, :], r.flatten(1)[:, None, :]                # (N, 1, H*W): one spectrum
    else:
        g, r = g.flatten(2).transpose(1, 2), r.flatten(2).transpose(1, 2)        # (N, H*W, C)
    dot, ng, nr = (g * r).sum(-1), g.norm(dim=-1), r.norm(dim=-1)
    valid = (ng > 0) & (nr > 0)
    cos = torch.where(valid, dot / (ng * nr).clamp_min(1e-300), torch.zeros_like(dot)).clamp(-1, 1)
    angle = torch.rad2deg(torch.arccos(cos))
    n_valid = valid.sum(1)
    return torch.where(n_valid > 0, (angle * valid).sum(1) / n_valid.clamp_min(1),
                       torch.full_like(angle[:, 0], math.nan))


def nearest_real_similarity(generated: np.ndarray, real: np.ndarray) -> dict[str, float]:
    """Mean RMSE, PSNR, SRE, SAM of each generated image against its nearest real image (seed 003)."""
    idx = nearest_real(generated, real)
    per = pair_metrics(generated, np.asarray(real)[idx])
    return {k: float(np.nanmean(v)) if np.isfinite(v).any() else math.nan for k, v in per.items()}
