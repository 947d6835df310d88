"""The one generator training loop (VAEs and GANs alike; they differ in `train_step`).

Read top to bottom, a fit is:
  1. refuse bad input before writing anything (shapes, multi-label data, a folder
     that already holds a checkpoint without --resume, a resume of another run);
  2. put the whole uint8 train split on the device (28 px sets fit many times over);
  3. per epoch: seed every random draw by (seed, epoch, rank), draw this rank's
     batches, call the generator's `train_step` on each (a VAE takes one ELBO step,
     a GAN a discriminator step and, every n_critic steps, a generator step), log
     the losses of every step;
  4. after each epoch: the validation loss (VAEs) with early stopping that keeps the
     best weights, then - rank 0 only - the loss tables and the checkpoint, both
     written atomically;
  5. at the end: the best weights (if early stopping kept some), the final
     checkpoint, loss curves (seed 000 Fig. 27) and a per-class montage (Fig. 28).

Randomness of epoch e comes only from (config.seed, e, rank), so a run resumed from
the checkpoint of epoch e ends bit-identical on CPU to one that never stopped,
without saving RNG state; the caller's global RNG is left as it was (fork_rng).

Layering: this module sits above `base` (the interface and checkpoints) and below the
generators trained by epochs (vae, gan, vaegan, baseline), which subclass
`EpochGenerator`; `base` never imports it.
"""

from __future__ import annotations

import csv
import io
import math
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medaug.data.imageset import ImageSet
from medaug.generators import distributed as ddp
from medaug.generators.base import (
    CHECKPOINT_DIR,
    Generator,
    check_fit_data,
    check_resumable,
    checkpoint_to_resume,
    fit_dataset,
    restore_state,
    to_float,
)
from medaug.store.atomic import atomic_write_text

STEPS_FILE = "losses_steps.csv"
EPOCHS_FILE = "losses_epochs.csv"
CURVES_FILE = "loss_curves.png"
MONTAGE_FILE = "samples.png"
VAL_BATCH = 256

#: `epoch_hook(gen, summary)`: extra per-epoch numbers (a validation metric) for the epoch's row.
EpochHook = Callable[[Generator, Mapping[str, Any]], Mapping[str, float] | None]


class EpochGenerator(Generator):
    """A generator trained by the shared epoch loop below (`train_generator`)."""

    def fit(self, train: ImageSet, out_dir: str | Path, *, val: ImageSet | None = None, resume: bool = False,
            quiet: bool = True, provenance: Mapping[str, Any] | None = None, plots: bool = True,
            epoch_hook: EpochHook | None = None) -> Path:
        """Train on `train` (a TRAIN split) and return the checkpoint folder out_dir/checkpoint.

        `val` is used only for early stopping (VAEs); `resume` continues from the last
        epoch checkpointed in out_dir; `provenance` adds the data set's version/md5 to
        the checkpoint; `plots` draws loss curves and a sample montage at the end;
        `epoch_hook(gen, summary)` (rank 0, after each epoch) returns extra numbers for
        the epoch's row of losses_epochs.csv, e.g. a generator study's validation metric.
        """
        return train_generator(self, train, Path(out_dir), val=val, resume=resume, quiet=quiet,
                               provenance=provenance, plots=plots, epoch_hook=epoch_hook)


def epoch_seed(seed: int, epoch: int, rank: int = 0) -> int:
    """The seed of every random draw in one epoch on one rank."""
    return (seed * 1_000_003 + epoch * 7_919 + rank * 104_729) % (2**63 - 1)


