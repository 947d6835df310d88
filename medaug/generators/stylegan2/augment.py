"""ADA: differentiable augmentation of every image the discriminator sees, with an
adaptive probability p (Karras et al. 2020, "Training Generative Adversarial Networks
with Limited Data", the 'bgc' pipeline: blit + geometric + colour).

Each op is applied to each sample independently with probability ``p`` (times the
op's multiplier, 1 by default). Geometric ops (x-flip, 90-degree rotation, integer
translation, isotropic scaling, arbitrary rotation, anisotropic scaling, fractional
translation) are composed into one inverse affine matrix per sample and executed
with a single bilinear ``grid_sample`` whose padding reflects the image at its
borders (grid_sample.py's, twice differentiable on CUDA too). Colour ops (brightness, contrast, luma flip, hue rotation, saturation) are
composed into one 4x4 homogeneous colour matrix per sample. Everything is
differentiable w.r.t. the images (second order too: R1 is taken through it), so D
trains on augmented reals *and* fakes while G learns the un-augmented distribution
(augmentations that are invertible in distribution do not leak, ADA section 2).

Images are float in [-1, 1]. One-channel (grayscale) images: the colour matrix is
collapsed as for an image whose three channels are equal, so brightness and
contrast act as usual, the luma flip becomes a negation about 0 (mid-grey), and hue
rotation and saturation are identities (grey lies on the luma axis they rotate
about / scale away from) and are skipped. Only 1 or 3 channels are accepted.

Differences from the reference implementation: no 2x wavelet (sym6) supersampling
around the resampling, i.e. bilinear ``grid_sample`` at the image resolution with
reflection padding (slightly more aliasing for large rotations/scales); the
image-filtering, additive-noise and cutout groups of ADA are not implemented.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from medaug.generators.stylegan2.grid_sample import grid_sample
from medaug.generators.stylegan2.rng import BatchRandom

GEOMETRIC_OPS = ("xflip", "rotate90", "xint", "scale", "rotate", "aniso", "xfrac")
COLOUR_OPS = ("brightness", "contrast", "lumaflip", "hue", "saturation")
OPS = GEOMETRIC_OPS + COLOUR_OPS
PIPELINES: dict[str, tuple[str, ...]] = {
    "blit": ("xflip", "rotate90", "xint"),
    "geom": ("scale", "rotate", "aniso", "xfrac"),
    "color": COLOUR_OPS,
    "bgc": OPS,
}


# ----------------------------------------------------------------------------- matrices


def _matrix(rows: list[list[torch.Tensor | float]], n: int, device: torch.device) -> torch.Tensor:
    """Stack a matrix of scalars/(N,) tensors into (N, R, C)."""
    out = [[torch.as_tensor(e, dtype=torch.float32, device=device).expand(n) for e in row] for row in rows]
    return torch.stack([torch.stack(row, dim=-1) for row in out], dim=-2)


def translate2d(tx: torch.Tensor, ty: torch.Tensor) -> torch.Tensor:
    n = tx.shape[0]
    return _matrix([[1, 0, tx], [0, 1, ty], [0, 0, 1]], n, tx.device)


def scale2d(sx: torch.Tensor, sy: torch.Tensor) -> torch.Tensor:
    n = sx.shape[0]
    return _matrix([[sx, 0, 0], [0, sy, 0], [0, 0, 1]], n, sx.device)


def rotate2d(theta: torch.Tensor) -> torch.Tensor:
    c, s = torch.cos(theta), torch.sin(theta)
    return _matrix([[c, -s, 0], [s, c, 0], [0, 0, 1]], theta.shape[0], theta.device)


def translate3d(t: torch.Tensor) -> torch.Tensor:
    return _matrix([[1, 0, 0, t], [0, 1, 0, t], [0, 0, 1, t], [0, 0, 0, 1]], t.shape[0], t.device)


def scale3d(s: torch.Tensor) -> torch.Tensor:
    return _matrix([[s, 0, 0, 0], [0, s, 0, 0], [0, 0, s, 0], [0, 0, 0, 1]], s.shape[0], s.device)


def rotate3d(axis: tuple[float, float, float], theta: torch.Tensor) -> torch.Tensor:
    """Rotation by theta about the unit ``axis`` (Rodrigues), homogeneous 4x4."""
    x, y, z = axis
    c, s = torch.cos(theta), torch.sin(theta)
    k = 1 - c
    return _matrix([
        [x * x * k + c, x * y * k - z * s, x * z * k + y * s, 0],
        [y * x * k + z * s, y * y * k + c, y * z * k - x * s, 0],
        [z * x * k - y * s, z * y * k + x * s, z * z * k + c, 0],
        [0, 0, 0, 1],
    ], theta.shape[0], theta.device)


LUMA_AXIS = (1 / math.sqrt(3),) * 3


# ----------------------------------------------------------------------------- pipeline


class AugmentPipe(nn.Module):
    """The ADA augmentation pipeline with a global strength ``p`` (a buffer, saved with the state).

    ``ops``: a pipeline name in ``PIPELINES`` or {op name: probability multiplier}.
    Ranges follow ADA's defaults: integer translation up to 1/8 of the image, log2
    std 0.2 for scaling, full-circle rotation, fractional translation std 1/8,
    brightness std 0.2, contrast log2 std 0.5, full-circle hue, saturation log2 std 1.
    """

    def __init__(self, ops: str | Mapping[str, float] = "bgc", p: float = 0.0, *, xint_max: float = 0.125,
                 scale_std: float = 0.2, rotate_max: float = 1.0, aniso_std: float = 0.2, xfrac_std: float = 0.125,
                 brightness_std: float = 0.2, contrast_std: float = 0.5, hue_max: float = 1.0,
                 saturation_std: float = 1.0) -> None:
        super().__init__()
        if isinstance(ops, str):
            if ops not in PIPELINES:
                raise ValueError(f"augment pipeline {ops!r}; expected one of {sorted(PIPELINES)}")
            ops = {name: 1.0 for name in PIPELINES[ops]}
        unknown = set(ops) - set(OPS)
        if unknown:
            raise ValueError(f"unknown augmentation ops {sorted(unknown)}; expected some of {OPS}")
        self.mult = {name: float(ops.get(name, 0.0)) for name in OPS}
        self.xint_max, self.scale_std, self.rotate_max = xint_max, scale_std, rotate_max
        self.aniso_std, self.xfrac_std = aniso_std, xfrac_std
        self.brightness_std, self.contrast_std = brightness_std, contrast_std
        self.hue_max, self.saturation_std = hue_max, saturation_std
        self.register_buffer("p", torch.tensor(float(p)))

    def _gate(self, rng: BatchRandom, n: int, prob: float, value: torch.Tensor,
              neutral: float) -> torch.Tensor:
        """Keep ``value`` per sample with probability ``prob``, else the neutral value."""
        keep = rng.rand(n) < prob
        return torch.where(keep, value, torch.full_like(value, neutral))

    def geometric_matrix(self, n: int, h: int, w: int, rng: BatchRandom) -> torch.Tensor | None:
        """Per-sample inverse transform (output pixel -> input pixel, centred pixel units)."""
        p = float(self.p)
        m = self.mult
        g = None

        def chain(a: torch.Tensor | None, b: torch.Tensor) -> torch.Tensor:
            return b if a is None else a @ b

        if m["xflip"] > 0:
            i = torch.floor(rng.rand(n) * 2)
            i = self._gate(rng, n, m["xflip"] * p, i, 0.0)
            g = chain(g, scale2d(1 - 2 * i, torch.ones_like(i)))
        if m["rotate90"] > 0:
            i = torch.floor(rng.rand(n) * 4)
            i = self._gate(rng, n, m["rotate90"] * p, i, 0.0)
            g = chain(g, rotate2d(-math.pi / 2 * i))
        if m["xint"] > 0:
            t = (rng.rand(n, 2) * 2 - 1) * self.xint_max
            keep = rng.rand(n, 1) < m["xint"] * p
            t = torch.where(keep, t, torch.zeros_like(t))
            g = chain(g, translate2d(-torch.round(t[:, 0] * w), -torch.round(t[:, 1] * h)))
        if m["scale"] > 0:
            s = torch.exp2(rng.randn(n) * self.scale_std)
            s = self._gate(rng, n, m["scale"] * p, s, 1.0)
            g = chain(g, scale2d(1 / s, 1 / s))
        # Rotation is applied before and after the anisotropic scaling (so that the
        # stretch axis is random); P(pre or post) = p.
        p_rot = 1 - math.sqrt(max(0.0, 1 - m["rotate"] * p))
        if m["rotate"] > 0:
            theta = (rng.rand(n) * 2 - 1) * math.pi * self.rotate_max
            theta = self._gate(rng, n, p_rot, theta, 0.0)
            g = chain(g, rotate2d(-theta))
        if m["aniso"] > 0:
            s = torch.exp2(rng.randn(n) * self.aniso_std)
            s = self._gate(rng, n, m["aniso"] * p, s, 1.0)
            g = chain(g, scale2d(1 / s, s))
        if m["rotate"] > 0:
            theta = (rng.rand(n) * 2 - 1) * math.pi * self.rotate_max
            theta = self._gate(rng, n, p_rot, theta, 0.0)
            g = chain(g, rotate2d(-theta))
        if m["xfrac"] > 0:
            t = rng.randn(n, 2) * self.xfrac_std
            keep = rng.rand(n, 1) < m["xfrac"] * p
            t = torch.where(keep, t, torch.zeros_like(t))
            g = chain(g, translate2d(-t[:, 0] * w, -t[:, 1] * h))
        return g

    def colour_matrix(self, n: int, channels: int, rng: BatchRandom) -> torch.Tensor | None:
        """Per-sample 4x4 colour transform (colour_out = C @ colour_in), composed left to right."""
        p = float(self.p)
        m = self.mult
        c = None

        def chain(a: torch.Tensor | None, b: torch.Tensor) -> torch.Tensor:
            return b if a is None else b @ a

        if m["brightness"] > 0:
            b = rng.randn(n) * self.brightness_std
            c = chain(c, translate3d(self._gate(rng, n, m["brightness"] * p, b, 0.0)))
        if m["contrast"] > 0:
            s = torch.exp2(rng.randn(n) * self.contrast_std)
            c = chain(c, scale3d(self._gate(rng, n, m["contrast"] * p, s, 1.0)))
        v = torch.tensor([*LUMA_AXIS, 0.0], device=rng.device)
        vv = torch.outer(v, v)
        eye = torch.eye(4, device=rng.device)
        if m["lumaflip"] > 0:
            i = torch.floor(rng.rand(n) * 2)
            i = self._gate(rng, n, m["lumaflip"] * p, i, 0.0)
            c = chain(c, eye - 2 * vv * i.reshape(n, 1, 1))  # Householder reflection of the luma axis
        if m["hue"] > 0 and channels > 1:
            theta = (rng.rand(n) * 2 - 1) * math.pi * self.hue_max
            c = chain(c, rotate3d(LUMA_AXIS, self._gate(rng, n, m["hue"] * p, theta, 0.0)))
        if m["saturation"] > 0 and channels > 1:
            s = torch.exp2(rng.randn(n) * self.saturation_std)
            s = self._gate(rng, n, m["saturation"] * p, s, 1.0)
            c = chain(c, vv + (eye - vv) * s.reshape(n, 1, 1))
        return c

    def forward(self, images: torch.Tensor, rng: BatchRandom | None = None) -> torch.Tensor:
        n, ch, h, w = images.shape
        if ch not in (1, 3):
            raise ValueError(f"ADA augments 1- or 3-channel images, got {ch}")
        if float(self.p) <= 0.0:
            return images  # exact identity, no draws
        rng = rng if rng is not None else BatchRandom(torch.default_generator)
        dev = images.device

        g = self.geometric_matrix(n, h, w, rng)
        if g is not None:
            g = g.to(dev)
            # centred pixel coordinates -> normalised [-1, 1] (align_corners=False)
            to_norm = scale2d(torch.full((n,), 2.0 / w, device=dev), torch.full((n,), 2.0 / h, device=dev))
            from_norm = scale2d(torch.full((n,), w / 2.0, device=dev), torch.full((n,), h / 2.0, device=dev))
            theta = (to_norm @ g @ from_norm)[:, :2, :]
            grid = F.affine_grid(theta.to(images.dtype), [n, ch, h, w], align_corners=False)
            images = grid_sample(images, grid, padding_mode="reflection", align_corners=False)

        c = self.colour_matrix(n, ch, rng)
        if c is not None:
            c = c.to(device=dev, dtype=images.dtype)
            flat = images.reshape(n, ch, h * w)
            if ch == 3:
                flat = c[:, :3, :3] @ flat + c[:, :3, 3:]
            else:  # grey = three equal channels: average the output rows, sum the input columns
                c1 = c[:, :3, :].mean(dim=1)  # (N, 4)
                flat = flat * c1[:, :3].sum(dim=1).reshape(n, 1, 1) + c1[:, 3].reshape(n, 1, 1)
            images = flat.reshape(n, ch, h, w)
        return images


class AdaptiveP:
    """ADA's overfitting heuristic r_t = E[sign(D(real))] and the p controller.

    Every ``interval`` minibatches p moves by sign(r_t - target) * (batch * interval)
    / (ada_kimg * 1000), i.e. it can go from 0 to 1 in ``ada_kimg`` thousand images;
    p is kept in [0, 1]. ``add`` takes the sum of signs and the count (already summed
    over DDP ranks by the caller).
    """

    def __init__(self, target: float = 0.6, interval: int = 4, ada_kimg: float = 500.0) -> None:
        if interval < 1 or ada_kimg <= 0:
            raise ValueError("ada interval must be >= 1 and ada_kimg > 0")
        self.target, self.interval, self.ada_kimg = target, interval, ada_kimg
        self.sign_sum = 0.0
        self.count = 0
        self.steps = 0
        self.last_rt: float | None = None

    def add(self, sign_sum: float, count: int) -> None:
        self.sign_sum += float(sign_sum)
        self.count += int(count)

    def step(self, p: float, batch_size: int) -> float:
        """Call once per minibatch; returns the (possibly adjusted) p."""
        self.steps += 1
        if self.steps % self.interval or self.count == 0:
            return p
        rt = self.sign_sum / self.count
        self.last_rt = rt
        self.sign_sum, self.count = 0.0, 0
        adjust = math.copysign(1.0, rt - self.target) if rt != self.target else 0.0
        adjust *= batch_size * self.interval / (self.ada_kimg * 1000.0)
        return min(max(p + adjust, 0.0), 1.0)

    def state_dict(self) -> dict[str, float | int | None]:
        return {"sign_sum": self.sign_sum, "count": self.count, "steps": self.steps, "last_rt": self.last_rt}

    def load_state_dict(self, state: Mapping[str, float | int | None]) -> None:
        self.sign_sum = float(state["sign_sum"] or 0.0)
        self.count = int(state["count"] or 0)
        self.steps = int(state["steps"] or 0)
        self.last_rt = None if state["last_rt"] is None else float(state["last_rt"])
