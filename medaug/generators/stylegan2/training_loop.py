"""The StyleGAN2-ADA training loop, measured in images seen (kimg).

Read top to bottom, a fit (``run_training``) is:
  1. refuse bad input before writing anything (shapes, split, a folder that already
     holds a checkpoint without resume, a resume of another run or config);
  2. put the whole uint8 train split on the device at the working resolution
     (a power of two >= 32: 28 px MedMNIST is reflect-padded to 32, see ``fit_to``);
  3. per minibatch (``StyleGAN2Trainer.train_step``), on this rank's share of the
     global batch: G main step, path-length step every ``pl_interval`` minibatches,
     D main step, R1 step every ``r1_interval`` minibatches (lazy regularisation),
     gradients averaged over ranks before each optimiser step; then the EMA of G and
     the ADA p update from r_t = E[sign(D(aug(real)))];
  4. every ``tick_kimg``: one status line and one JSON line of statistics
     (stats.jsonl, rewritten atomically); every ``checkpoint_kimg``: the checkpoint
     (atomic; holds G, D, G_ema, optimisers, ADA state, counters and the RNG state,
     so a resumed run continues bit-identically on CPU); every ``fid_kimg``: FID of
     G_ema samples against a fixed subset of the train split when a feature
     extractor is available (``resolve_fid``; rank 0 only);
  5. at the end: the final checkpoint and a per-class sample montage.

DDP: launched by ``torchrun`` (the process group is set up by the caller, e.g. the
CLI) or by ``launch.spawn_fit`` (torch.multiprocessing on one machine: gloo on CPU,
NCCL on GPUs). Every rank holds the nets and the data; each computes batch / world
samples; gradients are all-reduced (mean) explicitly, as in the reference code and
``medaug.generators.distributed`` (R1 and path length are double-backward, which
``DistributedDataParallel`` does not support). Only rank 0 writes files.

Layering: this module knows the generator only through the ``base.Generator``
interface (plus the trainer factory it is given); generator.py sits above it and
launch.py above that.
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from medaug.errors import MedaugError
from medaug.generators import distributed as ddp
from medaug.generators.base import (
    CHECKPOINT_DIR,
    Generator,
    check_fit_data,
    check_resumable,
    checkpoint_to_resume,
    fit_dataset,
    restore_state,
)
from medaug.generators.stylegan2.augment import AdaptiveP, AugmentPipe
from medaug.generators.stylegan2.config import SCHEDULE_FIELDS, StyleGANConfig
from medaug.generators.stylegan2.loss import StyleGAN2Loss
from medaug.generators.stylegan2.networks import StyleDiscriminator, StyleGenerator
from medaug.generators.stylegan2.rng import BatchRandom
from medaug.store.atomic import atomic_write_text

if TYPE_CHECKING:
    from medaug.data.imageset import ImageSet

STATS_FILE = "stats.jsonl"
MONTAGE_FILE = "samples.png"
FID_FAKES_PER_CALL = 256


# ----------------------------------------------------------------------------- sizes


def working_resolution(size: int) -> int:
    """The power of two the nets work at: the smallest >= size, at least 32 (28 -> 32)."""
    res = 32
    while res < size:
        res *= 2
    return res


def fit_to(images: torch.Tensor, resolution: int, mode: str) -> torch.Tensor:
    """uint8 (N, C, s, s) -> uint8 (N, C, R, R): reflect-pad ('pad') or bilinear resize ('resize')."""
    s = images.shape[-1]
    if s == resolution:
        return images
    if mode == "pad":
        total = resolution - s
        a, b = total // 2, total - total // 2
        x = F.pad(images.float(), [a, b, a, b], mode="reflect")
        return x.round().clamp(0, 255).to(torch.uint8)
    x = F.interpolate(images.float(), size=(resolution, resolution), mode="bilinear", align_corners=False,
                      antialias=True)
    return x.round().clamp(0, 255).to(torch.uint8)


def fit_back(images: torch.Tensor, size: int, mode: str) -> torch.Tensor:
    """Float (N, C, R, R) generated at the working resolution -> (N, C, size, size)."""
    r = images.shape[-1]
    if r == size:
        return images
    if mode == "pad":
        a = (r - size) // 2
        return images[:, :, a:a + size, a:a + size]
    return F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False, antialias=True)


# ----------------------------------------------------------------------------- construction


def resolved_r1_gamma(cfg: StyleGANConfig, resolution: int) -> float:
    """r1_gamma, or (negative = auto) ADA's heuristic 0.0002 * resolution^2 / batch."""
    return cfg.r1_gamma if cfg.r1_gamma >= 0 else 0.0002 * resolution ** 2 / cfg.batch_size


