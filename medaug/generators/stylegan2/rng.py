"""Seeded random numbers for one rank's share of a global minibatch.

Every random draw of a training step (latents, noise inputs, augmentation
parameters, minibatch indices) goes through a ``BatchRandom``. Each rank draws the
numbers for the *whole* global batch from the same seeded ``torch.Generator`` and
keeps its own slice. So one process with batch B and W processes with B / W each
see identical random numbers, and their updates agree up to floating-point
summation order (tested in tests/test_stylegan2_ddp.py); and a checkpoint that
stores the generator state resumes the exact same stream. The cost is W times the
draws, which is small next to the convolutions.
"""

from __future__ import annotations

import torch


class BatchRandom:
    """Draws for samples [rank * n, (rank + 1) * n) of a global batch of world * n."""

    def __init__(self, generator: torch.Generator, rank: int = 0, world: int = 1) -> None:
        if not 0 <= rank < world:
            raise ValueError(f"rank {rank} outside world {world}")
        self.generator = generator
        self.rank, self.world = rank, world

    @classmethod
    def seeded(cls, seed: int, device: torch.device | str = "cpu") -> BatchRandom:
        g = torch.Generator(device=device)
        g.manual_seed(int(seed))
        return cls(g)

    @property
    def device(self) -> torch.device:
        return self.generator.device

    def _mine(self, full: torch.Tensor, n: int) -> torch.Tensor:
        return full[self.rank * n:(self.rank + 1) * n]

    def randn(self, n: int, *shape: int) -> torch.Tensor:
        """Standard normal, shape (n, *shape): this rank's n of the global world * n."""
        full = torch.randn((n * self.world, *shape), generator=self.generator, device=self.device)
        return self._mine(full, n)

    def rand(self, n: int, *shape: int) -> torch.Tensor:
        """Uniform [0, 1), shape (n, *shape)."""
        full = torch.rand((n * self.world, *shape), generator=self.generator, device=self.device)
        return self._mine(full, n)

    def randint(self, high: int, n: int) -> torch.Tensor:
        """Integers in [0, high), shape (n,)."""
        full = torch.randint(0, high, (n * self.world,), generator=self.generator, device=self.device)
        return self._mine(full, n)

    def shared_rand(self) -> float:
        """One uniform number, the same on every rank (e.g. whether to mix styles)."""
        return float(torch.rand((), generator=self.generator, device=self.device))

    def shared_randint(self, low: int, high: int) -> int:
        """One integer in [low, high), the same on every rank."""
        return int(torch.randint(low, high, (), generator=self.generator, device=self.device))

    def get_state(self) -> torch.Tensor:
        return self.generator.get_state()

    def set_state(self, state: torch.Tensor) -> None:
        self.generator.set_state(state)
