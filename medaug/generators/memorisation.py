"""Memorisation check: is a synthetic image a near-copy of a training image?

A diffusion model trained on a few hundred images can reproduce them; such a sample adds
nothing to a training set and leaks the patient it copies. For each synthetic sample
this module finds its nearest training image and the distance to it, in pixel space
(images as float in [-1, 1], flattened, Euclidean) and, when given features, in the
feature space of `generator eval`'s FID extractor.

The rule (Carlini et al. 2023, "Extracting training data from diffusion models", the
ratio test): a sample is a **near-copy** when

    d(sample, nearest train image) < 1/3 x d(sample, k-th nearest train image)

or when that nearest distance is exactly 0 (a copy, also where the k-th is 0 too).
A copy sits much closer to one training image than to the rest of its neighbourhood;
a sample that is merely typical of a dense region is close to many. `k` = 50
(`NEAR_COPY_K`), lowered to the number of training images available when a class holds
fewer (k = 1 leaves only exact copies flagged). With labels (single-label tasks), the
neighbours are searched **within the sample's own class** (a copy of a benign image
labelled benign is what leaks; the class also keeps the search small); without labels,
over the whole train split. Which one was used is stated in every result (`within`).

The **train-to-train baseline** is the same statistic for real train images, each
against the rest of train (itself excluded; an identical duplicate elsewhere in train
still counts, as it should): the share a real data set has by itself. It is computed on
up to `BASELINE_N` train images drawn by the seed, each against the whole (class of
the) train split, so that it costs what checking a synthetic set costs.

The search is exact, batched and memory-bounded: squared distances by one matrix
product per (query block x train block), float32, blocks of at most
`QUERY_CHUNK` x `TRAIN_CHUNK`; a running top-k is merged across train blocks, so
neither set is ever held as floats whole. The nearest distance is recomputed exactly
(float64) from its pair, so an exact copy reads 0, not float32 rounding.
Measured on this 2-core CPU (one thread, shared with a running study): 2,000 x 34,561
images of 28 x 28 px (784 values) in 1.9 s over the whole train split (3.1 s with the
2,000-image baseline); within 11 classes, 0.3 s (0.5 s with the baseline).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

NEAR_COPY_RATIO = 1.0 / 3.0
NEAR_COPY_K = 50
BASELINE_N = 2000
QUANTILES = (0.0, 0.01, 0.05, 0.25, 0.5)
QUERY_CHUNK = 1024
TRAIN_CHUNK = 8192
MONTAGE_PAIRS = 16
RULE = "near-copy: d(nearest train) < 1/3 x d(k-th nearest train), or d(nearest) = 0 (Carlini et al. 2023)"


def _rows(a: np.ndarray, rows: np.ndarray) -> torch.Tensor:
    """float32 (len(rows), D): uint8 images scaled to [-1, 1] and flattened; features as they are."""
    block = np.ascontiguousarray(a[rows])
    t = torch.from_numpy(block).reshape(len(rows), -1)
    return t.float().mul_(1 / 127.5).sub_(1.0) if block.dtype == np.uint8 else t.float()


def nearest_k(query: np.ndarray, ref: np.ndarray, k: int, *, query_rows: np.ndarray | None = None,
              ref_rows: np.ndarray | None = None, exclude: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The k nearest `ref` rows of each `query` row: (distances (Nq, k) ascending, indices into ref_rows).

    `query`/`ref` are uint8 images (N x C x H x W, compared in [-1, 1]) or float
    features (N x D); `query_rows`/`ref_rows` select rows without copying the sets;
    `exclude[i]` is a position in `ref_rows` that query i may not match (itself, for
    the train-to-train baseline), -1 for none. Distances are float32 except column 0,
    recomputed in float64. Slots beyond the reference's size hold inf and index -1.
    """
    q_rows = np.arange(len(query)) if query_rows is None else np.asarray(query_rows)
    r_rows = np.arange(len(ref)) if ref_rows is None else np.asarray(ref_rows)
    nq = len(q_rows)
    best_d = torch.full((nq, k), math.inf)
    best_i = torch.full((nq, k), -1, dtype=torch.long)
    if nq == 0 or k < 1 or len(r_rows) == 0:
        return best_d.double().numpy(), best_i.numpy()
    excl = None if exclude is None else torch.as_tensor(np.asarray(exclude), dtype=torch.long)
    q_blocks = [(i, _rows(query, q_rows[i:i + QUERY_CHUNK])) for i in range(0, nq, QUERY_CHUNK)]
    q_norms = [(q * q).sum(1) for _, q in q_blocks]
    for j in range(0, len(r_rows), TRAIN_CHUNK):
        r = _rows(ref, r_rows[j:j + TRAIN_CHUNK])
        r_sq = (r * r).sum(1)
        positions = torch.arange(j, j + len(r))
        for (i, q), q_sq in zip(q_blocks, q_norms):
            d2 = torch.addmm(q_sq[:, None] + r_sq[None, :], q, r.T, alpha=-2.0).clamp_(min=0.0)
            if excl is not None:
                d2.masked_fill_(positions[None, :] == excl[i:i + len(q), None], math.inf)
            kb = min(k, len(r))
            d_blk, i_blk = torch.topk(d2, kb, dim=1, largest=False)
            cand_d = torch.cat([best_d[i:i + len(q)], d_blk], dim=1)
            cand_i = torch.cat([best_i[i:i + len(q)], i_blk + j], dim=1)
            top_d, pick = torch.topk(cand_d, k, dim=1, largest=False)
            best_d[i:i + len(q)] = top_d
            best_i[i:i + len(q)] = torch.gather(cand_i, 1, pick)
    dist = best_d.double().sqrt()
    found = best_i[:, 0] >= 0
    if found.any():  # the nearest distance exactly (an exact copy is 0, not float32 rounding)
        qi = np.flatnonzero(found.numpy())
        for s in range(0, len(qi), QUERY_CHUNK):
            part = qi[s:s + QUERY_CHUNK]
            a = _rows(query, q_rows[part]).double()
            b = _rows(ref, r_rows[best_i[part, 0].numpy()]).double()
            dist[part, 0] = (a - b).norm(dim=1)
    dist[best_i < 0] = math.inf
    return dist.numpy(), best_i.numpy()