def resolved_ema_kimg(cfg: StyleGANConfig) -> float:
    """ema_kimg, or (negative = auto) ADA's heuristic batch * 10 / 32."""
    return cfg.ema_kimg if cfg.ema_kimg >= 0 else cfg.batch_size * 10 / 32


def build_nets(cfg: StyleGANConfig, channels: int, resolution: int, c_dim: int) -> dict[str, nn.Module]:
    """G, D, G_ema (a copy of G) and the augmentation pipe (holds p), from the config.

    ``width`` scales channel_base and channel_max (1.0 = the configured sizes).
    Call under a seeded RNG: initial weights come from torch's global generator.
    """
    base = max(1, round(cfg.channel_base * cfg.width))
    cmax = max(1, round(cfg.channel_max * cfg.width))
    clamp = cfg.conv_clamp if cfg.conv_clamp > 0 else None
    G = StyleGenerator(cfg.latent_dim, c_dim, cfg.w_dim, resolution, channels, mapping_layers=cfg.mapping_layers,
                       channel_base=base, channel_max=cmax, conv_clamp=clamp)
    D = StyleDiscriminator(c_dim, resolution, channels, channel_base=base, channel_max=cmax,
                           mapping_layers=cfg.mapping_layers, mbstd_group_size=cfg.mbstd_group, conv_clamp=clamp)
    G_ema = StyleGenerator(cfg.latent_dim, c_dim, cfg.w_dim, resolution, channels,
                           mapping_layers=cfg.mapping_layers, channel_base=base, channel_max=cmax, conv_clamp=clamp)
    G_ema.load_state_dict(G.state_dict())
    G_ema.requires_grad_(False)
    augment = AugmentPipe("bgc" if cfg.augment == "none" else cfg.augment, p=cfg.augment_p)
    return {"G": G, "D": D, "G_ema": G_ema, "augment": augment}


def lazy_adam(params: Any, cfg: StyleGANConfig, interval: int) -> torch.optim.Adam:
    """Adam with lazy-regularisation correction: a regulariser run every k minibatches
    makes an optimiser see k + 1 steps per k, so lr and betas are rescaled by k / (k + 1)."""
    ratio = interval / (interval + 1) if interval > 0 else 1.0
    return torch.optim.Adam(params, lr=cfg.lr * ratio, betas=(cfg.beta1 ** ratio, cfg.beta2 ** ratio), eps=1e-8)


def build_optimizers(nets: Mapping[str, nn.Module], cfg: StyleGANConfig) -> dict[str, torch.optim.Optimizer]:
    g_int = cfg.pl_interval if cfg.pl_weight > 0 else 0
    d_int = cfg.r1_interval
    return {"G": lazy_adam(nets["G"].parameters(), cfg, g_int), "D": lazy_adam(nets["D"].parameters(), cfg, d_int)}


# ----------------------------------------------------------------------------- distributed helpers


def _all_sum(values: list[float], device: torch.device) -> list[float]:
    """Sum a few scalars over ranks (identity in one process)."""
    if not ddp.is_distributed():
        return values
    t = torch.tensor(values, dtype=torch.float64, device=device if dist.get_backend() == "nccl" else "cpu")
    dist.all_reduce(t)
    return t.tolist()


def _all_mean_tensor(t: torch.Tensor) -> torch.Tensor:
    if not ddp.is_distributed():
        return t
    t = t.detach().clone()
    dist.all_reduce(t)
    return t / dist.get_world_size()


def _average_and_clean(params: list[nn.Parameter]) -> None:
    ddp.average_gradients(params)
    for p in params:
        if p.grad is not None:
            torch.nan_to_num(p.grad, nan=0.0, posinf=1e5, neginf=-1e5, out=p.grad)


# ----------------------------------------------------------------------------- one minibatch


