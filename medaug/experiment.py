"""The experiment unit: one `ExperimentSpec` in, one `ResultRow` out.

Every layer above (the CLI, Ray Tune sweeps, SLURM jobs) schedules this and nothing
else; it knows nothing of Ray or SLURM. A spec is frozen, typed, validated on
construction, and hashes to a stable `run_id`, so the same spec always lands in the
same result file and a finished result is never silently recomputed or overwritten.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import numbers
import re
import socket
import stat
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import cache, lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from medaug.errors import MedaugError
from medaug.train.runfolder import RUNS_DIR, append_line, check_out_dir, claim_run

if TYPE_CHECKING:
    import torch

    from medaug.data.imageset import DatasetSplits, ImageSet
    from medaug.data.sources import LoadedData
    from medaug.metrics import ClassificationMetrics
    from medaug.train.loop import TrainConfig, TrainOutcome

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("none", "cosine", "multistep", "linear")
SELECT_METRICS = ("acc", "auc")
TTA_MODES = ("none", "flip", "shift", "flip-shift")

#: Allowed ranges of the numeric spec fields, (low, high) inclusive. They are far wider than
#: any study uses, and refuse values that cannot train: above them a run wastes days (epochs),
#: overflows float32 in the optimizer step (an lr of 1e300 raised "value cannot be converted to
#: type float without overflow") or trains a network into NaN and records a "finished" NaN row.
INT_RANGES: dict[str, tuple[int, int]] = {
    "size": (1, 4096),             # image side; each data source accepts only its own sizes
    "epochs": (1, 10_000),
    "batch_size": (1, 65_536),
    "seed": (0, 2**32 - 1),        # numpy's and most tools' seed range
    "freeze_epochs": (0, 10_000),  # and below epochs (checked with it)
    "min_steps": (0, 10_000_000),
}
#: (low, high, low is open, high is open): lr in (0, 10], momentum in [0, 1), weight decay in [0, 1].
FLOAT_RANGES: dict[str, tuple[float, float, bool, bool]] = {
    "lr": (0.0, 10.0, True, False),  # an lr of 0 trains nothing
    "momentum": (0.0, 1.0, False, True),
    "weight_decay": (0.0, 1.0, False, False),
    "label_smoothing": (0.0, 1.0, False, True),
    "ema": (0.0, 1.0, False, True),        # 0: no EMA of the weights
    "warmup": (0.0, 1.0, False, True),     # fraction of the optimiser steps
    "translate": (0.0, 0.5, False, False),  # fraction of the image side
}
MAX_MILESTONES = 100


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _within(value: float, low: float, high: float, low_open: bool, high_open: bool) -> bool:
    return (value > low if low_open else value >= low) and (value < high if high_open else value <= high)


def _interval(low: float, high: float, low_open: bool, high_open: bool) -> str:
    return f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"


@dataclass(frozen=True)
class ExperimentSpec:
    """Everything that defines one training run; defaults are seed 000's protocol.

    `synthetic` names a synthetic set as "STORE.zarr#GROUP" (None: real data only).
    `milestones` are fractions of `epochs` where a multistep schedule divides the
    learning rate by 10.

    `recipe` names the training preset the fields came from (medaug/train/recipes.py);
    `from_dict` expands it, and fields given explicitly win. The constructor takes every
    field as given, so build from a recipe with `from_dict`. Training fields beyond seed
    000's: `nesterov` (SGD only), `label_smoothing`, `ema` (per-step decay of an
    exponential moving average of the weights; the average is what is evaluated and
    tested; 0 = off), `warmup` (fraction of the optimiser steps with a linear ramp of
    the learning rate), the `linear` schedule (linear decay to 0 after the warm-up) and
    `min_steps` (train more epochs than `epochs` when that many give fewer optimiser
    steps: small training sets get enough updates), `translate` (a recipe's own random
    translation of every training image by up to that fraction of the image side, before
    the `augmentation` under study). `tta` averages the logits of
    flipped and/or 1-pixel-shifted views at evaluation (val and test). Each of these
    at its default leaves the canonical JSON, and so the run_id, as it was before the
    field existed.

    `freeze_epochs` (transfer classifiers only) trains just the
    new head for that many epochs before the whole network. `pretrained` (transfer
    classifiers only): true requires ImageNet weights (a run without them is refused
    before anything is written, never silently trained from scratch), false trains
    from random weights even when weights are configured, null uses them when present;
    the row's `classifier_weights` says which file a run started from.

    `data_options` are the data source's own options (medaug/data/sources.py), e.g.
    `{"test_per_class": 200}` for the COVID sets (seed 003's held-out 200 + 200): they
    are validated by the source, completed with its defaults, and enter the run_id, so
    runs on different test sets never share one. Sources without options (MedMNIST)
    keep an empty mapping, which leaves their canonical JSON and run_id unchanged.
    """

    dataset: str
    size: int = 28
    classifier: str = "cnn"
    augmentation: str = "none"
    wrs: bool = False
    synthetic: str | None = None
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
    data_options: dict[str, Any] = field(default_factory=dict, hash=False)
    pretrained: bool | None = None
    recipe: str = "seed000"
    nesterov: bool = False
    label_smoothing: float = 0.0
    ema: float = 0.0
    warmup: float = 0.0
    min_steps: int = 0
    translate: float = 0.0
    tta: str = "none"

    def __post_init__(self) -> None:
        def bad(name: str, expected: str) -> MedaugError:
            return MedaugError(f"spec field {name!r} = {getattr(self, name)!r}; expected {expected}")

        if not isinstance(self.dataset, str) or not self.dataset:
            raise bad("dataset", "a dataset name")
        for name in ("classifier", "augmentation"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise bad(name, "a registered name")
        if self.optimizer not in OPTIMIZERS:
            raise bad("optimizer", f"one of {OPTIMIZERS}")
        if self.schedule not in SCHEDULES:
            raise bad("schedule", f"one of {SCHEDULES}")
        if self.select_metric not in SELECT_METRICS:
            raise bad("select_metric", f"one of {SELECT_METRICS}")
        if self.tta not in TTA_MODES:
            raise bad("tta", f"one of {TTA_MODES}")
        from medaug.train.recipes import get_recipe

        get_recipe(self.recipe)
        for name, (low, high) in INT_RANGES.items():
            value = getattr(self, name)
            if not _is_int(value) or not low <= value <= high:
                raise bad(name, f"an integer in [{low}, {high}]")
            object.__setattr__(self, name, int(value))
        for name, bounds in FLOAT_RANGES.items():
            value = getattr(self, name)
            if not _is_number(value) or not math.isfinite(value) or not _within(value, *bounds):
                raise bad(name, f"a finite number in {_interval(*bounds)}")
            object.__setattr__(self, name, float(value))
        self._check_milestones(bad)
        if not 0 <= self.freeze_epochs < self.epochs:
            raise bad("freeze_epochs", "an integer in [0, epochs): epochs with a frozen backbone first")
        for name in ("wrs", "nesterov"):
            if not isinstance(getattr(self, name), bool):
                raise bad(name, "true or false")
        if self.nesterov and (self.optimizer != "sgd" or self.momentum == 0):
            raise bad("nesterov", f"false with optimizer {self.optimizer!r} and momentum {self.momentum:g} "
                                  "(Nesterov momentum needs SGD with momentum > 0)")
        if self.pretrained is not None and not isinstance(self.pretrained, bool):
            raise bad("pretrained", "true (ImageNet weights required), false (random initialisation) or null")
        if self.synthetic is not None:
            from medaug.store.synthetic import parse_ref

            if not isinstance(self.synthetic, str):
                raise bad("synthetic", "null or 'STORE.zarr#GROUP'")
            parse_ref(self.synthetic)  # malformed references are refused here, not at run time
        object.__setattr__(self, "data_options", _checked_data_options(self.dataset, self.data_options))

    def _check_milestones(self, bad: Callable[[str, str], MedaugError]) -> None:
        expected = f"at most {MAX_MILESTONES} increasing fractions of the epochs, each in (0, 1)"
        values = self.milestones
        if isinstance(values, (str, bytes, Mapping)) or not hasattr(values, "__iter__"):
            raise bad("milestones", expected)
        values = tuple(values)
        if len(values) > MAX_MILESTONES or not all(_is_number(m) and 0 < m < 1 for m in values):
            raise bad("milestones", expected)  # (0 < nan < 1 is false: NaN and infinities are refused)
        values = tuple(float(m) for m in values)
        if list(values) != sorted(values):
            raise bad("milestones", expected)
        object.__setattr__(self, "milestones", values)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["milestones"] = list(self.milestones)
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "spec") -> ExperimentSpec:
        """Build from plain data (YAML/JSON), refusing unknown keys by name; `recipe`
        (default seed000) fills the training fields `data` does not give."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise MedaugError(f"{where}: unknown field(s) {unknown}; expected some of {sorted(known)}")
        if "dataset" not in data:
            raise MedaugError(f"{where}: missing required field 'dataset'")
        from medaug.train.recipes import expand

        data = expand(dict(data))  # refuses an unknown recipe as "spec field 'recipe' = ...", like the fields
        if isinstance(data.get("milestones"), list):
            data["milestones"] = tuple(data["milestones"])  # __post_init__ refuses anything else by name
        try:
            return cls(**data)
        except TypeError as exc:
            raise MedaugError(f"{where}: {exc}") from None

    def canonical_json(self) -> str:
        d = self.to_dict()
        # fields at their "not used" value hash as they did before the field existed
        if not d["data_options"]:
            del d["data_options"]
        if d["pretrained"] is None:
            del d["pretrained"]
        for name, default in UNUSED_DEFAULTS.items():
            if d[name] == default:
                del d[name]
        if self.recipe != "seed000":  # a recipe's values change with its version: so does the run_id
            from medaug.train.recipes import get_recipe

            d["recipe_version"] = get_recipe(self.recipe).version
        return json.dumps(d, sort_keys=True, separators=(",", ":"))

    def identity_json(self) -> str:
        """What the run_id hashes: the canonical JSON with the synthetic set named by what it
        holds (`set:<set_id>`) instead of how the spec spelled its path.

        `/abs/s.zarr#g`, `syn/s.zarr#g` and `./syn//s.zarr#g` name one set and so one
        experiment; a relative path names different sets from different working folders.
        A set that does not exist (yet) or cannot be read is named by its normalised
        absolute path; the run refuses it before training, and a sweep waiting for it
        gets the set's id once it is made. Specs without a set hash as before.
        """
        if self.synthetic is None:
            return self.canonical_json()
        d = json.loads(self.canonical_json())
        d["synthetic"] = synthetic_identity(self.synthetic)
        return json.dumps(d, sort_keys=True, separators=(",", ":"))

    @property
    def run_id(self) -> str:
        """Stable id: dataset, main choices and a hash of the whole spec (`identity_json`)."""
        digest = hashlib.sha256(self.identity_json().encode()).hexdigest()[:10]
        parts = [self.dataset, str(self.size), self.classifier, self.augmentation, "wrs" if self.wrs else "nowrs",
                 f"s{self.seed}", digest]
        return "-".join(parts)

    def replace(self, **changes: Any) -> ExperimentSpec:
        return dataclasses.replace(self, **changes)

    def train_config(self) -> TrainConfig:
        from medaug.train.loop import TrainConfig

        names = {f.name for f in dataclasses.fields(TrainConfig)} - {"name"}
        return TrainConfig(name=self.run_id, **{n: getattr(self, n) for n in names})


SPEC_FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(ExperimentSpec))