def train_generator(gen: Generator, train: ImageSet, out_dir: Path, *, val: ImageSet | None = None,
                    resume: bool = False, quiet: bool = True, provenance: Mapping[str, Any] | None = None,
                    plots: bool = True, epoch_hook: EpochHook | None = None) -> Path:
    """Fit `gen` on `train`; write checkpoints and logs under `out_dir`; return the checkpoint folder."""
    cfg = gen.config
    ckpt = out_dir / CHECKPOINT_DIR
    rank, world = ddp.rank_world()
    check_fit_data(gen, train, val)
    dataset = fit_dataset(train, val, provenance)
    meta = checkpoint_to_resume(out_dir, ckpt, resume)
    if meta is not None:
        _resume(gen, ckpt, meta, dataset)
    gen.class_names = train.class_names
    gen.dataset = dataset
    log = LossLog(out_dir, keep_epochs=gen.epoch if resume else 0)

    x_all = torch.from_numpy(train.images).to(gen.device)
    y_np = train.labels
    y_all = torch.from_numpy(y_np).to(gen.device)
    x_val = y_val = None
    use_val = gen.kind == "vae" and val is not None and len(val) > 0
    if use_val:
        x_val = torch.from_numpy(val.images).to(gen.device)
        y_val = torch.from_numpy(val.labels).to(gen.device)
    if world > 1:
        for net in gen.nets.values():
            ddp.broadcast_module(net)
    devices = [gen.device.index or 0] if gen.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        stop = False
        while gen.epoch < cfg.epochs and not stop and not gen.finished:
            epoch = gen.epoch
            torch.manual_seed(epoch_seed(cfg.seed, epoch, rank))
            order = torch.Generator().manual_seed(epoch_seed(cfg.seed, epoch))  # same on every rank
            gen.train_mode(True)
            t0 = time.perf_counter()
            rows: list[dict[str, Any]] = []
            seen = 0
            for step, idx in enumerate(gen.batch_indices(y_np, cfg.batch_size, order, rank, world)):
                index = torch.from_numpy(idx).to(gen.device)
                losses = gen.train_step(to_float(x_all[index]), y_all[index])
                gen.global_step += 1
                seen += len(idx)
                rows.append({"epoch": epoch + 1, "step": step, "global_step": gen.global_step, **losses})
            seconds = time.perf_counter() - t0
            if world > 1:
                for net in gen.nets.values():
                    ddp.broadcast_buffers(net)
            gen.epoch = epoch + 1
            summary: dict[str, Any] = {"epoch": gen.epoch, **_means(rows)}
            if use_val:
                val_loss = validation_loss(gen, x_val, y_val)
                summary["val_loss"] = val_loss
                stop = _early_stopping(gen, val_loss)
            summary.update(seconds=round(seconds, 3), images_per_s=round(seen * world / max(seconds, 1e-9), 1))
            if epoch_hook is not None and rank == 0:  # after the epoch's step, before best weights replace the last
                summary.update(epoch_hook(gen, summary) or {})
            if gen.epoch >= cfg.epochs or stop:
                _finish(gen)
            if rank == 0:
                log.add(rows, summary)
                log.write()
                gen.save(ckpt)
                if not quiet:
                    print(_status_line(gen, summary, stop), file=sys.stdout, flush=True)
            stop = ddp.any_rank(stop)
        if gen.epoch >= cfg.epochs and not gen.finished:  # resumed a run whose epochs were all done
            _finish(gen)
            if rank == 0:
                gen.save(ckpt)
    if rank == 0 and plots:
        from medaug.generators.plots import plot_loss_curves, plot_montage

        plot_loss_curves(log.epochs, out_dir / CURVES_FILE, title=f"{gen.name} on {train.name}")
        plot_montage(gen, train, out_dir / MONTAGE_FILE)
    ddp.barrier()
    return ckpt


def validation_loss(gen: Generator, x_val: torch.Tensor, y_val: torch.Tensor) -> float:
    """Mean of the generator's validation loss over the val split (eval mode, no gradients)."""
    gen.train_mode(False)
    total, n = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(x_val), VAL_BATCH):
            x = to_float(x_val[start:start + VAL_BATCH])
            loss = gen.validation_loss(x, y_val[start:start + VAL_BATCH])
            total += float(loss) * len(x)
            n += len(x)
    gen.train_mode(True)
    return total / max(n, 1)


