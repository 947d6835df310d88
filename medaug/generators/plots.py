"""Figures of a generator run: loss per epoch (seed 000 Fig. 27) and a per-class
montage of generated images (seed 000 Fig. 28), as PNGs written atomically."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from medaug.data.imageset import ImageSet  # noqa: E402
from medaug.generators.base import Generator  # noqa: E402
from medaug.store.atomic import atomic_write  # noqa: E402

PER_CLASS = 8
NOT_LOSSES = ("epoch", "seconds", "images_per_s")


def _save(fig: plt.Figure, out: Path) -> Path:
    atomic_write(out, lambda tmp: fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight"))
    plt.close(fig)
    return out


def plot_loss_curves(epochs: Sequence[Mapping[str, Any]], out: Path, title: str = "") -> Path:
    """One line per loss (epoch means), validation loss dashed."""
    fig, ax = plt.subplots(figsize=(6, 3.6))
    keys: list[str] = []
    for row in epochs:
        keys.extend(k for k in row if k not in NOT_LOSSES and k not in keys)
    x = [row["epoch"] for row in epochs]
    for k in keys:
        y = [row.get(k, np.nan) for row in epochs]
        ax.plot(x, y, "--" if k.startswith("val") else "-", marker="." if len(x) < 30 else None, label=k)
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.set_title(title)
    if keys:
        ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    return _save(fig, out)


def plot_montage(gen: Generator, train: ImageSet, out: Path, per_class: int = PER_CLASS, seed: int = 0) -> Path:
    """One row per class: generated samples, or (for generators that cannot sample)
    a row of training images above a row of their reconstructions."""
    counts = train.class_counts()
    classes = [c for c in range(gen.num_classes) if counts[c] > 0]  # a class never seen has no model
    if gen.can_sample:
        imgs = gen.sample(np.repeat(classes, per_class), seed=seed)
        rows = [(gen.class_names[c], imgs[i * per_class:(i + 1) * per_class]) for i, c in enumerate(classes)]
        title = f"{gen.name}: samples per class"
    else:
        rows = []
        for c in classes:
            members = np.flatnonzero(train.labels == c)[:per_class]
            real = train.images[members]
            rec = gen.reconstruct(real, train.labels[members], seed=seed)
            rows += [(f"{gen.class_names[c]} (real)", real), (f"{gen.class_names[c]} (recon.)", rec)]
        title = f"{gen.name}: training images and reconstructions"
    fig, axes = plt.subplots(len(rows), per_class, figsize=(per_class * 0.9, len(rows) * 0.95 + 0.5), squeeze=False)
    for r, (name, images) in enumerate(rows):
        for j in range(per_class):
            ax = axes[r, j]
            ax.set_xticks([])
            ax.set_yticks([])
            for side in ax.spines.values():
                side.set_visible(False)
            if j < len(images):
                img = images[j]
                if img.shape[0] == 1:
                    ax.imshow(img[0], cmap="gray", vmin=0, vmax=255)
                else:
                    ax.imshow(img.transpose(1, 2, 0))
        axes[r, 0].set_ylabel(str(name)[:18], rotation=0, ha="right", va="center", fontsize=7)
    fig.suptitle(title, fontsize=9)
    return _save(fig, out)