#: Fields added after run_ids were first published. At their default ("not used") they stay
#: out of the canonical JSON, so older specs keep their run_ids.
LATER_FIELDS = ("recipe", "nesterov", "label_smoothing", "ema", "warmup", "min_steps", "translate", "tta")
UNUSED_DEFAULTS: dict[str, Any] = {f.name: f.default for f in dataclasses.fields(ExperimentSpec)
                                   if f.name in LATER_FIELDS}


def _checked_data_options(dataset: str, options: Any) -> dict[str, Any]:
    """The spec's data options validated by its data source, defaults filled in.

    An unknown dataset with no options is left to `check_names` (run time), like before.
    """
    from medaug.data.sources import SOURCES, data_source

    if options is None:
        options = {}
    if not isinstance(options, Mapping):
        raise MedaugError(f"spec field 'data_options' = {options!r}; expected a mapping of option -> value")
    if dataset not in SOURCES and not options:
        return {}
    return data_source(dataset).check_options(options, where="spec field data_options")


_SET_ID = re.compile(r"^[0-9a-f]{8,64}$")


def synthetic_identity(ref: str) -> str:
    """`set:<set_id>` of the complete synthetic set `ref` names, else `path:<absolute ref>`.

    Reads only the group's metadata (STORE/GROUP/zarr.json, plain JSON); the set itself is
    read, and re-hashed against its set_id, when a run mixes it in.
    """
    from medaug.store.synthetic import parse_ref

    store, group = parse_ref(ref)
    meta = (store / group / "zarr.json").absolute()
    try:
        st = meta.stat()
    except OSError:
        return f"path:{_normalised_ref(store, group)}"
    if not stat.S_ISREG(st.st_mode):  # a planted pipe would block this read forever; reading the set refuses it
        return f"path:{_normalised_ref(store, group)}"
    set_id = _recorded_set_id(str(meta), st.st_ino, st.st_size, st.st_mtime_ns)
    return f"set:{set_id}" if set_id else f"path:{_normalised_ref(store, group)}"


