"""Multi-process StyleGAN2-ADA fits on one machine (``spawn_fit``), the top of the package.

Each process builds its own ``StyleGAN2ADA`` and runs the kimg loop of
training_loop.py as one rank of a process group: gloo on CPU, NCCL on GPUs. For
several nodes launch ``medaug generator fit`` with torchrun instead (the CLI
initialises the process group from its environment).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from medaug.data.imageset import ImageSet
from medaug.errors import MedaugError
from medaug.generators.base import CHECKPOINT_DIR
from medaug.generators.stylegan2.generator import StyleGAN2ADA

__all__ = ["spawn_fit"]


def spawn_fit(nprocs: int, channels: int, size: int, num_classes: int, config: Mapping[str, Any],
              train: ImageSet, out_dir: str | Path, *, device: str = "cpu", resume: bool = False,
              port: int | None = None, quiet: bool = True, plots: bool = False) -> Path:
    """Train a ``stylegan2ada`` generator with ``nprocs`` processes on this machine.

    CPU: gloo, threads per process = cores // nprocs. CUDA: NCCL, one GPU per process
    (``device='cuda'``). For several nodes launch with torchrun instead (the CLI
    initialises the process group from its environment).
    """
    if device == "cuda" and torch.cuda.device_count() < nprocs:
        raise MedaugError(f"spawn_fit: {nprocs} processes need {nprocs} GPUs, found {torch.cuda.device_count()}")
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ["MASTER_PORT"] = str(port or _free_port())
    mp.spawn(_worker, args=(nprocs, channels, size, num_classes, dict(config), train, str(out_dir), device, resume,
                            quiet, plots), nprocs=nprocs, join=True)
    return Path(out_dir) / CHECKPOINT_DIR


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _worker(rank: int, world: int, channels: int, size: int, num_classes: int, config: dict[str, Any],
            train: ImageSet, out_dir: str, device: str, resume: bool, quiet: bool, plots: bool) -> None:
    from medaug.train.distributed import cleanup_distributed

    if device == "cuda":
        torch.cuda.set_device(rank)
        dev = f"cuda:{rank}"
        backend = "nccl"
    else:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // world))
        dev = "cpu"
        backend = "gloo"
    dist.init_process_group(backend, rank=rank, world_size=world)
    try:
        gen = StyleGAN2ADA(channels, size, num_classes, config, device=dev)
        gen.fit(train, Path(out_dir), resume=resume, quiet=quiet or rank != 0, plots=plots)
    finally:
        cleanup_distributed()
