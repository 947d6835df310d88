"""Make a synthetic set from a generator checkpoint: load, count, sample, write to Zarr.

    medaug synthesize --checkpoint RUN/checkpoint --strategy inverse-scarcity --fraction 0.1 \
        --seed 0 --out sets.zarr

reads the checkpoint (refusing a corrupted one), loads the real data set it was
trained on and checks that its train split is byte-for-byte the one the generator
saw (content hash), derives per-class numbers from the train split's class counts
with the strategy (`medaug.generators.strategies`), samples (or, for
interleave-reconstructions, reconstructs every train image in order), and writes the
set with its provenance (`medaug.store.synthetic`). The provenance records the
memorisation check of the first draw (`medaug.generators.memorisation`, pixel
space, within class: the share of near-copies of train images, the train-to-train
baseline, the rule and k). A request may carry a filter (`medaug.generators.filters`:
classifier confidence, realism score, near-copy; `--drop-near-copies` is the near-copy
filter): rejected samples are replaced by further draws, at most `max_draws` x the
requested count per class, the counts and the filter's classifier recorded under
`filter`, and the set is written under a group name ending in the filter's tag. The
memorisation check is in pixel space only: feature space needs `generator eval`'s
reference classifier, which an unfiltered synthesis does not train. Every check runs
before anything is written; the set appears whole or not at all. The provenance identifies the
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
from medaug.generators.filters import (
    FilterSpec,
    PreparedFilter,
    classifier_file_hash,
    draw_filtered,
)
from medaug.generators.filters import prepare as prepare_filter
from medaug.generators.strategies import Strategy, labels_for_counts
from medaug.store.synthetic import (
    check_group_name,
    check_store_writable,
    make_ref,
    physical_memory,
    write_synthetic_set,
)


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
                  filter_tag: str | None = None) -> str:
    """GENERATOR-DATASET-STRATEGY-sSEED-HASH, then -TAG of a filter (-nocopies, -conf0.9, ...: never the same set)."""
    return f"{generator}-{dataset}-{strategy.name}-s{seed}-{ckpt_hash[:8]}{f'-{filter_tag}' if filter_tag else ''}"


def memorisation_record(images: np.ndarray, labels: np.ndarray, train: ImageSet, seed: int) -> dict[str, Any]:
    """The provenance's `memorisation`: near-copies of train images among the first draw (pixel space,
    within class), the train-to-train baseline, the rule and k."""
    from medaug.generators import memorisation as mem

    found, base = mem.check(images, train.images, sample_labels=labels, train_labels=train.labels, seed=seed)
    flagged = mem.summary(found, base, labels, train.num_classes)["near_copies_per_class"]
    return mem.plain({
        "space": "pixel", "rule": mem.describe(mem.NEAR_COPY_K, "class"), "k": mem.NEAR_COPY_K, "within": "class",
        "near_copy_share": found.share, "baseline_share": base.share, "near_copies_per_class": flagged,
        "k_used": found.k_used, "dropped": False,
    })


def resolve_filter(sample_filter: FilterSpec | None, drop_near_copies: bool) -> FilterSpec | None:
    """The request's filter: `sample_filter`, or the near-copy filter `drop_near_copies` stands for."""
    if not drop_near_copies:
        return sample_filter
    if sample_filter is not None and sample_filter.kind != "near-copy":
        raise MedaugError(f"--drop-near-copies and --filter {sample_filter.kind}: one filter per set; "
                          "--drop-near-copies is --filter near-copy")
    return sample_filter or FilterSpec(kind="near-copy")


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
               sampling: Mapping[str, Any] | None = None, drop_near_copies: bool = False,
               sample_filter: FilterSpec | None = None, classifier_cache: str | Path | None = None) -> SynthesisResult:
    """Generate a set from `checkpoint` by `strategy` and write it to `out#group`.

    `splits` (the real data) defaults to loading the checkpoint's data set (name, size
    and source options as recorded at fit time) from `data_root`. `sampling` holds
    options of a generator's sampler, e.g. {"steps": 8, "guidance": 1.5} for edm (only
    generators that list them in `sampling_options` take them); a generator with a
    sampler records how it sampled under the provenance's `sampling`. The provenance's
    `memorisation` records the near-copy check of the first draw. `sample_filter`
    (`medaug.generators.filters`) keeps only the samples that pass it and draws more
    (module doc), under the default group name ending in the filter's tag;
    `drop_near_copies` is the near-copy filter (-nocopies). A filter that trains its
    classifier caches it under `classifier_cache` (default: the store's folder), in
    `generator eval`'s reference cache there. Raises
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
    sample_filter = resolve_filter(sample_filter, drop_near_copies)
    tag = sample_filter.tag(classifier_file_hash(sample_filter)) if sample_filter else None
    if sample_filter and strategy.reconstructs:
        raise MedaugError(f"filter {sample_filter.kind}: strategy {strategy.name} writes reconstructions of the "
                          "train images (near-copies by design), not draws that can be replaced; filter nothing or "
                          "choose a sampling strategy")
    if sample_filter and group == unfiltered:
        raise MedaugError(f"--group {group}: the name of the set without the filter; a filtered set needs "
                          f"another (default {unfiltered}-{tag})")
    group = group or default_group(meta["name"], train.name, strategy, seed, ckpt_hash, tag)
    check_group_name(group)
    check_store_writable(out, group)  # before sampling: a folder in the way is found now, not after
    if int(counts.sum()) == 0:
        raise MedaugError(f"strategy {strategy.name} {strategy.params()}: asks for 0 images on this train split")
    check_fits_in_memory(strategy, int(counts.sum()), int(meta["channels"]) * int(meta["size"]) ** 2)
    prepared: PreparedFilter | None = None
    if sample_filter is not None:  # a bad classifier file is refused, a missing classifier trained, before sampling
        prepared = prepare_filter(sample_filter, splits, device=device,
                                  cache_dir=classifier_cache if classifier_cache is not None else out.parent)

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
    memorisation = memorisation_record(images, labels, train, seed)
    filter_record = None
    if prepared is not None:
        images, labels, filter_record = draw_filtered(gen.sample, counts, seed, prepared, train.class_names,
                                                      first=(images, labels))
        if prepared.spec.kind == "near-copy":  # the record --drop-near-copies has always written
            memorisation.update(dropped=True, dropped_per_class=filter_record["rejected_per_class"],
                                redraw_seeds=[r["seed"] for r in filter_record["rounds"][1:]])

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
        **({"filter": filter_record} if filter_record is not None else {}),
        "medaug_version": __version__,
        "torch_version": torch.__version__,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    set_id = write_synthetic_set(out, group, images, labels, provenance)
    return SynthesisResult(ref=make_ref(out, group), set_id=set_id, n=len(labels),
                           counts=tuple(int(c) for c in counts), provenance=provenance)