def _normalised_ref(store: Path, group: str) -> str:
    return f"{store.resolve()}#{group}"  # absolute, symlinks, '.', '..' and '//' resolved


@lru_cache(maxsize=4096)
def _recorded_set_id(meta: str, inode: int, size: int, mtime_ns: int) -> str | None:
    """The set_id in a complete group's metadata file (cached per file version), else None."""
    del inode, size, mtime_ns  # the cache key: a rewritten group is read again
    try:
        with open(meta, "rb") as f:
            attrs = json.loads(f.read(16 << 20)).get("attributes") or {}
    except (OSError, ValueError, AttributeError):
        return None
    set_id = attrs.get("set_id") if isinstance(attrs, dict) and attrs.get("complete") is True else None
    return set_id if isinstance(set_id, str) and _SET_ID.match(set_id) else None


def run_dir(out_dir: str | Path, spec: ExperimentSpec) -> Path:
    """Where a run keeps its spec, progress log and resumable training state."""
    return Path(out_dir) / RUNS_DIR / spec.run_id


@dataclass
class FitResult:
    """A trained classifier (best-validation weights, eval mode) and its test metrics."""

    model: torch.nn.Module
    outcome: TrainOutcome
    test: ClassificationMetrics

    @property
    def best_epoch(self) -> int:
        return self.outcome.best_epoch

    @property
    def val_acc(self) -> float:
        return self.outcome.best_val.acc


