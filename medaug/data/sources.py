"""Data sets by name: what `ExperimentSpec.dataset` may say, and how each is loaded.

Every source turns (name, size, root) into `DatasetSplits` plus source-specific facts
for the result row (for COVID: the held-out test files, the skipped images). MedMNIST
names load the npz files; `covid19-radiography` (seed 003's COVID vs Normal) and
`covid19-radiography-4class` read the published folder layout; `isic2019` reads
ISIC 2019's ground-truth CSV and image folder (seed 002).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medaug.data.imageset import DatasetSplits
from medaug.data.medmnist import DATASETS_2D, SIZES, default_root, load_medmnist
from medaug.errors import MedaugError


@dataclass(frozen=True)
class LoadedData:
    splits: DatasetSplits
    facts: dict[str, Any] = field(default_factory=dict)  # extra result-row columns


@dataclass(frozen=True)
class DataSource:
    """How to check a size for, and load, one named data set."""

    name: str
    sizes: tuple[int, ...] | None  # None: any size within (min_size, max_size)
    load: Callable[[str, int, Path | None, bool, bool], LoadedData]
    min_size: int = 8
    max_size: int = 1024

    def check_size(self, size: int) -> None:
        if self.sizes is not None:
            if size not in self.sizes:
                raise MedaugError(f"unsupported size {size} for {self.name}; expected one of {self.sizes}")
        elif not self.min_size <= size <= self.max_size:
            raise MedaugError(f"unsupported size {size} for {self.name}; expected {self.min_size}..{self.max_size}")


def _medmnist(name: str, size: int, root: Path | None, download: bool, verify: bool) -> LoadedData:
    return LoadedData(load_medmnist(name, size, root=root, download_missing=download, verify=verify))


def _covid(classes: str) -> Callable[[str, int, Path | None, bool, bool], LoadedData]:
    def load(name: str, size: int, root: Path | None, download: bool, verify: bool) -> LoadedData:
        from medaug.data.covid import load_covid

        splits, manifest = load_covid(root if root is not None else default_root(), classes=classes, size=size)
        return LoadedData(splits, {"test_files": list(manifest.test_files), "n_skipped": len(manifest.skipped)})

    return load


ISIC_CSV = "ISIC_2019_Training_GroundTruth.csv"
ISIC_IMAGES = "ISIC_2019_Training_Input"


def _isic(name: str, size: int, root: Path | None, download: bool, verify: bool) -> LoadedData:
    """ISIC 2019, 70/15/15 stratified (seed 002 reported on its 30% validation split; a
    separate test split keeps model selection off the reported numbers)."""
    from medaug.data.folders import load_labels_csv

    base = root if root is not None else default_root()
    return LoadedData(load_labels_csv(base / ISIC_CSV, base / ISIC_IMAGES, size, channels=3, val_fraction=0.15,
                                      test_fraction=0.15, seed=0, name=name))


SOURCES: dict[str, DataSource] = {n: DataSource(n, SIZES, _medmnist) for n in DATASETS_2D}
SOURCES["covid19-radiography"] = DataSource("covid19-radiography", None, _covid("covid-normal"), min_size=75)
SOURCES["covid19-radiography-4class"] = DataSource("covid19-radiography-4class", None, _covid("all"), min_size=75)
SOURCES["isic2019"] = DataSource("isic2019", None, _isic, min_size=28)


def data_source(name: str) -> DataSource:
    try:
        return SOURCES[name]
    except KeyError:
        raise MedaugError(f"unknown dataset {name!r}; expected one of: {', '.join(SOURCES)}") from None


def load_dataset(name: str, size: int, root: str | Path | None = None, download: bool = False,
                 verify: bool = True) -> LoadedData:
    source = data_source(name)
    source.check_size(size)
    return source.load(name, size, Path(root).expanduser() if root is not None else None, download, verify)