@dataclass
class Neighbours:
    """Per query: nearest train index (into the whole train split), its distance, the k-th distance, the verdict."""

    index: np.ndarray
    distance: np.ndarray
    kth_distance: np.ndarray
    near_copy: np.ndarray
    k_used: dict[str, int] = field(default_factory=dict)

    @property
    def share(self) -> float:
        valid = np.isfinite(self.distance)
        return float(self.near_copy[valid].mean()) if valid.any() else math.nan

    def quantiles(self) -> list[float]:
        d = self.distance[np.isfinite(self.distance)]
        return [float(np.quantile(d, q)) for q in QUANTILES] if len(d) else [math.nan] * len(QUANTILES)


def single_labels(labels: np.ndarray | None) -> np.ndarray | None:
    """The labels as a 1-D class array, or None (no labels, or multi-label: search the whole train split)."""
    if labels is None:
        return None
    labels = np.asarray(labels)
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    return labels.astype(np.int64) if labels.ndim == 1 else None


def nearest_train(samples: np.ndarray, train: np.ndarray, *, sample_labels: np.ndarray | None = None,
                  train_labels: np.ndarray | None = None, k: int = NEAR_COPY_K,
                  self_index: np.ndarray | None = None, ratio: float = NEAR_COPY_RATIO) -> Neighbours:
    """Each sample's nearest train image and the near-copy verdict (see the module doc).

    With both label arrays single-label, neighbours come from the sample's class only;
    otherwise from the whole train split. `self_index[i]` (train index of sample i)
    excludes a train image from its own search: the train-to-train baseline.
    """
    s_lab, t_lab = single_labels(sample_labels), single_labels(train_labels)
    n = len(samples)
    index = np.full(n, -1, dtype=np.int64)
    dist = np.full(n, math.inf)
    kth = np.full(n, math.inf)
    k_used: dict[str, int] = {}
    if s_lab is not None and t_lab is not None:
        groups = [(str(c), np.flatnonzero(s_lab == c), np.flatnonzero(t_lab == c)) for c in np.unique(s_lab)]
    else:
        groups = [("all", np.arange(n), np.arange(len(train)))]
    for name, q_rows, r_rows in groups:
        exclude = None
        available = len(r_rows)
        if self_index is not None:
            where = {int(t): p for p, t in enumerate(r_rows)}
            exclude = np.array([where.get(int(t), -1) for t in np.asarray(self_index)[q_rows]], dtype=np.int64)
            available -= 1
        kk = min(k, available)
        k_used[name] = max(kk, 0)
        if kk < 1 or len(q_rows) == 0:
            continue
        d, i = nearest_k(samples, train, kk, query_rows=q_rows, ref_rows=r_rows, exclude=exclude)
        index[q_rows] = np.where(i[:, 0] >= 0, r_rows[np.maximum(i[:, 0], 0)], -1)
        dist[q_rows], kth[q_rows] = d[:, 0], d[:, kk - 1]
    with np.errstate(invalid="ignore"):
        near = np.isfinite(dist) & ((dist == 0) | (dist < ratio * kth))
    return Neighbours(index, dist, kth, near, k_used)


