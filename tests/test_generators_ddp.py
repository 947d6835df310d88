"""Generator fits under torch.distributed: 2 gloo processes on CPU end with identical
weights, rank 0 alone writes, and the checkpoint loads.

The group meets through a TCP store on 127.0.0.1, as under torchrun, and is torn down
by `cleanup_distributed`: before it collected the group's last references, about one
run in ten aborted at interpreter exit after all its work was done ("terminate called
without an active exception" from a gloo thread still alive at shutdown)."""

from __future__ import annotations

import json
import socket
import sys
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

NAMES = ("cvae", "cwgan-gp", "dcgan", "vaegan")


def _fingerprint(gen) -> torch.Tensor:
    """All parameters and buffers of all nets, flattened (float64)."""
    parts = [t.detach().double().reshape(-1) for net in gen.nets.values()
             for t in list(net.state_dict().values()) if t.is_floating_point()]
    return torch.cat(parts)


def _worker(rank: int, world: int, init_method: str, out: str) -> None:
    torch.set_num_threads(1)
    sys.path.insert(0, str(Path(__file__).parent))
    from test_generators_models import tiny, tiny_set

    from medaug.generators import load_generator
    from medaug.train.distributed import cleanup_distributed

    dist.init_process_group("gloo", init_method=init_method, rank=rank, world_size=world)
    report = {}
    try:
        for name in NAMES:
            gen = tiny(name, epochs=2, batch_size=4)
            ckpt = gen.fit(tiny_set(), Path(out) / name, val=tiny_set(8, seed=1, split="val"), plots=False)
            mine = _fingerprint(gen)
            gathered = [torch.zeros_like(mine) for _ in range(world)]
            dist.all_gather(gathered, mine)
            report[name] = {"same_on_all_ranks": all(torch.equal(g, gathered[0]) for g in gathered),
                            "global_step": gen.global_step,
                            "loaded_epoch": load_generator(ckpt, device="cpu").epoch if rank == 0 else None}
    finally:
        cleanup_distributed()
    Path(out, f"rank{rank}.json").write_text(json.dumps(report))


def test_two_process_gloo_fit(tmp_path):
    world = 2
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    mp.spawn(_worker, args=(world, f"tcp://127.0.0.1:{port}", str(tmp_path)), nprocs=world, join=True)
    reports = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(world)]
    for name in NAMES:
        for r in reports:
            assert r[name]["same_on_all_ranks"], name
        # 16 images sharded over 2 ranks, batches of 4: 2 steps per epoch (dcgan: 1 per class), 2 epochs
        assert reports[0][name]["global_step"] == reports[1][name]["global_step"] == 4
        assert reports[0][name]["loaded_epoch"] == 2
        files = sorted(p.name for p in (tmp_path / name).iterdir())
        assert files == ["checkpoint", "losses_epochs.csv", "losses_steps.csv"]
