"""The real data of a generator: which sizes a fit may ask for, and loading the splits by name.

Every data set registered in `medaug.data.sources` (the MedMNIST 2D sets, the COVID-19
radiography sets, ISIC 2019) can train a generator, at a size that both the data
source provides (MedMNIST: its published sizes; folder sources: a range, resized on
load) and the generator accepts (its `sizes`; e.g. the GANs' 28/32/64, StyleGAN2-ADA's
powers of two up to 256). `generator fit` checks that before it reads a file.

A checkpoint records the data set's name, size and source options (e.g. the COVID
test set per class) under `dataset`, so `synthesize` and `generator eval` reload the
very splits it was trained on; the train-split content hash then proves it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from medaug.data.imageset import DatasetSplits
from medaug.errors import MedaugError


def accepted_sizes(generator: str, dataset: str) -> tuple[int, ...]:
    """Image sizes at which `generator` can be fitted on `dataset` (both names checked)."""
    from medaug.data.sources import data_source
    from medaug.generators.base import GENERATORS

    sizes = GENERATORS.get(generator).sizes
    source = data_source(dataset)
    if source.sizes is not None:
        return tuple(s for s in sizes if s in source.sizes)
    return tuple(s for s in sizes if source.min_size <= s <= source.max_size)


def check_fit_size(generator: str, dataset: str, size: int, flag: str = "--size") -> None:
    """Refuse (one line naming `flag` and the accepted values) a size the pair cannot do."""
    from medaug.data.sources import data_source
    from medaug.generators.base import GENERATORS

    ok = accepted_sizes(generator, dataset)
    if size in ok:
        return
    source = data_source(dataset)
    provides = (", ".join(map(str, source.sizes)) if source.sizes is not None
                else f"{source.min_size}..{source.max_size}")
    gen_sizes = ", ".join(map(str, GENERATORS.get(generator).sizes))
    if not ok:
        raise MedaugError(f"{flag} {size}: generator {generator} (sizes {gen_sizes}) and dataset {dataset} "
                          f"(sizes {provides}) share no image size")
    raise MedaugError(f"{flag} {size}: generator {generator} on dataset {dataset} accepts "
                      f"{', '.join(map(str, ok))} (generator: {gen_sizes}; dataset: {provides})")


def load_splits(dataset: str, size: int, data_root: str | Path | None = None, *, download: bool = False,
                verify_md5: bool = True, options: Mapping[str, Any] | None = None) -> DatasetSplits:
    """The splits of a registered data set (`medaug.data.sources.load_dataset`)."""
    from medaug.data.sources import load_dataset

    return load_dataset(dataset, size, root=data_root, download=download, verify=verify_md5,
                        options=dict(options or {})).splits


def data_options_of(meta: Mapping[str, Any]) -> dict[str, Any]:
    """The data-source options a checkpoint's generator.json recorded ({} for older checkpoints)."""
    options = meta.get("dataset", {}).get("data_options", {})
    return dict(options) if isinstance(options, Mapping) else {}


def splits_of_checkpoint(meta: Mapping[str, Any], data_root: str | Path | None = None, *,
                         verify_md5: bool = True) -> DatasetSplits:
    """The real splits a checkpoint names (dataset, size, options), never downloaded."""
    name = meta.get("dataset", {}).get("name", "")
    return load_splits(name, int(meta["size"]), data_root, download=False, verify_md5=verify_md5,
                       options=data_options_of(meta))


def checked_data_options(dataset: str, options: Mapping[str, Any] | None) -> dict[str, Any]:
    """Options validated by the data source, with its defaults filled in (recorded in checkpoints)."""
    from medaug.data.sources import data_source

    return data_source(dataset).check_options(options, where="--data-option")
