"""`medaug generator ...`: train generative augmenters from the command line.

    medaug generator fit --dataset breastmnist --generator cvae --epochs 200 --seed 0 --out runs/cvae
    medaug generator list

Other areas add subcommands to the same `generator` group either from their own
`add_commands(subparsers)` (listed in medaug/cli.py's COMMAND_MODULES):

    def add_commands(subparsers):
        p = generator_subparsers(subparsers).add_parser("eval", help="...")
        p.add_argument(...); p.set_defaults(handler=run_eval)

or, at import time of their module, with `register_generator_command("eval", configure)`
where `configure(parser)` adds the arguments and sets `handler`; either works in any
order relative to this module.

Distributed: under `torchrun --nproc_per_node=N` (WORLD_SIZE > 1 in the environment)
`fit` initialises the process group (NCCL on CUDA, else gloo) and trains data-parallel.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from medaug.errors import MedaugError

GROUP = "generator"
_REGISTERED: dict[str, tuple[Callable[[argparse.ArgumentParser], None], str]] = {}


def register_generator_command(name: str, configure: Callable[[argparse.ArgumentParser], None], help: str = "") -> None:
    """Add `medaug generator NAME`: `configure(parser)` adds its arguments and sets `handler`."""
    _REGISTERED[name] = (configure, help)


def generator_subparsers(subparsers: argparse._SubParsersAction) -> argparse._SubParsersAction:
    """The sub-subparsers of the `generator` command, created on first use."""
    parser = subparsers.choices.get(GROUP)
    if parser is None:
        parser = subparsers.add_parser(GROUP, help="train generative augmenters (VAEs, GANs) and evaluate them",
                                       description="Generative augmentation: fit, list (and evaluate) generators.")
        group = parser.add_subparsers(dest="generator_command", required=True, metavar="SUBCOMMAND")
        parser._medaug_subcommands = group  # type: ignore[attr-defined]
    return parser._medaug_subcommands  # type: ignore[attr-defined]


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    group = generator_subparsers(subparsers)
    _add_fit(group)
    p = group.add_parser("list", help="list the generators and their default settings")
    p.set_defaults(handler=run_list)
    for name, (configure, help_text) in _REGISTERED.items():
        if name not in group.choices:
            configure(group.add_parser(name, help=help_text))


def _add_fit(group: argparse._SubParsersAction) -> None:
    p = group.add_parser("fit", help="train a generator on a data set's train split",
                         description="Train a generator on the TRAIN split (val only for early stopping); "
                                     "checkpoints every epoch in OUT/checkpoint, loss tables and figures in OUT.")
    p.add_argument("--dataset", required=True, help="MedMNIST 2D data set, e.g. breastmnist")
    p.add_argument("--generator", required=True,
                   help="cvae, jvae, cgan, dcgan, cwgan-gp, vaegan, ... (see `medaug generator list`)")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (checkpoint/, losses_*.csv, *.png)")
    p.add_argument("--epochs", type=int, default=None, help="epochs (default: the generator's)")
    p.add_argument("--seed", type=int, default=0, help="seed of initial weights and every random draw (default 0)")
    p.add_argument("--size", type=int, default=28, choices=(28, 64), help="image size in px (default 28)")
    p.add_argument("--batch-size", type=int, default=None, help="batch size (default: the generator's)")
    p.add_argument("--lr", type=float, default=None, help="learning rate (default: the generator's)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="any other config field, e.g. --set width=0.5 --set early_stopping_patience=20")
    p.add_argument("--resume", action="store_true", help="continue from the last epoch checkpointed in --out")
    p.add_argument("--data-root", metavar="DIR", default=None,
                   help="folder holding the MedMNIST npz files (default: $MEDAUG_DATA_ROOT, else ~/.medmnist)")
    p.add_argument("--download", action="store_true", help="download a missing npz (online only)")
    p.add_argument("--no-verify-md5", dest="verify_md5", action="store_false", help="skip the npz md5 check")
    p.add_argument("--device", default="auto", help="auto (CUDA when present, else CPU), cpu, cuda, cuda:N")
    p.add_argument("--quiet", action="store_true", help="no per-epoch status lines")
    p.set_defaults(handler=run_fit)


def parse_sets(items: list[str]) -> dict[str, Any]:
    """KEY=VALUE pairs; values read as JSON scalars (numbers, true/false), else as strings."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise MedaugError(f"--set {item!r}: expected KEY=VALUE")
        try:
            value = json.loads(raw)
        except ValueError:
            value = raw
        if isinstance(value, (list, dict)) or value is None:
            raise MedaugError(f"--set {item!r}: expected a number, true/false or a string")
        out[key.strip()] = value
    return out


def _init_distributed(device_arg: str) -> str:
    """Under torchrun, join the process group; returns the device this rank should use."""
    import torch
    import torch.distributed as dist

    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or dist.is_initialized():
        return device_arg
    use_cuda = torch.cuda.is_available() and device_arg in ("auto", "cuda")
    dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    if use_cuda:
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        return f"cuda:{local}"
    return "cpu" if device_arg == "auto" else device_arg


def run_fit(args: argparse.Namespace) -> int:
    import torch.distributed as dist

    from medaug.data.medmnist import load_medmnist
    from medaug.generators import GENERATORS, resolve_device

    cls = GENERATORS.get(args.generator)
    overrides = parse_sets(args.set)
    for key in ("epochs", "batch_size", "lr"):
        if getattr(args, key) is not None:
            overrides[key] = getattr(args, key)
    config = cls.make_config(overrides, seed=args.seed)
    resolve_device(args.device)  # refuse a bad --device before loading anything
    splits = load_medmnist(args.dataset, size=args.size, root=args.data_root, download_missing=args.download,
                           verify=args.verify_md5)
    out = Path(args.out)
    if not args.resume and (out / "checkpoint" / "generator.json").exists():
        raise MedaugError(f"{out}: already holds a generator checkpoint; pass --resume or choose another --out")
    device = _init_distributed(args.device)
    gen = cls(splits.train.channels, splits.train.size, splits.train.num_classes, config, device=device)
    ckpt = gen.fit(splits.train, out, val=splits.val, resume=args.resume, quiet=args.quiet,
                   provenance={"version": splits.version, "md5": splits.md5})
    if not args.quiet and (not dist.is_initialized() or dist.get_rank() == 0):
        print(f"{gen.name} on {splits.name}: {gen.epoch} epochs; checkpoint {ckpt}", file=sys.stdout)
    return 0


def run_list(args: argparse.Namespace) -> int:
    from medaug.generators import GENERATORS

    for name in GENERATORS.names():
        cls = GENERATORS.get(name)
        cfg = cls.make_config()
        caps = ", ".join(k for k, on in (("conditional", cls.conditional), ("sample", cls.can_sample),
                                         ("reconstruct", cls.can_reconstruct)) if on)
        doc = (cls.__doc__ or "").strip().splitlines()[0]
        print(f"{name:9s} [{caps}] {doc}")
        print(f"{'':9s} defaults: " + ", ".join(f"{k}={v}" for k, v in cfg.to_dict().items()))
    return 0
