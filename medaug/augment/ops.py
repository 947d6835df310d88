"""Per-sample, vectorised image ops on uint8 batches N x C x H x W.

Each op takes per-sample parameters as tensors of length N and works on the whole
batch at once (masks, blend factors, one affine matrix per sample): no Python loop
over samples, no PIL. The colour ops reproduce the arithmetic of
`torchvision.transforms.v2.functional` (adjust_sharpness, autocontrast, adjust_hue,
horizontal_flip) on uint8 tensors, which the tests check image by image; the
difference is only that the factor may differ from sample to sample.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

_MAX = 255.0


def _per_sample(values: torch.Tensor, n: int, like: torch.Tensor) -> torch.Tensor:
    """A length-n parameter as an (N, 1, 1, 1) float32 tensor on `like`'s device."""
    values = torch.as_tensor(values, dtype=torch.float32, device=like.device)
    if values.ndim == 0:
        values = values.expand(n)
    if values.shape != (n,):
        raise ValueError(f"expected {n} per-sample values, got shape {tuple(values.shape)}")
    return values.view(n, 1, 1, 1)


def _check_mask(mask: torch.Tensor, n: int) -> torch.Tensor:
    if mask.shape != (n,) or mask.dtype != torch.bool:
        raise ValueError(f"expected a bool mask of shape ({n},), got {mask.dtype} {tuple(mask.shape)}")
    return mask


def _per_sample_mask(mask: torch.Tensor, n: int) -> torch.Tensor:
    """A bool (N,) mask as an (N, 1, 1, 1) float32 0/1 tensor, for exact blends of integer-valued floats."""
    return _check_mask(mask, n).to(torch.float32).view(n, 1, 1, 1)


def _blend_where(mask: torch.Tensor, new: torch.Tensor, old: torch.Tensor) -> torch.Tensor:
    """`torch.where(mask, new, old)` per sample, as old + m * (new - old): exact for 0/1 masks and
    integer-valued floats, and several times faster than a broadcast `torch.where` on CPU."""
    return new.sub_(old).mul_(mask).add_(old)


# The float32 kernels below work on "integer-valued" float batches (pixel values 0..255
# held as floats) and return the same, truncated exactly where torchvision's uint8 ops
# truncate, so a chain of them equals the chain of uint8 ops without the conversions.


