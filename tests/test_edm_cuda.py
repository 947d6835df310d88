"""edm on CUDA: the paths no CPU run reaches (bf16 autocast in training, fit -> checkpoint ->
load -> seeded sampling on the GPU, a GPU checkpoint read on a CPU). Marked `gpu`:
`scripts/gpu-check` runs them; without CUDA they skip."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from medaug.data.imageset import ImageSet
from medaug.generators import build_generator, load_generator
from medaug.generators.base import STATE_FILE, to_float

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]

TINY = dict(model_channels=16, num_blocks=1, attention_res=8, dropout=0.0, batch_size=8, epochs=1,
            lr_rampup_kimg=0.0, sample_steps=4)


def toy_set(n: int = 16) -> ImageSet:
    rng = np.random.default_rng(0)
    labels = (np.arange(n) % 2).astype(np.int64)
    images = (np.where(labels[:, None, None, None] == 1, 200, 40) + rng.integers(0, 30, (n, 1, 28, 28)))
    return ImageSet("toy", "train", images.astype(np.uint8), labels, ("dark", "bright"), "binary-class")


@pytest.mark.parametrize("amp", ["bf16", "none"])
def test_training_steps_on_cuda_are_finite_and_move_the_weights(amp):
    gen = build_generator("edm", 1, 28, 2, {**TINY, "amp": amp}, device="cuda")
    net = gen.nets["net"]
    assert net.autocast_dtype == (torch.bfloat16 if amp == "bf16" else None)
    before = {k: v.detach().clone() for k, v in net.state_dict().items()}
    gen.train_mode(True)
    x = to_float(torch.randint(0, 256, (8, 1, 28, 28), dtype=torch.uint8, device="cuda"))
    y = torch.randint(0, 2, (8,), device="cuda")
    stats = [gen.train_step(x, y) for _ in range(3)]
    torch.cuda.synchronize()
    assert all(math.isfinite(s["loss"]) for s in stats), stats
    assert all(p.dtype == torch.float32 for p in net.parameters())  # autocast, not bf16 weights
    moved = max(float((before[k] - v).abs().max()) for k, v in net.state_dict().items())
    assert moved > 0


def test_bf16_denoiser_stays_close_to_float32_on_cuda():
    gen = build_generator("edm", 1, 28, 2, {**TINY, "amp": "bf16"}, device="cuda")
    torch.manual_seed(1)
    net = gen.nets["net"].eval()
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn_like(p) * 0.05)
        x, y = torch.randn(4, 1, 28, 28, device="cuda"), torch.tensor([0, 1, 0, 1], device="cuda")
        half = net(x, 0.7, y)
        net.autocast_dtype = None
        full = net(x, 0.7, y)
    assert half.dtype == torch.float32 and not torch.equal(half, full)
    assert float((half - full).abs().max()) < 0.05


def test_fit_save_load_and_sample_on_cuda_and_read_the_checkpoint_on_cpu(tmp_path):
    gen = build_generator("edm", 1, 28, 2, {**TINY, "seed": 2}, device="cuda")
    ckpt = gen.fit(toy_set(), tmp_path / "run", plots=False)
    assert torch.load(ckpt / STATE_FILE, weights_only=True, map_location="cpu")["global_step"] == 2
    back = load_generator(ckpt, device="cuda")
    labels = np.array([0, 1, 0, 1])
    a = back.sample(labels, seed=5)
    assert a.shape == (4, 1, 28, 28) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, back.sample(labels, seed=5))
    assert (a != back.sample(labels, seed=6)).any()
    on_cpu = load_generator(ckpt, device="cpu")
    assert on_cpu.nets["net"].autocast_dtype is None
    # same weights and CPU noise: the GPU's bf16 network stays within a few grey levels of the CPU's float32
    diff = np.abs(on_cpu.sample(labels, seed=5).astype(int) - a.astype(int))
    assert float(diff.mean()) < 8, float(diff.mean())
