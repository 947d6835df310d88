"""StyleGAN2-ADA on CUDA: the paths no CPU run reaches (autocast bf16, fp16 with GradScaler,
fit -> checkpoint -> load on the GPU, NCCL DDP). Marked `gpu`: `scripts/gpu-check` runs them;
without CUDA they skip."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from medaug.data.imageset import ImageSet
from medaug.generators.base import STATE_FILE, load_generator
from medaug.generators.stylegan2 import StyleGAN2ADA, StyleGANConfig, spawn_fit
from medaug.generators.stylegan2.training_loop import StyleGAN2Trainer, build_nets, build_optimizers

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]

TINY = dict(latent_dim=8, w_dim=8, mapping_layers=2, channel_base=64, channel_max=8, batch_size=8)


def _toy(n: int = 24, size: int = 28) -> ImageSet:
    rng = np.random.default_rng(0)
    labels = (np.arange(n) % 2).astype(np.int64)
    images = (np.where(labels[:, None, None, None] == 1, 190, 50)
              + rng.integers(0, 40, (n, 1, size, size))).astype(np.uint8)
    return ImageSet("toy", "train", images, labels, ("dark", "bright"), "binary-class")


@pytest.mark.parametrize("amp", ["bf16", "fp16", "none"])
def test_minibatches_on_cuda_give_finite_losses_and_move_the_weights(amp):
    cfg = StyleGANConfig(**{**TINY, "amp": amp, "pl_interval": 1, "r1_interval": 1})
    device = torch.device("cuda")
    torch.manual_seed(0)
    nets = build_nets(cfg, 1, 32, 2)
    for net in nets.values():
        net.to(device)
    trainer = StyleGAN2Trainer(nets, build_optimizers(nets, cfg), cfg, num_classes=2, device=device)
    assert (trainer.amp_dtype is None) == (amp == "none") and (trainer.scalers is not None) == (amp == "fp16")
    before = {k: v.detach().clone() for k, v in nets["D"].state_dict().items()}
    images = torch.randint(0, 256, (32, 1, 32, 32), dtype=torch.uint8, device=device)
    labels = torch.randint(0, 2, (32,), device=device)
    for _ in range(3):
        stats = trainer.train_step(images, labels)
    torch.cuda.synchronize()
    assert all(math.isfinite(v) for v in stats.values() if isinstance(v, float)), stats
    moved = max(float((before[k] - v).abs().max()) for k, v in nets["D"].state_dict().items())
    assert moved > 0
    state = trainer.state()
    assert ("scalers" in state) == (amp == "fp16")


def test_fit_save_load_and_sample_on_cuda(tmp_path):
    cfg = dict(TINY, kimg=0.016, tick_kimg=0.008, checkpoint_kimg=0.0, pl_weight=0.0, seed=1)
    gen = StyleGAN2ADA(1, 28, 2, cfg, device="cuda")
    ckpt = gen.fit(_toy(), tmp_path / "run", plots=False)
    assert torch.load(ckpt / STATE_FILE, weights_only=True, map_location="cpu")["global_step"] == 2
    back = load_generator(ckpt, device="cuda")
    labels = np.array([0, 1, 0, 1])
    a, b = gen.sample(labels, seed=5), back.sample(labels, seed=5)
    assert a.shape == (4, 1, 28, 28) and a.dtype == np.uint8
    # the checkpoint holds what sampled (cuDNN may pick other kernels: allow one grey level)
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 1


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="NCCL DDP needs 2 GPUs")
def test_two_nccl_processes_train_and_write_one_checkpoint(tmp_path):
    cfg = dict(TINY, kimg=0.016, tick_kimg=0.008, checkpoint_kimg=0.0, pl_weight=2.0, pl_interval=1, seed=3)
    ckpt = spawn_fit(2, 1, 28, 2, cfg, _toy(), tmp_path / "two", device="cuda")
    state = torch.load(ckpt / STATE_FILE, weights_only=True, map_location="cpu")
    assert state["global_step"] == 2
    assert all(torch.isfinite(t).all() for t in state["nets"]["G"].values() if t.is_floating_point())
