"""edm on one GPU: training and sampling images/s, bf16 autocast against float32 (issue 12's
"bf16 autocast on CUDA where it helps"; run by scripts/gpu-check, or by hand).

    python bench/edm_gpu.py [--sizes 28 64] [--amp none bf16] [--json OUT.json]

Two nets per size: the CPU default (``small``: 32 channels, 1 block per resolution,
attention at <= 8 px: 1.1 M parameters at 28 px) and the one the generator's
docstring suggests for a GPU (``gpu``: 128 channels, 2 blocks, attention at <= 16 px).
Data: random uint8 images on the GPU, 1 channel, 8 classes (speed does not depend on
content). Training: ``--warmup`` Adam steps (cudnn autotuning, allocator), then
``--steps`` steps of batch ``--batch`` between two ``torch.cuda.synchronize()``.
Sampling: a class-balanced set of ``--n`` images through ``EDM.sample`` (the path
``medaug synthesize`` takes: CPU noise, batches of 256, uint8 back on the host) at 18
and 12 Heun steps, after a one-batch warm-up. Peak GPU memory is the training's.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np
import torch
from cuda_timing import cuda_seconds

from medaug.generators import build_generator
from medaug.generators.base import to_float

NETS = {"small": {}, "gpu": {"model_channels": 128, "num_blocks": 2, "attention_res": 16}}


def measure(size: int, net: str, amp: str, batch: int, warmup: int, steps: int, n: int,
            sample_steps: tuple[int, ...]) -> dict[str, float | int | str]:
    """Training and sampling images/s of one (size, net, amp) on the GPU."""
    config = {**NETS[net], "amp": amp, "batch_size": batch, "seed": 0}
    gen = build_generator("edm", 1, size, 8, config, device="cuda")
    gen.train_mode(True)
    x = to_float(torch.randint(0, 256, (batch, 1, size, size), dtype=torch.uint8, device="cuda"))
    y = torch.randint(0, 8, (batch,), device="cuda")
    train = steps * batch / cuda_seconds(lambda: gen.train_step(x, y), warmup, steps)
    row: dict[str, float | int | str] = {
        "size": size, "net": net, "amp": amp, "batch": batch,
        "params_m": sum(p.numel() for p in gen.nets["net"].parameters()) / 1e6,
        "train_img_s": train, "peak_gpu_mem_gb": torch.cuda.max_memory_allocated() / 2**30}
    labels = np.arange(n) % 8
    for k in sample_steps:
        gen.sample(labels[:256], seed=1, steps=k)
        torch.cuda.synchronize()
        start = time.perf_counter()
        gen.sample(labels, seed=0, steps=k)
        row[f"sample_img_s_{k}"] = n / (time.perf_counter() - start)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[28, 64])
    parser.add_argument("--nets", nargs="+", default=list(NETS), choices=list(NETS))
    parser.add_argument("--amp", nargs="+", default=["none", "bf16"], choices=["none", "bf16"])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--n", type=int, default=2000, help="images in each timed sampling run")
    parser.add_argument("--sample-steps", type=int, nargs="+", default=[18, 12])
    parser.add_argument("--json", help="also write the rows to this JSON file")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("edm_gpu: no CUDA device here; run it on a machine with a GPU", file=sys.stderr)
        raise SystemExit(2)
    torch.backends.cudnn.benchmark = True
    print(f"device: {torch.cuda.get_device_name()}  torch {torch.__version__}")
    head = "".join(f" {'smp/s@' + str(k):>10}" for k in args.sample_steps)
    print(f"{'px':>4} {'net':>6} {'amp':>5} {'M par':>6} {'train/s':>9}{head} {'GPU GB':>7}")
    rows = []
    for size in args.sizes:
        for net in args.nets:
            for amp in args.amp:
                row = measure(size, net, amp, args.batch, args.warmup, args.steps, args.n,
                              tuple(args.sample_steps))
                cells = "".join(f" {row[f'sample_img_s_{k}']:>10.0f}" for k in args.sample_steps)
                print(f"{size:>4} {net:>6} {amp:>5} {row['params_m']:>6.2f} {row['train_img_s']:>9.0f}{cells} "
                      f"{row['peak_gpu_mem_gb']:>7.2f}", flush=True)
                rows.append(row)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
