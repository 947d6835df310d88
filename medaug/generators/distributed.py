"""torch.distributed helpers for generator training (no-ops in a single process).

Generator steps are unlike a classifier's: a GAN step runs the discriminator several
times before one backward, WGAN-GP differentiates a gradient (double backward), and
VAE-GAN takes gradients of three losses for three nets from one graph.
`DistributedDataParallel`'s reducer refuses most of these patterns (a parameter
"marked ready twice", no double backward), so instead of wrapping nets in DDP we do
what DDP does, explicitly: every rank starts from rank 0's weights, trains on its own
shard of each epoch, and averages gradients across ranks (one all-reduce per
optimizer step, over a flat buffer) before each optimizer step; batch-norm buffers
are broadcast from rank 0 at the end of each epoch. The result is the same
data-parallel SGD that DDP computes.

Launch: `torchrun --nproc_per_node=N -m medaug.cli generator fit ...` (the CLI
initialises the process group from torchrun's environment).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.distributed as dist
from torch import nn


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank_world() -> tuple[int, int]:
    if is_distributed():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def broadcast_module(module: nn.Module, src: int = 0) -> None:
    """Copy parameters and buffers of rank `src` to every rank."""
    if not is_distributed():
        return
    with torch.no_grad():
        for t in list(module.parameters()) + list(module.buffers()):
            dist.broadcast(t.data, src)


def broadcast_buffers(module: nn.Module, src: int = 0) -> None:
    """Copy buffers (batch-norm running statistics, spectral-norm vectors) of rank `src`."""
    if not is_distributed():
        return
    for b in module.buffers():
        dist.broadcast(b.data, src)


def average_gradients(params: Iterable[nn.Parameter]) -> None:
    """All-reduce the gradients of `params` to their mean over ranks (one flat all-reduce)."""
    if not is_distributed():
        return
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= dist.get_world_size()
    offset = 0
    for g in grads:
        g.copy_(flat[offset:offset + g.numel()].view_as(g))
        offset += g.numel()


def step(optimizer: torch.optim.Optimizer) -> None:
    """Average gradients across ranks (when distributed), then take the optimizer step."""
    if is_distributed():
        average_gradients(p for group in optimizer.param_groups for p in group["params"])
    optimizer.step()


def any_rank(flag: bool) -> bool:
    """True on every rank when `flag` is true on one (used for early stopping)."""
    if not is_distributed():
        return flag
    t = torch.tensor([1.0 if flag else 0.0])
    if dist.get_backend() == "nccl":
        t = t.cuda()
    dist.all_reduce(t)
    return bool(t.item() > 0)


def barrier() -> None:
    if is_distributed():
        dist.barrier()
