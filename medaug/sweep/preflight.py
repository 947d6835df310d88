"""What `medaug sweep STUDY --dry-run` checks before it calls a cell runnable: its inputs.

A cell runs only when everything it reads is there: its data (a MedMNIST npz file
whose md5 matches medmnist's INFO, the COVID-19 Radiography class folders and, unless
`lung_crop: false`, their masks, ISIC 2019's CSV and image folder, a `folder` tree scanned
and split as its run would, without decoding an image), the ImageNet weights of a
`pretrained: true` transfer classifier, and its synthetic set as requested (or, with `--make-synthetic`, a
generator fit that can make it). `check_inputs` lists what is missing for each cell,
looking each input up once however many cells share it (the md5 of a large npz file is
computed once per file, through the same verified-md5 cache a run uses).

The lookups mirror what a run does: data under `--data-root`, else `$MEDAUG_DATA_ROOT`,
else medmnist's default root (medaug/data/medmnist.py `default_root`); weights through
`$MEDAUG_WEIGHTS_DIR` (medaug/classifiers/transfer.py `resolve_weights`). Nothing is
written, except that a verified md5 is remembered as a run remembers it.
"""

from __future__ import annotations

import itertools
import zipfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medaug.errors import MedaugError
from medaug.experiment import ExperimentSpec
from medaug.sweep.study import Cell, Study

# Spec fields that decide which inputs a cell reads; a `choice`/`grid` search over one
# of them means every value may be sampled, so every value's inputs must be there.
INPUT_FIELDS = ("dataset", "size", "classifier", "pretrained", "data_options")
NPZ_KEYS = tuple(f"{split}_{kind}" for split in ("train", "val", "test") for kind in ("images", "labels"))


@dataclass
class InputReport:
    """Per cell index: what it lacks (one line each, empty when it can run), and which
    cells would run in this sweep (runnable ones, plus those --make-synthetic makes sets for)."""

    missing: dict[int, list[str]] = field(default_factory=dict)
    would_run: set[int] = field(default_factory=set)

    @property
    def blocked(self) -> list[int]:
        """Cells that would run but cannot: an input is missing."""
        return sorted(i for i in self.would_run if self.missing.get(i))

    def problems(self) -> dict[str, list[int]]:
        """Each distinct missing input -> the cells (that would run) lacking it, in first-seen order."""
        out: dict[str, list[int]] = {}
        for index in self.blocked:
            for line in self.missing[index]:
                out.setdefault(line, []).append(index)
        return out


def data_root_for(data_root: str | Path | None) -> Path:
    """The folder a run reads data from: --data-root, else $MEDAUG_DATA_ROOT / medmnist's root."""
    from medaug.data.medmnist import default_root

    if data_root is None:
        return default_root().resolve()
    root = Path(data_root).expanduser().resolve()
    if not root.is_dir():
        raise MedaugError(f"--data-root {root}: no such folder")
    return root


class _Lookups:
    """Each input checked once: data by (dataset, size, options), weights by classifier,
    an md5 by file."""

    def __init__(self, root: Path, verify_md5: bool) -> None:
        self.root = root
        self.verify_md5 = verify_md5
        self._cache: dict[tuple[Any, ...], str | None] = {}

    def once(self, key: tuple[Any, ...], check: Callable[[], str | None]) -> str | None:
        if key not in self._cache:
            try:
                self._cache[key] = check()
            except MedaugError as exc:
                self._cache[key] = str(exc)
            except OSError as exc:
                self._cache[key] = f"{exc.filename or key[-1]}: cannot read ({exc.strerror or exc})"
        return self._cache[key]

    # -- data ---------------------------------------------------------------------------

    def data(self, dataset: str, size: int, options: Mapping[str, Any] | None = None) -> str | None:
        from medaug.data.medmnist import DATASETS_2D

        if dataset in DATASETS_2D:
            return self.once(("medmnist", dataset, size), lambda: self._medmnist(dataset, size))
        if dataset.startswith("covid19-radiography"):
            crop = (options or {}).get("lung_crop", True) is not False
            return self.once(("covid", dataset, crop), lambda: self._covid(dataset, crop))
        if dataset == "folder":
            return self.once(("folder", repr(sorted((options or {}).items()))), lambda: self._folder(options))
        if dataset == "isic2019":
            return self.once(("isic",), self._isic)
        return None

    def _medmnist(self, dataset: str, size: int) -> str | None:
        from medaug.data import medmnist

        path = self.root / medmnist.file_name(dataset, size)
        if not path.is_file():
            return f"data file {path} not found"
        try:
            with zipfile.ZipFile(path) as archive:
                names = {Path(n).stem for n in archive.namelist()}
        except (zipfile.BadZipFile, OSError) as exc:
            return f"data file {path}: not a readable npz file ({exc})"
        absent = [k for k in NPZ_KEYS if k not in names]
        if absent:
            return f"data file {path}: missing arrays {absent}"
        if self.verify_md5:
            expected = medmnist.expected_md5(dataset, size)
            return self.once(("md5", str(path.resolve()), expected), lambda: self._md5(path, expected))
        return None

    @staticmethod
    def _md5(path: Path, expected: str) -> str | None:
        from medaug.data.medmnist import verify_md5

        verify_md5(path, expected)  # raises a one-line MedaugError on a mismatch
        return None

    def _covid(self, dataset: str, lung_crop: bool = True) -> str | None:
        from medaug.data.covid import CLASS_SUBSETS, DATASET_NAMES, dataset_dir

        subset = next(s for s, name in DATASET_NAMES.items() if name == dataset)
        try:
            folder = dataset_dir(self.root)
        except MedaugError:
            return (f"COVID-19 Radiography data: {self.root} holds no class folders (expected "
                    f"{self.root}/COVID-19_Radiography_Dataset/<class>/images/*.png or {self.root}/<class>/images)")
        absent = [cls for cls in CLASS_SUBSETS[subset] if not _has_png(folder / cls / "images")]
        if absent:
            folders = ", ".join(str(folder / c / "images") for c in absent)
            return f"COVID-19 Radiography data: no PNG images in {folders}"
        no_masks = [cls for cls in CLASS_SUBSETS[subset] if lung_crop and not _has_png(folder / cls / "masks")]
        if no_masks:
            folders = ", ".join(str(folder / c / "masks") for c in no_masks)
            return (f"COVID-19 Radiography data: no lung masks in {folders} (data option lung_crop=false "
                    "resizes whole images)")
        return None

    def _folder(self, options: Mapping[str, Any] | None) -> str | None:
        """The class-folder tree scanned and split as the run would, without decoding an image."""
        from medaug.data.folder_source import folder_problem
        from medaug.data.sources import data_source

        return folder_problem(data_source("folder").check_options(options), self.root)

    def _isic(self) -> str | None:
        from medaug.data.sources import ISIC_CSV, ISIC_IMAGES

        absent = [str(p) for p, ok in ((self.root / ISIC_CSV, (self.root / ISIC_CSV).is_file()),
                                       (self.root / ISIC_IMAGES, (self.root / ISIC_IMAGES).is_dir())) if not ok]
        return f"ISIC 2019 data: {', '.join(absent)} not found" if absent else None

    # -- weights ------------------------------------------------------------------------

    def weights(self, classifier: str) -> str | None:
        return self.once(("weights", classifier), lambda: _weights(classifier))


