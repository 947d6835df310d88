"""The classifier training loop: in-memory uint8 data, batched augmentation on the
device, best-validation weights kept as a *copy*, resumable every epoch.

Read top to bottom, one epoch is: draw the epoch's index order (a permutation, or
class-balanced draws with replacement under WRS), then per batch gather uint8 images
on the device, augment the whole batch, convert to float and normalise like MedMNIST
(mean 0.5, std 0.5), step. After each epoch the model is evaluated on val; the weights
of the best epoch by the selection metric are cloned (MedMNIST's own script keeps a
reference to the live model, so its "best" model is really the last one).

Randomness of epoch e (data order, augmentation, dropout) comes from generators seeded
by (seed, e) alone, so a run resumed after epoch e is bit-identical on CPU to one that
never stopped, without saving RNG state. Under torch.distributed every rank draws the
same global batch and trains on its own slice of it; only rank 0 writes files.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from medaug.augment import build_augmentation
from medaug.augment.laterality import side_swap_warning
from medaug.augment.ops import random_translate, translate
from medaug.augment.sampling import class_balanced_weights, epoch_indices
from medaug.classifiers.transfer import classifier_loss, main_logits, set_backbone_trainable
from medaug.data.imageset import ImageSet
from medaug.errors import MedaugError
from medaug.metrics import ClassificationMetrics, evaluate
from medaug.store.atomic import atomic_write

log = logging.getLogger(__name__)

EVAL_BATCH = 512
STATE_VERSION = 2  # 2: the state names the run it belongs to (`identity`)


@dataclass(frozen=True)
class TrainConfig:
    """The training half of an experiment spec (the experiment layer builds it)."""

    augmentation: str = "none"
    wrs: bool = False
    optimizer: str = "sgd"
    lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 0.0
    schedule: str = "none"
    milestones: tuple[float, ...] = (0.5, 0.75)
    epochs: int = 20
    batch_size: int = 64
    seed: int = 0
    select_metric: str = "acc"
    freeze_epochs: int = 0
    nesterov: bool = False
    label_smoothing: float = 0.0
    ema: float = 0.0
    warmup: float = 0.0
    min_steps: int = 0
    translate: float = 0.0
    tta: str = "none"
    name: str = "run"

    def epochs_for(self, n_train: int) -> int:
        """Epochs to train on `n_train` images: `epochs`, or more to make `min_steps` steps."""
        steps_per_epoch = max(1, math.ceil(n_train / self.batch_size))
        return max(self.epochs, math.ceil(self.min_steps / steps_per_epoch))


#: TrainConfig fields added after states were first saved: at their default ("not used") they
#: are left out of a state's identity, so a run interrupted before they existed still resumes.
_LATER_FIELDS = ("nesterov", "label_smoothing", "ema", "warmup", "min_steps", "translate", "tta")


@dataclass
class TrainOutcome:
    """What training hands back: the best-validation weights (a copy) and the history."""

    best_state: dict[str, torch.Tensor]
    best_epoch: int
    best_val: ClassificationMetrics
    history: list[dict[str, float]] = field(default_factory=list)
    train_images_per_s: float = float("nan")
    epochs: int = 0  # epochs trained (TrainConfig.epochs_for)


def _epoch_seed(seed: int, epoch: int) -> int:
    return (seed * 1_000_003 + epoch * 7_919) % (2**63 - 1)


def normalise(images: torch.Tensor) -> torch.Tensor:
    """uint8 -> float in [-1, 1] (MedMNIST's Normalize(mean=.5, std=.5))."""
    return images.float().mul_(1 / 127.5).sub_(1.0)


def make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    params = model.parameters()
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay,
                               nesterov=config.nesterov)
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)


def lr_at(config: TrainConfig, step: int, steps_per_epoch: int, epochs: int) -> float:
    """The learning rate of optimiser step `step` (0-based) of a run of `epochs` epochs.

    A pure function of the step, so a resumed run needs no scheduler state. `cosine` and
    `multistep` change once per epoch (as torch's CosineAnnealingLR and MultiStepLR stepped
    per epoch: milestones are fractions of the epochs), `linear` decays every step from the
    end of the warm-up to 0 at the last step; the warm-up (a fraction of all steps) ramps
    linearly up to the schedule's value.
    """
    total = steps_per_epoch * epochs
    epoch = step // steps_per_epoch
    warm = round(config.warmup * total)
    lr = config.lr
    if config.schedule == "cosine":
        lr *= 0.5 * (1.0 + math.cos(math.pi * epoch / epochs))
    elif config.schedule == "multistep":
        for milestone in sorted({max(1, round(m * epochs)) for m in config.milestones}):
            lr = lr * 0.1 if epoch >= milestone else lr  # repeated products, as MultiStepLR makes them
    elif config.schedule == "linear" and step >= warm:
        lr *= (total - step) / max(1, total - warm)
    if step < warm:
        lr *= (step + 1) / warm
    return lr


