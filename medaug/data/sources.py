"""Data sets by name: what `ExperimentSpec.dataset` may say, and how each is loaded.

Every source turns (name, size, root, options) into `DatasetSplits` plus
source-specific facts for the result row (for COVID: the held-out test files, the
skipped images, how the splits were drawn). MedMNIST names load the npz files;
`covid19-radiography` (seed 003's COVID vs Normal) and `covid19-radiography-4class`
read the published folder layout; `isic2019` reads ISIC 2019's ground-truth CSV and
image folder (seed 002); `folder` reads any class-folder tree, root/<class>/<image> or
root/{train,val,test}/<class>/<image> (medaug/data/folder_source.py).

Options (`ExperimentSpec.data_options`): a source may take named, typed options that
change which images land in which split, e.g. the COVID sources' `test_per_class`
(seed 003 held out 200 per class; a smaller copy of the database or the 4-class
variant needs other numbers). `DataSource.check_options` validates them and fills in
the defaults, so a spec always carries the full definition of its splits and two runs
with different test sets never share a run id. MedMNIST sets take no options (their
splits are the published ones), which keeps their specs and run ids as they were.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medaug.data.imageset import DatasetSplits
from medaug.data.medmnist import DATASETS_2D, SIZES, default_root, load_medmnist
from medaug.errors import MedaugError

Loader = Callable[[str, int, "Path | None", bool, bool, dict[str, Any]], "LoadedData"]


@dataclass(frozen=True)
class LoadedData:
    splits: DatasetSplits
    facts: dict[str, Any] = field(default_factory=dict)  # extra result-row columns


@dataclass(frozen=True)
class DataOption:
    """One named option of a data source: `check(value, where)` returns it normalised or
    raises a one-line MedaugError that starts with `where` (the option's path).

    `omit_default`: at its default the option stays out of the checked options,
    so specs written before it existed keep their data_options and run ids (the COVID
    sources' `lung_crop`); the loader reads it with `.get(name, default)`.
    """

    name: str
    default: Any
    check: Callable[[Any, str], Any]
    doc: str = ""
    omit_default: bool = False


@dataclass(frozen=True)
class DataSource:
    """How to check a size and options for, and load, one named data set."""

    name: str
    sizes: tuple[int, ...] | None  # None: any size within (min_size, max_size)
    load: Loader
    min_size: int = 8
    max_size: int = 1024
    options: tuple[DataOption, ...] = ()
    class_names: tuple[str, ...] | None = None  # None: known only once the data is read

    def check_size(self, size: int) -> None:
        if self.sizes is not None:
            if size not in self.sizes:
                raise MedaugError(f"unsupported size {size} for {self.name}; expected one of {self.sizes}")
        elif not self.min_size <= size <= self.max_size:
            raise MedaugError(f"unsupported size {size} for {self.name}; expected {self.min_size}..{self.max_size}")

    @property
    def option_names(self) -> tuple[str, ...]:
        return tuple(o.name for o in self.options)

    def check_options(self, options: Mapping[str, Any] | None, where: str = "data_options") -> dict[str, Any]:
        """Validated options with the defaults filled in (keys sorted); MedaugError names the option."""
        options = {} if options is None else options
        if not isinstance(options, Mapping):
            raise MedaugError(f"{where}: expected a mapping of option -> value, got {type(options).__name__}")
        names = self.option_names
        for key in options:
            if not isinstance(key, str) or key not in names:
                if not names:
                    raise MedaugError(f"{where}.{key}: dataset {self.name!r} takes no data options")
                close = difflib.get_close_matches(str(key), names, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise MedaugError(f"{where}.{key}: unknown option for dataset {self.name!r}{hint}; expected one of: "
                                  + ", ".join(names))
        out = {}
        for o in self.options:
            value = o.check(options[o.name], f"{where}.{o.name}") if o.name in options else o.default
            if not (o.omit_default and value == o.default):
                out[o.name] = value
        return dict(sorted(out.items()))


# ----------------------------------------------------------------------------- option checks

def _integer(minimum: int) -> Callable[[Any, str], int]:
    def check(value: Any, where: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise MedaugError(f"{where}: expected an integer >= {minimum}, got {value!r}")
        return int(value)

    return check


def _boolean(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise MedaugError(f"{where}: expected true or false, got {value!r}")
    return value


def _folder_root(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip() or "\x00" in value:
        raise MedaugError(f"{where}: expected a folder path (absolute, or relative to the data root), got {value!r}")
    return value


def _channels(value: Any, where: str) -> int:
    if isinstance(value, bool) or value not in (1, 3):
        raise MedaugError(f"{where}: expected 1 (grayscale) or 3 (RGB), got {value!r}")
    return int(value)


def _fit(value: Any, where: str) -> str:
    fits = ("squash", "center-crop")  # medaug.data.imageio.FITS (not imported here: it loads PIL)
    if not isinstance(value, str) or value not in fits:
        raise MedaugError(f"{where}: expected one of {', '.join(fits)}, got {value!r}")
    return value


def _fraction(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise MedaugError(f"{where}: expected a fraction in [0, 1), got {value!r}")
    return float(value)


def _per_class_count(classes: Sequence[str]) -> Callable[[Any, str], int | dict[str, int]]:
    """An integer >= 0 for every class, or a mapping class -> integer (classes left out: 0)."""

    def check(value: Any, where: str) -> int | dict[str, int]:
        if isinstance(value, Mapping):
            out = {}
            for cls, n in value.items():
                if cls not in classes:
                    close = difflib.get_close_matches(str(cls), classes, n=1)
                    hint = f" (did you mean {close[0]!r}?)" if close else ""
                    raise MedaugError(f"{where}.{cls}: not a class of this data set{hint}; expected some of: "
                                      + ", ".join(classes))
                out[cls] = _integer(0)(n, f"{where}.{cls}")
            return {c: out.get(c, 0) for c in classes}  # every class, in label order
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise MedaugError(f"{where}: expected an integer >= 0 (images per class) or a mapping class -> "
                              f"integer, got {value!r}")
        return int(value)

    return check


# ----------------------------------------------------------------------------- sources

def _medmnist(name: str, size: int, root: Path | None, download: bool, verify: bool,
              options: dict[str, Any]) -> LoadedData:
    return LoadedData(load_medmnist(name, size, root=root, download_missing=download, verify=verify))


def _covid_options(classes: tuple[str, ...]) -> tuple[DataOption, ...]:
    from medaug.data.covid import SEED003_TEST_PER_CLASS

    return (
        DataOption("test_per_class", SEED003_TEST_PER_CLASS, _per_class_count(classes),
                   "held-out test images per class (seed 003: 200), or a mapping class -> number"),
        DataOption("val_fraction", 0.1, _fraction,
                   "validation share of each class's remaining images (seed 003: Keras validation_split 0.1)"),
        DataOption("split_seed", 0, _integer(0), "seed of the hashed-file-name draw of the test and val files"),
        DataOption("lung_crop", True, _boolean,
                   "crop each radiograph to its lung mask (seed 003); false: whole images, for copies without masks",
                   omit_default=True),
    )


def _covid(classes: str) -> Loader:
    def load(name: str, size: int, root: Path | None, download: bool, verify: bool,
             options: dict[str, Any]) -> LoadedData:
        from medaug.data.covid import load_covid

        splits, manifest = load_covid(root if root is not None else default_root(), classes=classes, size=size,
                                      test_per_class=options["test_per_class"],
                                      val_fraction=options["val_fraction"], split_seed=options["split_seed"],
                                      lung_crop=options.get("lung_crop", True))
        return LoadedData(splits, {"test_files": list(manifest.test_files), "n_skipped": len(manifest.skipped),
                                   "data_provenance": json.dumps(covid_provenance(manifest), sort_keys=True)})

    return load


def covid_provenance(manifest: Any) -> dict[str, Any]:
    """What a result row records of how the COVID splits were made (the file lists
    themselves: `test_files`, and the manifest's hash of all source files)."""
    m = manifest.to_dict()
    keep = ("source", "classes", "size", "resample", "split_seed", "val_fraction", "test_per_class", "counts",
            "skipped", "file_list_hash", "lung_crop")
    return {k: m[k] for k in keep}


ISIC_CSV = "ISIC_2019_Training_GroundTruth.csv"
ISIC_IMAGES = "ISIC_2019_Training_Input"
ISIC_OPTIONS = (
    DataOption("val_fraction", 0.15, _fraction, "stratified validation share"),
    DataOption("test_fraction", 0.15, _fraction, "stratified test share"),
    DataOption("split_seed", 0, _integer(0), "seed of the stratified split"),
)


def _isic(name: str, size: int, root: Path | None, download: bool, verify: bool,
          options: dict[str, Any]) -> LoadedData:
    """ISIC 2019, 70/15/15 stratified by default (seed 002 reported on its 30% validation
    split; a separate test split keeps model selection off the reported numbers)."""
    from medaug.data.folders import load_labels_csv

    base = root if root is not None else default_root()
    if options["val_fraction"] + options["test_fraction"] >= 1:
        raise MedaugError(f"data_options: val_fraction {options['val_fraction']} + test_fraction "
                          f"{options['test_fraction']} leave no training images")
    splits = load_labels_csv(base / ISIC_CSV, base / ISIC_IMAGES, size, channels=3,
                             val_fraction=options["val_fraction"], test_fraction=options["test_fraction"],
                             seed=options["split_seed"], name=name)
    # which label columns became classes (UNK, without images, is dropped), per-column counts, the split
    provenance = {**splits.info, **options, "file_list_hash": splits.md5}
    return LoadedData(splits, {"data_provenance": json.dumps(provenance, sort_keys=True)})


FOLDER_OPTIONS = (
    DataOption("root", ".", _folder_root,
               "the class-folder tree: an absolute path, or one relative to the data root (default: the data root)"),
    DataOption("channels", 3, _channels, "1 (grayscale) or 3 (RGB)"),
    DataOption("fit", "squash", _fit, "squash (scale each axis) or center-crop (central square first)"),
    DataOption("val_fraction", 0.15, _fraction, "validation share of each class, drawn when the tree has no val/"),
    DataOption("test_fraction", 0.15, _fraction, "test share of each class, drawn when the tree has no test/"),
    DataOption("split_seed", 0, _integer(0), "seed of the hashed-file-name draw of the drawn splits"),
)


def _folder(name: str, size: int, root: Path | None, download: bool, verify: bool,
            options: dict[str, Any]) -> LoadedData:
    """Any class-folder tree (medaug/data/folder_source.py): its own split folders, or 70/15/15 drawn."""
    from medaug.data.folder_source import load_folder

    splits, facts = load_folder(root, size, options)
    return LoadedData(splits, facts)


def _covid_source(name: str, subset: str) -> DataSource:
    from medaug.data.covid import CLASS_SUBSETS

    classes = CLASS_SUBSETS[subset]
    # any size load_covid takes; a classifier with a larger minimum (InceptionV3: 75 px) says so itself
    return DataSource(name, None, _covid(subset), min_size=8, options=_covid_options(classes), class_names=classes)


def _medmnist_classes(name: str) -> tuple[str, ...] | None:
    try:
        from medaug.data.medmnist import dataset_info

        labels = dataset_info(name)["label"]
        return tuple(labels[k] for k in sorted(labels, key=int))
    except Exception:  # noqa: BLE001 - medmnist's INFO is informative here only
        return None


SOURCES: dict[str, DataSource] = {n: DataSource(n, SIZES, _medmnist) for n in DATASETS_2D}
SOURCES["covid19-radiography"] = _covid_source("covid19-radiography", "covid-normal")
SOURCES["covid19-radiography-4class"] = _covid_source("covid19-radiography-4class", "all")
SOURCES["isic2019"] = DataSource("isic2019", None, _isic, min_size=28, options=ISIC_OPTIONS)
SOURCES["folder"] = DataSource("folder", None, _folder, min_size=8, options=FOLDER_OPTIONS)


def data_source(name: str) -> DataSource:
    try:
        return SOURCES[name]
    except KeyError:
        raise MedaugError(f"unknown dataset {name!r}; expected one of: {', '.join(SOURCES)}") from None


def class_names(name: str) -> tuple[str, ...] | None:
    """The class names of a data set in label order, when known without reading its files."""
    source = data_source(name)
    if source.class_names is not None:
        return source.class_names
    return _medmnist_classes(name) if name in DATASETS_2D else None


def load_dataset(name: str, size: int, root: str | Path | None = None, download: bool = False,
                 verify: bool = True, options: Mapping[str, Any] | None = None) -> LoadedData:
    """Load a data set by name. `options` (validated, defaults filled) select e.g. the
    COVID test set; pass a spec's `data_options` so a generator trains on the very
    train split the study's runs use."""
    source = data_source(name)
    source.check_size(size)
    checked = source.check_options(options)
    return source.load(name, size, Path(root).expanduser() if root is not None else None, download, verify, checked)
