"""StyleGAN2 networks: a conditional mapping network, a skip-architecture synthesis
network with modulated/demodulated convolutions and per-layer noise, and a residual
discriminator with a minibatch-stddev layer and projection conditioning.

Follows Karras et al. 2020, "Analyzing and Improving the Image Quality of StyleGAN"
(StyleGAN2; config E/F: weight demodulation, skip G, residual D, lazy regularisation)
and the conditional variant of Karras et al. 2020, "Training Generative Adversarial
Networks with Limited Data" (ADA): the class vector is embedded and concatenated to z
in the mapping network, and the discriminator projects its last features onto a
mapped class vector (Miyato & Koyama 2018). Used by seed 003 (StyleGAN2-ADA on
COVID-19 radiographs). Written for medaug from the papers; the reference code
(NVlabs/stylegan2-ada-pytorch) was read for detail only.

Choices that differ from the reference, and why:
- resampling is a plain-PyTorch FIR (``upfirdn2d``) with the [1, 3, 3, 1] filter,
  no custom CUDA kernels (one code path on CPU and GPU);
- the minibatch-stddev layer groups *contiguous* samples, so a batch split over
  DDP ranks (each a multiple of the group size) computes exactly the same statistic
  as the whole batch on one process;
- every random draw in a forward pass (noise inputs) comes from a ``BatchRandom``
  (see ``rng.py``), so runs are reproducible and rank-splits are exact.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from medaug.generators.stylegan2.rng import BatchRandom

SQRT2 = math.sqrt(2.0)
LRELU_SLOPE = 0.2


# ----------------------------------------------------------------------------- resampling


def fir_filter(taps: tuple[float, ...] = (1.0, 3.0, 3.0, 1.0)) -> torch.Tensor:
    """Separable 2-D low-pass filter (outer product of ``taps``), normalised to sum 1."""
    t = torch.tensor(taps, dtype=torch.float32)
    f = torch.outer(t, t)
    return f / f.sum()


def upfirdn2d(x: torch.Tensor, f: torch.Tensor, up: int = 1, down: int = 1,
              pad: tuple[int, int, int, int] = (0, 0, 0, 0), gain: float = 1.0) -> torch.Tensor:
    """Upsample by zero insertion, pad (x0, x1, y0, y1; negative crops), FIR filter, decimate.

    The standard polyphase resampling primitive of StyleGAN2, written with a
    depthwise ``conv2d`` (the filter is flipped so this is a true convolution).
    """
    n, c, h, w = x.shape
    if up > 1:
        x = x.reshape(n, c, h, 1, w, 1)
        x = F.pad(x, [0, up - 1, 0, 0, 0, up - 1])
        x = x.reshape(n, c, h * up, w * up)
    x = F.pad(x, list(pad))
    k = (f * gain).flip([0, 1]).to(dtype=x.dtype, device=x.device)
    k = k[None, None].expand(c, 1, *k.shape)
    x = F.conv2d(x, k, groups=c)
    if down > 1:
        x = x[:, :, ::down, ::down]
    return x


def upsample2d(x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """2x upsampling with the FIR filter ``f`` (4 taps): H x W -> 2H x 2W."""
    return upfirdn2d(x, f, up=2, pad=(2, 1, 2, 1), gain=4.0)


def conv_resample(x: torch.Tensor, w: torch.Tensor, f: torch.Tensor | None, up: int = 1, down: int = 1,
                  groups: int = 1) -> torch.Tensor:
    """'Same' convolution with odd kernel ``w`` combined with 2x up- or downsampling.

    up=2: transposed convolution with stride 2, then FIR blur (output 2H).
    down=2: FIR blur, then strided convolution (output H/2).
    """
    k = w.shape[-1]
    if up == 1 and down == 1:
        return F.conv2d(x, w, padding=k // 2, groups=groups)
    assert f is not None and f.shape[-1] == 4, "resampling uses a 4-tap filter"
    if down == 2:
        p = (k + 1) // 2  # filter (4 taps) + kernel (k taps) then stride 2 keeps H/2
        x = upfirdn2d(x, f, pad=(p, p, p, p))
        return F.conv2d(x, w, stride=2, groups=groups)
    if up == 2:
        out_per_group, in_per_group = w.shape[0] // groups, w.shape[1]
        wt = w.reshape(groups, out_per_group, in_per_group, k, k).transpose(1, 2)
        wt = wt.reshape(groups * in_per_group, out_per_group, k, k)
        x = F.conv_transpose2d(x, wt, stride=2, groups=groups)  # (H - 1) * 2 + k
        q = (5 - k) // 2
        return upfirdn2d(x, f, pad=(q, q, q, q), gain=4.0)
    raise ValueError(f"unsupported resampling up={up} down={down}")


def bias_act(x: torch.Tensor, bias: torch.Tensor | None, activation: str, gain: float = 1.0,
             clamp: float | None = None) -> torch.Tensor:
    """Add a per-channel bias, apply 'linear' or 'lrelu' (0.2), scale by gain, clamp."""
    if bias is not None:
        shape = [1, -1] + [1] * (x.ndim - 2)
        x = x + bias.to(x.dtype).reshape(shape)
    if activation == "lrelu":
        x = F.leaky_relu(x, LRELU_SLOPE)
    elif activation != "linear":
        raise ValueError(f"activation {activation!r}")
    if gain != 1.0:
        x = x * gain
    if clamp is not None:
        x = x.clamp(-clamp, clamp)
    return x


# ----------------------------------------------------------------------------- layers


class FullyConnected(nn.Module):
    """Dense layer with equalised learning rate (weights ~ N(0, 1), scaled at run time)."""

    def __init__(self, in_features: int, out_features: int, activation: str = "linear",
                 bias_init: float = 0.0, lr_multiplier: float = 1.0) -> None:
        super().__init__()
        self.activation = activation
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_multiplier)
        self.bias = nn.Parameter(torch.full((out_features,), float(bias_init)))
        self.weight_gain = lr_multiplier / math.sqrt(in_features)
        self.bias_gain = lr_multiplier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight.to(x.dtype) * self.weight_gain
        b = self.bias.to(x.dtype) * self.bias_gain
        if self.activation == "linear":
            return F.linear(x, w, b)
        return bias_act(F.linear(x, w), b, self.activation, gain=SQRT2)


class Conv2dLayer(nn.Module):
    """Equalised-lr convolution with optional 2x downsampling (discriminator)."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, *, bias: bool = True,
                 activation: str = "lrelu", down: int = 1, conv_clamp: float | None = None) -> None:
        super().__init__()
        self.activation = activation
        self.down = down
        self.conv_clamp = conv_clamp
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel, kernel))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.weight_gain = 1.0 / math.sqrt(in_channels * kernel * kernel)
        self.act_gain = SQRT2 if activation == "lrelu" else 1.0
        self.register_buffer("blur", fir_filter(), persistent=False)

    def forward(self, x: torch.Tensor, gain: float = 1.0) -> torch.Tensor:
        w = self.weight.to(x.dtype) * self.weight_gain
        x = conv_resample(x, w, self.blur, down=self.down)
        clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        return bias_act(x, self.bias, self.activation, gain=self.act_gain * gain, clamp=clamp)


