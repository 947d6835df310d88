"""Images/s of each registered augmentation on one uint8 batch, and its cost next to a training step.

    .venv/bin/python bench/augment_throughput.py [--threads 1 2] [--batch 64] [--size 28] [--clock cpu]

A benchmark, not a test. For each pipeline, channel count (1, 3) and thread count it
prints images/s of the augmentation alone and, in the same rounds (interleaved, so
a busy machine slows both alike), its time as a percentage of one training step
(forward, backward, SGD) of seed 000's baseline CNN on the same batch: the share of
training time the augmentation adds.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch
from torch import nn

from medaug.augment import AUGMENTATIONS, build_augmentation
from medaug.classifiers import build_classifier


def _cnn_step(channels: int, batch: int, size: int) -> Callable[[], None]:
    model = build_classifier("cnn", channels, 9, size)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    x = torch.randn(batch, channels, size, size)
    y = torch.randint(0, 9, (batch,))
    loss_fn = nn.CrossEntropyLoss()

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        loss_fn(model(x), y).backward()
        opt.step()

    return step


def _seconds(fn: Callable[[], object], repeats: int, clock: Callable[[], float]) -> float:
    start = clock()
    for _ in range(repeats):
        fn()
    return clock() - start


def measure(name: str, channels: int, batch: int, size: int, seconds: float,
            clock: Callable[[], float]) -> tuple[float, float]:
    """(augmentation images/s (best round), augmentation time / CNN step time (summed over rounds))."""
    images = torch.randint(0, 256, (batch, channels, size, size), dtype=torch.uint8)
    aug = build_augmentation(name, channels)
    generator = torch.Generator().manual_seed(0)
    step = _cnn_step(channels, batch, size)
    augment = lambda: aug(images, generator)  # noqa: E731
    for _ in range(3):
        augment()
        step()
    per_aug = max(_seconds(augment, 3, clock) / 3, 1e-7)
    per_step = _seconds(step, 2, clock) / 2
    rounds = 5
    aug_reps = max(1, int(seconds / 2 / rounds / per_aug))
    step_reps = max(1, int(seconds / 2 / rounds / per_step))
    best, aug_total, step_total = 0.0, 0.0, 0.0
    for _ in range(rounds):
        t_aug = _seconds(augment, aug_reps, clock)
        t_step = _seconds(step, step_reps, clock)
        best = max(best, aug_reps * batch / max(t_aug, 1e-9))
        aug_total += t_aug / aug_reps
        step_total += t_step / step_reps
    return best, aug_total / step_total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--size", type=int, default=28)
    parser.add_argument("--seconds", type=float, default=2.0, help="time per cell")
    parser.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                        help="cpu: process CPU time, steadier on a busy machine (meaningful with 1 thread)")
    parser.add_argument("--only", nargs="*", default=None, help="augmentation names (default: all)")
    args = parser.parse_args()
    clock = time.perf_counter if args.clock == "wall" else time.process_time
    names = args.only or AUGMENTATIONS.names()
    cells = [(c, t) for c in (1, 3) for t in args.threads]
    print(f"{args.clock} clock, batch {args.batch} x C x {args.size} x {args.size} uint8, CPU; "
          "each cell: augmentation images/s (its time as % of a seed-000 CNN training step)")
    print(f"{'augmentation':<24}" + "".join(f"{f'C={c} threads={t}':>24}" for c, t in cells))
    for name in names:
        row = []
        for channels, threads in cells:
            torch.set_num_threads(threads)
            rate, share = measure(name, channels, args.batch, args.size, args.seconds, clock)
            row.append(f"{rate:>14,.0f} ({100 * share:5.1f}%)")
        print(f"{name:<24}" + "".join(f"{cell:>24}" for cell in row), flush=True)


if __name__ == "__main__":
    main()
