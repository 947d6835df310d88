"""Generator studies: a study whose trials are generator fits, each followed by `generator eval`.

```yaml
kind: generator                   # (a classifier study is `kind: classifier`, the default)
name: gens
results: results/gens             # rows: OUT/generator-eval/*.parquet, one per trial
base: {dataset: breastmnist, size: 28, epochs: 50}
grid:                             # data (dataset, size, data_options), generator, seed and any
  generator: [cvae, dcgan]        # config field of the generator (`medaug generator list`)
  seed: [0, 1, 2, 3, 4]           # the generator's own seed (its config `seed`)
  arch: {narrow: {width: 0.5}, full: {width: 1.0}}   # a named axis: label -> fields
search: {lr: {loguniform: [1.0e-5, 1.0e-3]}}        # over config fields
eval: {n: 2000, tstr: true}       # `generator eval` options (EvalOptions; recipe_set, steps, guidance too)
scheduler: {type: asha, metric: val_fd, grace_period: 5}
resources: {cpus: 2}
```

A trial (`GeneratorTrial`) fits `generator` on the cell's train split into
OUT/generators/<trial_id>/ (checkpoint every epoch, `losses_epochs.csv`), then evaluates
the checkpoint with `medaug.generators.evaluate.evaluate_generator` into one row of the
generator-eval schema (`medaug.store.generator_results`, with the study's columns:
study, trial_id, status, generator_config, fit_epochs, fit_resumed_from, fit_seconds,
fit_history). The trial id is a hash of everything the trial does (data, generator, full
config, eval options), so the same trial never runs twice by accident.

Per epoch the fit reports `val_fd` (every generator: the Fréchet distance between up to
256 val images and as many samples for their labels, in 4x4 average-pooled pixels; a
few milliseconds per epoch) and, for the VAEs, `val_loss`: an ASHA scheduler stops bad
fits early on either. A stopped (ASHA) or failed trial gets a row with its status and
history but no metrics; analysis reads finished rows only.

Executors, resume and requeue work as for classifier trials (medaug/sweep/driver.py):
on `local` a trial runs in a Ray worker; on `slurm` it is one submitit job (a
`Checkpointable`: a requeued job resumes the fit from its last checkpointed epoch). A
finished trial is replayed to Tune from its row, never refitted or re-evaluated; an
interrupted one resumes its fit from the checkpoint (a fit that had finished is not
trained again, only evaluated).
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import math
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import submitit

from medaug.errors import MedaugError
from medaug.sweep import schema
from medaug.sweep.schema import Doc, join
from medaug.sweep.study import (
    MAX_COUNT,
    MAX_TRIALS,
    NAME_PATTERN,
    SEARCH_KINDS,
    Axis,
    Resources,
    Scheduler,
    SearchParam,
    _label,
    _mode,
    _resources,
    trial_count,
)

KIND = "generator"
TOP_KEYS = ("kind", "name", "description", "results", "base", "grid", "search", "num_samples", "scheduler",
            "resources", "max_failures", "metric", "mode", "eval")
DATA_FIELDS = ("dataset", "size", "data_options")
GENERATOR_METRICS = ("val_fd", "val_loss")
FITS_DIR = "generators"
VAL_FD_N = 256
VAL_FD_SIDE = 4
#: `eval:` keys (EvalOptions fields, with `recipe_set` for recipe_overrides and steps/guidance for sampling).
EVAL_KEYS = ("n", "extractor", "inception_weights", "tstr", "tstr_n", "seed", "recipe", "recipe_set", "classifier",
             "classifier_epochs", "kid_subsets", "steps", "guidance")


# ----------------------------------------------------------------------------- the study

@dataclass(frozen=True)
class GeneratorCell:
    """One grid point: data, generator and the config fields set for it."""

    index: int
    labels: tuple[tuple[str, str], ...]
    fields: dict[str, Any]

    @property
    def label(self) -> str:
        return " ".join(f"{axis}={value}" for axis, value in self.labels) or "base"


@dataclass(frozen=True)
class GeneratorStudy:
    name: str
    source: str
    description: str
    base: dict[str, Any]
    axes: tuple[Axis, ...]
    search: tuple[SearchParam, ...]
    num_samples: int
    scheduler: Scheduler
    resources: Resources
    results: str
    max_failures: int
    metric: str
    mode: str
    eval_options: Mapping[str, Any] = field(default_factory=dict)
    cells: tuple[GeneratorCell, ...] = ()
    merged: tuple[tuple[int, str, int], ...] = ()
    kind: str = KIND

    @property
    def searched_fields(self) -> tuple[str, ...]:
        return tuple(p.field for p in self.search)

    @property
    def trials_per_cell(self) -> int:
        return self.num_samples * math.prod(p.grid_size for p in self.search)

    @property
    def max_epochs(self) -> int:
        return max((trial_of(c.fields, self.eval_options).epochs for c in self.cells), default=1)

    def trial(self, cell: GeneratorCell, sampled: Mapping[str, Any] | None = None) -> GeneratorTrial:
        return trial_of({**cell.fields, **dict(sampled or {})}, self.eval_options)


def eval_options(doc: Doc, value: Any, where: str = "eval") -> dict[str, Any]:
    """The `eval:` mapping, each key checked by building `EvalOptions` from it."""
    m = schema.mapping(doc, value, where, allowed=EVAL_KEYS)
    if "recipe_set" in m:
        schema.mapping(doc, m["recipe_set"], join(where, "recipe_set"))
    try:
        make_eval_options(m)
    except (MedaugError, TypeError) as exc:
        text = str(exc)
        flag = text.split(" ", 1)[0].lstrip("-").replace("-", "_")
        key = {"recipe_set": "recipe_set"}.get(flag, flag)
        raise doc.error(join(where, key) if key in m else where, text) from None
    return m


def make_eval_options(values: Mapping[str, Any], device: str | None = "auto", overwrite: bool = True):
    """`EvalOptions` from a study's `eval:` mapping (overwrite on by default: a trial redoes an eval it lost)."""
    from medaug.generators.evaluate import EvalOptions

    v = dict(values)
    sampling = {k: v.pop(k) for k in ("steps", "guidance") if k in v}
    overrides = v.pop("recipe_set", {}) or {}
    return EvalOptions(**v, recipe_overrides=dict(overrides), sampling=sampling, device=device, overwrite=overwrite)


