"""StyleGAN2-ADA data parallelism: 2 gloo processes make the same update as 1 process.

Both runs use the same global batch (8) and seed; every random draw is made for the
global batch and sliced per rank (rng.py), and the minibatch-stddev groups are
contiguous, so the only difference is floating-point summation order (per-rank
gradient means averaged by all-reduce vs one mean over 8). Two minibatches cover
every phase: G main, path length, D main, R1 (all at step 0, G/D main at step 1),
the EMA and an ADA p update.
"""

from __future__ import annotations

import numpy as np
import torch

from medaug.data.imageset import ImageSet
from medaug.generators.base import STATE_FILE
from medaug.generators.stylegan2 import StyleGAN2ADA, spawn_fit

# Adam's first steps move each weight by about lr * sign(grad); summation order could flip the
# sign only of a gradient at rounding-noise level, which would show as a difference of ~2 lr.
TOL = 1e-4

CONFIG = dict(kimg=0.016, batch_size=8, latent_dim=8, w_dim=8, mapping_layers=2, channel_base=64, channel_max=8,
              pl_weight=2.0, pl_interval=1, r1_interval=1, r1_gamma=1.0, augment_p=0.3, ada_interval=1, ada_kimg=1.0,
              ema_rampup=0.0, ema_kimg=0.01, tick_kimg=0.008, checkpoint_kimg=0.0, seed=3)


def _toy(n: int = 24) -> ImageSet:
    rng = np.random.default_rng(0)
    labels = (np.arange(n) % 2).astype(np.int64)
    images = (np.where(labels[:, None, None, None] == 1, 190, 50) + rng.integers(0, 40, (n, 1, 28, 28))).astype(np.uint8)
    return ImageSet("toy", "train", images, labels, ("dark", "bright"), "binary-class")


def test_two_gloo_processes_match_one_process(tmp_path):
    train = _toy()
    one = StyleGAN2ADA(1, 28, 2, CONFIG)
    ck1 = one.fit(train, tmp_path / "one", plots=False)
    ck2 = spawn_fit(2, 1, 28, 2, CONFIG, train, tmp_path / "two")

    s1 = torch.load(ck1 / STATE_FILE, weights_only=True)
    s2 = torch.load(ck2 / STATE_FILE, weights_only=True)
    assert s1["global_step"] == s2["global_step"] == 2
    worst = 0.0
    for net in ("G", "D", "G_ema", "augment"):
        for name, t1 in s1["nets"][net].items():
            t2 = s2["nets"][net][name]
            assert t1.shape == t2.shape
            worst = max(worst, float((t1.float() - t2.float()).abs().max()))
    assert worst < TOL, f"largest weight difference {worst:.3g}"
    # the update really moved the weights (the comparison is not vacuous)
    fresh = StyleGAN2ADA(1, 28, 2, CONFIG).nets["D"].state_dict()
    moved = max(float((fresh[k] - s1["nets"]["D"][k]).abs().max()) for k in fresh)
    assert moved > 10 * TOL
    assert abs(float(s1["nets"]["augment"]["p"]) - float(s2["nets"]["augment"]["p"])) < 1e-9
    assert float(s1["nets"]["augment"]["p"]) != CONFIG["augment_p"]  # ADA moved p in both runs alike
    assert torch.allclose(s1["stylegan"]["pl_mean"], s2["stylegan"]["pl_mean"], atol=1e-5)