def _has_png(folder: Path) -> bool:
    if not folder.is_dir():
        return False
    return any(p.suffix.lower() == ".png" and not p.name.startswith(".") for p in folder.iterdir())


def _weights(classifier: str) -> str | None:
    from medaug.classifiers.transfer import WEIGHTS_DIR_ENV, resolve_weights

    if resolve_weights(classifier) is None:  # raises when the folder lacks the file
        return (f"ImageNet weights for {classifier} (pretrained: true): ${WEIGHTS_DIR_ENV} is not set; set it to "
                "the folder holding them (medaug never downloads)")
    return None


def _variants(study: Study, cell: Cell) -> Iterator[dict[str, Any]]:
    """The cell's spec once per value of each searched input field (choice/grid: any
    value may be sampled); a field sampled from a range keeps its default here."""
    terms = [(p.field, p.args) for p in study.search if p.field in INPUT_FIELDS and p.kind in ("choice", "grid")]
    for values in itertools.product(*(args for _, args in terms)):
        yield {**cell.spec, **dict(zip((name for name, _ in terms), values))}


def cell_inputs(study: Study, cell: Cell, lookups: _Lookups) -> list[str]:
    """What this cell reads and cannot find (data, weights, its synthetic set as requested)."""
    default = ExperimentSpec(dataset="x")
    missing: list[str] = []
    for spec in _variants(study, cell):
        problem = lookups.data(spec["dataset"], int(spec.get("size", default.size)), spec.get("data_options"))
        if problem:
            missing.append(problem)
        if spec.get("pretrained") is True:
            problem = lookups.weights(str(spec.get("classifier", default.classifier)))
            if problem:
                missing.append(problem)
    if cell.missing_synthetic() is None and cell.synthetic:
        mismatch = cell.synthetic_mismatch()
        if mismatch:
            missing.append(f"synthetic set {cell.synthetic} was not made as requested: {mismatch}")
        elif cell.request is None:  # a set named by its path: the run would refuse an unusable one
            problem = lookups.once(("synthetic", cell.synthetic), lambda: _set_problem(str(cell.synthetic)))
            if problem:
                missing.append(problem)
    return list(dict.fromkeys(missing))


def _set_problem(ref: str) -> str | None:
    """Why the synthetic set `ref` cannot be mixed in, from its metadata (no pixel read), or None."""
    from medaug.store.synthetic import open_set_header

    try:
        open_set_header(ref)
    except MedaugError as exc:
        return f"synthetic set {exc}"
    return None


def check_inputs(study: Study, *, data_root: str | Path | None = None, verify_md5: bool = True,
                 make_synthetic: bool = False, unmakeable: Mapping[int, str] | None = None) -> InputReport:
    """Every cell's missing inputs. Cells that would run: the runnable ones, and with
    `make_synthetic` the waiting ones (their fit reads the same data; one that cannot
    be made (`unmakeable`: cell index -> why, from the fit plan) is missing its set)."""
    lookups = _Lookups(data_root_for(data_root), verify_md5)
    report = InputReport()
    for cell in study.cells:
        missing = cell_inputs(study, cell, lookups)
        waits = cell.missing_synthetic()
        if waits is None:
            report.would_run.add(cell.index)
        elif make_synthetic:
            report.would_run.add(cell.index)
            why = (unmakeable or {}).get(cell.index)
            if why:
                missing.append(f"synthetic set {waits} cannot be made: {why}")
        report.missing[cell.index] = missing
    return report