def load_generator_study(doc: Doc) -> GeneratorStudy:
    """Validate and expand a `kind: generator` study (MedaugError names the YAML path)."""
    top = schema.mapping(doc, doc.data, "", allowed=TOP_KEYS, required=("name",))
    name = schema.string(doc, top["name"], "name", pattern=NAME_PATTERN,
                         what="a name of letters, digits, _ . - (1-100 of them, starting with a letter or digit)")
    description = schema.optional_string(doc, top.get("description"), "description", multiline=True) or ""
    results = schema.string(doc, top.get("results", f"results/{name}"), "results")
    ev = eval_options(doc, top.get("eval"))
    base = _fields(doc, top.get("base"), "base")
    axes = _axes(doc, top.get("grid"), "grid")
    search, num_samples = _search(doc, top.get("search"), top.get("num_samples", 1), base, axes)
    max_failures = schema.integer(doc, top.get("max_failures", 1), "max_failures", minimum=0, maximum=MAX_COUNT)
    metric = schema.string(doc, top.get("metric", "val_fd"), "metric")
    if metric not in GENERATOR_METRICS:
        raise doc.error("metric", f"expected one of: {', '.join(GENERATOR_METRICS)} (what a generator fit reports "
                                  "per epoch)")
    mode = _mode(doc, top.get("mode", "min"), "mode")
    scheduler = _scheduler(doc, top.get("scheduler"), metric, mode)
    resources = _resources(doc, top.get("resources"), "resources")
    study = GeneratorStudy(name=name, source=doc.source, description=description, base=base, axes=axes,
                           search=search, num_samples=num_samples, scheduler=scheduler, resources=resources,
                           results=results, max_failures=max_failures, metric=metric, mode=mode, eval_options=ev)
    _, n_trials = trial_count(axes, search, num_samples)
    if n_trials > MAX_TRIALS:
        raise doc.error("grid", f"{n_trials:,} trials; a study may have at most {MAX_TRIALS:,} (MAX_TRIALS): "
                                "split it into several studies")
    cells, merged = _expand(doc, study)
    study = dataclasses.replace(study, cells=cells, merged=merged)
    if "val_loss" in (metric, scheduler.metric):
        for cell in cells:
            if not _has_val_loss(cell.fields["generator"]):
                raise doc.error("scheduler.metric" if scheduler.metric == "val_loss" else "metric",
                                f"val_loss is reported by the VAEs only; cell {cell.index} ({cell.label}) fits "
                                f"{cell.fields['generator']}: use val_fd")
    if scheduler.kind == "asha" and scheduler.max_t is None and scheduler.grace_period > study.max_epochs:
        raise doc.error("scheduler.grace_period", f"expected at most the longest fit's epochs ({study.max_epochs}), "
                                                  f"got {scheduler.grace_period}")
    return study


def _has_val_loss(generator: str) -> bool:
    from medaug.generators import GENERATORS

    return GENERATORS.get(generator).kind == "vae"


def _config_fields() -> dict[str, type | None]:
    """Every config field of every registered generator -> its Python type (None: mixed)."""
    from medaug.generators import GENERATORS
    from medaug.generators.base import _field_type

    out: dict[str, type | None] = {}
    for gname in GENERATORS.names():
        for f in dataclasses.fields(GENERATORS.get(gname).config_class):
            kind = _field_type(f)
            out[f.name] = kind if out.get(f.name, kind) == kind else None
    return out


def _check_value(doc: Doc, name: str, value: Any, where: str) -> Any:
    """One field of a generator study: data, generator, or a config field of some generator."""
    if name == "dataset":
        from medaug.data.sources import data_source

        schema.string(doc, value, where)
        try:
            data_source(value)
        except MedaugError as exc:
            raise doc.error(where, str(exc)) from None
        return value
    if name == "size":
        return schema.integer(doc, value, where, minimum=1)
    if name == "data_options":
        return schema.mapping(doc, value, where)
    if name == "generator":
        from medaug.generators import GENERATORS

        schema.string(doc, value, where)
        if value not in GENERATORS:
            raise doc.error(where, f"unknown generator{schema.did_you_mean(value, GENERATORS.names())}; expected "
                                   f"one of: {', '.join(GENERATORS.names())}")
        return value
    kinds = _config_fields()
    if name not in kinds:
        known = [*DATA_FIELDS, "generator", *kinds]
        raise doc.error(where, f"unknown field{schema.did_you_mean(name, known)}; a generator study sets "
                               f"{', '.join(DATA_FIELDS)}, generator, or a generator config field "
                               f"({', '.join(kinds)})")
    kind = kinds[name]
    if kind is float:
        return schema.number(doc, value, where)
    if kind is int:
        return schema.integer(doc, value, where)
    if kind is bool:
        return schema.boolean(doc, value, where)
    if kind is str:
        return schema.string(doc, value, where)
    return value


def _fields(doc: Doc, value: Any, where: str) -> dict[str, Any]:
    return {k: _check_value(doc, k, v, join(where, k)) for k, v in schema.mapping(doc, value, where).items()}


def _axes(doc: Doc, value: Any, where: str) -> tuple[Axis, ...]:
    axes = []
    for name, values in schema.mapping(doc, value, where).items():
        w = join(where, name)
        if isinstance(values, Mapping):  # a named axis
            if not __import__("re").fullmatch(NAME_PATTERN, name):
                raise doc.error(w, "a named axis needs a name of letters, digits, _ . -")
            items = [(label, _fields(doc, fields, join(w, label)), join(w, label))
                     for label, fields in schema.mapping(doc, values, w).items()]
            if not items:
                raise doc.error(w, "expected at least one labelled value")
        else:
            items = [(_label(checked), {name: checked}, join(w, i)) for i, v in
                     enumerate(schema.sequence(doc, values, w)) for checked in [_check_value(doc, name, v, join(w, i))]]
        axes.append(Axis(name, w, tuple(items)))
    return tuple(axes)


