"""StyleGAN2-ADA training speed on this CPU (kimg per hour) next to the registry's DCGAN,
at 32 and 64 px on the same data (issue 6's benchmark; a benchmark, not a test).

    .venv/bin/python bench/stylegan2_speed.py --data-root ../shared/data/medmnist \
        [--sizes 32 64] [--stylegan 1.0:8 0.25:32 0.125:32] [--threads 1] [--clock cpu]

Data: the BreastMNIST train split (546 grayscale images, 2 classes). "32 px" is the
28 px set as shipped (both generators reflect/zero-pad it to 32 inside); "64 px" is
the same images bilinearly upsampled to 64 (only the 28 px file is on this machine).

StyleGAN2-ADA: ADA's defaults (channel_base 16384, channel_max 512, 8 mapping
layers, z/w 512, path length every 4 and R1 every 16 minibatches, ADA 'bgc' at
p = 0.2 so the augmentation cost is in) at the widths given as WIDTH:BATCH (width
scales every channel count). A full minibatch costs Gmain + Dmain + Greg / 4 +
Dreg / 16: each phase is timed on its own (after one warm-up call) and the sum
amortised that way, which a handful of steps could not do; ``--check-steps`` also
times whole minibatches of the smallest configuration to confirm the sum.

DCGAN: ``dcgan`` from the generator registry (one G/D pair per class, its defaults:
width 1.0, latent 100), timed on its own ``train_step`` with single-class batches
of the same batch size as the smallest StyleGAN configuration.

``--clock cpu`` (process CPU time, meaningful with --threads 1) is steadier on a
shared machine than wall time.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from medaug.data.imageset import ImageSet
from medaug.data.medmnist import load_medmnist
from medaug.generators import build_generator
from medaug.generators.stylegan2.generator import StyleGANConfig
from medaug.generators.stylegan2.training_loop import (
    StyleGAN2Trainer,
    build_nets,
    build_optimizers,
    fit_to,
    working_resolution,
)


def data_at(train: ImageSet, size: int) -> ImageSet:
    """The train split at 28 px (as shipped, for 32) or upsampled to `size`."""
    if size == 32:
        return train
    x = F.interpolate(torch.from_numpy(train.images).float(), size=(size, size), mode="bilinear",
                      align_corners=False)
    images = x.round().clamp(0, 255).to(torch.uint8).numpy()
    return ImageSet(train.name, "train", images, train.labels, train.class_names, train.task)


def timed(fn: Callable[[], object], clock: Callable[[], float]) -> float:
    start = clock()
    fn()
    return clock() - start


def stylegan_seconds_per_step(train: ImageSet, width: float, batch: int, clock: Callable[[], float],
                              check_steps: int = 0) -> tuple[float, dict[str, float], float | None, float]:
    """Amortised seconds per minibatch (and per phase); optionally measured over whole steps."""
    cfg = StyleGANConfig(batch_size=batch, width=width, augment_p=0.2, ada=False)
    res = working_resolution(train.size)
    torch.manual_seed(0)
    nets = build_nets(cfg, train.channels, res, train.num_classes)
    params = sum(p.numel() for n in ("G", "D") for p in nets[n].parameters()) / 1e6
    trainer = StyleGAN2Trainer(nets, build_optimizers(nets, cfg), cfg, num_classes=train.num_classes,
                               device=torch.device("cpu"))
    images = fit_to(torch.from_numpy(train.images), res, cfg.resize_mode)
    labels = torch.from_numpy(train.labels)
    idx = torch.arange(batch) % len(images)
    real = images[idx].float() / 127.5 - 1
    c = F.one_hot(labels[idx], train.num_classes).float()
    pl_c = c[:max(1, batch // 2)]
    phases: dict[str, float] = {}
    for name in ("Gmain", "Dmain", "Greg", "Dreg"):
        gen_c = pl_c if name == "Greg" else c
        trainer.phase(name, real, c, gen_c)  # warm-up (kernel selection, allocations)
        phases[name] = timed(lambda: trainer.phase(name, real, c, gen_c), clock)
    per_step = (phases["Gmain"] + phases["Dmain"] + phases["Greg"] / cfg.pl_interval
                + phases["Dreg"] / cfg.r1_interval)
    measured = None
    if check_steps:
        trainer.step_count = 1  # start between regularisation steps, then run check_steps of them
        measured = timed(lambda: [trainer.train_step(images, labels) for _ in range(check_steps)], clock)
        measured /= check_steps
    return per_step, phases, measured, params


def dcgan_seconds_per_step(train: ImageSet, batch: int, clock: Callable[[], float], steps: int) -> tuple[float, float]:
    gen = build_generator("dcgan", train.channels, train.size, train.num_classes, {"batch_size": batch}, device="cpu")
    params = sum(p.numel() for net in gen.nets.values() for p in net.parameters()) / 1e6
    gen.train_mode(True)
    x_all = torch.from_numpy(train.images).float() / 127.5 - 1
    y_all = torch.from_numpy(train.labels)
    batches = []
    for k in range(train.num_classes):
        members = torch.from_numpy(np.flatnonzero(train.labels == k))
        batches.append(members[torch.arange(batch) % len(members)])
    gen.train_step(x_all[batches[0]], y_all[batches[0]])  # warm-up
    total = 0.0
    for i in range(steps):
        b = batches[i % len(batches)]
        total += timed(lambda: gen.train_step(x_all[b], y_all[b]), clock)
        gen.global_step += 1
    return total / steps, params


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", required=True)
    parser.add_argument("--sizes", type=int, nargs="+", default=[32, 64])
    parser.add_argument("--stylegan", nargs="+", default=["1.0:8", "0.25:32", "0.125:32"],
                        help="WIDTH:BATCH per StyleGAN2-ADA configuration")
    parser.add_argument("--dcgan-steps", type=int, default=8)
    parser.add_argument("--check-steps", type=int, default=4,
                        help="whole minibatches timed for the smallest StyleGAN configuration (0 = skip)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--clock", choices=["wall", "cpu"], default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    clock = time.perf_counter if args.clock == "wall" else time.process_time
    splits = load_medmnist("breastmnist", size=28, root=args.data_root)
    configs = [(float(w), int(b)) for w, b in (s.split(":") for s in args.stylegan)]
    smallest = min(configs)
    print(f"CPU training speed, {args.threads} thread(s), {args.clock} clock, BreastMNIST train "
          f"({len(splits.train)} images, 1 channel)")
    print(f"{'px':>4} {'model':<34} {'params M':>9} {'batch':>6} {'s/step':>9} {'img/s':>8} {'kimg/h':>8}  phases (s)")
    for size in args.sizes:
        train = data_at(splits.train, size)
        res = working_resolution(train.size)
        for width, batch in configs:
            per_step, phases, measured, params = stylegan_seconds_per_step(
                train, width, batch, clock, args.check_steps if (width, batch) == smallest else 0)
            ips = batch / per_step
            detail = " ".join(f"{k} {v:.2f}" for k, v in phases.items())
            if measured is not None:
                detail += f" | {args.check_steps} whole steps: {measured:.2f} s/step"
            print(f"{res:>4} {f'stylegan2ada width {width:g}':<34} {params:>9.2f} {batch:>6} {per_step:>9.2f} "
                  f"{ips:>8.1f} {ips * 3.6:>8.2f}  {detail}", flush=True)
        per_step, params = dcgan_seconds_per_step(train, smallest[1], clock, args.dcgan_steps)
        ips = smallest[1] / per_step
        print(f"{res:>4} {'dcgan (registry defaults)':<34} {params:>9.2f} {smallest[1]:>6} {per_step:>9.3f} "
              f"{ips:>8.1f} {ips * 3.6:>8.2f}", flush=True)


if __name__ == "__main__":
    main()
