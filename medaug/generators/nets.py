"""Network building blocks of the generators, after the seed studies' figures.

- `ConvEncoder` / `ConvDecoder`: the conditional and Joint VAE of seed 000 (Figs.
  19-20, 22-23; from AntixK's PyTorch-VAE): five stride-2 3x3 convolutions 32-64-128-
  256-512 with batch norm and LeakyReLU; the decoder maps its input through a Linear
  layer to 512 x 2 x 2, four stride-2 transposed convolutions up to 32 x 32 x 32, and
  an output block to the image size (for 28 px exactly the figure's ConvTranspose ->
  61, Conv -> 30, Conv -> 28, tanh).
- `ConvGenerator` / `ConvDiscriminator`: DCGAN (Radford et al. 2016) generator from a
  4 x 4 seed up by k4 s2 p1 transposed convolutions, discriminator down to 4 x 4 with
  LeakyReLU(0.2). Options turn them into seed 000's conditional GAN (Figs. 25-26:
  conditional batch norm in G; a 3x3 stem, self-attention at 16 x 16, spectral norm
  and a projection head in D) or seed 002's WGAN-GP critic (no batch norm).

`width` multiplies every channel count (1.0 = published sizes).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm


def ch(channels: int, width: float) -> int:
    """A channel count scaled by `width` (at least 4)."""
    return max(4, int(round(channels * width)))


def one_hot(y: torch.Tensor, num_classes: int) -> torch.Tensor:
    return F.one_hot(y, num_classes).float()


def _sn(module: nn.Module, on: bool) -> nn.Module:
    return spectral_norm(module) if on else module


# --------------------------------------------------------------------------- VAEs (seed 000)

class ConvEncoder(nn.Module):
    """Image -> flat features: stride-2 3x3 convs 32-64-128-256-512, BN, LeakyReLU (seed 000 Figs. 20, 23).

    At 28 px the maps go 14, 7, 4, 2, 1 (as in the figures); at 64 px down to 2 x 2.
    """

    def __init__(self, in_channels: int, size: int, width: float = 1.0,
                 widths: tuple[int, ...] = (32, 64, 128, 256, 512)) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c, s = in_channels, size
        for w in widths:
            w = ch(w, width)
            layers += [nn.Conv2d(c, w, 3, stride=2, padding=1), nn.BatchNorm2d(w), nn.LeakyReLU()]
            c, s = w, (s - 1) // 2 + 1
        self.body = nn.Sequential(*layers)
        self.out_features = c * s * s

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x).flatten(1)


def _decoder_head(c: int, out_channels: int, size: int) -> nn.Sequential:
    """32 x 32 maps -> the image size, ending in tanh."""
    if size == 28:  # seed 000 Fig. 19's output layer: 32 -> 61 -> 30 -> 28
        layers = [nn.ConvTranspose2d(c, c, 3, stride=2, padding=2), nn.BatchNorm2d(c), nn.LeakyReLU(),
                  nn.Conv2d(c, c, 3, stride=2), nn.BatchNorm2d(c), nn.LeakyReLU(),
                  nn.Conv2d(c, out_channels, 3)]
    elif size == 32:
        layers = [nn.Conv2d(c, c, 3, padding=1), nn.BatchNorm2d(c), nn.LeakyReLU(),
                  nn.Conv2d(c, out_channels, 3, padding=1)]
    elif size == 64:  # PyTorch-VAE's final layer at 64 px
        layers = [nn.ConvTranspose2d(c, c, 3, stride=2, padding=1, output_padding=1), nn.BatchNorm2d(c),
                  nn.LeakyReLU(), nn.Conv2d(c, out_channels, 3, padding=1)]
    else:
        raise ValueError(f"decoder size {size}")
    return nn.Sequential(*layers, nn.Tanh())


class ConvDecoder(nn.Module):
    """Latent (+ one-hot label) -> image (seed 000 Figs. 19, 22).

    Linear -> 512 x 2 x 2 -> four transposed convs -> 32 x 32 -> output block to the size.
    """

    def __init__(self, in_features: int, out_channels: int, size: int, width: float = 1.0,
                 widths: tuple[int, ...] = (512, 256, 128, 64, 32)) -> None:
        super().__init__()
        w = [ch(x, width) for x in widths]
        self.start = w[0]
        self.fc = nn.Linear(in_features, w[0] * 4)
        layers: list[nn.Module] = []
        for a, b in zip(w[:-1], w[1:]):
            layers += [nn.ConvTranspose2d(a, b, 3, stride=2, padding=1, output_padding=1), nn.BatchNorm2d(b),
                       nn.LeakyReLU()]
        self.body = nn.Sequential(*layers)
        self.head = _decoder_head(w[-1], out_channels, size)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(self.fc(z).view(-1, self.start, 2, 2)))


# --------------------------------------------------------------------------- GAN blocks

class ConditionalBatchNorm2d(nn.Module):
    """Batch norm whose scale and shift are looked up per class (seed 000 Fig. 26; de Vries et al. 2017)."""

    def __init__(self, channels: int, num_classes: int) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(channels, affine=False)
        self.gamma = nn.Embedding(num_classes, channels)
        self.beta = nn.Embedding(num_classes, channels)
        nn.init.ones_(self.gamma.weight)
        nn.init.zeros_(self.beta.weight)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.bn(x) * self.gamma(y)[:, :, None, None] + self.beta(y)[:, :, None, None]


class SelfAttention(nn.Module):
    """SAGAN self-attention (Zhang et al. 2019), as in seed 000 Fig. 25: query/key 1x1
    convs to C/8 channels, value to C, softmax over positions, residual scaled by a
    learned gamma that starts at 0."""

    def __init__(self, channels: int, spectral: bool = False) -> None:
        super().__init__()
        inner = max(1, channels // 8)
        self.query = _sn(nn.Conv2d(channels, inner, 1, bias=False), spectral)
        self.key = _sn(nn.Conv2d(channels, inner, 1, bias=False), spectral)
        self.value = _sn(nn.Conv2d(channels, channels, 1, bias=False), spectral)
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q = self.query(x).flatten(2)
        k = self.key(x).flatten(2)
        attn = torch.softmax(q.transpose(1, 2) @ k, dim=-1)  # (b, hw, hw)
        out = (self.value(x).flatten(2) @ attn.transpose(1, 2)).view(b, c, h, w)
        return x + self.gamma * out


class ConvGenerator(nn.Module):
    """z -> 4 x 4 -> ... -> size (32 or 64) by k4 s2 p1 transposed convs, tanh output.

    DCGAN (Radford et al. 2016): batch norm + ReLU. With `num_classes` > 0 the batch
    norms are conditional (per-class scale and shift) and the activation LeakyReLU,
    as in seed 000's conditional GAN (Fig. 26: 256@4, 128@8, 64@16, C@32).
    """

    def __init__(self, in_dim: int, out_channels: int, size: int, width: float = 1.0, num_classes: int = 0,
                 activation: str = "relu") -> None:
        super().__init__()
        n_up = int(math.log2(size)) - 2
        if 2 ** (n_up + 2) != size or n_up < 1:
            raise ValueError(f"ConvGenerator needs a power-of-two size >= 8, got {size}")
        widths = [ch(64 * 2**i, width) for i in reversed(range(n_up))]
        self.convs = nn.ModuleList([nn.ConvTranspose2d(in_dim, widths[0], 4, 1, 0)])
        self.convs.extend(nn.ConvTranspose2d(a, b, 4, 2, 1) for a, b in zip(widths[:-1], widths[1:]))
        self.convs.append(nn.ConvTranspose2d(widths[-1], out_channels, 4, 2, 1))
        self.conditional = num_classes > 0
        self.norms = nn.ModuleList(
            ConditionalBatchNorm2d(w, num_classes) if self.conditional else nn.BatchNorm2d(w) for w in widths
        )
        self.act = nn.ReLU() if activation == "relu" else nn.LeakyReLU(0.2)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        h = z[:, :, None, None]
        for conv, norm in zip(self.convs, self.norms):
            h = conv(h)
            h = self.act(norm(h, y) if self.conditional else norm(h))
        return torch.tanh(self.convs[-1](h))


class ConvDiscriminator(nn.Module):
    """Image -> score: k4 s2 p1 convs down to <= 4 x 4 (widths 64, 128, 256[, 512]), LeakyReLU(0.2).

    Options: `stem` (a 3x3 conv to 32 channels first, seed 000 Fig. 25), `batch_norm`
    (DCGAN: on every conv but the first), `spectral` (spectral norm on every weight),
    `attention` (SAGAN block where the maps are 16 x 16), and `num_classes` > 0 for a
    projection head: score = w.h + <embed(y), h> (Miyato & Koyama 2018). With
    `features=True` the flat last-conv features (VAE-GAN's Dis_l) come back too.
    """

    def __init__(self, in_channels: int, size: int, width: float = 1.0, *, batch_norm: bool = True,
                 spectral: bool = False, stem: bool = False, attention: bool = False, num_classes: int = 0) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c, s = in_channels, size
        if stem:
            layers += [_sn(nn.Conv2d(c, ch(32, width), 3, 1, 1), spectral), nn.LeakyReLU(0.2)]
            c = ch(32, width)
        i = 0
        while s > 4:
            w = ch(64 * 2**i, width)
            layers.append(_sn(nn.Conv2d(c, w, 4, 2, 1), spectral))
            if batch_norm and i > 0:
                layers.append(nn.BatchNorm2d(w))
            layers.append(nn.LeakyReLU(0.2))
            c, s, i = w, s // 2, i + 1
            if attention and s == 16:
                layers.append(SelfAttention(c, spectral))
        self.body = nn.Sequential(*layers)
        self.out_features = c * s * s
        self.head = _sn(nn.Linear(self.out_features, 1), spectral)
        self.embed = None
        if num_classes > 0:
            embed = nn.Embedding(num_classes, self.out_features)
            nn.init.normal_(embed.weight, 0.0, 0.02)  # nn.Embedding's N(0, 1) would make scores ~ sqrt(features)
            self.embed = _sn(embed, spectral)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None,
                features: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        h = self.body(x).flatten(1)
        out = self.head(h).squeeze(1)
        if self.embed is not None:
            out = out + (self.embed(y) * h).sum(1)
        return (out, h) if features else out


def dcgan_init(module: nn.Module) -> None:
    """Radford et al. (2016): conv and linear weights ~ N(0, 0.02), batch-norm scales ~ N(1, 0.02), biases 0.

    Apply before spectral norm is added (it re-parametrises the weight)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d) and m.affine:
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


# --------------------------------------------------------------------------- 28 <-> 32 px

def pad_to(x: torch.Tensor, size: int) -> torch.Tensor:
    """Pad images with black (-1) borders to `size` (28 -> 32: 2 px each side)."""
    p = size - x.shape[-1]
    if p == 0:
        return x
    return F.pad(x, (p // 2, p - p // 2, p // 2, p - p // 2), value=-1.0)


def crop_to(x: torch.Tensor, size: int) -> torch.Tensor:
    """The centre `size` x `size` of images (32 -> 28), undoing `pad_to`."""
    p = x.shape[-1] - size
    if p == 0:
        return x
    a = p // 2
    return x[..., a:a + size, a:a + size]
