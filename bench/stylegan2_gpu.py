"""StyleGAN2-ADA sec/kimg at 64, 128 and 256 px on one GPU, next to NVlabs' published V100 numbers.

    .venv/bin/python bench/stylegan2_gpu.py [--sizes 64 128 256] [--amp bf16] [--steps 48]

Configuration: NVlabs' ``--cfg=auto`` for one GPU, which their "Expected training
time" table was measured with: batch min(4096 / res, 32), channel_base 16384,
channel_max 512, 2 mapping layers, minibatch-stddev group 4, R1 gamma
0.0002 res^2 / batch every 16 minibatches, path length (weight 2) every 4, style
mixing 0.9, EMA, ADA 'bgc' (here at a fixed p = 0.2 so the augmentation cost is
included from the first step). Data: random uint8 images on the GPU (speed does not
depend on content), 1 channel (seed 003's radiographs) unless --channels 3, 2 classes.

Timing: ``--warmup`` whole minibatches (cudnn autotuning, allocator), then
``--steps`` minibatches (a multiple of 16, so the lazy regularisers are in at their
real rate) between two ``torch.cuda.synchronize()``. sec/kimg = seconds / (steps *
batch / 1000).

Reference (NVlabs/stylegan2-ada-pytorch README, Tesla V100, --cfg=auto, ADA, FID
metrics on, custom CUDA kernels, fp16 in the 4 highest resolutions): 128 px 12.8-13.7
sec/kimg, 256 px 21.6-24.2 sec/kimg on 1 GPU; no 64 px entry. medaug uses no custom
kernels (plain PyTorch upfirdn2d, bilinear grid_sample) and bf16 autocast.
"""

from __future__ import annotations

import argparse
import json
import sys

import torch
from cuda_timing import cuda_seconds

from medaug.generators.stylegan2.config import StyleGANConfig
from medaug.generators.stylegan2.training_loop import StyleGAN2Trainer, build_nets, build_optimizers

NVLABS_V100 = {128: (12.8, 13.7), 256: (21.6, 24.2)}


def auto_config(res: int, amp: str) -> StyleGANConfig:
    batch = max(min(4096 // res, 32), 1)
    return StyleGANConfig(batch_size=batch, mapping_layers=2, channel_base=16384, channel_max=512, mbstd_group=4,
                          pl_weight=2.0, augment_p=0.2, ada=False, amp=amp)


def sec_per_kimg(res: int, channels: int, amp: str, warmup: int, steps: int) -> dict[str, float]:
    device = torch.device("cuda")
    cfg = auto_config(res, amp)
    torch.manual_seed(0)
    nets = build_nets(cfg, channels, res, 2)
    for net in nets.values():
        net.to(device)
    trainer = StyleGAN2Trainer(nets, build_optimizers(nets, cfg), cfg, num_classes=2, device=device)
    images = torch.randint(0, 256, (1024, channels, res, res), dtype=torch.uint8, device=device)
    labels = torch.randint(0, 2, (1024,), device=device)
    seconds = cuda_seconds(lambda: trainer.train_step(images, labels), warmup, steps)
    return {"res": res, "batch": cfg.batch_size, "amp": amp, "steps": steps,
            "sec_per_kimg": seconds / (steps * cfg.batch_size / 1000),
            "peak_gpu_mem_gb": torch.cuda.max_memory_allocated() / 2**30}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128, 256])
    parser.add_argument("--channels", type=int, default=1, choices=[1, 3])
    parser.add_argument("--amp", choices=["none", "bf16", "fp16"], default="bf16")
    parser.add_argument("--warmup", type=int, default=16)
    parser.add_argument("--steps", type=int, default=48)
    parser.add_argument("--json", help="also write the rows to this JSON file")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("stylegan2_gpu: no CUDA device here; run it on a machine with a GPU", file=sys.stderr)
        raise SystemExit(2)
    torch.backends.cudnn.benchmark = True
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    print(f"device: {torch.cuda.get_device_name()}  torch {torch.__version__}  channels {args.channels}  "
          f"amp {args.amp}")
    print(f"{'px':>4} {'batch':>6} {'sec/kimg':>9} {'GPU GB':>7}  NVlabs V100 (1 GPU)")
    rows = []
    for res in args.sizes:
        row = sec_per_kimg(res, args.channels, args.amp, args.warmup, args.steps)
        ref = NVLABS_V100.get(res)
        ref_text = f"{ref[0]}-{ref[1]} sec/kimg" if ref else "-"
        print(f"{res:>4} {row['batch']:>6} {row['sec_per_kimg']:>9.2f} {row['peak_gpu_mem_gb']:>7.2f}  {ref_text}",
              flush=True)
        rows.append(row)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
