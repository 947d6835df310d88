"""Make a synthetic set from a generator checkpoint: load, count, sample, write to Zarr.

    medaug synthesize --checkpoint RUN/checkpoint --strategy inverse-scarcity --fraction 0.1 \
        --seed 0 --out sets.zarr

reads the checkpoint (refusing a corrupted one), loads the real data set it was
trained on and checks that its train split is byte-for-byte the one the generator
saw (content hash), derives per-class numbers from the train split's class counts
with the strategy (`medaug.generators.strategies`), samples (or, for
interleave-reconstructions, reconstructs every train image in order), and writes the
set with its provenance (`medaug.store.synthetic`). The provenance records the
memorisation check of the images drawn (`medaug.generators.memorisation`, pixel
space, within class: the share of near-copies of train images, the train-to-train
baseline, the rule and k); with `drop_near_copies` (`--drop-near-copies`) those
near-copies are dropped and replaced by further draws (at most `MAX_REDRAWS` rounds,
seeds recorded) before the set is written, under a group name of its own. The check
is in pixel space only: feature space needs `generator eval`'s reference classifier,
trained for minutes, which a synthesis (or a study's) does not train. Every check runs before anything
is written; the set appears whole or not at all. The provenance identifies the
checkpoint by its hashes and locates it by a path relative to the store's folder, never
by a machine path (see `checkpoint_location`).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from medaug.data.imageset import DatasetSplits, ImageSet
from medaug.errors import MedaugError
from medaug.generators.strategies import Strategy, labels_for_counts
from medaug.store.synthetic import (
    check_group_name,
    check_store_writable,
    make_ref,
    physical_memory,
    write_synthetic_set,
)


MAX_REDRAWS = 8  # extra sampling rounds that --drop-near-copies may take to refill the classes
NO_COPIES_SUFFIX = "-nocopies"


@dataclass(frozen=True)
class SynthesisResult:
    ref: str
    set_id: str
    n: int
    counts: tuple[int, ...]
    provenance: dict[str, Any]


def checkpoint_content_hash(ckpt_dir: str | Path) -> str:
    """sha256 (16 hex) of generator.json, after checking state.pt against the sha256 it names.

    generator.json records the sha256 of state.pt, so this hash covers both files.
    """
    from medaug.generators.base import META_FILE, checkpoint_hash

    checkpoint_hash(ckpt_dir)  # verifies state.pt against generator.json
    return hashlib.sha256((Path(ckpt_dir) / META_FILE).read_bytes()).hexdigest()[:16]


def checkpoint_location(ckpt_dir: str | Path, store: str | Path) -> str | None:
    """Where the checkpoint is, as a POSIX path relative to the folder holding the store; or None.

    Provenance must not record machine paths (/home/alice/...): a set is copied between
    machines and shared. The checkpoint is identified by its hashes (`checkpoint_hash`,
    `state_sha256`); this path only helps find it again in the same tree (e.g. a study's
    OUT/generators/... beside its synthetic/ stores). When checkpoint and store share no
    folder but the file system root, no path is recorded.
    """
    ckpt, base = Path(ckpt_dir).resolve(), Path(store).expanduser().resolve().parent
    try:
        common = Path(os.path.commonpath([ckpt, base]))
    except ValueError:  # different drives
        return None
    if common == Path(common.anchor):
        return None
    return Path(os.path.relpath(ckpt, base)).as_posix()


def check_train_matches(meta: dict[str, Any], train: ImageSet, ckpt_dir: Path) -> None:
    """Refuse real data whose train split is not the one the generator was trained on."""
    ds = meta.get("dataset", {})
    if ds.get("name") != train.name:
        raise MedaugError(f"{ckpt_dir}: generator was trained on dataset {ds.get('name')!r}, not {train.name!r}")
    if (meta["channels"], meta["size"], len(meta["class_names"])) != (train.channels, train.size, train.num_classes):
        raise MedaugError(f"{ckpt_dir}: generator makes {meta['channels']}-channel {meta['size']} px images of "
                          f"{len(meta['class_names'])} classes; the data has {train.channels}, {train.size}, "
                          f"{train.num_classes}")
    if ds.get("train_hash") != train.content_hash:
        raise MedaugError(f"{ckpt_dir}: generator was trained on train split hash {ds.get('train_hash')}, but this "
                          f"data's train split hashes to {train.content_hash} (other file, size or version)")
    if train.multi_label:
        raise MedaugError(f"{train.name}: synthetic sets are made for single-label tasks; {train.task!r} is multi-label")


def default_group(generator: str, dataset: str, strategy: Strategy, seed: int, ckpt_hash: str,
                  drop_near_copies: bool = False) -> str:
    """GENERATOR-DATASET-STRATEGY-sSEED-HASH, with -nocopies when near-copies were dropped (never the same set)."""
    return f"{generator}-{dataset}-{strategy.name}-s{seed}-{ckpt_hash[:8]}{NO_COPIES_SUFFIX if drop_near_copies else ''}"


def redraw_seed(seed: int, round_: int) -> int:
    """Seed of the `round_`-th extra draw (1, 2, ...) of --drop-near-copies: derived, never another set's seed."""
    return int(np.random.SeedSequence([seed, round_]).generate_state(1)[0] >> 1)