def _search(doc: Doc, value: Any, num_samples: Any, base: Mapping[str, Any],
            axes: tuple[Axis, ...]) -> tuple[tuple[SearchParam, ...], int]:
    kinds = _config_fields()
    axis_fields = {k for axis in axes for _, fields, _ in axis.values for k in fields}
    params = []
    for name, raw in schema.mapping(doc, value, "search").items():
        w = join("search", name)
        if name not in kinds:
            raise doc.error(w, f"not a generator config field{schema.did_you_mean(name, kinds)}; a generator "
                               "study searches config fields (data and generator are grid axes)")
        if name in axis_fields or name in base:
            raise doc.error(w, f"{name!r} is also set in {'grid' if name in axis_fields else 'base'}; a field is "
                               "either fixed, a grid axis, or searched")
        m = schema.mapping(doc, raw, w, allowed=SEARCH_KINDS)
        if len(m) != 1:
            raise doc.error(w, f"expected exactly one of: {', '.join(SEARCH_KINDS)}")
        kind, args = next(iter(m.items()))
        wk = join(w, kind)
        values = schema.sequence(doc, args, wk)
        if kind in ("choice", "grid"):
            checked = tuple(_check_value(doc, name, v, join(wk, i)) for i, v in enumerate(values))
        else:
            if len(values) != 2:
                raise doc.error(wk, "expected [low, high]")
            want = int if kind == "randint" else float
            if kinds[name] is not want:
                raise doc.error(wk, f"{kind} gives {'integers' if want is int else 'real numbers'}; {name!r} is "
                                    f"not {'an integer' if want is int else 'a real-valued'} field")
            num = schema.integer if want is int else schema.number
            lo, hi = (num(doc, v, join(wk, i)) for i, v in enumerate(values))
            if kind == "loguniform" and lo <= 0:
                raise doc.error(join(wk, 0), "loguniform needs low > 0")
            if not lo < hi:
                raise doc.error(wk, f"expected low < high, got [{lo}, {hi}]")
            checked = (lo, hi)
        params.append(SearchParam(name, kind, checked))
    return tuple(params), schema.integer(doc, num_samples, "num_samples", minimum=1)


def _scheduler(doc: Doc, value: Any, metric: str, mode: str) -> Scheduler:
    where = "scheduler"
    if value is None:
        return Scheduler(metric=metric, mode=mode)
    if isinstance(value, str):
        value = {"type": value}
    m = schema.mapping(doc, value, where, allowed=("type", "metric", "mode", "grace_period", "max_t",
                                                   "reduction_factor"))
    kind = m.get("type", "fifo")
    if kind not in ("fifo", "asha"):
        raise doc.error(join(where, "type"), f"expected fifo or asha, got {kind!r}")
    s_metric = schema.string(doc, m.get("metric", metric), join(where, "metric"))
    if s_metric not in GENERATOR_METRICS:
        raise doc.error(join(where, "metric"), f"expected one of: {', '.join(GENERATOR_METRICS)}")
    s_mode = _mode(doc, m.get("mode", "min"), join(where, "mode"))
    grace = schema.integer(doc, m.get("grace_period", 1), join(where, "grace_period"), minimum=1, maximum=MAX_COUNT)
    max_t = m.get("max_t")
    if max_t is not None:
        max_t = schema.integer(doc, max_t, join(where, "max_t"), minimum=grace, maximum=MAX_COUNT)
    rf = schema.number(doc, m.get("reduction_factor", 2), join(where, "reduction_factor"), maximum=MAX_COUNT)
    if rf <= 1:
        raise doc.error(join(where, "reduction_factor"), "expected a number > 1")
    return Scheduler(kind=kind, metric=s_metric, mode=s_mode, grace_period=grace, max_t=max_t, reduction_factor=rf)


def _expand(doc: Doc, study: GeneratorStudy) -> tuple[tuple[GeneratorCell, ...], tuple[tuple[int, str, int], ...]]:
    cells: list[GeneratorCell] = []
    merged: list[tuple[int, str, int]] = []
    first: dict[str, int] = {}
    for index, combo in enumerate(itertools.product(*(axis.values for axis in study.axes))):
        data = dict(study.base)
        origin = {k: join("base", k) for k in data}
        labels = []
        for axis, (label, fields, item_where) in zip(study.axes, combo):
            data.update(fields)
            origin.update({k: item_where if k == axis.name else join(item_where, k) for k in fields})
            labels.append((axis.name, label))
        where = " / ".join(w for _, _, w in combo) or "base"
        for key in ("dataset", "generator"):
            if key not in data:
                raise doc.error("base", f"no {key}: set base.{key} or make {key} a grid axis")
        try:
            trial = trial_of(data, study.eval_options)
        except MedaugError as exc:
            bad = next((origin[k] for k in origin if f"'{k}'" in str(exc) or f"field {k!r}" in str(exc)), "")
            raise doc.error(bad, f"cell {index} ({where}): {exc}") from None
        cell = GeneratorCell(index=index, labels=tuple(labels), fields=data)
        if trial.trial_id in first:
            merged.append((index, cell.label, first[trial.trial_id]))
            continue
        first[trial.trial_id] = index
        cells.append(cell)
    return tuple(cells), tuple(merged)


# ----------------------------------------------------------------------------- one trial