def normalize_2nd_moment(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    return x * (x.square().mean(dim=1, keepdim=True) + eps).rsqrt()


class MappingNetwork(nn.Module):
    """z (+ embedded class vector c) -> w, an MLP of ``num_layers`` lrelu layers at lr x0.01.

    Conditional: c is embedded by one dense layer to w_dim features, both z and the
    embedding are normalised to unit second moment and concatenated (ADA's
    conditional StyleGAN2). With ``num_ws`` set the output is broadcast to
    (N, num_ws, w_dim); a running mean of w (``w_avg``) supports truncation.
    """

    def __init__(self, z_dim: int, c_dim: int, w_dim: int, num_ws: int | None, num_layers: int = 8,
                 lr_multiplier: float = 0.01, w_avg_beta: float | None = 0.995) -> None:
        super().__init__()
        if z_dim == 0 and c_dim == 0:
            raise ValueError("mapping network needs z_dim > 0 or c_dim > 0")
        self.z_dim, self.c_dim, self.w_dim, self.num_ws = z_dim, c_dim, w_dim, num_ws
        self.w_avg_beta = w_avg_beta
        self.embed = FullyConnected(c_dim, w_dim) if c_dim > 0 else None
        dims = [z_dim + (w_dim if c_dim > 0 else 0)] + [w_dim] * num_layers
        self.layers = nn.ModuleList(
            FullyConnected(dims[i], dims[i + 1], activation="lrelu", lr_multiplier=lr_multiplier)
            for i in range(num_layers)
        )
        if w_avg_beta is not None:
            self.register_buffer("w_avg", torch.zeros(w_dim))

    def forward(self, z: torch.Tensor | None, c: torch.Tensor | None, truncation_psi: float = 1.0,
                update_w_avg: bool = False) -> torch.Tensor:
        device = (z if z is not None else c).device  # type: ignore[union-attr]
        with torch.autocast(device_type=device.type, enabled=False):  # the mapping always runs in fp32
            return self._forward(z, c, truncation_psi, update_w_avg)

    def _forward(self, z: torch.Tensor | None, c: torch.Tensor | None, truncation_psi: float,
                 update_w_avg: bool) -> torch.Tensor:
        parts = []
        if self.z_dim > 0:
            assert z is not None
            parts.append(normalize_2nd_moment(z.to(torch.float32)))
        if self.c_dim > 0:
            assert c is not None and self.embed is not None
            parts.append(normalize_2nd_moment(self.embed(c.to(torch.float32))))
        x = torch.cat(parts, dim=1) if len(parts) > 1 else parts[0]
        for layer in self.layers:
            x = layer(x)
        if update_w_avg and self.w_avg_beta is not None:
            self.w_avg.copy_(x.detach().mean(dim=0).lerp(self.w_avg, self.w_avg_beta))
        if self.num_ws is not None:
            x = x.unsqueeze(1).repeat(1, self.num_ws, 1)
        if truncation_psi != 1.0:
            assert self.w_avg_beta is not None
            x = self.w_avg.lerp(x, truncation_psi)
        return x


def modulated_conv2d(x: torch.Tensor, weight: torch.Tensor, styles: torch.Tensor, *,
                     noise: torch.Tensor | None = None, up: int = 1, demodulate: bool = True,
                     blur: torch.Tensor | None = None, fused: bool = False) -> torch.Tensor:
    """StyleGAN2's modulated convolution: scale input channels by per-sample styles,
    convolve, then demodulate (divide each output channel by the norm of its
    effective weights) so activations keep unit variance without AdaIN.

    ``fused=False`` (training) scales activations instead of weights, one shared conv
    for the whole batch; ``fused=True`` builds per-sample weights and runs a grouped
    conv. Both compute the same function.
    """
    n = x.shape[0]
    out_ch, in_ch, kh, kw = weight.shape
    weight = weight.to(x.dtype)
    styles = styles.to(x.dtype)
    dcoefs = None
    if demodulate:
        # |w'_{n,o}|^2 = sum_i s_{n,i}^2 sum_kk w_{o,i,kk}^2: one (N, in) x (in, out) product in
        # fp32 instead of materialising the N x out x in x k x k modulated weights
        wsq = weight.float().square().sum(dim=[2, 3])  # (out, in)
        dcoefs = (styles.float().square() @ wsq.t() + 1e-8).rsqrt().to(x.dtype)  # (N, out)
    if not fused:
        x = x * styles.reshape(n, in_ch, 1, 1)
        x = conv_resample(x, weight, blur, up=up)
        if dcoefs is not None:
            x = x * dcoefs.reshape(n, out_ch, 1, 1)
        if noise is not None:
            x = x + noise.to(x.dtype)
        return x
    wmod = weight.unsqueeze(0) * styles.reshape(n, 1, in_ch, 1, 1)
    if dcoefs is not None:
        wmod = wmod * dcoefs.reshape(n, out_ch, 1, 1, 1)
    x = x.reshape(1, n * in_ch, *x.shape[2:])
    x = conv_resample(x, wmod.reshape(n * out_ch, in_ch, kh, kw), blur, up=up, groups=n)
    x = x.reshape(n, out_ch, *x.shape[2:])
    if noise is not None:
        x = x + noise.to(x.dtype)
    return x


class SynthesisLayer(nn.Module):
    """Modulated 3x3 conv (+ optional 2x up), per-pixel noise with a learned strength, lrelu."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int, *,
                 up: int = 1, conv_clamp: float | None = None) -> None:
        super().__init__()
        self.resolution, self.up, self.conv_clamp = resolution, up, conv_clamp
        self.affine = FullyConnected(w_dim, in_channels, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, 3, 3))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.noise_strength = nn.Parameter(torch.zeros([]))
        self.register_buffer("noise_const", torch.randn(resolution, resolution))
        self.register_buffer("blur", fir_filter(), persistent=False)

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise_mode: str = "random",
                rng: BatchRandom | None = None, fused: bool = False) -> torch.Tensor:
        styles = self.affine(w)
        noise = None
        n, r = x.shape[0], self.resolution
        if noise_mode == "random":
            raw = rng.randn(n, 1, r, r) if rng is not None else torch.randn(n, 1, r, r, device=x.device)
            noise = raw.to(x.device) * self.noise_strength
        elif noise_mode == "const":
            noise = self.noise_const * self.noise_strength
        elif noise_mode != "none":
            raise ValueError(f"noise_mode {noise_mode!r}")
        x = modulated_conv2d(x, self.weight, styles, noise=noise, up=self.up, blur=self.blur, fused=fused)
        return bias_act(x, self.bias, "lrelu", gain=SQRT2, clamp=self.conv_clamp)


class ToRGB(nn.Module):
    """Modulated 1x1 conv to image channels, no demodulation (output of each skip block)."""

    def __init__(self, in_channels: int, img_channels: int, w_dim: int, conv_clamp: float | None = None) -> None:
        super().__init__()
        self.conv_clamp = conv_clamp
        self.affine = FullyConnected(w_dim, in_channels, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(img_channels, in_channels, 1, 1))
        self.bias = nn.Parameter(torch.zeros(img_channels))
        self.weight_gain = 1.0 / math.sqrt(in_channels)

    def forward(self, x: torch.Tensor, w: torch.Tensor, fused: bool = False) -> torch.Tensor:
        styles = self.affine(w) * self.weight_gain
        x = modulated_conv2d(x, self.weight, styles, demodulate=False, fused=fused)
        return bias_act(x, self.bias, "linear", clamp=self.conv_clamp)


class SynthesisBlock(nn.Module):
    """One resolution of the skip generator: (const | up-conv) -> conv -> toRGB, image
    summed with the 2x-upsampled image of the previous block."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int, img_channels: int,
                 conv_clamp: float | None = None) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.resolution = resolution
        if in_channels == 0:
            self.const = nn.Parameter(torch.randn(out_channels, resolution, resolution))
            self.conv0 = None
        else:
            self.conv0 = SynthesisLayer(in_channels, out_channels, w_dim, resolution, up=2, conv_clamp=conv_clamp)
        self.conv1 = SynthesisLayer(out_channels, out_channels, w_dim, resolution, conv_clamp=conv_clamp)
        self.torgb = ToRGB(out_channels, img_channels, w_dim, conv_clamp=conv_clamp)
        self.num_conv = 1 if in_channels == 0 else 2
        self.num_torgb = 1
        self.register_buffer("blur", fir_filter(), persistent=False)

    def forward(self, x: torch.Tensor | None, img: torch.Tensor | None, ws: torch.Tensor, noise_mode: str,
                rng: BatchRandom | None, fused: bool, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        i = 0
        if self.conv0 is None:
            x = self.const.to(dtype).unsqueeze(0).expand(ws.shape[0], -1, -1, -1)
        else:
            assert x is not None
            x = self.conv0(x, ws[:, i], noise_mode, rng, fused)
            i += 1
        x = self.conv1(x, ws[:, i], noise_mode, rng, fused)
        i += 1
        y = self.torgb(x, ws[:, i], fused).to(torch.float32)
        img = y if img is None else upsample2d(img, self.blur) + y
        return x, img


def channels_at(resolution: int, channel_base: int, channel_max: int) -> int:
    """Feature maps at a resolution: channel_base / resolution, capped at channel_max."""
    return max(1, min(channel_base // resolution, channel_max))


def check_resolution(resolution: int) -> None:
    if resolution < 8 or resolution & (resolution - 1):
        raise ValueError(f"resolution must be a power of two >= 8, got {resolution}")


class SynthesisNetwork(nn.Module):
    """ws (N, num_ws, w_dim) -> image (N, C, R, R) in [-1, 1] (not clamped), skip architecture."""

    def __init__(self, w_dim: int, img_resolution: int, img_channels: int, channel_base: int, channel_max: int,
                 conv_clamp: float | None = None) -> None:
        super().__init__()
        check_resolution(img_resolution)
        self.w_dim, self.img_resolution, self.img_channels = w_dim, img_resolution, img_channels
        resolutions = [2 ** i for i in range(2, int(math.log2(img_resolution)) + 1)]
        self.blocks = nn.ModuleList()
        for res in resolutions:
            cin = 0 if res == 4 else channels_at(res // 2, channel_base, channel_max)
            cout = channels_at(res, channel_base, channel_max)
            self.blocks.append(SynthesisBlock(cin, cout, w_dim, res, img_channels, conv_clamp=conv_clamp))
        self.num_ws = sum(b.num_conv for b in self.blocks) + 1

    def forward(self, ws: torch.Tensor, noise_mode: str = "random", rng: BatchRandom | None = None,
                fused: bool = False, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        x = img = None
        w_idx = 0
        for block in self.blocks:
            block_ws = ws[:, w_idx:w_idx + block.num_conv + block.num_torgb]
            x, img = block(x, img, block_ws, noise_mode, rng, fused, dtype)
            w_idx += block.num_conv
        assert img is not None
        return img


class StyleGenerator(nn.Module):
    """Conditional StyleGAN2 generator: mapping (z, c) -> w, synthesis w -> image."""

    def __init__(self, z_dim: int, c_dim: int, w_dim: int, img_resolution: int, img_channels: int, *,
                 mapping_layers: int = 8, channel_base: int = 16384, channel_max: int = 512,
                 conv_clamp: float | None = None) -> None:
        super().__init__()
        self.z_dim, self.c_dim, self.w_dim = z_dim, c_dim, w_dim
        self.img_resolution, self.img_channels = img_resolution, img_channels
        self.synthesis = SynthesisNetwork(w_dim, img_resolution, img_channels, channel_base, channel_max,
                                          conv_clamp=conv_clamp)
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(z_dim, c_dim, w_dim, self.num_ws, num_layers=mapping_layers)

    def forward(self, z: torch.Tensor, c: torch.Tensor | None, truncation_psi: float = 1.0,
                noise_mode: str = "random", rng: BatchRandom | None = None, fused: bool = False) -> torch.Tensor:
        ws = self.mapping(z, c, truncation_psi=truncation_psi)
        return self.synthesis(ws, noise_mode=noise_mode, rng=rng, fused=fused)


# ----------------------------------------------------------------------------- discriminator


class DiscriminatorBlock(nn.Module):
    """Residual block: (fromRGB) -> conv -> conv down 2, plus a 1x1 down-2 skip, both x sqrt(1/2)."""

    def __init__(self, in_channels: int, tmp_channels: int, out_channels: int, img_channels: int,
                 conv_clamp: float | None = None) -> None:
        super().__init__()
        self.fromrgb = (Conv2dLayer(img_channels, tmp_channels, 1, conv_clamp=conv_clamp)
                        if in_channels == 0 else None)
        self.conv0 = Conv2dLayer(tmp_channels, tmp_channels, 3, conv_clamp=conv_clamp)
        self.conv1 = Conv2dLayer(tmp_channels, out_channels, 3, down=2, conv_clamp=conv_clamp)
        self.skip = Conv2dLayer(tmp_channels, out_channels, 1, bias=False, activation="linear", down=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fromrgb is not None:
            x = self.fromrgb(x)
        y = self.skip(x, gain=math.sqrt(0.5))
        x = self.conv1(self.conv0(x), gain=math.sqrt(0.5))
        return x + y


class MinibatchStd(nn.Module):
    """Append the mean (over features and pixels) of the per-group stddev of each
    feature as ``num_channels`` extra maps: lets D see sample diversity (Karras et al.
    2018). Groups are contiguous runs of ``group_size`` samples (see module doc); the
    group size shrinks to the largest divisor of the batch when it does not divide it.
    """

    def __init__(self, group_size: int = 4, num_channels: int = 1) -> None:
        super().__init__()
        self.group_size, self.num_channels = group_size, num_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        g = max(d for d in range(1, min(self.group_size, n) + 1) if n % d == 0)
        f = self.num_channels
        y = x.reshape(n // g, g, f, c // f, h, w).to(torch.float32)
        y = y - y.mean(dim=1, keepdim=True)
        y = (y.square().mean(dim=1) + 1e-8).sqrt()  # (n/g, f, c/f, h, w)
        y = y.mean(dim=[2, 3, 4])  # (n/g, f)
        y = y.reshape(n // g, 1, f, 1, 1).expand(n // g, g, f, h, w).reshape(n, f, h, w)
        return torch.cat([x, y.to(x.dtype)], dim=1)


class DiscriminatorEpilogue(nn.Module):
    """4x4 head: minibatch stddev, conv, dense, output; projection onto the class map."""

    def __init__(self, in_channels: int, cmap_dim: int, img_channels: int, mbstd_group_size: int = 4,
                 mbstd_num_channels: int = 1, conv_clamp: float | None = None) -> None:
        super().__init__()
        self.cmap_dim = cmap_dim
        self.mbstd = MinibatchStd(mbstd_group_size, mbstd_num_channels) if mbstd_num_channels > 0 else None
        self.conv = Conv2dLayer(in_channels + mbstd_num_channels, in_channels, 3, conv_clamp=conv_clamp)
        self.fc = FullyConnected(in_channels * 16, in_channels, activation="lrelu")
        self.out = FullyConnected(in_channels, cmap_dim if cmap_dim > 0 else 1)

    def forward(self, x: torch.Tensor, cmap: torch.Tensor | None) -> torch.Tensor:
        if self.mbstd is not None:
            x = self.mbstd(x)
        x = self.conv(x)
        x = self.fc(x.flatten(1))
        x = self.out(x)
        if cmap is not None:
            x = (x * cmap.to(x.dtype)).sum(dim=1, keepdim=True) * (1.0 / math.sqrt(self.cmap_dim))
        return x


class StyleDiscriminator(nn.Module):
    """Residual StyleGAN2 discriminator, conditional by projection: logit = <phi(x), psi(c)> / sqrt(d).

    Returns raw logits of shape (N,).
    """

    def __init__(self, c_dim: int, img_resolution: int, img_channels: int, *, channel_base: int = 16384,
                 channel_max: int = 512, cmap_dim: int | None = None, mapping_layers: int = 8,
                 mbstd_group_size: int = 4, mbstd_num_channels: int = 1, conv_clamp: float | None = None) -> None:
        super().__init__()
        check_resolution(img_resolution)
        self.c_dim, self.img_resolution, self.img_channels = c_dim, img_resolution, img_channels
        resolutions = [2 ** i for i in range(int(math.log2(img_resolution)), 2, -1)]
        self.blocks = nn.ModuleList()
        for res in resolutions:
            cin = 0 if res == img_resolution else channels_at(res, channel_base, channel_max)
            tmp = channels_at(res, channel_base, channel_max)
            cout = channels_at(res // 2, channel_base, channel_max)
            self.blocks.append(DiscriminatorBlock(cin, tmp, cout, img_channels, conv_clamp=conv_clamp))
        c4 = channels_at(4, channel_base, channel_max)
        self.cmap_dim = (cmap_dim or c4) if c_dim > 0 else 0
        self.mapping = (MappingNetwork(0, c_dim, self.cmap_dim, None, num_layers=mapping_layers, w_avg_beta=None)
                        if c_dim > 0 else None)
        self.epilogue = DiscriminatorEpilogue(c4, self.cmap_dim, img_channels, mbstd_group_size,
                                              mbstd_num_channels, conv_clamp=conv_clamp)

    def forward(self, img: torch.Tensor, c: torch.Tensor | None) -> torch.Tensor:
        x = img
        for block in self.blocks:
            x = block(x)
        cmap = self.mapping(None, c) if self.mapping is not None else None
        return self.epilogue(x, cmap).reshape(-1).to(torch.float32)
