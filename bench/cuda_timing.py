"""Wall-clock seconds of repeated GPU steps, shared by the GPU benchmarks."""

from __future__ import annotations

import time
from collections.abc import Callable

import torch


def cuda_seconds(step: Callable[[], object], warmup: int, steps: int) -> float:
    """Seconds for `steps` calls of `step` after `warmup` untimed ones (cudnn autotuning, the
    allocator), between two synchronisations; peak GPU memory is reset after the warm-up."""
    for _ in range(warmup):
        step()
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    torch.cuda.synchronize()
    return time.perf_counter() - start