def _early_stopping(gen: Generator, val_loss: float) -> bool:
    """Keep a copy of the best weights; True when patience epochs passed without improving."""
    patience = gen.config.early_stopping_patience
    if patience <= 0:
        return False
    best = float(gen.loop_state.get("best_val", math.inf))
    if val_loss < best:
        gen.loop_state.update(best_val=val_loss, best_epoch=gen.epoch, bad_epochs=0)
        gen.best_nets = {k: {n: t.detach().clone() for n, t in net.state_dict().items()} for k, net in gen.nets.items()}
        return False
    gen.loop_state["bad_epochs"] = int(gen.loop_state.get("bad_epochs", 0)) + 1
    return gen.loop_state["bad_epochs"] >= patience


def _finish(gen: Generator) -> None:
    """End of training: the best-validation weights replace the last ones (if kept)."""
    if gen.best_nets is not None:
        for k, net in gen.nets.items():
            net.load_state_dict(gen.best_nets[k])
        gen.loop_state["stopped_early"] = int(gen.epoch < gen.config.epochs)
        gen.best_nets = None
    gen.finished = True


def _resume(gen: Generator, ckpt: Path, meta: Mapping[str, Any], dataset: Mapping[str, Any]) -> None:
    """Load the last checkpoint into `gen` after checking it is this run's (only epochs may change)."""
    check_resumable(gen, meta, dataset, ckpt, ("epochs",))
    restore_state(gen, ckpt, meta)
    gen.finished = bool(meta["finished"]) and gen.epoch >= gen.config.epochs
    if gen.loop_state.get("stopped_early"):
        gen.finished = True


def _means(rows: list[dict[str, Any]]) -> dict[str, float]:
    keys = [k for k in rows[0] if k not in ("epoch", "step", "global_step")] if rows else []
    out = {}
    for k in keys:
        vals = [r[k] for r in rows if k in r and r[k] == r[k]]
        out[k] = float(np.mean(vals)) if vals else math.nan
    return out


def _status_line(gen: Generator, summary: Mapping[str, Any], stop: bool) -> str:
    parts = [f"{k} {v:.4g}" for k, v in summary.items() if k not in ("epoch", "seconds") and isinstance(v, float)]
    tail = " (early stop)" if stop else ""
    return f"{gen.name} epoch {summary['epoch']}/{gen.config.epochs}: " + ", ".join(parts) + tail


class LossLog:
    """Per-step and per-epoch loss tables as CSV, rewritten whole (atomically) each epoch.

    On resume the rows of epochs after the checkpoint (an interrupted epoch) are dropped.
    """

    def __init__(self, out_dir: Path, keep_epochs: int = 0) -> None:
        self.out_dir = out_dir
        self.steps = read_loss_csv(out_dir / STEPS_FILE, keep_epochs) if keep_epochs else []
        self.epochs = read_loss_csv(out_dir / EPOCHS_FILE, keep_epochs) if keep_epochs else []

    def add(self, steps: list[dict[str, Any]], epoch: dict[str, Any]) -> None:
        self.steps.extend(steps)
        self.epochs.append(epoch)

    def write(self) -> None:
        atomic_write_text(self.out_dir / STEPS_FILE, _to_csv(self.steps))
        atomic_write_text(self.out_dir / EPOCHS_FILE, _to_csv(self.epochs))


def _to_csv(rows: list[dict[str, Any]]) -> str:
    fields: list[str] = []
    for r in rows:
        fields.extend(k for k in r if k not in fields)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: (repr(v) if isinstance(v, float) else v) for k, v in r.items()})
    return buf.getvalue()


def read_loss_csv(path: Path, keep_epochs: int | None = None) -> list[dict[str, Any]]:
    """The rows of a loss table (losses_steps.csv, losses_epochs.csv) as dicts of numbers:
    empty or unreadable cells left out; with `keep_epochs`, only rows of epochs up to it (a
    resume drops an interrupted epoch's rows). Also read by a generator study while a fit runs."""
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    out = []
    for r in rows:
        row: dict[str, Any] = {}
        for k, v in r.items():
            try:
                row[k] = int(v) if k in ("epoch", "step", "global_step") else float(v)
            except (TypeError, ValueError):
                continue
        if keep_epochs is None or row.get("epoch", 0) <= keep_epochs:
            out.append(row)
    return out
