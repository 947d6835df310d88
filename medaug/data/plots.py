"""Figures of a data set: sample montages per class (seed 000 Figs. 1-8) and class
counts per split (seed 000 Figs. 10-17)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from medaug.data.imageset import DatasetSplits, ImageSet  # noqa: E402
from medaug.errors import MedaugError  # noqa: E402
from medaug.store.atomic import atomic_write, check_writable  # noqa: E402


def figure_format(out: str | Path) -> str:
    """The figure format named by the file's suffix (no suffix: png); MedaugError for one matplotlib cannot write."""
    fmt = Path(out).suffix.lstrip(".").lower() or "png"
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    formats = FigureCanvasAgg.get_supported_filetypes()
    if fmt not in formats:
        raise MedaugError(f"--out {out}: unknown figure format {fmt!r}; expected one of {', '.join(sorted(formats))}")
    return fmt


def check_figure_path(out: str | Path) -> Path:
    """Refuse, before any work, a figure path that cannot be written (MedaugError; nothing created)."""
    figure_format(out)
    return check_writable(out, what="--out")


def _save(fig: plt.Figure, out: Path) -> Path:
    fmt = figure_format(out)
    try:
        atomic_write(out, lambda tmp: fig.savefig(tmp, format=fmt, dpi=150, bbox_inches="tight"))
    finally:
        plt.close(fig)
    return out


def montage(images: ImageSet, out: str | Path, per_class: int = 8, seed: int = 0, title: str | None = None) -> Path:
    """A grid: one row per class, `per_class` random training images in each."""
    rng = np.random.default_rng(seed)
    k = images.num_classes
    fig, axes = plt.subplots(k, per_class, figsize=(per_class * 0.9, k * 0.95 + 0.4), squeeze=False)
    for c in range(k):
        members = np.flatnonzero(images.labels[:, c] == 1 if images.multi_label else images.labels == c)
        pick = rng.choice(members, size=min(per_class, len(members)), replace=False) if len(members) else []
        for j in range(per_class):
            ax = axes[c, j]
            ax.set_xticks([])
            ax.set_yticks([])
            for side in ax.spines.values():
                side.set_visible(False)
            if j < len(pick):
                img = images.images[pick[j]]
                ax.imshow(img[0] if img.shape[0] == 1 else img.transpose(1, 2, 0), cmap="gray", vmin=0, vmax=255)
        axes[c, 0].set_ylabel(_short(images.class_names[c]), rotation=0, ha="right", va="center", fontsize=7)
    fig.suptitle(title or f"{images.name} ({images.split}): samples per class", fontsize=9)
    return _save(fig, Path(out))


def _short(name: str, width: int = 22) -> str:
    return name if len(name) <= width else name[: width - 1] + "…"


def distribution(data: DatasetSplits, out: str | Path) -> Path:
    """Grouped bars: images per class in train, val and test."""
    names = data.train.class_names
    x = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(max(5.0, 0.7 * len(names) + 2), 3.6))
    width = 0.27
    for i, split in enumerate(("train", "val", "test")):
        counts = data.split(split).class_counts()
        bars = ax.bar(x + (i - 1) * width, counts, width, label=f"{split} (n={len(data.split(split))})")
        ax.bar_label(bars, fontsize=6, padding=1)
    ax.set_xticks(x, [_short(n, 16) for n in names], rotation=30, ha="right", fontsize=7)
    ax.set_ylabel("images" if not data.train.multi_label else "positive labels")
    ax.set_title(f"{data.name}: class distribution per split", fontsize=9)
    ax.legend(fontsize=7)
    return _save(fig, Path(out))