class StyleGAN2Trainer:
    """Runs StyleGAN2-ADA minibatches on this rank: all phases, EMA, ADA.

    ``batch_size`` is the global batch; this rank computes batch / world of it.
    ``images`` are the whole uint8 train set at the working resolution on the
    device, ``labels`` its int64 class indices.
    """

    def __init__(self, nets: Mapping[str, nn.Module], optims: Mapping[str, torch.optim.Optimizer],
                 cfg: StyleGANConfig, *, num_classes: int, device: torch.device, rank: int = 0,
                 world: int = 1) -> None:
        if cfg.batch_size % world:
            raise MedaugError(f"batch_size {cfg.batch_size} must be divisible by the {world} processes")
        self.cfg, self.device = cfg, device
        self.G, self.D, self.G_ema = nets["G"], nets["D"], nets["G_ema"]
        self.augment: AugmentPipe = nets["augment"]  # type: ignore[assignment]
        self.opt_G, self.opt_D = optims["G"], optims["D"]
        self.num_classes = num_classes
        self.rank, self.world = rank, world
        self.local_batch = cfg.batch_size // world
        self.resolution = self.G.img_resolution
        gen = torch.Generator(device=device)
        gen.manual_seed(cfg.seed * 1_000_003 + 17)
        self.rng = BatchRandom(gen, rank, world)
        self.amp_dtype = _amp_dtype(cfg.amp, device)
        self.scalers = ({k: torch.amp.GradScaler("cuda") for k in ("G", "D")}
                        if self.amp_dtype == torch.float16 else None)
        autocast = (lambda: torch.autocast("cuda", dtype=self.amp_dtype)) if self.amp_dtype is not None else None
        self.loss = StyleGAN2Loss(self.G, self.D, self.augment if cfg.augment != "none" else None,
                                  r1_gamma=resolved_r1_gamma(cfg, self.resolution),
                                  style_mixing_prob=cfg.style_mixing, pl_weight=cfg.pl_weight,
                                  autocast=autocast, all_mean=_all_mean_tensor)
        self.ada = AdaptiveP(cfg.ada_target, cfg.ada_interval, cfg.ada_kimg) if cfg.ada and cfg.augment != "none" \
            else None
        self.nimg = 0
        self.step_count = 0

    @property
    def p(self) -> float:
        """The augmentation probability in use (0 when augmentation is off)."""
        return float(self.augment.p) if self.cfg.augment != "none" else 0.0

    def phase(self, name: str, real: torch.Tensor, c: torch.Tensor, gen_c: torch.Tensor,
              gain: float = 1.0) -> dict[str, float]:
        """One phase (Gmain, Greg, Dmain, Dreg): forward, backward, rank-average, optimiser step."""
        if name.startswith("G"):
            opt, net, other = self.opt_G, self.G, self.D
        else:
            opt, net, other = self.opt_D, self.D, self.G
        net.requires_grad_(True)
        other.requires_grad_(False)
        opt.zero_grad(set_to_none=True)
        scaler = self.scalers[name[0]] if self.scalers is not None and name.endswith("main") else None
        stats = self.loss.accumulate(name, real, c, gen_c, self.rng, gain=gain,
                                     scale=scaler.scale if scaler is not None else None)
        params = list(net.parameters())
        if scaler is not None:  # the scaler must see infs to skip the step: no cleaning
            ddp.average_gradients(params)
            scaler.step(opt)
            scaler.update()
        else:
            _average_and_clean(params)
            opt.step()
        net.requires_grad_(False)
        return stats

    def train_step(self, images: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
        """One minibatch of all phases; returns this step's statistics (rank-averaged where it matters)."""
        cfg = self.cfg
        n = self.local_batch
        self.G.train()
        self.D.train()
        real_idx = self.rng.randint(len(images), n).to(images.device)
        real = images[real_idx].float().mul(1 / 127.5).sub(1.0)
        c = F.one_hot(labels[real_idx], self.num_classes).float()
        gen_c = F.one_hot(labels[self.rng.randint(len(labels), n).to(labels.device)], self.num_classes).float()

        stats: dict[str, float] = {}
        stats.update(self.phase("Gmain", real, c, gen_c))
        if cfg.pl_weight > 0 and self.step_count % cfg.pl_interval == 0:
            m = max(1, n // self.loss.pl_batch_shrink)
            pl_c = F.one_hot(labels[self.rng.randint(len(labels), m).to(labels.device)], self.num_classes).float()
            stats.update(self.phase("Greg", real, c, pl_c, float(cfg.pl_interval)))
        stats.update(self.phase("Dmain", real, c, gen_c))
        if resolved_r1_gamma(cfg, self.resolution) > 0 and self.step_count % cfg.r1_interval == 0:
            stats.update(self.phase("Dreg", real, c, gen_c, float(cfg.r1_interval)))

        if self.world > 1:  # w_avg is a lerp towards the local batch mean: average it to the global one
            w_avg = self.G.mapping.w_avg
            w_avg.copy_(_all_mean_tensor(w_avg))

        # EMA of G (half-life ema_kimg thousand images, ramped up over the first images).
        ema_nimg = resolved_ema_kimg(cfg) * 1000
        if cfg.ema_rampup > 0:
            ema_nimg = min(ema_nimg, self.nimg * cfg.ema_rampup)
        beta = 0.5 ** (cfg.batch_size / max(ema_nimg, 1e-8))
        with torch.no_grad():
            for p_ema, p in zip(self.G_ema.parameters(), self.G.parameters()):
                p_ema.copy_(p.detach().lerp(p_ema, beta))
            for b_ema, b in zip(self.G_ema.buffers(), self.G.buffers()):
                b_ema.copy_(b)

        self.nimg += cfg.batch_size
        self.step_count += 1

        # Statistics over ranks; ADA's r_t and the p update.
        keys = sorted(k for k in stats if k not in ("real_sign_sum", "real_count"))
        summed = _all_sum([stats[k] for k in keys] + [stats["real_sign_sum"], stats["real_count"]], self.device)
        out = {k: v / self.world for k, v in zip(keys, summed)}
        sign_sum, count = summed[-2], summed[-1]
        out["signs_real"] = sign_sum / max(count, 1.0)
        if self.ada is not None:
            self.ada.add(sign_sum, int(count))
            new_p = self.ada.step(self.p, cfg.batch_size)
            self.augment.p.fill_(new_p)
        out["augment_p"] = self.p
        return out

    # -- state ------------------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        """Loop state beyond the nets and optimisers (tensors and numbers only)."""
        state: dict[str, Any] = {
            "nimg": self.nimg, "step_count": self.step_count, "pl_mean": self.loss.pl_mean.detach().cpu(),
            "rng_state": self.rng.get_state().cpu(),
            "ada": self.ada.state_dict() if self.ada is not None else {},
        }
        if self.scalers is not None:
            state["scalers"] = {k: s.state_dict() for k, s in self.scalers.items()}
        return state

    def load_state(self, state: Mapping[str, Any]) -> None:
        self.nimg = int(state["nimg"])
        self.step_count = int(state["step_count"])
        self.loss.pl_mean.copy_(state["pl_mean"].to(self.loss.pl_mean.device))
        self.rng.set_state(state["rng_state"].cpu())  # generator states are CPU byte tensors on every device
        if self.ada is not None and state["ada"]:
            self.ada.load_state_dict(state["ada"])
        if self.scalers is not None and "scalers" in state:
            for k, s in self.scalers.items():
                s.load_state_dict(state["scalers"][k])


def _amp_dtype(amp: str, device: torch.device) -> torch.dtype | None:
    """Mixed precision only on CUDA: 'bf16' or 'fp16' autocast for the main phases."""
    if device.type != "cuda" or amp == "none":
        return None
    return {"bf16": torch.bfloat16, "fp16": torch.float16}[amp]


# ----------------------------------------------------------------------------- FID hook


FidFn = Callable[[np.ndarray, np.ndarray], float]
Extractor = Callable[[np.ndarray], np.ndarray]


def make_fid_fn(extractor: Extractor) -> FidFn:
    """FID(real, fake) of uint8 image sets through ``extractor`` (features of the fixed
    real subset are computed once and reused at every evaluation)."""
    from medaug.metrics.generative import frechet_distance

    cache: dict[str, np.ndarray] = {}

    def fid(real: np.ndarray, fake: np.ndarray) -> float:
        if "real" not in cache:
            cache["real"] = extractor(real)
        return float(frechet_distance(cache["real"], extractor(fake)))

    fid.extractor = extractor_label(extractor)  # type: ignore[attr-defined]
    return fid


def extractor_label(extractor: Extractor) -> str:
    """How stats rows name a FID extractor: NAME@DIGEST for medaug's extractors."""
    describe = getattr(extractor, "describe", None)
    if callable(describe):
        return str(describe())
    return str(getattr(extractor, "__name__", type(extractor).__name__))


def resolve_fid(gen: Generator) -> tuple[FidFn | None, str]:
    """The periodic-FID function, or (None, why it is skipped).

    The extractor is ``gen.fid_extractor`` when the caller set one (e.g. the
    generator-eval reference classifier's ``ClassifierFeatures``, the project's
    default), else torchvision Inception-v3 from the local file
    ``config.fid_inception_weights``; without either, or without the metrics
    modules, FID is skipped (logged), never fatal.
    """
    extractor = getattr(gen, "fid_extractor", None)
    try:
        if extractor is None and style_config(gen).fid_inception_weights:
            from medaug.metrics.features import InceptionFeatures

            extractor = InceptionFeatures(style_config(gen).fid_inception_weights, device=gen.device)
        if extractor is None:
            return None, ("FID skipped: no feature extractor (set generator.fid_extractor or "
                          "fid_inception_weights)")
        return make_fid_fn(extractor), ""
    except ImportError as exc:
        return None, f"FID skipped: {exc}"


# ----------------------------------------------------------------------------- the loop


def total_nimg(cfg: StyleGANConfig, n_train: int) -> int:
    """Training length in images: kimg * 1000 when kimg > 0, else epochs passes over the train split."""
    return int(round(cfg.kimg * 1000)) if cfg.kimg > 0 else cfg.epochs * n_train


def _read_stats(path: Path, upto_kimg: float) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r for r in rows if r.get("kimg", 0) <= upto_kimg + 1e-9]


def style_config(gen: Generator) -> StyleGANConfig:
    """The generator's config as a StyleGANConfig (the kimg loop trains nothing else)."""
    if not isinstance(gen.config, StyleGANConfig):
        raise MedaugError(f"{gen.name}: the StyleGAN2 kimg loop needs a StyleGANConfig, "
                          f"got {type(gen.config).__name__}")
    return gen.config


def run_training(gen: Generator, train: ImageSet, out_dir: Path, *,
                 make_trainer: Callable[[int, int], StyleGAN2Trainer], val: ImageSet | None = None,
                 resume: bool = False, quiet: bool = True, provenance: Mapping[str, Any] | None = None,
                 plots: bool = True, fid_fn: FidFn | None = None,
                 on_step: Callable[[StyleGAN2Trainer, dict[str, float]], None] | None = None) -> Path:
    """Fit ``gen`` on ``train``; returns out_dir/checkpoint. See the module docstring.

    ``make_trainer(rank, world)`` builds the generator's minibatch trainer over its nets
    and optimisers and attaches it to the generator, whose checkpoints then hold its state.
    """
    cfg = style_config(gen)
    ckpt = out_dir / CHECKPOINT_DIR
    rank, world = ddp.rank_world()
    check_fit_data(gen, train, val)
    if cfg.batch_size % world:
        raise MedaugError(f"batch_size {cfg.batch_size} must be divisible by the {world} processes")
    dataset = fit_dataset(train, val, provenance)
    trainer = make_trainer(rank, world)
    meta = checkpoint_to_resume(out_dir, ckpt, resume)
    if meta is not None:
        check_resumable(gen, meta, dataset, "checkpoint", SCHEDULE_FIELDS)
        restore_state(gen, ckpt, meta, also=lambda state: trainer.load_state(dict(state.get("stylegan", {}))))
    gen.class_names = train.class_names
    gen.dataset = dataset
    end = total_nimg(cfg, len(train))
    gen.finished = trainer.nimg >= end

    images = fit_to(torch.from_numpy(train.images), trainer.resolution, cfg.resize_mode).to(gen.device)
    labels = torch.from_numpy(train.labels.astype(np.int64)).to(gen.device)
    if world > 1:
        for name in ("G", "D", "G_ema"):
            ddp.broadcast_module(gen.nets[name])

    stats_path = out_dir / STATS_FILE
    rows = _read_stats(stats_path, trainer.nimg / 1000) if (resume and rank == 0) else []
    if fid_fn is None and cfg.fid_kimg > 0 and rank == 0:
        fid_fn, why = resolve_fid(gen)
        if fid_fn is None and not quiet:
            print(f"stylegan2ada: {why}", file=sys.stderr, flush=True)
    tick_stats: list[dict[str, float]] = []
    tick_start = time.perf_counter()
    tick_start_nimg = trainer.nimg
    tick = int(gen.loop_state.get("tick", 0))

    def crossed(before: int, after: int, every_kimg: float) -> bool:
        if every_kimg <= 0:
            return False
        k = every_kimg * 1000
        return math.floor(after / k) > math.floor(before / k)

    while trainer.nimg < end:
        before = trainer.nimg
        step_stats = trainer.train_step(images, labels)
        tick_stats.append(step_stats)
        if on_step is not None:
            on_step(trainer, step_stats)
        after = trainer.nimg
        done = after >= end
        gen.global_step = trainer.step_count
        gen.epoch = after // len(train)
        want_fid = fid_fn is not None and cfg.fid_kimg > 0 and (crossed(before, after, cfg.fid_kimg) or done)
        if crossed(before, after, cfg.tick_kimg) or want_fid or done:
            tick += 1
            seconds = time.perf_counter() - tick_start
            kimg_done = (after - tick_start_nimg) / 1000
            row: dict[str, Any] = {"tick": tick, "kimg": after / 1000, "step": trainer.step_count,
                                   "seconds": round(seconds, 3), "sec_per_kimg": seconds / max(kimg_done, 1e-9)}
            for k in dict.fromkeys(k for s in tick_stats for k in s):
                row[k] = float(np.mean([s[k] for s in tick_stats if k in s]))
            row["augment_p"] = trainer.p
            row["ada_rt"] = trainer.ada.last_rt if trainer.ada is not None else None
            if want_fid and fid_fn is not None:
                row["fid"] = _fid(gen, train, fid_fn)
                row["fid_extractor"] = getattr(fid_fn, "extractor", "custom")
            rows.append(row)
            gen.loop_state.update(tick=tick, nimg=after, augment_p=trainer.p)
            if rank == 0:
                atomic_write_text(stats_path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))
                if not quiet:
                    print(_status_line(row, end), file=sys.stdout, flush=True)
            tick_stats = []
            tick_start, tick_start_nimg = time.perf_counter(), after
        if crossed(before, after, cfg.checkpoint_kimg) or done:
            gen.finished = done
            gen.loop_state.update(tick=tick, nimg=after, augment_p=trainer.p)
            if rank == 0:
                gen.save(ckpt)
    if rank == 0 and plots:
        from medaug.generators.plots import plot_montage

        plot_montage(gen, train, out_dir / MONTAGE_FILE)
    ddp.barrier()
    return ckpt