def baseline_rows(n_train: int, n: int = BASELINE_N, seed: int = 0) -> np.ndarray:
    """The train images whose near-copy statistic forms the baseline: all, or `n` drawn by `seed` (sorted)."""
    if n_train <= n:
        return np.arange(n_train)
    return np.sort(np.random.default_rng(seed).choice(n_train, n, replace=False))


def check(samples: np.ndarray, train: np.ndarray, *, sample_labels: np.ndarray | None = None,
          train_labels: np.ndarray | None = None, k: int = NEAR_COPY_K, baseline_n: int = BASELINE_N,
          seed: int = 0) -> tuple[Neighbours, Neighbours]:
    """(samples vs train, train-to-train baseline) in one space: uint8 images or float features."""
    found = nearest_train(samples, train, sample_labels=sample_labels, train_labels=train_labels, k=k)
    rows = baseline_rows(len(train), baseline_n, seed)
    base_labels = None if single_labels(train_labels) is None else np.asarray(train_labels)[rows]
    base = nearest_train(train[rows], train, sample_labels=base_labels, train_labels=train_labels, k=k,
                         self_index=rows)
    return found, base


def within(sample_labels: np.ndarray | None, train_labels: np.ndarray | None) -> str:
    return "class" if single_labels(sample_labels) is not None and single_labels(train_labels) is not None else "all"


def summary(found: Neighbours, base: Neighbours, labels: np.ndarray | None, num_classes: int) -> dict[str, Any]:
    """Plain-JSON summary of one space: shares, baseline, quantiles, near-copies per class."""
    lab = single_labels(labels)
    per_class = ([int(found.near_copy[lab == c].sum()) for c in range(num_classes)] if lab is not None
                 else [int(found.near_copy.sum())])
    return {"near_copy_share": found.share, "baseline_share": base.share, "near_copies": int(found.near_copy.sum()),
            "near_copies_per_class": per_class, "quantiles": list(QUANTILES),
            "distance_quantiles": found.quantiles(), "baseline_distance_quantiles": base.quantiles(),
            "k_used": found.k_used, "baseline_n": len(base.distance)}


def _finite(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def per_sample(found: Neighbours) -> dict[str, list]:
    """Per-sample arrays as JSON lists (an unmatched sample: index -1, distances null)."""
    return {"nn_index": found.index.tolist(), "nn_distance": [_finite(x) for x in found.distance],
            "kth_distance": [_finite(x) for x in found.kth_distance], "near_copy": found.near_copy.tolist()}


def plain(value: Any) -> Any:
    """`value` as strict JSON data: NaN and infinity become null, numpy scalars Python numbers."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return _finite(float(value))
    if isinstance(value, np.integer):
        return int(value)
    return value


def write_json(path: str | Path, payload: dict[str, Any]) -> Path:
    from medaug.store.atomic import atomic_write_text

    path = Path(path)
    atomic_write_text(path, json.dumps(plain(payload), allow_nan=False))
    return path


def write_montage(samples: np.ndarray, train: np.ndarray, found: Neighbours, path: str | Path, *,
                  pairs: int = MONTAGE_PAIRS, title: str = "") -> Path:
    """PNG of the closest pairs (smallest nearest distance first): sample | its nearest train image,
    captioned with the distance and the nearest/k-th ratio; near-copies in red."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from medaug.store.atomic import atomic_write

    order = [i for i in np.argsort(found.distance, kind="stable") if found.index[i] >= 0][:pairs]
    cols = 4
    rows = max(1, math.ceil(len(order) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.9, rows * 1.15 + 0.4), squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()
    for ax, i in zip(axes.flat, order):
        a, b = samples[i], train[found.index[i]]
        gap = np.full((a.shape[0], a.shape[1], max(1, a.shape[2] // 14)), 255, dtype=np.uint8)
        pair = np.concatenate([a, gap, b], axis=2)
        if pair.shape[0] == 1:
            ax.imshow(pair[0], cmap="gray", vmin=0, vmax=255)
        else:
            ax.imshow(pair.transpose(1, 2, 0))
        ratio = found.distance[i] / found.kth_distance[i] if found.kth_distance[i] > 0 else 0.0
        ax.set_title(f"#{i}: d {found.distance[i]:.2f}, r {ratio:.2f}", fontsize=6,
                     color="red" if found.near_copy[i] else "black")
    fig.suptitle(title or "closest pairs: sample | nearest train image (red: near-copy)", fontsize=7)
    path = Path(path)
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight"))
    plt.close(fig)
    return path


def describe(k: int, where: str) -> str:
    """The rule as one line, with k and where neighbours were searched."""
    return f"{RULE}; k = {k} (fewer when a class has fewer train images); neighbours within {where}"
