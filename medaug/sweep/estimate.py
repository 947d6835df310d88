"""How long a study will take, from throughput measured on this site: `medaug sweep STUDY --dry-run`.

A trial's time is the images it processes divided by the rate this site's device was
measured to process them at (`medaug bench calibrate`, medaug/sweep/calibrate.py); no
speed is a constant in the code. Per classifier trial:

    train  (n_train + n_synthetic) x epochs          / train img/s  of (classifier, size, channels,
                                                                        batch, augmentation, ema, translate)
    eval   ((epochs + 1) x n_val + n_test) x views   / eval img/s   of (classifier, size, channels)
    saves  epochs x checkpoint seconds                (the state.pt written after every epoch)
    setup  trial seconds                              (data load and model build; when calibrated)

`epochs` is `TrainConfig.epochs_for(n)` (a recipe's `min_steps` included), `views` the
test-time-augmentation views, `n_synthetic` the set's size when it exists, else what its
strategy will make. A generator fit (--make-synthetic) is its training images (n_train x
epochs, or StyleGAN2's kimg) over the fit img/s of (generator, size, channels, config),
plus the images it samples over its sample img/s. A missing rate is named and nothing is
estimated for that trial: a guess would look like a measurement. A generator study's trial
(a fit and its `generator eval`) is estimated from the same rates in generator_estimate.py.

The study's wall time places the trials, longest first, on as many slots as run at once
(--max-concurrent, the local machine's cores / threads per trial, or the SLURM
concurrency), after the generator fits (which run before the trials) and the measured
start-up of the executor. ASHA may stop trials early and early stopping may end fits
early, so those parts are upper bounds.

The calibration file is plain JSON (`hpc/calibration/<site>-<device>.json` by default;
`$MEDAUG_CALIBRATION_DIR` or `--calibration FILE` elsewhere), read as untrusted input.
The driver writes the estimate of a run it starts to OUT/estimate.json, where `medaug
report` finds it and sets each trial's estimate against its measured `wall_seconds`
(the `train + eval + saves` part, which is what `wall_seconds` times).

This module imports no torch: the dry run and the report stay cheap.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from medaug.analysis.timing import ESTIMATE_FILE, ESTIMATE_FORMAT
from medaug.errors import MedaugError

CALIBRATION_FORMAT = 1
CALIBRATION_DIR_ENV = "MEDAUG_CALIBRATION_DIR"
CALIBRATION_DIR = Path(__file__).resolve().parents[2] / "hpc" / "calibration"
#: Generator config fields that change how long a fit runs, not how fast an image goes
#: through it: left out of a generator's calibration key.
SCHEDULE_FIELDS = ("epochs", "seed", "early_stopping_patience", "kimg", "tick_kimg", "checkpoint_kimg", "lr",
                   "beta1", "beta2")
TTA_VIEWS = {"none": 1, "flip": 2, "shift": 5, "flip-shift": 10}
_LABEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")


# ----------------------------------------------------------------------------- keys

def classifier_train_key(classifier: str, size: int, channels: int, batch_size: int, augmentation: str,
                         ema: bool, translate: bool) -> str:
    """What sets a classifier's training rate per image (the rest of a spec changes how many images)."""
    extras = "".join(f"/{name}" for name, on in (("ema", ema), ("translate", translate)) if on)
    return f"{classifier}/{size}px/{channels}ch/b{batch_size}/{augmentation}{extras}"


def classifier_eval_key(classifier: str, size: int, channels: int) -> str:
    return f"{classifier}/{size}px/{channels}ch"


def generator_key(generator: str, size: int, channels: int, config: Mapping[str, Any]) -> str:
    """A generator's rate depends on its nets (config fields other than the schedule's)."""
    nets = {k: v for k, v in sorted(config.items()) if k not in SCHEDULE_FIELDS}
    digest = hashlib.sha256(json.dumps(nets, sort_keys=True, default=str).encode()).hexdigest()[:8]
    return f"{generator}/{size}px/{channels}ch/b{config.get('batch_size')}/{digest}"