@dataclass(frozen=True)
class GeneratorTrial:
    """One fit + evaluation, as plain data (travels to a Ray worker or a SLURM job as a dict)."""

    dataset: str
    size: int
    data_options: dict[str, Any]
    generator: str
    config: dict[str, Any]
    eval: dict[str, Any]

    @property
    def epochs(self) -> int:
        return int(self.config["epochs"])

    @property
    def trial_id(self) -> str:
        text = json.dumps({"dataset": self.dataset, "size": self.size, "data_options": self.data_options,
                           "generator": self.generator, "config": self.config, "eval": self.eval},
                          sort_keys=True, default=repr)
        return f"{self.generator}-{self.dataset}-{self.size}-{hashlib.sha256(text.encode()).hexdigest()[:12]}"

    def fit_dir(self, out: str | Path) -> Path:
        return Path(out) / FITS_DIR / self.trial_id

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def trial_of(fields: Mapping[str, Any], eval_values: Mapping[str, Any]) -> GeneratorTrial:
    """A trial from a cell's fields (plus sampled ones), every value checked (MedaugError)."""
    from medaug.generators import GENERATORS
    from medaug.generators.data import check_fit_size, checked_data_options

    data = dict(fields)
    dataset = data.pop("dataset")
    size = int(data.pop("size", 28))
    options = data.pop("data_options", None) or {}
    generator = data.pop("generator")
    cls = GENERATORS.get(generator)
    known = cls.config_class.field_names()
    stray = [k for k in data if k not in known]
    if stray:
        raise MedaugError(f"field {stray[0]!r} is not a {generator} setting{schema.did_you_mean(stray[0], known)}")
    config = cls.make_config(data).to_dict()
    check_fit_size(generator, dataset, size, flag="size")
    options = checked_data_options(dataset, options)
    return GeneratorTrial(dataset=dataset, size=size, data_options=options, generator=generator, config=config,
                          eval=dict(eval_values))


def trial_from_config(config: Mapping[str, Any], eval_values: Mapping[str, Any]) -> GeneratorTrial:
    """A trial from its Tune config: the cell's fields plus what Tune sampled."""
    return trial_of({**config["cell"]["fields"], **{k: v for k, v in config.items() if k != "cell"}}, eval_values)


@dataclass(frozen=True)
class TrialOptions:
    """What every trial of a sweep shares (paths absolute)."""

    out: str
    study: str
    eval: dict[str, Any]
    data_root: str | None = None
    device: str | None = None
    verify_md5: bool = True
    threads: int = 1

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def validation_fd(gen: Any, val: Any, n: int = VAL_FD_N, side: int = VAL_FD_SIDE, seed: int = 0) -> float:
    """`val_fd`: Fréchet distance between up to n val images and as many samples for their
    labels (reconstructions for a generator that only reconstructs), in side x side
    average-pooled pixels in [-1, 1]. The same images, labels and sampling seed every
    epoch, so epochs and trials compare on equal terms."""
    import numpy as np
    import torch
    import torch.nn.functional as F

    from medaug.generators.evaluate import generate
    from medaug.metrics.generative import frechet_distance_gaussians

    rng = np.random.default_rng(seed)
    idx = np.sort(rng.choice(len(val), min(n, len(val)), replace=False))
    labels = np.asarray(val.labels[idx]).reshape(len(idx), -1)[:, 0].astype(np.int64)
    fake, _ = generate(gen, labels, val.images[idx], seed)

    def features(images: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(images)).float().div_(127.5).sub_(1.0)
        return F.adaptive_avg_pool2d(x, side).flatten(1).double().numpy()

    real, gen_f = features(val.images[idx]), features(fake)
    return frechet_distance_gaussians(real.mean(0), np.atleast_2d(np.cov(real, rowvar=False)), gen_f.mean(0),
                                      np.atleast_2d(np.cov(gen_f, rowvar=False)))