def check_names(spec: ExperimentSpec) -> None:
    """Refuse unknown dataset/classifier/augmentation names before any work is done."""
    from medaug.augment import AUGMENTATIONS
    from medaug.classifiers import CLASSIFIERS, check_size
    from medaug.classifiers.transfer import ARCHS
    from medaug.data.sources import data_source

    data_source(spec.dataset).check_size(spec.size)
    CLASSIFIERS.get(spec.classifier)
    AUGMENTATIONS.get(spec.augmentation)
    check_size(spec.classifier, spec.size)
    if spec.freeze_epochs and spec.classifier not in ARCHS:
        raise MedaugError(f"spec field 'freeze_epochs' = {spec.freeze_epochs}: only transfer classifiers "
                          f"({', '.join(ARCHS)}) have a backbone to freeze")
    if spec.pretrained is not None and spec.classifier not in ARCHS:
        raise MedaugError(f"spec field 'pretrained' = {str(spec.pretrained).lower()}: only transfer classifiers "
                          f"({', '.join(ARCHS)}) have ImageNet weights")
    if spec.pretrained:
        from medaug.classifiers.transfer import WEIGHTS_DIR_ENV, resolve_weights

        if resolve_weights(spec.classifier) is None:
            raise MedaugError(f"spec field 'pretrained' = true: no ImageNet weights for {spec.classifier}; "
                              f"set ${WEIGHTS_DIR_ENV} to the folder holding them (medaug never downloads)")