def make_criterion(task: str, label_smoothing: float = 0.0) -> nn.Module:
    if task.startswith("multi-label"):
        return SmoothedBCE(label_smoothing) if label_smoothing else nn.BCEWithLogitsLoss()
    return nn.CrossEntropyLoss(label_smoothing=label_smoothing)


class SmoothedBCE(nn.BCEWithLogitsLoss):
    """Binary cross-entropy against targets pulled towards 1/2 by `smoothing` (multi-label)."""

    def __init__(self, smoothing: float) -> None:
        super().__init__()
        self.smoothing = smoothing

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return super().forward(logits, targets * (1 - self.smoothing) + self.smoothing / 2)


class WeightEMA:
    """An exponential moving average of a model's weights (and BN statistics), updated per step.

    The decay ramps up as min(decay, (1 + t) / (10 + t)) over the first updates, so a run
    of a few hundred steps is not dominated by its random initialisation. `model` is a
    copy of the trained network holding the average: what is evaluated and kept.
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        import copy

        self.decay = decay
        self.model = copy.deepcopy(model)
        self.model.requires_grad_(False)
        self.updates = 0

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.updates += 1
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for avg, live in zip(self.model.state_dict().values(), model.state_dict().values()):
            if avg.dtype.is_floating_point:
                avg.lerp_(live.detach(), 1 - d)
            else:
                avg.copy_(live)  # BN's num_batches_tracked


def _targets(labels: torch.Tensor, multi_label: bool) -> torch.Tensor:
    return labels.float() if multi_label else labels


def _scores(logits: torch.Tensor, multi_label: bool) -> torch.Tensor:
    return torch.sigmoid(logits) if multi_label else torch.softmax(logits, dim=1)


def tta_views(images: torch.Tensor, mode: str) -> list[torch.Tensor]:
    """The views whose logits test-time augmentation averages: the images themselves, plus
    their horizontal flip (`flip`), their four 1-pixel shifts (`shift`, the uncovered edge
    filled with the edge pixels, as `translate` trains) or both and the shifts of the flip
    (`flip-shift`, 10 views)."""
    views = [images]
    if mode in ("flip", "flip-shift"):
        views.append(images.flip(-1))
    if mode in ("shift", "flip-shift"):
        for base in list(views):
            for dy, dx in ((1, 0), (-1, 0), (0, 1), (0, -1)):
                offset = torch.full((len(base),), dy, device=base.device), torch.full((len(base),), dx,
                                                                                     device=base.device)
                views.append(translate(base, *offset))
    return views


@torch.inference_mode()
def predict(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, task: str,
            channels_last: bool = False, tta: str = "none") -> tuple[np.ndarray, float]:
    """Class scores (probabilities) for all images, and the mean loss; with `tta`, of the
    logits averaged over the views of `tta_views`."""
    multi_label = task.startswith("multi-label")
    criterion = make_criterion(task)
    was_training = model.training
    model.eval()
    scores, loss_sum = [], 0.0
    for start in range(0, len(images), EVAL_BATCH):
        views = []
        for view in tta_views(images[start:start + EVAL_BATCH], tta):
            x = normalise(view)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast(images.device.type, enabled=images.device.type == "cuda"):
                views.append(model(x).float())
        logits = torch.stack(views).mean(0)
        y = labels[start:start + EVAL_BATCH]
        loss_sum += float(criterion(logits, _targets(y, multi_label))) * len(x)
        scores.append(_scores(logits, multi_label).cpu())
    model.train(was_training)
    return torch.cat(scores).numpy().astype(np.float64), loss_sum / max(len(images), 1)


def evaluate_model(model: nn.Module, data: ImageSet, device: torch.device,
                   channels_last: bool = False, tta: str = "none") -> tuple[ClassificationMetrics, float]:
    images = torch.from_numpy(data.images).to(device)
    labels = torch.from_numpy(data.labels).to(device)
    scores, loss = predict(model, images, labels, data.task, channels_last, tta)
    return evaluate(data.task, data.labels, scores), loss


def _rank_world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _save_state(path: Path, payload: dict[str, Any]) -> None:
    atomic_write(path, lambda tmp: torch.save(payload, tmp))


def state_identity(config: TrainConfig, train: ImageSet, val: ImageSet) -> str:
    """What a saved state must have been trained with to be resumed: the whole config (its
    name is the run_id in `medaug.experiment.run`) and the content of train and val."""
    defaults = TrainConfig()
    fields = {k: v for k, v in dataclasses.asdict(config).items()
              if k not in _LATER_FIELDS or v != getattr(defaults, k)}
    return json.dumps({"config": fields, "train": train.content_hash, "val": val.content_hash},
                      sort_keys=True, default=list)


def _start_over(path: Path, why: str) -> MedaugError:
    return MedaugError(f"{path}: {why}; delete it to start this run over from epoch 1")


def _load_state(path: Path, identity: str, epochs: int) -> dict[str, Any] | None:
    """The resumable state at `path`, None when there is none; refuses (MedaugError) a file
    that is not a state of this very run: unreadable, foreign (another spec or data) or of
    another state version. Loaded with weights_only=True: tensors and plain data only, so a
    planted pickle is refused, never executed."""
    if not path.exists():
        return None
    if not path.is_file():
        raise _start_over(path, "is not a file")
    try:
        with warnings.catch_warnings():  # torch warns about foreign pickles; the error below says it all
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any failure: corrupt zip, foreign pickle, truncated file
        raise _start_over(path, f"not a readable training state ({type(exc).__name__})") from None
    if not isinstance(state, dict) or state.get("version") != STATE_VERSION:
        found = state.get("version") if isinstance(state, dict) else type(state).__name__
        raise _start_over(path, f"not a training state of this medaug version (version {found!r}, "
                                f"expected {STATE_VERSION})")
    if state.get("identity") != identity:
        raise _start_over(path, "training state of another run (other spec or data)")
    epoch = state.get("epoch")
    if not isinstance(epoch, int) or not 1 <= epoch <= epochs or not isinstance(state.get("history"), list):
        raise _start_over(path, f"malformed training state (epoch {epoch!r})")
    return state


def _restore(path: Path, saved: dict[str, Any], model: nn.Module, optimizer: torch.optim.Optimizer,
             ema: WeightEMA | None) -> None:
    try:
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        if ema is not None:
            ema.model.load_state_dict(saved["ema"])
            ema.updates = int(saved["ema_updates"])
        if not isinstance(saved["best_state"], dict):
            raise TypeError("best_state")
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise _start_over(path, f"training state does not fit this run's network ({type(exc).__name__})") from None


def train_classifier(
    model: nn.Module,
    train: ImageSet,
    val: ImageSet,
    config: TrainConfig,
    device: torch.device,
    *,
    state_path: Path | None = None,
    on_epoch: Callable[[dict[str, float]], None] | None = None,
    progress: bool = False,
) -> TrainOutcome:
    """Train `model` on `train`, select the best epoch on `val`; resumable via `state_path`.

    Refuses (MedaugError) an empty train or val split: a network that never trained, or an
    epoch that cannot be selected, must not become a result.
    """
    for split in (train, val):
        if len(split) == 0:
            raise MedaugError(f"{split.name}: the {split.split} split is empty (0 images); nothing to "
                              f"{'train on' if split is train else 'select the best epoch with'}")
    rank, world = _rank_world()
    multi_label = train.multi_label
    on_cuda = device.type == "cuda"
    channels_last = on_cuda
    model.to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)

    def wrap() -> nn.Module:  # DDP syncs the parameters trainable when it is built: rebuild on (un)freezing
        if world == 1:
            return model
        return nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if on_cuda else None)

    net = model

    images = torch.from_numpy(train.images).to(device)
    labels = torch.from_numpy(train.labels).to(device)
    weights = class_balanced_weights(train.labels, train.num_classes).to(device) if config.wrs else None
    augment = build_augmentation(config.augmentation, train.channels)
    if rank == 0 and (swap := side_swap_warning(augment, train.name, train.class_names)):
        log.warning("%s", swap)
    criterion = make_criterion(train.task, config.label_smoothing)
    optimizer = make_optimizer(model, config)
    ema = WeightEMA(model, config.ema) if config.ema else None
    evaluated = ema.model if ema is not None else model  # what is validated, kept and tested
    epochs = config.epochs_for(len(images))
    max_shift = round(config.translate * train.size)
    steps_per_epoch = math.ceil(len(images) / config.batch_size)
    scaler = torch.amp.GradScaler("cuda", enabled=on_cuda)

    history: list[dict[str, float]] = []
    best_state: dict[str, torch.Tensor] | None = None
    best_epoch, best_score, best_val = 0, -math.inf, None
    start_epoch = 1
    identity = state_identity(config, train, val)
    saved = _load_state(state_path, identity, epochs) if state_path is not None else None
    if saved is not None:
        _restore(state_path, saved, model, optimizer, ema)
        history, best_state = saved["history"], saved["best_state"]
        best_epoch, best_score = saved["best_epoch"], saved["best_score"]
        start_epoch = saved["epoch"] + 1

    step_seconds, step_images = 0.0, 0
    show = progress and rank == 0 and sys.stderr.isatty()
    bar = None
    if show:
        from tqdm import tqdm

        bar = tqdm(total=epochs, initial=start_epoch - 1, desc=config.name, unit="epoch", leave=False)
    for epoch in range(start_epoch, epochs + 1):
        seed = _epoch_seed(config.seed, epoch)
        torch.manual_seed(seed)  # dropout and any other global-RNG use
        gen = torch.Generator(device=device).manual_seed(seed)
        if config.freeze_epochs:
            set_backbone_trainable(model, epoch > config.freeze_epochs)
        if net is model or epoch == config.freeze_epochs + 1:
            net = wrap()
        order = epoch_indices(len(images), gen, weights)
        net.train()
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), device=device)
        seen = 0
        t0 = time.perf_counter()
        step = (epoch - 1) * steps_per_epoch
        lr = lr_at(config, step, steps_per_epoch, epochs)
        for start in range(0, len(order), config.batch_size):
            for group in optimizer.param_groups:
                group["lr"] = lr_at(config, step, steps_per_epoch, epochs)
            step += 1
            idx = order[start:start + config.batch_size]
            xb = augment(random_translate(images[idx], max_shift, gen), gen)
            yb = labels[idx]
            if world > 1:  # every rank augmented the same global batch; keep this rank's slice
                xb, yb = xb.tensor_split(world)[rank], yb.tensor_split(world)[rank]
            x = normalise(xb)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast(device.type, enabled=on_cuda):
                outputs = net(x)
                loss = classifier_loss(outputs, _targets(yb, multi_label), criterion)  # + InceptionV3 aux logits
            logits = main_logits(outputs)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            if ema is not None:
                ema.update(model)
            with torch.no_grad():
                loss_sum += loss.detach() * len(yb)
                if multi_label:
                    correct += ((logits > 0) == yb.bool()).all(dim=1).sum()
                else:
                    correct += (logits.argmax(1) == yb).sum()
            seen += len(yb)
        if on_cuda:
            torch.cuda.synchronize(device)
        train_seconds = time.perf_counter() - t0
        step_seconds += train_seconds
        step_images += len(order)

        val_metrics, val_loss = evaluate_model(evaluated, val, device, channels_last, config.tta)
        record = {
            "epoch": epoch,
            "train_loss": float(loss_sum) / max(seen, 1),
            "train_acc": float(correct) / max(seen, 1),
            "val_loss": val_loss,
            "val_acc": val_metrics.acc,
            "val_auc": val_metrics.auc,
            "lr": lr,
            "seconds": time.perf_counter() - t0,
        }
        history.append(record)
        score = val_metrics.acc if config.select_metric == "acc" else val_metrics.auc
        score = -math.inf if math.isnan(score) else score  # AUC is NaN when val lacks a class
        if score > best_score or best_state is None:  # strictly better: ties keep the earlier epoch
            best_score, best_epoch = score, epoch
            best_state = {k: v.detach().to("cpu", copy=True) for k, v in evaluated.state_dict().items()}
        if state_path is not None and rank == 0:
            _save_state(state_path, {
                "version": STATE_VERSION, "identity": identity, "epoch": epoch, "model": model.state_dict(),
                "optimizer": optimizer.state_dict(), "history": history, "best_state": best_state,
                "best_epoch": best_epoch, "best_score": best_score,
                **({"ema": ema.model.state_dict(), "ema_updates": ema.updates} if ema is not None else {}),
            })
        if on_epoch is not None and rank == 0:
            on_epoch(dict(record))
        if bar is not None:
            bar.set_postfix(loss=f"{record['train_loss']:.4f}", val_acc=f"{record['val_acc']:.4f}")
            bar.update(1)
    if bar is not None:
        bar.close()

    assert best_state is not None
    model.load_state_dict(best_state)
    best_val, _ = evaluate_model(model, val, device, channels_last, config.tta)
    return TrainOutcome(best_state=best_state, best_epoch=best_epoch, best_val=best_val, history=history,
                        train_images_per_s=step_images / step_seconds if step_seconds > 0 else float("nan"),
                        epochs=epochs)