class EpochReports:
    """The epoch hook of a trial's fit: adds `val_fd` to each epoch's row and passes the
    epoch to `report` once it is saved (at the next epoch's hook: an epoch reported is
    one a resumed fit never trains again). The last epoch is never reported on its own:
    it comes with the final report, after the evaluation wrote the row (ASHA would
    otherwise stop the trial at max_t, in the middle of its evaluation)."""

    def __init__(self, val: Any, trial_id: str, epochs: int,
                 report: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.val = val
        self.trial_id = trial_id
        self.epochs = epochs
        self.report = report
        self.pending: dict[str, Any] | None = None

    def __call__(self, gen: Any, summary: Mapping[str, Any]) -> dict[str, float]:
        self.flush()
        extra = {"val_fd": validation_fd(gen, self.val)}
        self.pending = {**{k: v for k, v in summary.items() if isinstance(v, (int, float))}, **extra}
        return extra

    def flush(self) -> None:
        if self.pending is not None and self.report is not None and int(self.pending["epoch"]) < self.epochs:
            self.report(epoch_report(self.pending, self.trial_id))
        self.pending = None


REPORT_KEYS = ("epoch", "val_fd", "val_loss", "seconds")


def epoch_report(record: Mapping[str, Any], trial_id: str) -> dict[str, Any]:
    out = {k: float(record[k]) if k != "epoch" else int(record[k]) for k in REPORT_KEYS
           if record.get(k) is not None and record.get(k) == record.get(k)}
    out["gen_trial"] = trial_id  # not `trial_id`: Tune adds its own
    return out


FINAL_KEYS = ("fid", "fid_floor", "kid_mean", "precision", "recall", "mean_confidence", "tstr_acc",
              "tstr_balanced_acc", "near_copy_share_pixel")


def final_report(row: Mapping[str, Any]) -> dict[str, Any]:
    """The last report of a finished trial: its last epoch's metric and the evaluation's numbers."""
    history = json.loads(row.get("fit_history") or "[]")
    out: dict[str, Any] = epoch_report(history[-1], row["trial_id"]) if history else {"gen_trial": row["trial_id"]}
    out["epoch"] = int(row.get("fit_epochs") or (history[-1]["epoch"] if history else 0))
    out.update({k: float(row[k]) for k in FINAL_KEYS if row.get(k) is not None and row[k] == row[k]})
    out["final"] = True
    return out


def replay_reports(row: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """A finished row's epochs, then its final report (a resumed study replays, never refits)."""
    final = final_report(row)
    for record in json.loads(row.get("fit_history") or "[]"):
        if int(record.get("epoch", 0)) < final["epoch"]:
            yield epoch_report(record, row["trial_id"])
    yield final


# -- rows -----------------------------------------------------------------------------

def outcome_path(out: str | Path, trial_id: str) -> Path:
    """Where a stopped or failed trial's row goes (removed when the trial later finishes)."""
    from medaug.store.generator_results import eval_path

    return eval_path(out, f"trial-{trial_id}")


def trial_rows(out: str | Path, trial_ids: Iterator[str] | list[str] | None = None) -> dict[str, dict[str, Any]]:
    """trial id -> its row (a finished one over a stopped/failed one) under OUT/generator-eval."""
    import pyarrow.parquet as pq

    from medaug.store.generator_results import GENERATOR_EVAL_DIR, SCHEMA

    wanted = set(trial_ids) if trial_ids is not None else None
    found: dict[str, dict[str, Any]] = {}
    folder = Path(out) / GENERATOR_EVAL_DIR
    for path in sorted(folder.glob("*.parquet")) if folder.is_dir() else []:
        try:
            head = pq.ParquetFile(path).read(columns=["trial_id", "status"]).to_pylist()
        except Exception:  # noqa: BLE001 - an older row without the columns, or not a row: not a trial's
            continue
        if not head or not head[0].get("trial_id") or (wanted is not None and head[0]["trial_id"] not in wanted):
            continue
        tid = head[0]["trial_id"]
        if tid in found and found[tid].get("status") == "finished":
            continue
        row = pq.read_table(path, schema=SCHEMA).to_pylist()[0]
        found[tid] = row
    return found


def finished_trial_row(out: str | Path, trial_id: str) -> dict[str, Any] | None:
    row = trial_rows(out, [trial_id]).get(trial_id)
    return row if row is not None and row.get("status") == "finished" else None


def read_history(fit_dir: Path) -> list[dict[str, Any]]:
    """The fit's epochs (losses_epochs.csv) as dicts of numbers."""
    from medaug.generators.training import EPOCHS_FILE, read_loss_csv

    return [r for r in read_loss_csv(fit_dir / EPOCHS_FILE) if "epoch" in r]


def write_outcome_row(opts: TrialOptions, trial: GeneratorTrial, status: str, *, error: str | None = None,
                      context: Mapping[str, Any] | None = None) -> Path:
    """The row of a trial that did not finish: its status, error and history, no metrics."""
    from medaug.store.generator_results import write_eval_row

    fit_dir = trial.fit_dir(opts.out)
    history = read_history(fit_dir)
    row = {"eval_id": outcome_path(opts.out, trial.trial_id).stem, "generator": trial.generator,
           "dataset": trial.dataset, "size": trial.size, "checkpoint": str(fit_dir / "checkpoint"),
           "created_at": datetime.now(UTC), "status": status, "error": error,
           **_trial_columns(opts, trial), "fit_epochs": history[-1]["epoch"] if history else 0,
           "fit_history": json.dumps(history), **dict(context or {})}
    return write_eval_row(row, opts.out)


def _trial_columns(opts: TrialOptions, trial: GeneratorTrial) -> dict[str, Any]:
    return {"study": opts.study, "trial_id": trial.trial_id,
            "generator_config": json.dumps(trial.config, sort_keys=True)}


def run_trial(trial: GeneratorTrial, opts: TrialOptions, *, report: Callable[[dict[str, Any]], None] | None = None,
              context: Mapping[str, Any] | None = None, device: str | None = None) -> dict[str, Any]:
    """Fit (or resume) the trial's generator, evaluate it, write its row; return the row."""
    from medaug.generators import GENERATORS
    from medaug.generators.base import CHECKPOINT_DIR, META_FILE, read_checkpoint_meta
    from medaug.generators.data import load_splits
    from medaug.generators.evaluate import evaluate_generator
    from medaug.generators.training import EpochGenerator

    fit_dir = trial.fit_dir(opts.out)
    fit_dir.mkdir(parents=True, exist_ok=True)
    splits = load_splits(trial.dataset, trial.size, opts.data_root, verify_md5=opts.verify_md5,
                         options=trial.data_options)
    cls = GENERATORS.get(trial.generator)
    dev = device or opts.device or "auto"
    gen = cls(splits.train.channels, splits.train.size, splits.train.num_classes, cls.make_config(trial.config),
              device=dev)
    ckpt = fit_dir / CHECKPOINT_DIR
    resume = (ckpt / META_FILE).is_file()
    resumed_from = int(read_checkpoint_meta(ckpt)["epoch"]) if resume else 0
    provenance: dict[str, Any] = {"version": splits.version, "md5": splits.md5}
    if trial.data_options:
        provenance["data_options"] = trial.data_options
    hook = EpochReports(splits.val, trial.trial_id, trial.epochs, report)
    kwargs = {"epoch_hook": hook} if isinstance(gen, EpochGenerator) else {}
    t0 = time.perf_counter()
    ckpt = gen.fit(splits.train, fit_dir, val=splits.val, resume=resume, quiet=True, provenance=provenance,
                   **kwargs)
    hook.flush()
    fit_seconds = time.perf_counter() - t0
    history = read_history(fit_dir)
    extra = {**_trial_columns(opts, trial), "status": "finished", "fit_epochs": int(gen.epoch),
             "fit_resumed_from": resumed_from, "fit_seconds": fit_seconds, "fit_history": json.dumps(history),
             **dict(context or {})}
    row = evaluate_generator(ckpt, opts.out, make_eval_options(trial.eval, device=dev), splits=splits,
                             verify_md5=opts.verify_md5, quiet=True, extra_columns=extra)
    outcome_path(opts.out, trial.trial_id).unlink(missing_ok=True)
    return row


# ----------------------------------------------------------------------------- local executor

def local_trainable(config: dict[str, Any], options: dict[str, Any]) -> None:
    """Ray Tune function trainable: one fit (epochs reported), its evaluation, a final report."""
    from ray import tune

    from medaug.sweep.trial import epoch_pause, set_threads

    opts = TrialOptions(**options)
    set_threads(opts.threads)
    trial = trial_from_config(config, opts.eval)
    done = finished_trial_row(opts.out, trial.trial_id)
    if done is not None:
        for report in replay_reports(done):
            tune.report(report)
        return
    context = {"executor": "local", "trial_id": trial.trial_id}
    row = run_trial(trial, opts, report=epoch_pause(tune.report), context=context)
    tune.report(final_report(row))


# ----------------------------------------------------------------------------- slurm executor

class SlurmGeneratorTrial(submitit.helpers.Checkpointable):
    """One trial as a requeue-safe SLURM job: requeued, it resumes the fit from its checkpoint."""

    def __init__(self, trial: dict[str, Any], options: dict[str, Any]) -> None:
        self.trial = trial
        self.options = options

    def __call__(self) -> dict[str, Any]:
        from medaug.sweep.trial import epoch_pause, set_threads

        opts = TrialOptions(**self.options)
        set_threads(opts.threads)
        trial = GeneratorTrial(**self.trial)
        done = finished_trial_row(opts.out, trial.trial_id)
        if done is None:
            pause = epoch_pause()
            context = {"executor": "slurm", "slurm_job_id": os.environ.get("SLURM_JOB_ID")}
            done = run_trial(trial, opts, report=pause, context=context)
        return {"trial_id": trial.trial_id, "status": done.get("status")}

    def checkpoint(self, *args: Any, **kwargs: Any) -> submitit.helpers.DelayedSubmission:
        return submitit.helpers.DelayedSubmission(SlurmGeneratorTrial(self.trial, self.options))


class SlurmLogic:
    """Submit or re-attach the trial's job, tail its losses_epochs.csv, finish or cancel."""

    def __init__(self, config: dict[str, Any], options: dict[str, Any], site: Any, resources: Resources,
                 poll_s: float, root: Path) -> None:
        from medaug.sweep.slurm import record_path

        self.opts = TrialOptions(**options)
        self.trial = trial_from_config(config, self.opts.eval)
        self.site, self.resources, self.poll_s, self.root = site, resources, poll_s, Path(root)
        self.record_file = record_path(self.opts.out, self.trial.trial_id)
        self.folder: Path | None = None
        self.job_id: str | None = None
        self.finished = False
        self.last_epoch = 0
        self.replay: list[dict[str, Any]] | None = None
        done = finished_trial_row(self.opts.out, self.trial.trial_id)
        if done is not None:
            self.replay = list(replay_reports(done))
            return
        self.job_id = self._attach() or self._submit()

    def _attach(self) -> str | None:
        from medaug.sweep.slurm import (
            JobRecord,
            is_active,
            job_status,
            trusted_record_folder,
            untrusted_record_error,
        )

        rec = JobRecord.read(self.record_file)
        if rec is None:
            return None
        state, name, _ = job_status(rec.job_id)
        if not (is_active(state) and (name is None or name == rec.job_name)):
            return None
        folder = trusted_record_folder(rec, self.root, self.opts.out, self.trial.trial_id)
        if folder is None:
            raise untrusted_record_error(self.record_file, rec, self.root, self.opts.out, self.trial.trial_id)
        self.folder = folder
        return rec.job_id

    def _submit(self) -> str:
        from medaug.sweep.slurm import (
            JobRecord,
            job_name,
            make_executor,
            new_job_folder,
        )

        folder = new_job_folder(self.root, self.opts.out, self.trial.trial_id)
        name = job_name(self.opts.study, self.trial.trial_id)
        binds = tuple(p for p in (self.opts.data_root, self.opts.out, str(self.root)) if p)
        executor = make_executor(folder, self.site, self.resources, name, binds)
        self.folder = folder
        job = executor.submit(SlurmGeneratorTrial(self.trial.to_dict(), self.opts.to_dict()))
        JobRecord(job_id=str(job.job_id), folder=str(folder), job_name=name, submitted_at=time.time(),
                  trial_id=self.trial.trial_id).write(self.record_file)
        return str(job.job_id)

    def next_report(self) -> dict[str, Any]:
        from medaug.sweep.slurm import is_active, job_status

        if self.replay is not None:
            report = self.replay.pop(0)
            if not self.replay:
                report["done"] = True
                self.finished = True
            return report
        assert self.job_id is not None
        fit_dir = self.trial.fit_dir(self.opts.out)
        while True:
            # an epoch is reported once its next one is written (it is saved by then), never the last
            epochs = [r for r in read_history(fit_dir) if r["epoch"] > self.last_epoch]
            if len(epochs) >= 2 and epochs[0]["epoch"] < self.trial.epochs:
                self.last_epoch = epochs[0]["epoch"]
                return {**epoch_report(epochs[0], self.trial.trial_id), "slurm_job_id": self.job_id}
            state, _, _ = job_status(self.job_id)
            if not is_active(state) and state != "UNKNOWN":
                return self._finish(state)
            time.sleep(self.poll_s)

    def _finish(self, state: str) -> dict[str, Any]:
        row = finished_trial_row(self.opts.out, self.trial.trial_id)
        if row is None:
            raise RuntimeError(f"SLURM job {self.job_id} ended {state} without a row: {self._job_error()}")
        self.finished = True
        report = final_report(row)
        report.update(done=True, slurm_job_id=self.job_id, slurm_state=state)
        return report

    def _job_error(self) -> str:
        if self.folder is None or self.job_id is None:
            return "no job folder"
        err = submitit.SlurmJob(folder=self.folder, job_id=self.job_id).stderr() or ""
        lines = [ln for ln in err.strip().splitlines() if ln.strip() and not ln.startswith("submitit ")]
        return " ".join(lines[-3:])[:2000] or "no error output"

    def cancel(self) -> None:
        from medaug.sweep.slurm import cancel_job

        if self.job_id is not None and not self.finished:
            cancel_job(self.job_id)


def make_slurm_trainable(site: Any, resources: Resources, options: dict[str, Any], poll_s: float, root: Path):
    from ray import tune

    class SlurmTrial(tune.Trainable):
        def setup(self, config: dict[str, Any]) -> None:
            self.logic = SlurmLogic(config, options, site, resources, poll_s, root)

        def step(self) -> dict[str, Any]:
            return self.logic.next_report()

        def save_checkpoint(self, checkpoint_dir: str) -> None:
            return None  # the fit's checkpoint and the job record are the state

        def load_checkpoint(self, checkpoint: Any) -> None:
            pass

        def cleanup(self) -> None:
            logic = getattr(self, "logic", None)
            if logic is not None:
                logic.cancel()

    return SlurmTrial


# ----------------------------------------------------------------------------- the driver

def run_generator_study(study: GeneratorStudy, executor: str = "local", out: str | Path | None = None, *,
                        site: Any = None, resume: bool = False, max_concurrent: int | None = None,
                        data_root: str | Path | None = None, device: str | None = None, verify_md5: bool = True,
                        ray_address: str | None = None, num_cpus: int | None = None, poll_s: float | None = None,
                        progress: bool = True, stream: IO[str] | None = None, calibration: str | Path | None = None):
    """Run (or resume) every trial of a generator study; returns a `driver.StudyOutcome`
    whose `rows` are the trials' generator-eval rows. OUT/estimate.json gets the study's
    estimate first (from `calibration`, else the site's; medaug/sweep/generator_estimate.py)."""
    from medaug.sweep import driver as d

    stream = stream or sys.stderr
    say = (lambda text: print(f"[{study.name}] {text}", file=stream, flush=True)) if progress else (lambda _t: None)
    if executor not in d.EXECUTORS:
        raise MedaugError(f"--executor {executor!r}: expected one of {d.EXECUTORS}")
    if executor == "slurm":
        from medaug.sweep.site import SiteProfile

        site = site or SiteProfile(name="default")
        if __import__("shutil").which("sbatch") is None:
            raise MedaugError("--executor slurm: sbatch not found on PATH (is this a SLURM login node?)")
    out_dir = Path(out if out is not None else study.results).expanduser().absolute()
    d.check_out_dir(out_dir, "--out" if out is not None else f"{study.source}: results:")
    out_dir = out_dir.resolve()
    if data_root is not None:
        data_root = Path(data_root).expanduser().resolve()
        if not data_root.is_dir():
            raise MedaugError(f"--data-root {data_root}: no such folder")
    root = None
    if executor == "slurm":
        from medaug.sweep.slurm import check_job_records, check_job_root

        root = check_job_root(site)
        check_job_records(out_dir, root, say)
    from medaug.sweep.estimate import record_estimate

    # OUT/estimate.json: what `medaug report` sets against each trial's fit_seconds and wall_seconds
    record_estimate(study, executor, out_dir, say, site=site, max_concurrent=max_concurrent, device=device,
                    calibration=calibration, data_root=data_root, verify_md5=verify_md5)
    total = len(study.cells) * study.trials_per_cell
    experiment_path = out_dir / "ray" / study.name
    t0 = time.perf_counter()
    started = d.ray_init(ray_address, num_cpus=num_cpus)
    try:
        import ray
        from ray import tune
        from ray.tune.search.basic_variant import BasicVariantGenerator

        from medaug.sweep.progress import ProgressDisplay

        if executor == "local":
            res = d.fit_resources(study.resources, ray.cluster_resources(), say)
            threads = res.torch_threads
        else:
            res = study.resources
            threads = res.threads or int(math.ceil(res.cpus or site.cpus_per_task or 1))
        opts = TrialOptions(out=str(out_dir), study=study.name, eval=dict(study.eval_options),
                            data_root=str(data_root) if data_root else None, device=device, verify_md5=verify_md5,
                            threads=threads)
        if executor == "local":
            trainable = tune.with_resources(tune.with_parameters(local_trainable, options=opts.to_dict()),
                                            {"cpu": res.cpus or 1.0, "gpu": res.gpus})
            concurrency = max_concurrent
        else:
            trainable = tune.with_resources(
                make_slurm_trainable(site, dataclasses.replace(res, nodes=1, tasks_per_node=1), opts.to_dict(),
                                     poll_s or site.poll_s, root), {"cpu": d.SLURM_TRIAL_CPU})
            concurrency = max_concurrent or min(total, d.DEFAULT_SLURM_CONCURRENCY)
        display = ProgressDisplay(study.name, total, study.metric, study.mode, stream) if progress else None
        watch = d.make_watch()
        run_config = tune.RunConfig(storage_path=str(out_dir / "ray"), name=study.name, verbose=0,
                                    failure_config=tune.FailureConfig(max_failures=study.max_failures),
                                    callbacks=[watch] + ([display] if display is not None else []))
        if resume:
            say(f"resuming the study from its rows in {out_dir}: finished trials are replayed, not refitted; "
                "interrupted fits continue from their checkpoints, running SLURM jobs are re-attached")
        d.clear_experiment(experiment_path, out_dir / "ray")
        out_dir.mkdir(parents=True, exist_ok=True)
        space: dict[str, Any] = {"cell": tune.grid_search([{"index": c.index, "label": c.label, "fields": c.fields}
                                                           for c in study.cells])}
        for p in study.search:
            space[p.field] = p.to_tune()
        tuner = tune.Tuner(trainable, param_space=space, run_config=run_config, tune_config=tune.TuneConfig(
            scheduler=study.scheduler.to_tune(study.max_epochs), num_samples=study.num_samples,
            search_alg=BasicVariantGenerator(max_concurrent=concurrency or 0, random_state=d.search_seed(study)),
            reuse_actors=executor == "local", trial_dirname_creator=d._trial_dirname))
        say(f"{total} generator trials on the {executor} executor -> {out_dir}")
        interrupted = False
        try:
            grid = tuner.fit()
        except KeyboardInterrupt:
            interrupted, grid = True, None
        except BaseException:
            if executor == "slurm":
                d._cancel_leftovers(out_dir, say)
            raise
        interrupted = interrupted or watch.interrupted or grid is None
        if executor == "slurm":
            d._cancel_leftovers(out_dir, say)
        counts, ids = _record_outcomes(grid, opts, executor, interrupted, watch.failures)
        rows = trial_rows(out_dir, ids)
        frame = None
        if rows:
            import pandas as pd

            frame = pd.DataFrame([rows[t] for t in ids if t in rows])
        outcome = d.StudyOutcome(study=study, executor=executor, out=out_dir, experiment_path=experiment_path,
                                 rows=frame, trials=len(ids), finished=counts[0], failed=counts[1],
                                 stopped=counts[2], wall_seconds=time.perf_counter() - t0, interrupted=interrupted)
        outcome.last_results = [dict(r.metrics or {}) for r in grid] if grid is not None else []
        if interrupted:
            say(f"interrupted: {counts[0]} finished, {counts[1]} failed; resume with --resume")
            raise KeyboardInterrupt
        say(f"{counts[0]} finished, {counts[1]} failed, {counts[2]} stopped in {outcome.wall_seconds:.1f} s; rows in "
            f"{out_dir / 'generator-eval'}")
        return outcome
    finally:
        if started:
            import ray

            ray.shutdown()


def _record_outcomes(grid: Any, opts: TrialOptions, executor: str, interrupted: bool,
                     failures: dict[str, int]) -> tuple[tuple[int, int, int], list[str]]:
    from medaug.sweep import driver as d

    finished = failed = stopped = 0
    ids: list[str] = []
    for result in grid or []:
        if not result.config or "cell" not in result.config:
            continue
        trial = trial_from_config(result.config, opts.eval)
        ids.append(trial.trial_id)
        if finished_trial_row(opts.out, trial.trial_id) is not None:
            finished += 1
            continue
        context = {"executor": executor, **{k: v for k, v in d._slurm_context(opts, trial.trial_id).items()
                                            if k == "slurm_job_id"}} if executor == "slurm" else {"executor": executor}
        if result.error is not None:
            tid = (result.metrics or {}).get("trial_id") or d._trial_id_from_path(result.path)
            n = failures.get(str(tid), 0)
            write_outcome_row(opts, trial, "failed", error=(f"failed after {n} attempts: " if n else "")
                              + d._error_text(result.error), context=context)
            failed += 1
        elif result.metrics and not interrupted:
            write_outcome_row(opts, trial, "stopped", context=context)
            stopped += 1
    return (finished, failed, stopped), list(dict.fromkeys(ids))


# ----------------------------------------------------------------------------- dry run, outcome

def print_dry_run(study: GeneratorStudy, executor: str, out: Path | None, stream: IO[str], *, site: Any = None,
                  data_root: str | Path | None = None, verify_md5: bool = True,
                  estimate: Mapping[str, Any] | None = None) -> None:
    """Every trial: its id, cell, fit folder and whether it is done; the eval options and scheduler;
    with `estimate` (estimate_run's max_concurrent, device, calibration) the cost per cell and in total."""
    out_dir = Path(out if out is not None else study.results).expanduser().resolve()
    w = stream.write
    per_cell = study.trials_per_cell
    done = trial_rows(out_dir) if (out_dir / "generator-eval").is_dir() else {}
    w(f"generator study {study.name} ({study.source}): {len(study.cells)} cells x {per_cell} trial(s) per cell = "
      f"{len(study.cells) * per_cell} generator fits, each followed by `generator eval`\n")
    if study.description:
        w(f"  {study.description}\n")
    w(f"fits -> {out_dir}/{FITS_DIR}/<trial_id>   rows -> {out_dir}/generator-eval   Ray experiment -> "
      f"{out_dir}/ray/{study.name}\n")
    sch = study.scheduler
    w("scheduler: " + ("fifo" if sch.kind == "fifo" else f"asha on {sch.metric} ({sch.mode}), grace "
      f"{sch.grace_period}, max_t {sch.max_t or study.max_epochs}, reduction {sch.reduction_factor:g}")
      + f"; executor {executor}; max_failures {study.max_failures}\n")
    w("eval: " + (", ".join(f"{k}={v}" for k, v in study.eval_options.items()) or "the defaults of generator eval")
      + "\n")
    if study.search:
        w(f"search ({study.num_samples} sample(s) per cell): " + "; ".join(p.describe() for p in study.search) + "\n")
    if study.merged:
        w(f"{len(study.merged)} duplicate cell(s) merged: " + "; ".join(
            f"cell {i} ({label}) = cell {kept}" for i, label, kept in study.merged) + "\n")
    w(f"\n{'#':>4}  {'trial_id' if not study.search else 'trial_id (before sampling)':<44}  cell\n")
    for cell in study.cells:
        trial = study.trial(cell)
        state = done.get(trial.trial_id, {}).get("status")
        note = f"   [{state}]" if state else ""
        w(f"{cell.index:>4}  {trial.trial_id:<44}  {cell.label} (epochs {trial.epochs}, seed "
          f"{trial.config['seed']}){note}\n")
    if estimate is not None:  # the cost before a run (medaug/sweep/generator_estimate.py)
        from medaug.sweep.estimate import describe, estimate_run

        est = estimate_run(study, executor, site=site, data_root=data_root, verify_md5=verify_md5, **estimate)
        w("\n" + "\n".join(describe(est)) + "\n")
    w("\ndry run: nothing was run\n")


def print_outcome(outcome: Any, stream: IO[str]) -> None:
    w = stream.write
    rows = outcome.rows
    if rows is not None and len(rows):
        w(f"{'trial_id':<44} {'status':<9} {'epochs':>6} {'FID':>9} {'conf':>6}\n")
        for _, r in rows.sort_values("trial_id").iterrows():
            def num(v: Any, fmt: str) -> str:
                return format(v, fmt) if isinstance(v, float) and not math.isnan(v) else "-"
            w(f"{r['trial_id']:<44} {r['status']:<9} {int(r['fit_epochs'] or 0):>6} {num(r['fid'], '9.3f'):>9} "
              f"{num(r['mean_confidence'], '6.3f'):>6}\n")
            if r.get("status") == "failed" and r.get("error"):
                w(f"    error: {r['error']}\n")
    w(f"{outcome.finished} finished, {outcome.failed} failed, {outcome.stopped} stopped\n")
    w(f"rows: {outcome.out / 'generator-eval'}\nRay experiment: {outcome.experiment_path}\n")