def fit_and_test(spec: ExperimentSpec, train: ImageSet, val: ImageSet, test: ImageSet, *,
                 device: str | torch.device | None = None, quiet: bool = True, state_path: Path | None = None,
                 on_epoch: Callable[[dict[str, float]], None] | None = None) -> FitResult:
    """Train spec's classifier on `train`, keep the best epoch on `val`, test that copy once.

    Any ImageSets will do (TSTR passes a synthetic-only train set); `run` wraps this
    with data loading and result writing.
    """
    import torch

    from medaug.classifiers import build_classifier
    from medaug.train.device import resolve_device
    from medaug.train.loop import evaluate_model, train_classifier

    dev = device if isinstance(device, torch.device) else resolve_device(device)
    torch.manual_seed(spec.seed)  # weight initialisation
    if spec.pretrained is None:
        model = build_classifier(spec.classifier, train.channels, train.num_classes, train.size)
    else:
        from medaug.classifiers.transfer import build_transfer

        model = build_transfer(spec.classifier, train.channels, train.num_classes, train.size,
                               pretrained=spec.pretrained)
    outcome = train_classifier(model, train, val, spec.train_config(), dev, state_path=state_path,
                               on_epoch=on_epoch, progress=not quiet)
    model.eval()
    test_metrics, _ = evaluate_model(model, test, dev, channels_last=dev.type == "cuda", tta=spec.tta)
    return FitResult(model=model, outcome=outcome, test=test_metrics)


def _recipe_version(name: str) -> int:
    from medaug.train.recipes import get_recipe

    return get_recipe(name).version


def _weights_label(path: str | None) -> str | None:
    """"<file name> sha256:<first 16 hex>" of the weights a classifier started from."""
    if path is None:
        return None
    from medaug.hashing import file_digest

    return f"{Path(path).name} sha256:{file_digest(path)[:16]}"