def spec_train_key(spec: Any, channels: int) -> str:
    return classifier_train_key(spec.classifier, spec.size, channels, spec.batch_size, spec.augmentation,
                                bool(spec.ema), bool(spec.translate))


# ----------------------------------------------------------------------------- calibration file

def device_label(kind: str, threads: int, name: str = "") -> str:
    """`cpu-2t` (a CPU process with 2 threads) or `cuda-<gpu name>`: part of the file name."""
    if kind == "cpu":
        return f"cpu-{threads}t"
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "gpu"
    return f"cuda-{slug}"


def calibration_dir() -> Path:
    env = os.environ.get(CALIBRATION_DIR_ENV)
    return Path(env).expanduser() if env else CALIBRATION_DIR


def calibration_path(site: str, device: str, folder: Path | None = None) -> Path:
    for what, text in (("site", site), ("device", device)):
        if not _LABEL.fullmatch(text):
            raise MedaugError(f"calibration {what} {text!r}: expected letters, digits, _ . - (a file name part)")
    return (folder or calibration_dir()) / f"{site}-{device}.json"


@dataclass
class Calibration:
    """Rates measured on one site and device (images per second; seconds for fixed costs).

    `concurrent`: how many measuring processes ran at once (a study running that many
    trials at once sees these rates); `conditions`: the load average and CPU count then."""

    site: str
    device: str
    threads: int = 1
    concurrent: int = 1
    device_name: str = ""
    measured_at: str = ""
    conditions: dict[str, Any] = field(default_factory=dict)
    classifiers: dict[str, dict[str, Any]] = field(default_factory=dict)   # train key -> {train_images_per_s, ...}
    evaluation: dict[str, dict[str, Any]] = field(default_factory=dict)    # eval key -> {eval_images_per_s, ...}
    generators: dict[str, dict[str, Any]] = field(default_factory=dict)    # generator key -> {fit_images_per_s, ...}
    trial_setup_s: float | None = None
    executor_start_s: float | None = None
    source: str = ""

    def to_json(self) -> str:
        d = asdict(self)
        d.pop("source")
        return json.dumps({"format": CALIBRATION_FORMAT, **d}, indent=2, sort_keys=True) + "\n"

    def merged(self, newer: Calibration) -> Calibration:
        """This calibration with `newer`'s measurements added (same keys replaced)."""
        return Calibration(
            site=newer.site, device=newer.device, threads=newer.threads, concurrent=newer.concurrent,
            device_name=newer.device_name or self.device_name, measured_at=newer.measured_at,
            conditions=newer.conditions, classifiers={**self.classifiers, **newer.classifiers},
            evaluation={**self.evaluation, **newer.evaluation}, generators={**self.generators, **newer.generators},
            trial_setup_s=newer.trial_setup_s if newer.trial_setup_s is not None else self.trial_setup_s,
            executor_start_s=newer.executor_start_s if newer.executor_start_s is not None else self.executor_start_s,
            source=self.source)

    def rate(self, table: str, key: str, name: str) -> float | None:
        entry = getattr(self, table).get(key)
        return None if entry is None else entry.get(name)


def _positive(path: str, where: str, value: Any, allow_zero: bool = False) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and (
        value >= 0 if allow_zero else value > 0)
    if not ok:
        raise MedaugError(f"{path}: {where}: expected a finite number {'>= 0' if allow_zero else '> 0'}, "
                          f"got {value!r}")
    return float(value)


