"""edm data parallelism: 2 gloo processes make the same updates as 1 process at the same global batch.

One process trains with batch 8; two train with batch 4 each (``batch_size`` is per
process in the epoch loop). The loop's shards interleave (rank r holds rows r, r + 2,
... of each global batch) and the step's noise levels, noise and label-dropout draws
are made for the global batch and sliced the same way, so the only difference is
floating-point summation order (two half-batch gradient means averaged by all-reduce
vs one mean over 8). Dropout is off: its masks come from each rank's own generator.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from medaug.data.imageset import ImageSet
from medaug.generators.base import STATE_FILE

CONFIG = dict(model_channels=8, num_blocks=1, attention_res=8, dropout=0.0, epochs=1, lr_rampup_kimg=0.008,
              label_dropout=0.5, sample_steps=2, seed=4)
TOL = 1e-4  # Adam's first steps move a weight by about lr = 1e-3; summation order changes ~1e-7


def _toy(n: int = 16) -> ImageSet:
    rng = np.random.default_rng(0)
    labels = (np.arange(n) % 2).astype(np.int64)
    images = np.where(labels[:, None, None, None] == 1, 190, 50) + rng.integers(0, 40, (n, 1, 28, 28))
    images = images.astype(np.uint8)
    return ImageSet("toy", "train", images, labels, ("dark", "bright"), "binary-class")


def _worker(rank: int, world: int, init_method: str, out: str) -> None:
    torch.set_num_threads(1)
    from medaug.generators import build_generator
    from medaug.train.distributed import cleanup_distributed

    dist.init_process_group("gloo", init_method=init_method, rank=rank, world_size=world)
    try:
        gen = build_generator("edm", 1, 28, 2, {**CONFIG, "batch_size": 4}, device="cpu")
        gen.fit(_toy(), Path(out), plots=False)
        flat = torch.cat([p.detach().reshape(-1) for p in gen.nets["net"].parameters()])
        gathered = [torch.zeros_like(flat) for _ in range(world)]
        dist.all_gather(gathered, flat)
        same = all(torch.equal(g, gathered[0]) for g in gathered)
    finally:
        cleanup_distributed()
    Path(out, f"rank{rank}.json").write_text(json.dumps({"same_on_all_ranks": same}))


def test_two_gloo_processes_match_one_process(tmp_path):
    from medaug.generators import build_generator

    torch.set_num_threads(1)
    one = build_generator("edm", 1, 28, 2, {**CONFIG, "batch_size": 8}, device="cpu")
    ck1 = one.fit(_toy(), tmp_path / "one", plots=False)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    mp.spawn(_worker, args=(2, f"tcp://127.0.0.1:{port}", str(tmp_path / "two")), nprocs=2, join=True)
    for r in range(2):
        assert json.loads((tmp_path / "two" / f"rank{r}.json").read_text())["same_on_all_ranks"]

    s1 = torch.load(ck1 / STATE_FILE, weights_only=True)
    s2 = torch.load(tmp_path / "two" / "checkpoint" / STATE_FILE, weights_only=True)
    assert s1["global_step"] == s2["global_step"] == 2  # 16 images, global batch 8, 1 epoch
    worst = 0.0
    for net in ("net", "ema"):
        for name, t1 in s1["nets"][net].items():
            worst = max(worst, float((t1 - s2["nets"][net][name]).abs().max()))
    assert worst < TOL, f"largest weight difference {worst:.3g}"
    # the updates really moved the weights, and the EMA followed them (the comparison is not vacuous)
    fresh = build_generator("edm", 1, 28, 2, {**CONFIG, "batch_size": 8}, device="cpu").nets["net"].state_dict()
    assert max(float((fresh[k] - s1["nets"]["net"][k]).abs().max()) for k in fresh) > 10 * TOL
    assert max(float((fresh[k] - s1["nets"]["ema"][k]).abs().max()) for k in fresh) > 10 * TOL