def sharpness_float(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """adjust_sharpness on an integer-valued float batch (see `adjust_sharpness`); returns a new tensor.

    The 3x3 sums run on the flattened batch (shifts by 1 and by W), so every add is
    one contiguous loop; sums that straddle a row or an image land only on border
    pixels, which the blend weight map (0 on the border) leaves unchanged.
    """
    n, c, h, w = x.shape
    if h <= 2 or w <= 2:
        return x.clone()
    # 1 - factor in float64, then float32: torchvision computes its blend weight the same way
    weight = _per_sample(1.0 - torch.as_tensor(factor, dtype=torch.float64), n, x)
    interior = torch.zeros(1, 1, h, w, device=x.device)
    interior[..., 1:-1, 1:-1] = 1.0
    weight_map = interior * weight  # (N, 1, H, W)
    flat = x.reshape(-1)
    rows = torch.empty_like(flat)
    torch.add(flat[:-2], flat[1:-1], out=rows[1:-1]).add_(flat[2:])
    rows[0] = rows[-1] = 0.0
    box = flat * 4.0  # the kernel's centre weight 5 = 4 + the centre's own share of the 3x3 sum
    box[w:-w].add_(rows[: -2 * w]).add_(rows[w:-w]).add_(rows[2 * w :])
    blurred = box.div_(13.0).round_().view(n, c, h, w)
    # x + (1 - factor) * (blurred - x) inside; addcmul rounds like torchvision's fused
    # `add_(..., alpha=)`, where a separate mul and add would not
    return torch.addcmul(x, blurred.sub_(x), weight_map).clamp_(0.0, _MAX).trunc_()


def autocontrast_float(x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """autocontrast on an integer-valued float batch (see `autocontrast`); returns a new tensor.

    Samples outside `mask` (and flat channels) get offset 0 and scale 1, which
    leaves them exactly as they are without a separate blend.
    """
    low = x.amin(dim=(-2, -1), keepdim=True)
    high = x.amax(dim=(-2, -1), keepdim=True)
    keep = high == low
    if mask is not None:
        keep |= ~_check_mask(mask, x.shape[0]).view(-1, 1, 1, 1)
    inv_scale = (high - low).mul_(1.0 / _MAX).masked_fill_(keep, 1.0)
    low = low.masked_fill_(keep, 0.0)
    return (x - low).div_(inv_scale).clamp_(0.0, _MAX).trunc_()


def hue_float(x: torch.Tensor, hue_shift: torch.Tensor) -> torch.Tensor:
    """adjust_hue on an integer-valued float RGB batch (see `adjust_hue`); returns a new tensor.

    Works in the 0..255 domain. Hue follows Pillow's (and torchvision's) RGB -> HSV
    formula, as h6 in [0, 6). Since a hue turn keeps max (v) and min (m) of each
    pixel, HSV -> RGB reduces to the closed form channel = m + (v - m) * ramp(h6),
    with ramps clamp(|h6-3|-1), clamp(2-|h6-2|), clamp(2-|h6-4|) (to [0, 1]) for
    R, G, B: the same v/p/q/t torchvision picks from its sector table, in fewer
    ops. Because pixel values are integers, "v != r" is clamp(v - r, 0, 1), which
    keeps every step in cheap float arithmetic (bool masks and `torch.where` are
    several times slower on CPU). The float -> uint8 step is torchvision's
    (x * 255.999 / 255, truncated). Results differ from torchvision's by at most
    one grey level, on about one pixel in 10^5.
    """
    n = x.shape[0]
    shift6 = _per_sample(hue_shift, n, x).view(n, 1, 1) * 6.0
    r, g, b = x.unbind(dim=1)
    v = torch.maximum(torch.maximum(r, g), b)
    m = torch.minimum(torch.minimum(r, g), b)
    spread = v - m
    not_r = (v - r).clamp_(0.0, 1.0)  # 1 where red is not the maximum
    not_g = (v - g).clamp_(0.0, 1.0)
    # Pillow's precedence when channels tie: red, then green, then blue
    from_r = g - b
    from_g = (b - r).add_(spread, alpha=2.0)
    from_b = (r - g).add_(spread, alpha=4.0)
    numerator = from_b.sub_(from_g).mul_(not_g).add_(from_g).sub_(from_r).mul_(not_r).add_(from_r)
    grey = spread.clamp(0.0, 1.0).neg_().add_(1.0)  # 1 where the pixel has no hue (spread 0)
    h6 = numerator.div_(grey.add_(spread)).add_(shift6)
    h6 = h6.sub_(torch.floor(h6 * (1.0 / 6.0)).mul_(6.0))  # wrap into [0, 6)
    red = (h6 - 3.0).abs_().sub_(1.0)
    green = (h6 - 2.0).abs_().neg_().add_(2.0)
    blue = h6.sub_(4.0).abs_().neg_().add_(2.0)
    out = torch.stack((red, green, blue), dim=1).clamp_(0.0, 1.0)
    out = out.mul_(spread.unsqueeze(1)).add_(m.unsqueeze(1))
    return out.mul_((_MAX + 1.0 - 1e-3) / _MAX).trunc_()


def flip_float(x: torch.Tensor, mask: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Mirror the samples where `mask` is True, on a float batch; returns a new tensor."""
    return _blend_where(_per_sample_mask(mask, x.shape[0]), x.flip(dim), x)


def adjust_sharpness(images: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """torchvision's adjust_sharpness on a uint8 batch, with one factor per sample.

    The degenerate image is the 3x3 smoothing [[1,1,1],[1,5,1],[1,1,1]]/13 of the
    interior, rounded; the one-pixel border is kept as is; the output blends
    image and degenerate by `factor` (1 = unchanged, 0 = smoothed, 2 = sharpened),
    clamps and truncates to uint8. `factor` is an (N,) tensor; give it as float64
    for bit-exact agreement with torchvision at non-integer factors (torchvision
    forms 1 - factor in double precision). The 3x3 sum is taken as integer-valued shifted
    adds (exact in float32), so rounding agrees with torchvision's convolution:
    a sum over 13 never lands on .5.
    """
    return sharpness_float(images.to(torch.float32), factor).to(torch.uint8)


def autocontrast(images: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """torchvision's autocontrast (per image, per channel min/max stretch) where `mask` is True.

    A channel whose min equals its max is left unchanged, as in torchvision.
    """
    return autocontrast_float(images.to(torch.float32), mask).to(torch.uint8)


def adjust_hue(images: torch.Tensor, hue_shift: torch.Tensor) -> torch.Tensor:
    """torchvision's adjust_hue with one shift per sample (a fraction of a turn, in [-0.5, 0.5]).

    RGB -> HSV, hue += shift (mod 1), HSV -> RGB, then torchvision's float -> uint8
    conversion (x * 255.999, truncated). Single-channel images are returned unchanged,
    as in torchvision (a grey image has no hue).
    """
    c = images.shape[1]
    if c == 1:
        return images.clone()
    if c != 3:
        raise ValueError(f"adjust_hue needs 1 or 3 channels, got {c}")
    return hue_float(images.to(torch.float32), hue_shift).to(torch.uint8)


def flip(images: torch.Tensor, mask: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Mirror the samples where `mask` is True (dim -1: horizontal, -2: vertical)."""
    return flip_float(images.to(torch.float32), mask, dim).to(torch.uint8)


def keras_affine_matrices(
    height: int,
    width: int,
    *,
    rotation_deg: torch.Tensor,
    shift_rows: torch.Tensor,
    shift_cols: torch.Tensor,
    shear_deg: torch.Tensor,
    zoom_rows: torch.Tensor,
    zoom_cols: torch.Tensor,
    flip_cols: torch.Tensor,
    flip_rows: torch.Tensor,
) -> torch.Tensor:
    """Per-sample (N, 2, 3) `affine_grid` matrices for Keras ImageDataGenerator's transform.

    Keras (keras_preprocessing `apply_affine_transform`) maps each output pixel
    (row, col), taken about the image centre, to the input pixel
    rotation @ shift @ shear @ zoom @ (row, col, 1), then flips the result
    (`flip_axis`). Here that matrix is built in Keras' (row, col) pixel order,
    reordered to (x=col, y=row) and rescaled to `affine_grid`'s normalised
    coordinates (align_corners=False: the centre is 0, pixel centres map exactly),
    and the flips are folded in by mirroring the output coordinates, so one
    `grid_sample` does everything. Shifts are in pixels, angles in degrees.
    """
    theta = torch.deg2rad(rotation_deg)
    shear = torch.deg2rad(shear_deg)
    cos, sin = torch.cos(theta), torch.sin(theta)
    sh_a, sh_b = -torch.sin(shear), torch.cos(shear)
    # rotation @ shear @ zoom, in (row, col) order:
    # R = [[cos, -sin], [sin, cos]], Sh = [[1, -sin(s)], [0, cos(s)]], Z = diag(zr, zc)
    l_rr = cos * zoom_rows
    l_rc = (cos * sh_a - sin * sh_b) * zoom_cols
    l_cr = sin * zoom_rows
    l_cc = (sin * sh_a + cos * sh_b) * zoom_cols
    # translation: R @ (shift_rows, shift_cols)
    t_r = cos * shift_rows - sin * shift_cols
    t_c = sin * shift_rows + cos * shift_cols
    # (x, y) = (col, row) order, normalised: pixel offset from centre = norm * (W/2, H/2).
    sx, sy = width / 2.0, height / 2.0
    a_xx = l_cc
    a_xy = l_cr * (sy / sx)
    a_yx = l_rc * (sx / sy)
    a_yy = l_rr
    # flipping the output along x multiplies the x column by -1 (same for y)
    fx = 1.0 - 2.0 * flip_cols.to(a_xx.dtype)
    fy = 1.0 - 2.0 * flip_rows.to(a_xx.dtype)
    row0 = torch.stack((a_xx * fx, a_xy * fy, t_c / sx), dim=-1)
    row1 = torch.stack((a_yx * fx, a_yy * fy, t_r / sy), dim=-1)
    return torch.stack((row0, row1), dim=1)


def warp(
    images: torch.Tensor,
    matrices: torch.Tensor,
    *,
    gain: torch.Tensor | None = None,
    mode: str = "bilinear",
    padding_mode: str = "border",
) -> torch.Tensor:
    """Resample each image through its (2, 3) matrix, optionally scale by a per-sample gain, round to uint8.

    `padding_mode="border"` repeats the edge pixel, which is Keras' default
    fill_mode "nearest". The gain (brightness) is applied to the float result
    before the single rounding.
    """
    n, c, h, w = images.shape
    grid = F.affine_grid(matrices.to(torch.float32), [n, c, h, w], align_corners=False)
    out = F.grid_sample(images.to(torch.float32), grid, mode=mode, padding_mode=padding_mode, align_corners=False)
    if gain is not None:
        out = out.mul_(_per_sample(gain, n, images))
    return out.round_().clamp_(0.0, _MAX).to(torch.uint8)


def translate(images: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor) -> torch.Tensor:
    """Each image moved by its own whole-pixel offset (dy down, dx right), the uncovered
    border filled with the nearest edge pixels (replicate padding). One gather, any dtype."""
    n, _, h, w = images.shape
    rows = (torch.arange(h, device=images.device) - dy.view(n, 1)).clamp_(0, h - 1)  # (N, H) source rows
    cols = (torch.arange(w, device=images.device) - dx.view(n, 1)).clamp_(0, w - 1)  # (N, W) source columns
    batch = torch.arange(n, device=images.device).view(n, 1, 1)
    return images.permute(0, 2, 3, 1)[batch, rows.view(n, h, 1), cols.view(n, 1, w)].permute(0, 3, 1, 2).contiguous()


def random_translate(images: torch.Tensor, max_shift: int, generator: torch.Generator) -> torch.Tensor:
    """`translate` by offsets drawn uniformly from [-max_shift, max_shift] per image and axis."""
    if max_shift <= 0:
        return images
    n = len(images)
    dy, dx = torch.randint(-max_shift, max_shift + 1, (2, n), generator=generator, device=generator.device)
    return translate(images, dy, dx)