def _entries(path: str, data: Mapping[str, Any], table: str, rates: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    raw = data.get(table, {})
    if not isinstance(raw, dict):
        raise MedaugError(f"{path}: {table}: expected a mapping of key -> measurement")
    out = {}
    for key, entry in raw.items():
        if not isinstance(entry, dict):
            raise MedaugError(f"{path}: {table}.{key}: expected a mapping")
        for name in rates:
            if name in entry:
                _positive(path, f"{table}.{key}.{name}", entry[name], allow_zero=name == "checkpoint_s")
        out[str(key)] = dict(entry)
    return out


def load_calibration(path: str | Path) -> Calibration:
    """Read and check a calibration file (untrusted JSON: every rate a finite number > 0)."""
    p = Path(path)
    try:
        data = json.loads(p.read_text())
    except FileNotFoundError:
        raise MedaugError(f"{p}: no such calibration file") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise MedaugError(f"{p}: not a readable calibration file ({type(exc).__name__})") from None
    if not isinstance(data, dict) or data.get("format") != CALIBRATION_FORMAT:
        found = data.get("format") if isinstance(data, dict) else type(data).__name__
        raise MedaugError(f"{p}: not a medaug calibration of format {CALIBRATION_FORMAT} (format {found!r})")
    src = str(p)
    for key in ("site", "device"):
        if not isinstance(data.get(key), str):
            raise MedaugError(f"{p}: {key}: expected a string")
    fixed = {}
    for key in ("trial_setup_s", "executor_start_s"):
        fixed[key] = None if data.get(key) is None else _positive(src, key, data[key], allow_zero=True)
    return Calibration(
        site=data["site"], device=data["device"],
        threads=int(_positive(src, "threads", data.get("threads", 1))),
        concurrent=int(_positive(src, "concurrent", data.get("concurrent", 1))),
        device_name=str(data.get("device_name", "")), measured_at=str(data.get("measured_at", "")),
        conditions=data.get("conditions") if isinstance(data.get("conditions"), dict) else {},
        classifiers=_entries(src, data, "classifiers", ("train_images_per_s", "checkpoint_s")),
        evaluation=_entries(src, data, "evaluation", ("eval_images_per_s",)),
        generators=_entries(src, data, "generators", ("fit_images_per_s", "sample_images_per_s")),
        source=src, **fixed)


def save_calibration(cal: Calibration, path: str | Path) -> Path:
    """Add `cal`'s measurements to the file at `path` (created when missing), written whole."""
    from medaug.store.atomic import atomic_write_text

    p = Path(path)
    if p.exists():
        old = load_calibration(p)
        if (old.site, old.device) != (cal.site, cal.device):
            raise MedaugError(f"{p}: holds site {old.site} device {old.device}, not {cal.site} {cal.device}")
        cal = old.merged(cal)
    p.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(p, cal.to_json())
    return p


def find_calibration(site: str, device_kind: str, threads: int, folder: Path | None = None
                     ) -> tuple[Path | None, str]:
    """The calibration file of `site` for a trial on `device_kind` (cpu with `threads`, or cuda),
    or (None, why there is none)."""
    folder = folder or calibration_dir()
    if device_kind == "cpu":
        path = calibration_path(site, device_label("cpu", threads), folder)
        if path.is_file():
            return path, ""
        return None, (f"no calibration of site {site!r} for a CPU trial with {threads} thread(s) ({path} does not "
                      "exist)")
    found = sorted(folder.glob(f"{site}-cuda-*.json")) if folder.is_dir() else []
    if len(found) == 1:
        return found[0], ""
    if found:
        return None, (f"several GPU calibrations of site {site!r} ({', '.join(p.name for p in found)}): choose one "
                      "with --calibration FILE")
    return None, f"no GPU calibration of site {site!r} in {folder}"


# ----------------------------------------------------------------------------- data facts

@dataclass(frozen=True)
class DataFacts:
    """What the estimate needs of a data set: split sizes and channels."""

    n_train: int
    n_val: int
    n_test: int
    channels: int


def data_facts(dataset: str, size: int, options: Mapping[str, Any] | None = None,
               data_root: str | Path | None = None, verify_md5: bool = True) -> DataFacts:
    """Split sizes and channels: MedMNIST's from its INFO (no file read), others' from their files."""
    from medaug.data.medmnist import DATASETS_2D, dataset_info

    if dataset in DATASETS_2D:
        info = dataset_info(dataset)
        n = info["n_samples"]
        return DataFacts(int(n["train"]), int(n["val"]), int(n["test"]), int(info["n_channels"]))
    from medaug.data.sources import load_dataset

    splits = load_dataset(dataset, size, root=data_root, verify=verify_md5, options=options).splits
    return DataFacts(len(splits.train), len(splits.val), len(splits.test), splits.train.channels)


def synthetic_count(cell: Any, n_train: int) -> int:
    """Images a cell's synthetic set adds: the set's own count when it exists, else what its
    request's strategy will make (totals need no class counts)."""
    ref = cell.spec.get("synthetic")
    if not ref:
        return 0
    if cell.missing_synthetic() is None:
        from medaug.store.synthetic import open_set_header

        return int(open_set_header(str(ref)).n)
    req = cell.request
    if req is None:
        raise MedaugError(f"{ref}: the set does not exist and is not a request: its size is unknown")
    if req.strategy == "inverse-scarcity":
        from medaug.generators.strategies import scaled_total

        return scaled_total(n_train, req.fraction_for(cell.spec["dataset"]))
    if req.strategy == "per-class":
        return int(req.count) * len(req.classes)
    if req.strategy == "ratio":
        return int(req.synthetic_per_real) * n_train
    return n_train  # interleave-reconstructions: one reconstruction per real image


# ----------------------------------------------------------------------------- the estimate

@dataclass
class TrialEstimate:
    """One classifier trial (or generator fit): its images and seconds, or why there are none."""

    kind: str                     # "trial" or "fit"
    label: str
    run_id: str = ""
    cell: int | None = None
    count: int = 1                # trials of the cell (search samples)
    key: str = ""
    train_images: int = 0
    eval_images: int = 0
    sample_images: int = 0
    compute_s: float | None = None   # what a row's wall_seconds times (train + eval + saves)
    setup_s: float = 0.0
    missing: str = ""
    notes: list[str] = field(default_factory=list)
    parts: dict[str, float] = field(default_factory=dict)   # a generator trial's fit_s and eval_s

    @property
    def seconds(self) -> float | None:
        return None if self.compute_s is None else self.compute_s + self.setup_s


@dataclass
class StudyEstimate:
    study: str
    calibration: str
    site: str
    device: str
    concurrency: int
    gpus_per_trial: float
    cpus_per_trial: float
    items: list[TrialEstimate] = field(default_factory=list)
    executor_start_s: float = 0.0
    missing: str = ""               # why nothing was estimated (no calibration)
    notes: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return not self.missing and all(i.seconds is not None for i in self.items)

    @property
    def trial_seconds(self) -> float:
        return sum(i.seconds * i.count for i in self.items if i.seconds is not None)

    def device_hours(self) -> tuple[float, float]:
        """(CPU-hours, GPU-hours) of everything estimated: seconds x what each trial holds."""
        hours = self.trial_seconds / 3600
        return hours * self.cpus_per_trial, hours * self.gpus_per_trial

    def wall_seconds(self) -> float:
        """Fits first (they precede the trials), then the trials (a generator study's too), each
        phase longest first on the slots."""
        fits = [i.seconds for i in self.items if i.kind == "fit" and i.seconds is not None for _ in range(i.count)]
        trials = [i.seconds for i in self.items if i.kind != "fit" and i.seconds is not None
                  for _ in range(i.count)]
        return self.executor_start_s + pack(fits, self.concurrency) + pack(trials, self.concurrency)

    def to_dict(self) -> dict[str, Any]:
        cpu_h, gpu_h = self.device_hours()
        return {"format": ESTIMATE_FORMAT, "study": self.study, "calibration": self.calibration, "site": self.site,
                "device": self.device, "concurrency": self.concurrency, "missing": self.missing,
                "notes": self.notes, "complete": self.complete, "wall_seconds": self.wall_seconds(),
                "trial_seconds": self.trial_seconds, "cpu_hours": cpu_h, "gpu_hours": gpu_h,
                "executor_start_s": self.executor_start_s, "made_at": datetime.now(timezone.utc).isoformat(),
                "items": [asdict(i) for i in self.items]}


def pack(durations: list[float], slots: int) -> float:
    """Wall time of jobs placed longest first on `slots` parallel slots (each on the least loaded)."""
    loads = [0.0] * max(1, slots)
    for d in sorted(durations, reverse=True):
        i = loads.index(min(loads))
        loads[i] += d
    return max(loads)


def classifier_trial(spec: Any, facts: DataFacts, n_synthetic: int, cal: Calibration, tasks: int = 1,
                     saves: bool = True) -> TrialEstimate:
    """The images of one classifier trial and their seconds at the calibrated rates (`saves`:
    with the per-epoch state save a sweep trial writes; a generator evaluation's classifiers save none)."""
    n = facts.n_train + n_synthetic
    epochs = spec.train_config().epochs_for(n)
    views = TTA_VIEWS.get(spec.tta, 1)
    est = TrialEstimate(kind="trial", label="", run_id=spec.run_id, train_images=n * epochs,
                        eval_images=((epochs + 1) * facts.n_val + facts.n_test) * views,
                        key=spec_train_key(spec, facts.channels))
    if n_synthetic:
        est.notes.append(f"{n_synthetic} synthetic images")
    train = cal.rate("classifiers", est.key, "train_images_per_s")
    ekey = classifier_eval_key(spec.classifier, spec.size, facts.channels)
    evaluate = cal.rate("evaluation", ekey, "eval_images_per_s")
    lacking = [k for k, r in ((est.key, train), (f"eval {ekey}", evaluate)) if r is None]
    if lacking:
        est.missing = "not calibrated: " + ", ".join(lacking)
        return est
    save_s = (cal.rate("classifiers", est.key, "checkpoint_s") or 0.0) if saves else 0.0
    est.compute_s = est.train_images / train / tasks + est.eval_images / evaluate + epochs * save_s
    est.setup_s = cal.trial_setup_s or 0.0
    if tasks > 1:
        est.notes.append(f"training split over {tasks} tasks")
    return est


def fit_images(config: Mapping[str, Any], n_train: int) -> int:
    """Images a generator fit trains on: StyleGAN2's kimg, else epochs x the train split."""
    kimg = float(config.get("kimg") or 0)
    return int(round(kimg * 1000)) if kimg > 0 else int(config["epochs"]) * n_train


def generator_fit(job: Any, facts: DataFacts, cal: Calibration) -> TrialEstimate:
    """A --make-synthetic fit: its training images and the images it samples, at the calibrated rates."""
    from medaug.generators import GENERATORS

    config = GENERATORS.get(job.generator).make_config(job.config).to_dict()
    images = fit_images(config, facts.n_train)
    key = generator_key(job.generator, job.size, facts.channels, config)
    samples = 0
    for s in job.sets:
        if s.strategy.get("name") == "interleave-reconstructions":
            samples += facts.n_train
        else:
            from medaug.generators.strategies import Strategy, scaled_total

            st = Strategy(name=s.strategy["name"], fraction=s.strategy.get("fraction"),
                          classes=tuple(s.strategy.get("classes") or ()), count=s.strategy.get("count"),
                          synthetic_per_real=s.strategy.get("synthetic_per_real"))
            samples += (scaled_total(facts.n_train, st.fraction) if st.name == "inverse-scarcity" else
                        st.count * len(st.classes) if st.name == "per-class" else st.synthetic_per_real * facts.n_train)
    est = TrialEstimate(kind="fit", label=f"fit {job.generator} on {job.dataset} {job.size} px", key=key,
                        train_images=images, sample_images=samples)
    fit = cal.rate("generators", key, "fit_images_per_s")
    sample = cal.rate("generators", key, "sample_images_per_s")
    if fit is None or (samples and sample is None):
        est.missing = f"not calibrated: generator {key}"
        return est
    est.compute_s = images / fit + (samples / sample if samples else 0.0)
    if config.get("early_stopping_patience"):
        est.notes.append("early stopping may end it sooner")
    return est


def start_estimate(study: Any, cal: Calibration | None, *, concurrency: int, cpus_per_trial: float,
                   gpus_per_trial: float, missing: str = "") -> StudyEstimate:
    """A study's estimate with no items yet: the calibration, the executor's start-up and the
    notes every study gets (concurrency unlike the calibration's, ASHA, a search)."""
    est = StudyEstimate(study=study.name, calibration=cal.source if cal else "", site=cal.site if cal else "",
                        device=cal.device if cal else "", concurrency=max(1, concurrency),
                        gpus_per_trial=gpus_per_trial, cpus_per_trial=cpus_per_trial, missing=missing)
    if cal is None:
        return est
    est.executor_start_s = cal.executor_start_s or 0.0
    if cal.concurrent != est.concurrency:
        est.notes.append(f"rates were measured with {cal.concurrent} process(es) at once; this study runs "
                         f"{est.concurrency} at once")
    if study.scheduler.kind == "asha":
        est.notes.append("ASHA stops some trials early: the trial times are upper bounds")
    if study.search:
        est.notes.append("searched fields at their defaults (a search over epochs, batch or classifier changes it)")
    return est


def cached_facts(facts: Callable[[str, int, Mapping[str, Any]], DataFacts] | None = None
                 ) -> Callable[[str, int, Mapping[str, Any]], DataFacts | MedaugError]:
    """`facts` (default `data_facts`) asked once per data set; a MedaugError is returned, not raised."""
    cache: dict[tuple[str, int, str], DataFacts | MedaugError] = {}
    get = facts or (lambda d, s, o: data_facts(d, s, o))

    def facts_of(dataset: str, size: int, options: Mapping[str, Any]) -> DataFacts | MedaugError:
        key = (dataset, size, json.dumps(dict(options or {}), sort_keys=True))
        if key not in cache:
            try:
                cache[key] = get(dataset, size, options or {})
            except MedaugError as exc:
                cache[key] = exc
        return cache[key]

    return facts_of


def estimate_study(study: Any, cal: Calibration | None, *, concurrency: int, cpus_per_trial: float,
                   gpus_per_trial: float, fits: list[Any] | None = None, missing: str = "",
                   facts: Callable[[str, int, Mapping[str, Any]], DataFacts] | None = None,
                   cells: list[Any] | None = None) -> StudyEstimate:
    """The estimate of every runnable cell (and of the fits --make-synthetic would run first).

    `cal` None: nothing is estimated and `missing` says why. `facts(dataset, size, options)`
    gives split sizes (default: `data_facts`, cached per data set here)."""
    est = start_estimate(study, cal, concurrency=concurrency, cpus_per_trial=cpus_per_trial,
                         gpus_per_trial=gpus_per_trial, missing=missing)
    if cal is None:
        return est
    facts_of = cached_facts(facts)
    for job in fits or []:
        f = facts_of(job.dataset, job.size, job.data_options)
        if isinstance(f, MedaugError):
            est.items.append(TrialEstimate(kind="fit", label=f"fit {job.generator} on {job.dataset}",
                                           missing=f"split sizes unknown: {f}"))
            continue
        est.items.append(generator_fit(job, f, cal))
    for cell in cells if cells is not None else study.runnable_cells():
        spec = study.spec_for(cell.spec)
        f = facts_of(spec.dataset, spec.size, spec.data_options)
        if isinstance(f, MedaugError):
            item = TrialEstimate(kind="trial", label=cell.label, run_id=spec.run_id, missing=f"split sizes unknown: {f}")
        else:
            try:
                n_syn = synthetic_count(cell, f.n_train)
            except MedaugError as exc:
                item = TrialEstimate(kind="trial", label=cell.label, run_id=spec.run_id, missing=str(exc))
            else:
                item = classifier_trial(spec, f, n_syn, cal, tasks=study.resources.tasks)
        item.label, item.cell, item.count = cell.label, cell.index, study.trials_per_cell
        est.items.append(item)
    return est


# ----------------------------------------------------------------------------- text

def duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def describe(est: StudyEstimate) -> list[str]:
    """The dry run's estimate section: per cell, then the totals (or why there are none)."""
    if est.missing:
        return [f"estimate: none ({est.missing}); measure this site with `medaug bench calibrate`"]
    lines = [f"estimate from {est.calibration} (site {est.site}, device {est.device}); "
             f"{est.concurrency} at once:"]
    lines.append(f"  {'#':>4}  {'kind':<5} {'train img':>11} {'eval img':>10} {'per trial':>10} {'x':>3}  what")
    for i in est.items:
        secs = duration(i.seconds) if i.seconds is not None else "-"
        what = i.label + (f"   [{i.missing}]" if i.missing else "") + (f"   ({'; '.join(i.notes)})" if i.notes else "")
        cell = f"{i.cell:>4}" if i.cell is not None else f"{'':>4}"
        lines.append(f"  {cell}  {i.kind:<5} {i.train_images:>11,} {i.eval_images + i.sample_images:>10,} "
                     f"{secs:>10} {i.count:>3}  {what}")
    missing = [i for i in est.items if i.seconds is None]
    cpu_h, gpu_h = est.device_hours()
    total = (f"  total: {duration(est.trial_seconds)} of trial time, {cpu_h:.2f} CPU-hours, {gpu_h:.2f} GPU-hours; "
             f"wall about {duration(est.wall_seconds())} with {est.concurrency} at once"
             + (f" (incl. {duration(est.executor_start_s)} executor start)" if est.executor_start_s else ""))
    if missing:
        total += f"; {len(missing)} item(s) not estimated (above), so the totals leave them out"
    lines.append(total)
    lines += [f"  note: {n}" for n in est.notes]
    return lines


# ----------------------------------------------------------------------------- OUT/estimate.json

def write_estimate(out_dir: str | Path, est: StudyEstimate) -> Path:
    from medaug.store.atomic import atomic_write_text

    path = Path(out_dir) / ESTIMATE_FILE
    atomic_write_text(path, json.dumps(est.to_dict(), indent=1, sort_keys=True) + "\n")
    return path


# ----------------------------------------------------------------------------- for a sweep

@dataclass(frozen=True)
class RunShape:
    """Where a sweep's trials would run: the calibration to look up and how many run at once."""

    site: str
    device_kind: str   # cpu or cuda
    threads: int
    concurrency: int
    cpus_per_trial: float
    gpus_per_trial: float


def run_shape(study: Any, executor: str, site: Any = None, max_concurrent: int | None = None,
              device: str | None = None, cores: int | None = None) -> RunShape:
    """What the driver would do (driver.fit_resources, the SLURM concurrency), without starting it."""
    res = study.resources
    cells = study.runnable_cells() if hasattr(study, "runnable_cells") else study.cells  # a generator study: all
    trials = max(1, len(cells) * study.trials_per_cell)
    if executor == "slurm":
        from medaug.sweep.driver import DEFAULT_SLURM_CONCURRENCY

        cpus = float(math.ceil(res.cpus or getattr(site, "cpus_per_task", None) or 1))
        threads = res.threads or int(cpus)
        concurrency = max_concurrent or min(trials, DEFAULT_SLURM_CONCURRENCY)
        kind = "cuda" if res.gpus > 0 and device != "cpu" else "cpu"
        return RunShape(getattr(site, "name", None) or "default", kind, threads, concurrency, cpus * res.tasks,
                        math.ceil(res.gpus) * res.tasks)
    cores = cores or os.cpu_count() or 1
    cpus = min(res.cpus or 1.0, float(cores))
    threads = res.threads or max(1, int(math.floor(cpus)))
    gpus = res.gpus if (device in (None, "auto") or str(device).startswith("cuda")) else 0.0
    if gpus and device in (None, "auto"):
        from medaug.train.device import resolve_device

        gpus = gpus if resolve_device("auto").type == "cuda" else 0.0
    concurrency = max(1, int(cores // cpus)) if cpus > 0 else 1
    if max_concurrent:
        concurrency = min(concurrency, max_concurrent)
    return RunShape("local", "cuda" if gpus else "cpu", threads, min(concurrency, trials), cpus, gpus)


def estimate_run(study: Any, executor: str, *, site: Any = None, max_concurrent: int | None = None,
                 device: str | None = None, calibration: str | Path | None = None, fits: list[Any] | None = None,
                 cells: list[Any] | None = None,
                 data_root: str | Path | None = None, verify_md5: bool = True) -> StudyEstimate:
    """The estimate of `medaug sweep STUDY` with these options: from `calibration` (a file), else
    the site's calibration for the trial's device; without one, an estimate that says so."""
    shape = run_shape(study, executor, site, max_concurrent, device)
    cal, why = None, ""
    if calibration is not None:
        cal = load_calibration(calibration)
    else:
        path, why = find_calibration(shape.site, shape.device_kind, shape.threads)
        if path is not None:
            cal = load_calibration(path)
    if cal is not None and cal.threads != shape.threads and cal.device.startswith("cpu"):
        why = (f"{cal.source} was measured with {cal.threads} thread(s) per process; this study's trials use "
               f"{shape.threads}")
        cal = None
    if getattr(study, "kind", "classifier") == "generator":  # fits + evaluations: generator_estimate.py
        from medaug.sweep.generator_estimate import estimate_generator_study

        return estimate_generator_study(study, cal, concurrency=shape.concurrency,
                                        cpus_per_trial=shape.cpus_per_trial, gpus_per_trial=shape.gpus_per_trial,
                                        missing=why, facts=lambda d, s, o: data_facts(d, s, o, data_root, verify_md5))
    return estimate_study(study, cal, concurrency=shape.concurrency, cpus_per_trial=shape.cpus_per_trial,
                          gpus_per_trial=shape.gpus_per_trial, fits=fits, missing=why, cells=cells,
                          facts=lambda d, s, o: data_facts(d, s, o, data_root, verify_md5))


def record_estimate(study: Any, executor: str, out_dir: Path, say: Callable[[str], None], **options: Any) -> None:
    """The driver's start: write OUT/estimate.json and say the estimated wall time in one line.
    Never stops a run: any failure is said and the run goes on."""
    try:
        if options.pop("with_fits", False) and study.waiting_cells():
            from medaug.sweep.synthetic_stage import plan_fits

            plan = plan_fits(study, out_dir, data_root=options.get("data_root"),
                             verify_md5=options.get("verify_md5", True))
            unmakeable = {cell.index for cell, _ in plan.unmakeable}
            options.update(fits=plan.fits, cells=[*study.runnable_cells(), *(
                c for c in study.waiting_cells() if c.index not in unmakeable)])
        est = estimate_run(study, executor, **options)
        out_dir.mkdir(parents=True, exist_ok=True)
        path = write_estimate(out_dir, est)
    except Exception as exc:
        say(f"estimate: none ({type(exc).__name__}: {exc})")
        return
    if est.missing:
        say(f"estimate: none ({est.missing})")
    else:
        say(f"estimate: about {duration(est.wall_seconds())} wall, {duration(est.trial_seconds)} of trial time "
            f"({path})")
