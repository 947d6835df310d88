"""The raw net F of the ``edm`` generator: a class-conditional U-Net sized by image size.

After the DDPM++ / ADM U-Nets that EDM trains (Song et al. 2021, Dhariwal & Nichol
2021), reduced to what medaug's sizes need. Resolutions are halved from the image
size while it stays even and above 8 px, so every size is handled natively, without
padding: 28 px works at 28, 14, 7; 32 px at 32, 16, 8; 64 px at 64 .. 8; 256 px at
256 .. 8. Channel multipliers by the number of resolutions follow the published nets
(CIFAR-10 32 px: 1, 2, 2; 64 px: 1, 2, 2, 2; ADM 128/256 px: 1, 1, 2, 2, 4(, 4)).

Each resolution has ``num_blocks`` residual blocks on the way down and one more on
the way up (skip connections from every block), self-attention after each block at
resolutions <= ``attention_res``, strided-conv downsampling and nearest-neighbour
upsampling (no conv of its own: the next block's convs follow; at 28 px a conv there
would cost a sixth of the net). The noise level enters as a sinusoidal embedding of c_noise through a
two-layer MLP; the class as a learned embedding with one extra "no class" row
(classifier-free guidance); their sum modulates every block by a scale and shift of
its second normalisation (ADM's adaptive group norm). The last conv of every
residual branch and of the output starts at zero, so F starts at 0 and D at
c_skip x (EDM's init).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

MULTIPLIERS = {1: (1,), 2: (1, 2), 3: (1, 2, 2), 4: (1, 2, 2, 2), 5: (1, 1, 2, 2, 4), 6: (1, 1, 2, 2, 4, 4)}
MIN_RES = 8


def resolutions(size: int) -> list[int]:
    """The U-Net's resolutions, full size first: halve while even and above MIN_RES (28 -> 28, 14, 7)."""
    out = [size]
    while out[-1] % 2 == 0 and out[-1] > MIN_RES and len(out) < max(MULTIPLIERS):
        out.append(out[-1] // 2)
    return out


def _groups(channels: int) -> int:
    """Group-norm groups: as many as possible up to 32 with >= 4 channels each (1 for tiny nets)."""
    for g in (32, 16, 8, 4, 2):
        if channels % g == 0 and channels // g >= 4:
            return g
    return 1


def _zero(module: nn.Module) -> nn.Module:
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


def positional_embedding(x: torch.Tensor, dim: int, max_positions: int = 10_000) -> torch.Tensor:
    """Sinusoidal embedding (N,) -> (N, dim) (EDM's PositionalEmbedding, endpoint=True)."""
    half = dim // 2
    freqs = torch.arange(half, dtype=torch.float32, device=x.device) / max(half - 1, 1)
    freqs = (1 / max_positions) ** freqs
    angles = x.float().outer(freqs)
    emb = torch.cat([angles.cos(), angles.sin()], dim=1)
    return F.pad(emb, (0, dim - emb.shape[1]))


class Attention(nn.Module):
    """Multi-head self-attention over the pixels of a feature map (64 channels a head)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.heads = max(1, channels // 64)
        self.norm = nn.GroupNorm(_groups(channels), channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = _zero(nn.Conv2d(channels, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(n, 3, self.heads, c // self.heads, h * w).unbind(1)
        out = F.scaled_dot_product_attention(q.transpose(-1, -2), k.transpose(-1, -2), v.transpose(-1, -2))
        out = out.transpose(-1, -2).reshape(n, c, h, w)
        return (x + self.proj(out)) * math.sqrt(0.5)


class ResBlock(nn.Module):
    """GN-SiLU-conv, adaptive GN (scale, shift from the embedding)-SiLU-dropout-conv, scaled residual."""

    def __init__(self, c_in: int, c_out: int, emb_dim: int, dropout: float, attention: bool) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(_groups(c_in), c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.affine = nn.Linear(emb_dim, 2 * c_out)
        self.norm2 = nn.GroupNorm(_groups(c_out), c_out)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = _zero(nn.Conv2d(c_out, c_out, 3, padding=1))
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()
        self.attention = Attention(c_out) if attention else None

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.affine(emb)[:, :, None, None].chunk(2, dim=1)
        h = F.silu(torch.addcmul(shift, self.norm2(h), scale + 1))
        h = self.conv2(self.dropout(h))
        x = (h + self.skip(x)) * math.sqrt(0.5)
        return self.attention(x) if self.attention is not None else x


class UNet(nn.Module):
    """F(x, c_noise, class_index) -> same shape as x; class index ``num_classes`` = no class."""

    def __init__(self, channels: int, size: int, num_classes: int, model_channels: int = 32, num_blocks: int = 1,
                 attention_res: int = 8, dropout: float = 0.0) -> None:
        super().__init__()
        res = resolutions(size)
        mults = MULTIPLIERS[len(res)]
        self.img_size = size
        self.model_channels = model_channels
        emb_dim = 4 * model_channels
        self.map_noise = nn.Sequential(nn.Linear(model_channels, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.map_label = nn.Embedding(num_classes + 1, emb_dim)
        nn.init.normal_(self.map_label.weight, std=1.0)

        self.conv_in = nn.Conv2d(channels, model_channels, 3, padding=1)
        self.down = nn.ModuleList()
        skips = [model_channels]
        c = model_channels
        for level, (r, m) in enumerate(zip(res, mults)):
            for _ in range(num_blocks):
                self.down.append(ResBlock(c, model_channels * m, emb_dim, dropout, r <= attention_res))
                c = model_channels * m
                skips.append(c)
            if level < len(res) - 1:
                self.down.append(nn.Conv2d(c, c, 3, stride=2, padding=1))
                skips.append(c)
        self.mid = nn.ModuleList([ResBlock(c, c, emb_dim, dropout, attention_res > 0),
                                  ResBlock(c, c, emb_dim, dropout, False)])
        self.up = nn.ModuleList()
        for level in reversed(range(len(res))):
            r, m = res[level], mults[level]
            for _ in range(num_blocks + 1):
                self.up.append(ResBlock(c + skips.pop(), model_channels * m, emb_dim, dropout, r <= attention_res))
                c = model_channels * m
            if level > 0:
                self.up.append(nn.Upsample(scale_factor=2, mode="nearest"))
        self.norm_out = nn.GroupNorm(_groups(c), c)
        self.conv_out = _zero(nn.Conv2d(c, channels, 3, padding=1))

    def forward(self, x: torch.Tensor, c_noise: torch.Tensor, class_index: torch.Tensor) -> torch.Tensor:
        emb = self.map_noise(positional_embedding(c_noise, self.model_channels)) + self.map_label(class_index)
        emb = F.silu(emb)
        h = self.conv_in(x)
        hs = [h]
        for block in self.down:
            h = block(h, emb) if isinstance(block, ResBlock) else block(h)
            hs.append(h)
        for block in self.mid:
            h = block(h, emb)
        for block in self.up:
            if isinstance(block, ResBlock):
                h = block(torch.cat([h, hs.pop()], dim=1), emb)
            else:
                h = block(h)
        return self.conv_out(F.silu(self.norm_out(h)))