@cache
def git_commit() -> str | None:
    """The commit of the medaug source tree, when it is a git checkout."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True,
                             text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def load_data(spec: ExperimentSpec, data_root: str | Path | None = None, download: bool = False,
              verify_md5: bool = True) -> LoadedData:
    from medaug.data.sources import load_dataset

    return load_dataset(spec.dataset, spec.size, root=data_root, download=download, verify=verify_md5,
                        options=spec.data_options)


def check_splits(splits: DatasetSplits) -> None:
    """Refuse an empty split: an empty train split gave a "finished" row from a network that
    never trained, an empty val split a traceback; an empty test split tests nothing."""
    for name in ("train", "val", "test"):
        if len(splits.split(name)) == 0:
            raise MedaugError(f"{splits.source or splits.name}: the {name} split is empty (0 images); "
                              "a run needs images in train, val and test")


def run(spec: ExperimentSpec, out_dir: str | Path, *, data_root: str | Path | None = None,
        device: str | torch.device | None = None, quiet: bool = True, overwrite: bool = False,
        download: bool = False, verify_md5: bool = True, on_epoch: Callable[[dict[str, float]], None] | None = None,
        context: dict[str, Any] | None = None, save_classifier: str | Path | None = None) -> dict[str, Any]:
    """Run one experiment and write its result row to OUT/results/<run_id>.parquet.

    Refuses (MedaugError, nothing written) when a finished result for the same spec is
    already there, unless `overwrite`, and when any input is unusable: names, data (an
    empty split), the synthetic set, an output folder that cannot be written. All of that
    is checked before training. One spec trains in one process at a time: the run holds an
    exclusive lock on OUT/runs/<run_id>/lock while it trains (see `claim_run`). Training
    state is saved every epoch under OUT/runs/<run_id>/ and a rerun resumes from it;
    per-epoch metrics are appended to progress.jsonl there (what a sweep tails).
    `context` fills the where-it-ran columns. `save_classifier` also writes the tested weights
    with the spec and train split hash to that file (`medaug.generators.filters.save_classifier`,
    what `medaug synthesize --filter-classifier` loads).
    """
    import medmnist.info
    import torch

    from medaug import __version__
    from medaug.store.atomic import atomic_write_text
    from medaug.store.results import result_path, write_row
    from medaug.train.device import resolve_device

    out_dir = Path(out_dir)
    run_id = spec.run_id
    target = result_path(out_dir, run_id)
    check_out_dir(out_dir)
    if target.exists() and not overwrite:
        raise MedaugError(f"{target}: a finished result for this spec exists; pass --overwrite to replace it")
    check_names(spec)
    dev = device if isinstance(device, torch.device) else resolve_device(device)
    loaded = load_data(spec, data_root, download, verify_md5)
    splits = loaded.splits
    check_splits(splits)
    train, synthetic_info = splits.train, {}
    if spec.synthetic:
        from medaug.store.synthetic import mix_into_train

        train, synthetic_info = mix_into_train(splits.train, spec.synthetic)
        if synthetic_identity(spec.synthetic) != f"set:{synthetic_info['set_id']}" or spec.run_id != run_id:
            raise MedaugError(f"{spec.synthetic}: the set changed while this run started; run it again")

    rank = int(torch.distributed.get_rank()) if torch.distributed.is_initialized() else 0
    world = int(torch.distributed.get_world_size()) if torch.distributed.is_initialized() else 1
    folder = Path(out_dir) / RUNS_DIR / run_id
    progress_file = folder / "progress.jsonl"

    def log_epoch(record: dict[str, float]) -> None:  # rank 0 only
        if not (folder / "spec.json").exists():
            atomic_write_text(folder / "spec.json", json.dumps(spec.to_dict(), indent=2, sort_keys=True))
        # epoch 1 means training started over (no saved state): lines of an earlier attempt go
        append_line(progress_file, json.dumps(record), start_over=record["epoch"] == 1)
        if on_epoch is not None:
            on_epoch(record)

    with claim_run(folder, target, overwrite=overwrite, rank=rank):  # held until the row is written
        started = datetime.now(timezone.utc)
        t0 = time.perf_counter()
        fit = fit_and_test(spec, train, splits.val, splits.test, device=dev, quiet=quiet,
                           state_path=folder / "state.pt", on_epoch=log_epoch)
        test = fit.test
        row: dict[str, Any] = {
            "run_id": run_id,
            "status": "finished",
            **spec.to_dict(),
            "spec_json": spec.canonical_json(),
            "task": train.task,
            "class_names": list(train.class_names),
            "n_train": len(splits.train),
            "n_synthetic": len(train) - len(splits.train),
            "dataset_version": splits.version,
            "dataset_md5": splits.md5,
            "train_hash": splits.train.content_hash,
            "val_hash": splits.val.content_hash,
            "test_hash": splits.test.content_hash,
            "synthetic_id": synthetic_info.get("set_id"),
            "synthetic_provenance": json.dumps(synthetic_info.get("provenance"), sort_keys=True)
            if synthetic_info else None,
            "classifier_weights": _weights_label(getattr(fit.model, "weights", None)),
            "recipe_version": _recipe_version(spec.recipe),
            "epochs_trained": fit.outcome.epochs,
            "best_epoch": fit.best_epoch,
            "val_acc": fit.outcome.best_val.acc,
            "val_auc": fit.outcome.best_val.auc,
            **test.as_row("test_"),
            "history": fit.outcome.history,
            "wall_seconds": time.perf_counter() - t0,
            "train_images_per_s": fit.outcome.train_images_per_s,
            "device": str(next(fit.model.parameters()).device),
            "world_size": world,
            "medaug_version": __version__,
            "torch_version": torch.__version__,
            "medmnist_version": str(getattr(medmnist.info, "__version__", "")),
            "git_commit": git_commit(),
            "hostname": socket.gethostname(),
            "started_at": started,
            "finished_at": datetime.now(timezone.utc),
            "executor": "direct",
            **loaded.facts,
        }
        row.update(context or {})
        if rank == 0:
            if save_classifier is not None:  # before the row: a failed save leaves the run to be rerun
                from medaug.generators.filters import save_classifier as save

                save(save_classifier, getattr(fit.model, "module", fit.model), spec.canonical_json(),
                     splits.train.content_hash)
            write_row(row, out_dir)
            (folder / "state.pt").unlink(missing_ok=True)  # the row now holds everything the state was for
        return row
