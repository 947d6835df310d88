"""torch.distributed from the launcher's environment: SLURM (via submitit) or torchrun.

The training loop (`medaug.train.loop`) needs nothing but an initialised process
group: every rank draws the same global batch and trains on its slice, and only rank 0
writes files. This module only sets that group up and tears it down.

Launch examples (nanoGPT style):

    # smoke check of the group itself: one node, two processes (CPU: gloo; GPUs: NCCL)
    torchrun --standalone --nproc_per_node=2 -m medaug.train.distributed
    # SLURM, 2 nodes x 1 task, through a sweep: resources {nodes: 2, tasks_per_node: 1}
    medaug sweep study.yaml --executor slurm --site hpc/sites/NAME.yaml

Where the variables come from, in this order:
1. RANK and WORLD_SIZE already set (torchrun, or a launcher that exported them).
2. A SLURM job step with more than one task: submitit's `TorchDistributedEnvironment`
   (rank = SLURM_PROCID, world = SLURM_NTASKS, master = first node of the job, port
   derived from the job id). MASTER_ADDR already in the environment wins: the
   localhost test cluster's nodes n1/n2 do not resolve, so its site profile sets
   MASTER_ADDR=127.0.0.1.
3. Otherwise a single process: nothing is initialised.
"""

from __future__ import annotations

import datetime
import gc
import os
import random
import sys
from dataclasses import dataclass

import torch
import torch.distributed as dist

MIN_PORT, MAX_PORT = 20000, 60000


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits in the job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None
    master_addr: str | None = None
    master_port: int | None = None
    launcher: str = "single"  # single | torchrun | slurm

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def device(self) -> str:
        """This rank's device: its own GPU when there are GPUs, else the CPU."""
        if torch.cuda.is_available():
            return f"cuda:{self.local_rank % torch.cuda.device_count()}"
        return "cpu"


def _slurm_env() -> dict[str, str] | None:
    """RANK/WORLD_SIZE/... for a multi-task SLURM step, or None for a single task."""
    if int(os.environ.get("SLURM_NTASKS", "1")) <= 1 or "SLURM_PROCID" not in os.environ:
        return None
    if "SUBMITIT_EXECUTOR" in os.environ:
        from submitit.helpers import TorchDistributedEnvironment

        tde = TorchDistributedEnvironment()
        rank, world, local, addr, port = (tde.rank, tde.world_size, tde.local_rank, tde.master_addr,
                                          tde.master_port)
    else:  # plain srun: the same rule as submitit, from SLURM's variables
        import subprocess

        rank, world = int(os.environ["SLURM_PROCID"]), int(os.environ["SLURM_NTASKS"])
        local = int(os.environ.get("SLURM_LOCALID", "0"))
        nodes = subprocess.run(["scontrol", "show", "hostnames", os.environ["SLURM_JOB_NODELIST"]],
                               capture_output=True, text=True, check=True).stdout.split()
        addr = nodes[0]
        port = int(os.environ.get("MASTER_PORT") or
                   random.Random(os.environ["SLURM_JOB_ID"]).randint(MIN_PORT, MAX_PORT))
    return {
        "RANK": str(rank), "WORLD_SIZE": str(world), "LOCAL_RANK": str(local),
        "MASTER_ADDR": os.environ.get("MASTER_ADDR") or addr,
        "MASTER_PORT": os.environ.get("MASTER_PORT") or str(port),
    }


def init_distributed(backend: str | None = None, timeout_s: float = 300.0) -> DistInfo:
    """Initialise torch.distributed from the environment; a no-op for one process.

    `backend`: None picks NCCL when CUDA is available, else gloo. Returns the rank
    layout; safe to call twice (the second call reports the existing group).
    """
    if dist.is_available() and dist.is_initialized():
        return _current(launcher="existing")
    launcher = "single"
    if "RANK" in os.environ and "WORLD_SIZE" in os.environ:
        launcher = "torchrun"
    else:
        exported = _slurm_env()
        if exported is not None:
            os.environ.update(exported)
            launcher = "slurm"
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if launcher == "single" or world <= 1:
        return DistInfo()
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", str(random.Random(0).randint(MIN_PORT, MAX_PORT)))
    backend = backend or ("nccl" if torch.cuda.is_available() else "gloo")
    if backend == "nccl":
        torch.cuda.set_device(local_rank % torch.cuda.device_count())
    dist.init_process_group(backend=backend, init_method="env://", rank=rank, world_size=world,
                            timeout=datetime.timedelta(seconds=timeout_s))
    return DistInfo(rank=rank, world_size=world, local_rank=local_rank, backend=backend,
                    master_addr=os.environ["MASTER_ADDR"], master_port=int(os.environ["MASTER_PORT"]),
                    launcher=launcher)


def _current(launcher: str) -> DistInfo:
    return DistInfo(rank=dist.get_rank(), world_size=dist.get_world_size(),
                    local_rank=int(os.environ.get("LOCAL_RANK", "0")), backend=str(dist.get_backend()),
                    master_addr=os.environ.get("MASTER_ADDR"),
                    master_port=int(os.environ["MASTER_PORT"]) if "MASTER_PORT" in os.environ else None,
                    launcher=launcher)


def is_main_process() -> bool:
    """True on rank 0, and in any process that is not part of a group."""
    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


def cleanup_distributed() -> None:
    """Destroy the process group; call it in a `finally`. On a normal exit a barrier comes
    first, so no rank leaves while others still talk (gloo aborts at interpreter exit
    otherwise); while an exception propagates there is no barrier: a failed rank must
    not wait for the others until the group's timeout."""
    if dist.is_available() and dist.is_initialized():
        try:
            if sys.exc_info()[0] is None:
                dist.barrier()
        finally:
            dist.destroy_process_group()
            # Objects that still refer to the group (work handles in reference cycles) keep
            # its gloo threads alive; left to interpreter shutdown they abort the process
            # ("terminate called without an active exception") after all work is done.
            gc.collect()


def _smoke_check() -> None:
    """All-reduce the ranks and print the layout: `python -m medaug.train.distributed` under a launcher."""
    info = init_distributed()
    value = torch.tensor([float(info.rank + 1)], device=info.device() if info.backend == "nccl" else "cpu")
    if info.distributed:
        dist.all_reduce(value)
    expected = info.world_size * (info.world_size + 1) / 2
    print(f"rank {info.rank}/{info.world_size} via {info.launcher} ({info.backend}): "
          f"all_reduce {value.item():g} (expected {expected:g})", flush=True)
    cleanup_distributed()
    if value.item() != expected:
        raise SystemExit(1)


if __name__ == "__main__":
    _smoke_check()
