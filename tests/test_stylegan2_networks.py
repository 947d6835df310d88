"""StyleGAN2 networks: resampling, modulated convolution, G, D, minibatch stddev, rank-sliced RNG."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from medaug.generators.stylegan2.networks import (
    MappingNetwork,
    MinibatchStd,
    StyleDiscriminator,
    StyleGenerator,
    conv_resample,
    fir_filter,
    modulated_conv2d,
    upsample2d,
)
from medaug.generators.stylegan2.rng import BatchRandom

SMALL = dict(channel_base=64, channel_max=8)


def test_fir_resampling_keeps_constants_and_halves_or_doubles_size():
    f = fir_filter()
    x = torch.ones(2, 3, 8, 8)
    up = upsample2d(x, f)
    assert up.shape == (2, 3, 16, 16)
    assert torch.allclose(up[..., 2:-2, 2:-2], torch.ones(1), atol=1e-6)  # gain 4 restores the level
    w = torch.randn(5, 3, 3, 3)
    assert conv_resample(x, w, f, down=2).shape == (2, 5, 4, 4)
    assert conv_resample(x, w, f, up=2).shape == (2, 5, 16, 16)
    assert conv_resample(x, torch.randn(5, 3, 1, 1), f, down=2).shape == (2, 5, 4, 4)


@pytest.mark.parametrize("up", [1, 2])
def test_modulated_conv_fused_equals_unfused_and_demodulation_ignores_style_scale(up):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 4, 8, 8, generator=g)
    w = torch.randn(6, 4, 3, 3, generator=g)
    s = torch.rand(3, 4, generator=g) + 0.5
    f = fir_filter()
    a = modulated_conv2d(x, w, s, up=up, blur=f, fused=False)
    b = modulated_conv2d(x, w, s, up=up, blur=f, fused=True)
    assert torch.allclose(a, b, atol=1e-5)
    # demodulation normalises each output channel's weights: a global style gain cancels
    c = modulated_conv2d(x, w, s * 7.0, up=up, blur=f)
    assert torch.allclose(a, c, atol=1e-4)
    # without demodulation it does not
    d = modulated_conv2d(x, w, s * 7.0, up=up, blur=f, demodulate=False)
    assert not torch.allclose(modulated_conv2d(x, w, s, up=up, blur=f, demodulate=False), d)


@pytest.mark.parametrize("res,channels", [(16, 1), (32, 3)])
def test_generator_and_discriminator_shapes(res, channels):
    torch.manual_seed(0)
    G = StyleGenerator(8, 2, 8, res, channels, mapping_layers=2, **SMALL)
    D = StyleDiscriminator(2, res, channels, mapping_layers=2, **SMALL)
    z = torch.randn(4, 8)
    c = F.one_hot(torch.tensor([0, 1, 0, 1]), 2).float()
    img = G(z, c, rng=BatchRandom.seeded(0))
    assert img.shape == (4, channels, res, res)
    assert G.num_ws == 2 * (res.bit_length() - 3) + 2  # 1 conv at 4 px, 2 per other block, final toRGB
    assert D(img, c).shape == (4,)


def test_class_vector_changes_w_and_discriminator_projection():
    torch.manual_seed(0)
    mapping = MappingNetwork(8, 2, 8, num_ws=3, num_layers=2)
    z = torch.randn(2, 8)
    c0 = F.one_hot(torch.tensor([0, 0]), 2).float()
    c1 = F.one_hot(torch.tensor([1, 1]), 2).float()
    ws = mapping(z, c0)
    assert ws.shape == (2, 3, 8)
    assert not torch.allclose(ws, mapping(z, c1))
    D = StyleDiscriminator(2, 16, 1, mapping_layers=2, **SMALL)
    x = torch.randn(2, 1, 16, 16)
    assert not torch.allclose(D(x, c0), D(x, c1))


def test_noise_inputs_are_seeded_and_const_mode_is_deterministic():
    torch.manual_seed(0)
    G = StyleGenerator(8, 2, 8, 16, 1, mapping_layers=2, **SMALL)
    for block in G.synthesis.blocks:  # noise strengths start at 0: give them weight
        for layer in (block.conv0, block.conv1):
            if layer is not None:
                layer.noise_strength.data.fill_(0.5)
    z, c = torch.randn(2, 8), F.one_hot(torch.tensor([0, 1]), 2).float()
    a = G(z, c, rng=BatchRandom.seeded(1))
    assert torch.equal(a, G(z, c, rng=BatchRandom.seeded(1)))
    assert not torch.allclose(a, G(z, c, rng=BatchRandom.seeded(2)))
    assert torch.equal(G(z, c, noise_mode="const"), G(z, c, noise_mode="const"))


def test_minibatch_std_groups_contiguous_samples_so_rank_splits_agree():
    x = torch.randn(8, 6, 4, 4)
    layer = MinibatchStd(group_size=4, num_channels=2)
    whole = layer(x)
    assert whole.shape == (8, 8, 4, 4)
    halves = torch.cat([layer(x[:4]), layer(x[4:])])
    assert torch.allclose(whole, halves, atol=1e-6)
    # a batch the group size does not divide uses its largest divisor
    assert layer(torch.randn(6, 6, 4, 4)).shape == (6, 8, 4, 4)


def test_batch_random_slices_of_ranks_concatenate_to_the_one_process_draw():
    one = BatchRandom.seeded(5)
    full = one.randn(8, 3)
    parts = []
    for rank in range(2):
        g = torch.Generator().manual_seed(5)
        parts.append(BatchRandom(g, rank, 2).randn(4, 3))
    assert torch.equal(torch.cat(parts), full)
    with pytest.raises(ValueError):
        BatchRandom(torch.Generator(), 2, 2)