def _fid(gen: Generator, train: ImageSet, fid_fn: FidFn) -> float | None:
    """FID of G_ema samples (labels drawn like the train split's) against the train images."""
    n = min(style_config(gen).fid_images, len(train))
    rng = np.random.default_rng(gen.config.seed)
    real = train.images[rng.choice(len(train), n, replace=False)] if n < len(train) else train.images
    labels = train.labels[rng.choice(len(train), n, replace=True)].astype(np.int64)
    fake = gen.sample(labels, seed=gen.config.seed + 1)
    gen.train_mode(True)
    try:
        return float(fid_fn(real, fake))
    except (ValueError, RuntimeError) as exc:
        print(f"stylegan2ada: FID failed: {exc}", file=sys.stderr, flush=True)
        return None


def _status_line(row: Mapping[str, Any], end: int) -> str:
    def g(k: str) -> str:
        v = row.get(k)
        return "-" if v is None else f"{v:.4g}"

    return (f"stylegan2ada tick {row['tick']} kimg {row['kimg']:.2f}/{end / 1000:.2f} "
            f"sec/kimg {row['sec_per_kimg']:.1f} G {g('G_loss')} D {g('D_loss')} r1 {g('D_r1_penalty')} "
            f"pl {g('G_pl_penalty')} p {g('augment_p')} r_t {g('ada_rt')}"
            + (f" fid {g('fid')}" if "fid" in row else ""))