def memorisation_provenance(gen: Any, images: np.ndarray, labels: np.ndarray, counts: np.ndarray, train: ImageSet,
                            seed: int, drop: bool) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Check `images` for near-copies of train images; with `drop`, replace them by further draws.

    Returns the images and labels to write and the provenance's `memorisation` record.
    Raises MedaugError when MAX_REDRAWS extra draws leave a class short.
    """
    from medaug.generators import memorisation as mem

    found, base = mem.check(images, train.images, sample_labels=labels, train_labels=train.labels, seed=seed)
    flagged = mem.summary(found, base, labels, train.num_classes)["near_copies_per_class"]
    record: dict[str, Any] = {
        "space": "pixel", "rule": mem.describe(mem.NEAR_COPY_K, "class"), "k": mem.NEAR_COPY_K, "within": "class",
        "near_copy_share": found.share, "baseline_share": base.share, "near_copies_per_class": flagged,
        "k_used": found.k_used, "dropped": drop,
    }
    if not drop:
        return images, labels, mem.plain(record)
    keep_images, keep_labels = [images[~found.near_copy]], [labels[~found.near_copy]]
    dropped = np.asarray(flagged, dtype=np.int64)
    seeds: list[int] = []
    for round_ in range(1, MAX_REDRAWS + 1):
        have = np.bincount(np.concatenate(keep_labels), minlength=train.num_classes)
        missing = np.maximum(np.asarray(counts) - have, 0)
        if not missing.any():
            break
        seeds.append(redraw_seed(seed, round_))
        extra_labels = labels_for_counts(2 * missing)  # twice what is missing: fewer rounds when copies are common
        extra = gen.sample(extra_labels, seeds[-1])
        more = mem.nearest_train(extra, train.images, sample_labels=extra_labels, train_labels=train.labels)
        dropped += np.bincount(extra_labels[more.near_copy], minlength=train.num_classes)
        keep_images.append(extra[~more.near_copy])
        keep_labels.append(extra_labels[~more.near_copy])
    all_images, all_labels = np.concatenate(keep_images), np.concatenate(keep_labels)
    rows = [np.flatnonzero(all_labels == c)[:n] for c, n in enumerate(counts)]
    short = [(train.class_names[c], len(r), int(n)) for c, (r, n) in enumerate(zip(rows, counts)) if len(r) < n]
    if short:
        name, got, want = short[0]
        raise MedaugError(f"--drop-near-copies: class {name!r} has {got} of {want} images that are not near-copies "
                          f"after {MAX_REDRAWS} extra draws ({int(dropped.sum())} near-copies dropped); this "
                          "generator copies its training images, nothing was written")
    order = np.concatenate(rows)
    record.update(dropped_per_class=dropped.tolist(), redraw_seeds=seeds)
    return np.ascontiguousarray(all_images[order]), all_labels[order], mem.plain(record)


def check_fits_in_memory(strategy: Strategy, n: int, pixels: int) -> None:
    """A set is sampled into memory whole, then written: refuse, before the generator is even
    loaded, one that would take more than half of the machine's memory (`--count 2000000000`
    would otherwise swap the machine to a halt)."""
    nbytes, memory = n * pixels, physical_memory()
    if memory and nbytes > memory // 2:
        raise MedaugError(f"strategy {strategy.name} {strategy.params()}: asks for {n:,} images "
                          f"({nbytes / 2**30:.1f} GiB), more than half of this machine's memory "
                          f"({memory / 2**30:.1f} GiB); ask for fewer")


def check_sampling_options(generator: str, sampling: Mapping[str, Any] | None) -> dict[str, Any]:
    """The sampling options asked for (None values dropped), refused in one line when the
    generator takes none of them (e.g. --steps for a GAN) or a value is out of range."""
    from medaug.generators.base import GENERATORS

    asked = {k: v for k, v in dict(sampling or {}).items() if v is not None}
    if not asked:
        return {}
    cls = GENERATORS.get(generator)
    takes = tuple(getattr(cls, "sampling_options", ()))
    for key in asked:
        if key not in takes:
            which = [n for n in GENERATORS.names() if key in getattr(GENERATORS.get(n), "sampling_options", ())]
            raise MedaugError(f"--{key.replace('_', '-')}: generator {generator!r} has no sampler that takes it "
                              f"(only {', '.join(which) or 'none'})")
    cls.check_sampling(**asked)
    return asked


def synthesize(checkpoint: str | Path, strategy: Strategy, seed: int, out: str | Path, *, group: str | None = None,
               data_root: str | Path | None = None, splits: DatasetSplits | None = None,
               device: str | None = "auto", verify_md5: bool = True,
               sampling: Mapping[str, Any] | None = None, drop_near_copies: bool = False) -> SynthesisResult:
    """Generate a set from `checkpoint` by `strategy` and write it to `out#group`.

    `splits` (the real data) defaults to loading the checkpoint's data set (name, size
    and source options as recorded at fit time) from `data_root`. `sampling` holds
    options of a generator's sampler, e.g. {"steps": 8, "guidance": 1.5} for edm (only
    generators that list them in `sampling_options` take them); a generator with a
    sampler records how it sampled under the provenance's `sampling`. The provenance's
    `memorisation` records the near-copy check; `drop_near_copies` drops near-copies and
    draws more (module doc), under the default group name ending in -nocopies. Raises
    MedaugError, with nothing written, for a corrupted checkpoint, data that is not the
    generator's train split, a bad strategy or sampling option, an existing group, or a
    generator that cannot do what the strategy needs.
    """
    from medaug import __version__
    from medaug.generators import baseline  # noqa: F401  (registers class-mean-noise)
    from medaug.generators.base import load_generator, read_checkpoint_meta
    from medaug.generators.data import splits_of_checkpoint

    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise MedaugError(f"--seed {seed!r}: expected an integer >= 0")
    ckpt = Path(checkpoint).expanduser()
    meta = read_checkpoint_meta(ckpt)
    sampling = check_sampling_options(meta["name"], sampling)
    ckpt_hash = checkpoint_content_hash(ckpt)
    if splits is None:
        splits = splits_of_checkpoint(meta, data_root, verify_md5=verify_md5)
    train = splits.train
    check_train_matches(meta, train, ckpt)
    class_counts = train.class_counts()
    counts = strategy.counts(class_counts, train.class_names)
    out = Path(out).expanduser()
    unfiltered = default_group(meta["name"], train.name, strategy, seed, ckpt_hash)
    if drop_near_copies and strategy.reconstructs:
        raise MedaugError(f"--drop-near-copies: strategy {strategy.name} writes reconstructions of the train "
                          "images, near-copies by design; drop nothing or choose a sampling strategy")
    if drop_near_copies and group == unfiltered:
        raise MedaugError(f"--group {group}: the name of the set without --drop-near-copies; a filtered set needs "
                          f"another (default {unfiltered}{NO_COPIES_SUFFIX})")
    group = group or default_group(meta["name"], train.name, strategy, seed, ckpt_hash, drop_near_copies)
    check_group_name(group)
    check_store_writable(out, group)  # before sampling: a folder in the way is found now, not after
    if int(counts.sum()) == 0:
        raise MedaugError(f"strategy {strategy.name} {strategy.params()}: asks for 0 images on this train split")
    check_fits_in_memory(strategy, int(counts.sum()), int(meta["channels"]) * int(meta["size"]) ** 2)

    gen = load_generator(ckpt, device=device)
    if sampling:
        gen.set_sampling(**sampling)  # type: ignore[attr-defined]  (checked: the generator lists them)
    if strategy.reconstructs:
        if not getattr(gen, "can_reconstruct", False):
            raise MedaugError(f"strategy {strategy.name}: generator {gen.name!r} cannot reconstruct images "
                              "(only the VAEs can)")
        labels = train.labels.copy()
        images = gen.reconstruct(train.images, train.labels, seed=seed)
    else:
        if not getattr(gen, "can_sample", True):
            raise MedaugError(f"generator {gen.name!r} cannot sample labelled images")
        labels = labels_for_counts(counts)
        images = gen.sample(labels, seed)
    expected = (len(labels), train.channels, train.size, train.size)
    if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.shape != expected:
        raise RuntimeError(f"generator {gen.name} returned {getattr(images, 'dtype', '?')} "
                           f"{getattr(images, 'shape', '?')}; expected uint8 {expected}")
    images, labels, memorisation = memorisation_provenance(gen, images, labels, counts, train, seed,
                                                           drop_near_copies)

    import torch

    provenance: dict[str, Any] = {
        "generator": meta["name"],
        "generator_config": meta["config"],
        "generator_epoch": meta["epoch"],
        "generator_finished": meta["finished"],
        "checkpoint": checkpoint_location(ckpt, out),
        "checkpoint_hash": ckpt_hash,
        "state_sha256": meta["state_sha256"],
        "train_hash": train.content_hash,
        "dataset": train.name,
        "dataset_version": splits.version,
        "dataset_md5": splits.md5,
        "size": train.size,
        "channels": train.channels,
        "class_names": list(train.class_names),
        "task": train.task,
        "real_class_counts": class_counts.tolist(),
        "strategy": strategy.name,
        "strategy_params": strategy.params(),
        "counts_per_class": counts.tolist(),
        "seed": seed,
        **({"sampling": gen.sampling_provenance()} if hasattr(gen, "sampling_provenance") else {}),
        "memorisation": memorisation,
        "medaug_version": __version__,
        "torch_version": torch.__version__,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    set_id = write_synthetic_set(out, group, images, labels, provenance)
    return SynthesisResult(ref=make_ref(out, group), set_id=set_id, n=len(labels),
                           counts=tuple(int(c) for c in counts), provenance=provenance)
