"""A study: a YAML file that expands to many `ExperimentSpec`s (the grid) and, optionally,
a Ray Tune search space and scheduler over them.

```yaml
name: quickstart                 # [A-Za-z0-9_.-]+, names the Ray experiment
description: ...
results: results/quickstart      # default results/<name>, relative to the working directory
base: {dataset: breastmnist, epochs: 20}    # fixed ExperimentSpec fields
grid:                            # axes, outermost first; every ExperimentSpec field may be one
  wrs: [false, true]
  augmentation: [none, sharpness-contrast-flip]
  method:                        # a *named* axis: label -> several fields at once
    none: {}
    cvae: {synthetic: {generator: cvae, strategy: inverse-scarcity, fraction: 0.1}}
  seed: [0, 1, 2]
search:                          # Ray Tune terms: choice, grid, uniform, loguniform, randint
  lr: {loguniform: [1.0e-4, 1.0e-1]}
num_samples: 1                   # samples of the search space per grid cell
scheduler: {type: asha, metric: val_acc, mode: max, grace_period: 1, max_t: 20}
resources: {cpus: 1, gpus: 0.25, nodes: 1, tasks_per_node: 1, time: "01:00:00", mem: 4G}
max_failures: 1                  # retries of a trial that raises, then a `failed` row
synthetic:                       # where generator cells find their synthetic sets
  root: synthetic
  pattern: "{root}/{dataset}_{size}/{generator}.zarr#{strategy}-{amount}"
  strategy: inverse-scarcity     # defaults for the `generator: [null, cvae, cgan]` grid shorthand
  fraction: 0.1
  seed: 0                        # sampling seed of the sets --make-synthetic writes
generators:                      # settings of the fits --make-synthetic runs: name -> config fields
  cvae: {epochs: 200, batch_size: 64, early_stopping_patience: 10}
  cgan: {epochs: 100, seed: 0}   # `seed` (default 0): the generator's own seed
```

A request names a strategy of `medaug.generators.strategies` and its parameters; the
`{amount}` placeholder of the pattern spells them (`{fraction}` is the same text, kept
for older patterns):

| request                                                   | `{amount}`    | seed |
| --------------------------------------------------------- | ------------- | ---- |
| `{generator: cvae, strategy: inverse-scarcity, fraction: 0.1}` | `0.1`    | 000  |
| `{generator: jvae, strategy: interleave-reconstructions}` | `all`         | 000  |
| `{generator: stylegan2ada, strategy: per-class, classes: [COVID], count: 2000}` | `COVID-2000` | 003 |
| `{generator: cgan, strategy: ratio, synthetic_per_real: 2}` | `x2`        | 002  |

so the default pattern gives `.../stylegan2ada.zarr#per-class-COVID-2000`, the set that
`medaug synthesize --strategy per-class --classes COVID --count 2000 --out
.../stylegan2ada.zarr --group per-class-COVID-2000` writes (`--dry-run` prints that
command for every set a cell waits for). Several classes join with `+`; characters a
group name cannot hold become `_` ("Viral Pneumonia" -> `Viral_Pneumonia`).

A `synthetic:` value may be null, an explicit "STORE.zarr#GROUP", or such a request,
which the cell's dataset and size resolve to a store path through `synthetic.pattern`
(`fraction` may be a number or a mapping dataset -> number: seed 000 adds 4-10 % per
data set; `classes` must be classes of the cell's data set). `generator: [cvae, cgan]`
in the grid is shorthand for requests with the `synthetic:` defaults (null there
means "no synthetic set"). A cell whose synthetic set does not exist yet still
validates and lists in `--dry-run`; a run skips it and says which set it waits for.

`medaug sweep --make-synthetic` makes those sets first (medaug/sweep/synthetic_stage.py):
one generator fit per (dataset, size, data_options, generator) on exactly the train
split the trials use, with the settings of `generators.<name>` (keys are the fields of
that generator's config, `medaug generator list`; unknown names, keys or bad values
are refused at their YAML path), checkpointed in OUT/generators/ and resumed when
rerun; each fit writes every set (strategy) the study asks of it, sampled with
`synthetic.seed`. A set that exists is never remade; a failed fit is reported and
its cells keep waiting. `--dry-run --make-synthetic` lists the fits.

`eval:` sets how --make-synthetic evaluates each generator it fits (`medaug generator eval`
options: n, extractor, tstr, recipe, recipe_set, classifier, classifier_epochs, ...; one
row per fit in OUT/generator-eval/, so the study's report draws fidelity against utility);
`eval: false` skips it. `kind: generator` makes a generator study instead, whose trials
are generator fits (medaug/sweep/generator_study.py).

`data_options` (a spec field) passes a data source's own options, e.g. the COVID
sets' `{test_per_class: 200}`; they are checked against each cell's dataset.

Everything is validated on load; an unknown key or bad value is refused with its YAML
path (`sweeps/x.yaml: grid.wrs[1]: expected true or false`). A key written twice in one
mapping, and a number that is not finite (`.inf`, `.nan`, `1e400`) anywhere in the
file, are refused too (medaug/sweep/schema.py).

Size: the number of trials (grid cells x trials per cell) is counted from the axis
lengths before any cell is built, and a study of more than `MAX_TRIALS` trials is
refused: split it into several studies.

One spec, one trial: cells that come out as the same experiment (same run_id) are
merged into the first of them; repeated `choice`/`grid` values of a search are merged;
`num_samples` beyond what a search can give distinct specs (a search of `grid` terms
only, or `choice`/`randint` terms with fewer combinations than samples) runs each
combination once instead of sampling repeats. `--dry-run` lists every merge.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medaug.errors import MedaugError
from medaug.experiment import SPEC_FIELDS, ExperimentSpec
from medaug.sweep import schema
from medaug.sweep.schema import Doc, join

TOP_KEYS = ("name", "description", "results", "base", "grid", "search", "num_samples", "scheduler", "resources",
            "max_failures", "metric", "mode", "synthetic", "generators", "kind", "eval")
#: `kind: generator` makes a generator study (trials are fits + `generator eval`: medaug/sweep/generator_study.py).
STUDY_KINDS = ("classifier", "generator")
SEARCH_KINDS = ("choice", "grid", "uniform", "loguniform", "randint")
REPORTED_METRICS = ("val_acc", "val_auc", "val_loss", "train_loss", "train_acc")
SCHEDULERS = ("fifo", "asha")
DEFAULT_PATTERN = "{root}/{dataset}_{size}/{generator}.zarr#{strategy}-{amount}"
PATTERN_KEYS = ("root", "dataset", "size", "generator", "strategy", "amount", "fraction")
#: A study name and a named axis' label: they become folder names (OUT/ray/<name>) and part of
#: SLURM job names, so they start with a letter or digit (never "." or "..": OUT/ray/.. is OUT
#: itself, which the sweep clears) and stay short enough for a file name and a job name.
NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}"
# Strategies a study can request by name (medaug.generators.strategies) and the keys each needs.
REQUEST_STRATEGIES: dict[str, tuple[str, ...]] = {
    "inverse-scarcity": ("fraction",),
    "interleave-reconstructions": (),
    "per-class": ("classes", "count"),
    "ratio": ("synthetic_per_real",),
}
REQUEST_PARAMS = ("fraction", "classes", "count", "synthetic_per_real")
#: The most trials (grid cells x trials per cell) one study may have; counted before
#: anything is expanded, so a 10^7-cell grid is refused at once instead of filling memory.
MAX_TRIALS = 100_000
#: Counts that end up in a C int (SLURM nodes/tasks, torch threads, Ray's CPU count).
MAX_COUNT = 2**31 - 1

# ExperimentSpec annotation -> (python check, what the user reads). Fields of a kind not
# listed here are checked by ExperimentSpec itself only.
_FIELD_KINDS: dict[str, str] = {f.name: str(f.type) for f in dataclasses.fields(ExperimentSpec)}


# ----------------------------------------------------------------------------- parts

@dataclass(frozen=True)
class SyntheticRequest:
    """"The synthetic set generator G made for the cell's data set": resolved per cell.

    The parameters mirror `medaug.generators.strategies.Strategy`: `fraction`
    (inverse-scarcity; a number or dataset -> number), `classes` + `count` (per-class),
    `synthetic_per_real` (ratio), none (interleave-reconstructions). `filter` (a
    `medaug.generators.filters.FilterSpec` or None) keeps only samples that pass it; its
    tag ends the resolved group name (`...#inverse-scarcity-0.1-conf0.9`).
    """

    generator: str
    strategy: str = "inverse-scarcity"
    fraction: float | dict[str, float] | None = None
    where: str = ""
    classes: tuple[str, ...] = ()
    count: int | None = None
    synthetic_per_real: int | None = None
    filter: Any = None

    def fraction_for(self, dataset: str) -> float | None:
        if isinstance(self.fraction, dict):
            return self.fraction.get(dataset)
        return self.fraction

    def amount(self, dataset: str) -> str:
        """The parameters as the `{amount}` of a store pattern (see the module doc)."""
        if self.strategy == "per-class":
            return f"{'+'.join(_group_safe(c) for c in self.classes)}-{self.count}"
        if self.strategy == "ratio":
            return f"x{self.synthetic_per_real}"
        fraction = self.fraction_for(dataset)
        return "all" if fraction is None else f"{fraction:g}"

    def resolve(self, dataset: str, size: int, root: str, pattern: str) -> str:
        amount = self.amount(dataset)
        ref = pattern.format(root=root, dataset=dataset, size=size, generator=self.generator,
                             strategy=self.strategy, amount=amount, fraction=amount)
        return f"{ref}-{self.filter.tag()}" if self.filter is not None else ref  # never an unfiltered set's group

    def strategy_params(self, dataset: str) -> dict[str, Any]:
        """What `Strategy.params()` records in a set's provenance for this request."""
        if self.strategy == "inverse-scarcity":
            return {"fraction": self.fraction_for(dataset)}
        if self.strategy == "per-class":
            return {"classes": list(self.classes), "count": self.count}
        if self.strategy == "ratio":
            return {"synthetic_per_real": self.synthetic_per_real}
        return {}

    def make_strategy(self, dataset: str) -> Any:
        """The `medaug.generators.strategies.Strategy` that makes this request's set for `dataset`."""
        from medaug.generators.strategies import Strategy

        return Strategy(name=self.strategy, fraction=self.fraction_for(dataset) if self.strategy == "inverse-scarcity"
                        else None, classes=self.classes, count=self.count, synthetic_per_real=self.synthetic_per_real)

    def synthesize_command(self, ref: str, dataset: str, seed: int = 0) -> str:
        """The `medaug synthesize` line that writes the set this request resolved to `ref`."""
        import shlex

        store, _, group = ref.partition("#")
        params = {"inverse-scarcity": f"--fraction {self.fraction_for(dataset):g}"
                  if self.fraction_for(dataset) is not None else "",
                  "per-class": " ".join(f"--classes {shlex.quote(c)}" for c in self.classes)
                  + f" --count {self.count}",
                  "ratio": f"--synthetic-per-real {self.synthetic_per_real}"}.get(self.strategy, "")
        return " ".join(part for part in (
            "medaug synthesize --checkpoint CHECKPOINT_DIR",
            f"--strategy {self.strategy}", params, self.filter.cli_options() if self.filter is not None else "",
            f"--seed {seed}", f"--out {shlex.quote(store)}",
            f"--group {shlex.quote(group)}") if part)


def _group_safe(text: str) -> str:
    """A class name as group-name text: characters outside [A-Za-z0-9_.+-] become `_`."""
    return re.sub(r"[^A-Za-z0-9_.+-]", "_", text)


@dataclass(frozen=True)
class SearchParam:
    """One Ray Tune search dimension over an ExperimentSpec field."""

    field: str
    kind: str
    args: tuple[Any, ...]

    def to_tune(self) -> Any:
        from ray import tune

        if self.kind == "choice":
            return tune.choice(list(self.args))
        if self.kind == "grid":
            return tune.grid_search(list(self.args))
        if self.kind == "uniform":
            return tune.uniform(*self.args)
        if self.kind == "loguniform":
            return tune.loguniform(*self.args)
        if self.kind == "randint":  # inclusive upper bound, as written in the study
            return tune.randint(self.args[0], self.args[1] + 1)
        raise AssertionError(self.kind)

    def describe(self) -> str:
        if self.kind in ("choice", "grid"):
            return f"{self.field} ~ {self.kind}{list(self.args)}"
        return f"{self.field} ~ {self.kind}({self.args[0]:g}, {self.args[1]:g})"

    @property
    def grid_size(self) -> int:
        return len(self.args) if self.kind == "grid" else 1


@dataclass(frozen=True)
class Scheduler:
    """FIFO (run everything to the end) or ASHA (stop the worst trials at rungs)."""

    kind: str = "fifo"
    metric: str = "val_acc"
    mode: str = "max"
    grace_period: int = 1
    max_t: int | None = None
    reduction_factor: float = 2.0

    def to_tune(self, max_epochs: int) -> Any:
        from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

        if self.kind == "fifo":
            return FIFOScheduler()
        # time_attr "epoch" (not training_iteration): a requeued SLURM job may report
        # epochs in bursts, the epoch number stays the clock.
        return ASHAScheduler(time_attr="epoch", metric=self.metric, mode=self.mode,
                             grace_period=self.grace_period, max_t=self.max_t or max_epochs,
                             reduction_factor=self.reduction_factor)


@dataclass(frozen=True)
class Resources:
    """What one trial needs. `cpus`/`gpus` are per task (process); `gpus` may be a
    fraction on the local executor (Ray packs several small trials on one GPU); on
    SLURM it is rounded up to whole GPUs. None: the site profile's default."""

    cpus: float | None = None
    gpus: float = 0.0
    nodes: int = 1
    tasks_per_node: int = 1
    time_min: int | None = None
    mem: str | None = None
    threads: int | None = None

    @property
    def tasks(self) -> int:
        return self.nodes * self.tasks_per_node

    @property
    def torch_threads(self) -> int:
        """Threads per process: never more than the CPUs it was given (oversubscription
        collapses throughput: 2 processes x 2 threads on 2 cores ran 15x slower)."""
        return self.threads or max(1, int(self.cpus or 1))


@dataclass(frozen=True)
class Axis:
    """A grid axis: labelled partial specs, in the order written."""

    name: str
    where: str
    values: tuple[tuple[str, dict[str, Any], str], ...]  # (label, fields, YAML path)


@dataclass(frozen=True)
class Cell:
    """One point of the grid: a complete spec (minus searched fields) and its label."""

    index: int
    labels: tuple[tuple[str, str], ...]
    spec: dict[str, Any]
    generator: str | None = None
    request: SyntheticRequest | None = None

    @property
    def label(self) -> str:
        return " ".join(f"{axis}={value}" for axis, value in self.labels) or "base"

    @property
    def synthetic(self) -> str | None:
        return self.spec.get("synthetic")

    def missing_synthetic(self) -> str | None:
        """The synthetic set this cell waits for, when it does not exist yet."""
        ref = self.synthetic
        if not ref:
            return None
        store, _, group = ref.partition("#")
        path = Path(store)
        if not path.exists():
            return ref
        if path.is_dir() and group and not (path / group).exists():
            return ref
        return None

    def synthetic_mismatch(self) -> str | None:
        """When the requested set exists but its provenance says it was made otherwise
        (another generator, strategy, parameters, data set or size): what differs."""
        if self.request is None or self.missing_synthetic() is not None:
            return None
        from medaug.store.synthetic import open_set_header

        try:  # its metadata checked first (a planted pipe or a damaged group is named, never waited on)
            open_set_header(str(self.synthetic))
        except MedaugError as exc:
            return f"unusable ({exc})"
        store, _, group = str(self.synthetic).partition("#")
        try:
            import zarr

            attrs = dict(zarr.open_group(store, mode="r")[group].attrs)
        except Exception as exc:  # noqa: BLE001 - unreadable: the run refuses it with the details
            return f"unreadable ({type(exc).__name__})"
        if attrs.get("complete") is not True:
            return "incomplete (its writer did not finish)"
        prov = attrs.get("provenance") or {}
        req, dataset = self.request, self.spec["dataset"]
        want = {"generator": req.generator, "strategy": req.strategy, "strategy_params": req.strategy_params(dataset),
                "dataset": dataset, "size": self.spec.get("size")}
        diff = [f"{k} {prov.get(k)!r} (requested {v!r})" for k, v in want.items() if prov.get(k) != v]
        made_tag, want_tag = (prov.get("filter") or {}).get("tag"), req.filter.tag() if req.filter else None
        if made_tag != want_tag:
            diff.append(f"filter {made_tag!r} (requested {want_tag!r})")
        return "; ".join(diff) or None


@dataclass(frozen=True)
class Study:
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
    synthetic_root: str
    synthetic_pattern: str
    cells: tuple[Cell, ...] = field(default=())
    # `generators:` (generator name -> config fields) and `synthetic.seed`: how
    # `medaug sweep --make-synthetic` fits generators and samples the sets it makes.
    generators: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    synthesize_seed: int = 0
    # Cells merged into an earlier cell with the same spec: (merged index, its label,
    # the index of the cell kept); and what the search merged (one line each).
    merged: tuple[tuple[int, str, int], ...] = ()
    search_merges: tuple[str, ...] = ()
    # `eval:` (generator eval options, medaug.sweep.generator_study.EVAL_KEYS): how --make-synthetic evaluates
    # each generator it fits; None (`eval: false`): not evaluated.
    eval_options: Mapping[str, Any] | None = field(default_factory=dict)
    kind: str = "classifier"

    @property
    def searched_fields(self) -> tuple[str, ...]:
        return tuple(p.field for p in self.search)

    @property
    def trials_per_cell(self) -> int:
        size = self.num_samples
        for p in self.search:
            size *= p.grid_size
        return size

    def runnable_cells(self) -> list[Cell]:
        return [c for c in self.cells if c.missing_synthetic() is None]

    def waiting_cells(self) -> list[Cell]:
        return [c for c in self.cells if c.missing_synthetic() is not None]

    def specs(self) -> list[ExperimentSpec]:
        """The specs of all cells (search fields at their base/default values)."""
        return [ExperimentSpec.from_dict(c.spec, where=f"{self.source}: cell {c.index}") for c in self.cells]

    def spec_for(self, cell_spec: Mapping[str, Any], sampled: Mapping[str, Any] | None = None) -> ExperimentSpec:
        """A trial's spec: the cell's fields plus the values Tune sampled for it."""
        data = dict(cell_spec)
        for name, value in (sampled or {}).items():
            data[name] = _normalise(name, value)
        return ExperimentSpec.from_dict(data, where=f"{self.source}: trial")

    def with_fields(self, **changes: Any) -> Study:
        """The same study with some spec fields fixed in every cell (e.g. `medaug quickstart
        --epochs 2`); each changed cell is validated as a whole spec again."""
        cells = []
        specs = []
        for c in self.cells:
            data = {**c.spec, **{k: _normalise(k, v) for k, v in changes.items()}}
            spec = ExperimentSpec.from_dict(data, where=f"{self.source}: cell {c.index}")
            cells.append(dataclasses.replace(c, spec=spec_dict(spec, drop=self.searched_fields)))
            specs.append(spec)
        kept, merged = _merge_cells(cells, specs)  # e.g. cells that differed only in the changed field
        return dataclasses.replace(self, base={**self.base, **changes}, cells=kept, merged=self.merged + merged)

    @property
    def max_epochs(self) -> int:
        return max(int(c.spec.get("epochs", ExperimentSpec.__dataclass_fields__["epochs"].default))
                   for c in self.cells) if self.cells else 1


# ----------------------------------------------------------------------------- loading

def load_study(path: str | Path) -> Study:
    """Read, validate and expand a study file; MedaugError names the offending key.

    A `kind: generator` study is a `medaug.sweep.generator_study.GeneratorStudy`."""
    doc = Doc.load(path)
    kind = doc.data.get("kind", "classifier") if isinstance(doc.data, Mapping) else "classifier"
    if kind not in STUDY_KINDS:
        raise doc.error("kind", f"expected one of: {', '.join(STUDY_KINDS)}, got {kind!r}")
    if kind == "generator":
        from medaug.sweep.generator_study import load_generator_study

        return load_generator_study(doc)  # type: ignore[return-value]
    top = schema.mapping(doc, doc.data, "", allowed=TOP_KEYS, required=("name",))
    name = schema.string(doc, top["name"], "name", pattern=NAME_PATTERN,
                         what="a name of letters, digits, _ . - (1-100 of them, starting with a letter or digit)")
    description = schema.optional_string(doc, top.get("description"), "description", multiline=True) or ""
    results = schema.string(doc, top.get("results", f"results/{name}"), "results")
    synthetic_cfg = schema.mapping(doc, top.get("synthetic"), "synthetic",
                                   allowed=("root", "pattern", "strategy", "seed", "filter", *REQUEST_PARAMS))
    synthetic_root = schema.string(doc, synthetic_cfg.get("root", "synthetic"), "synthetic.root")
    pattern = schema.string(doc, synthetic_cfg.get("pattern", DEFAULT_PATTERN), "synthetic.pattern")
    _check_pattern(doc, pattern)
    synthesize_seed = schema.integer(doc, synthetic_cfg.get("seed", 0), "synthetic.seed", minimum=0)
    generators = _generators(doc, top.get("generators"), "generators")
    synthetic_root = str(Path(synthetic_root).expanduser().resolve())

    # defaults of the `generator:` grid shorthand: {generator: G, strategy, fraction | classes + count | ...}
    defaults = {k: synthetic_cfg[k] for k in ("strategy", "filter", *REQUEST_PARAMS) if k in synthetic_cfg}
    if defaults:
        _synthetic_request(doc, {"generator": "any", **defaults}, "synthetic")
    base = _fields(doc, top.get("base"), "base")
    axes = _axes(doc, top.get("grid"), "grid", defaults)
    search, num_samples = _search(doc, top.get("search"), top.get("num_samples", 1), base, axes)
    max_failures = schema.integer(doc, top.get("max_failures", 1), "max_failures", minimum=0, maximum=MAX_COUNT)
    metric = schema.string(doc, top.get("metric", "val_acc"), "metric")
    if metric not in REPORTED_METRICS:
        raise doc.error("metric", f"expected one of: {', '.join(REPORTED_METRICS)}")
    mode = _mode(doc, top.get("mode", "min" if metric.endswith("loss") else "max"), "mode")
    scheduler = _scheduler(doc, top.get("scheduler"), "scheduler", metric, mode)
    resources = _resources(doc, top.get("resources"), "resources")
    search, num_samples, search_merges = _merge_search(doc, search, num_samples, axes)

    study = Study(name=name, source=doc.source, description=description, base=base, axes=axes, search=search,
                  num_samples=num_samples, scheduler=scheduler, resources=resources, results=results,
                  max_failures=max_failures, metric=metric, mode=mode, synthetic_root=synthetic_root,
                  synthetic_pattern=pattern, generators=generators, synthesize_seed=synthesize_seed,
                  search_merges=search_merges, eval_options=_eval(doc, top.get("eval", {})))
    cells, merged = _expand(doc, study)
    study = dataclasses.replace(study, cells=cells, merged=merged)
    _check_scheduler_epochs(doc, study)
    return study


def _eval(doc: Doc, value: Any) -> Mapping[str, Any] | None:
    """`eval:` of a classifier study: generator eval options for --make-synthetic's fits, or false."""
    if value is False:
        return None
    from medaug.sweep.generator_study import eval_options

    return eval_options(doc, value)


def _check_pattern(doc: Doc, pattern: str) -> None:
    try:
        pattern.format(root="r", dataset="d", size=28, generator="g", strategy="s", amount="0.1", fraction="0.1")
    except (KeyError, IndexError, ValueError) as exc:
        raise doc.error("synthetic.pattern", "expected placeholders among "
                        + " ".join(f"{{{k}}}" for k in PATTERN_KEYS) + f"; {exc!r}") from None


def _mode(doc: Doc, value: Any, where: str) -> str:
    if value not in ("max", "min"):
        raise doc.error(where, f"expected max or min, got {value!r}")
    return value


# -- spec fields ----------------------------------------------------------------

def check_field(doc: Doc, name: str, value: Any, where: str) -> Any:
    """Check one ExperimentSpec field value (type, range, registered name); return it normalised."""
    if name not in SPEC_FIELDS:
        raise doc.error(where, f"unknown ExperimentSpec field{schema.did_you_mean(name, SPEC_FIELDS)}; "
                        f"expected one of: {', '.join(SPEC_FIELDS)}")
    if name == "synthetic":
        return _synthetic_value(doc, value, where)
    if name == "data_options":  # the keys depend on the dataset: checked per cell (_check_cell)
        return schema.mapping(doc, value, where)
    kind = _FIELD_KINDS[name]
    if kind == "bool":
        schema.boolean(doc, value, where)
    elif kind == "int":
        schema.integer(doc, value, where)
    elif kind == "float":
        value = schema.number(doc, value, where)
    elif kind == "str":
        schema.string(doc, value, where)
    elif kind.startswith("tuple[float"):
        value = [schema.number(doc, v, join(where, i)) for i, v in enumerate(schema.sequence(doc, value, where))]
    value = _normalise(name, value)
    try:  # ranges and cross-field rules live in ExperimentSpec itself
        ExperimentSpec.from_dict({"dataset": "breastmnist", name: value})
    except MedaugError as exc:
        raise doc.error(where, _expected_part(str(exc), value)) from None
    _check_name(doc, name, value, where)
    return value


def _normalise(name: str, value: Any) -> Any:
    """YAML's 1 and 1.0 must give the same spec (and run_id) for float fields."""
    kind = _FIELD_KINDS.get(name, "")
    if kind == "float" and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if kind.startswith("tuple[") and isinstance(value, list):
        return tuple(value)
    return value


def _expected_part(message: str, value: Any) -> str:
    m = re.search(r"; (expected .*)$", message)
    return f"{m.group(1)}, got {value!r}" if m else message


def _check_name(doc: Doc, name: str, value: Any, where: str) -> None:
    """Registered names: refuse an unknown dataset/classifier/augmentation now, not in a job."""
    try:
        if name == "dataset":
            from medaug.data.sources import data_source

            data_source(value)
        elif name == "size":  # which sizes depends on the dataset: checked per cell (_check_cell)
            if value < 1:
                raise MedaugError(f"expected an image size >= 1, got {value}")
        elif name == "classifier":
            from medaug.classifiers import CLASSIFIERS

            CLASSIFIERS.get(value)
        elif name == "augmentation":
            from medaug.augment import AUGMENTATIONS

            AUGMENTATIONS.get(value)
    except MedaugError as exc:
        raise doc.error(where, str(exc)) from None


def _synthetic_value(doc: Doc, value: Any, where: str) -> str | SyntheticRequest | None:
    if value is None:
        return None
    if isinstance(value, str):
        return schema.string(doc, value, where, what="STORE.zarr#GROUP")
    if isinstance(value, Mapping):
        return _synthetic_request(doc, value, where)
    raise doc.error(where, "expected null, 'STORE.zarr#GROUP' or {generator, strategy, fraction | classes + count "
                    "| synthetic_per_real}")


def _synthetic_request(doc: Doc, value: Any, where: str) -> SyntheticRequest:
    m = schema.mapping(doc, value, where, allowed=("generator", "strategy", "filter", *REQUEST_PARAMS),
                       required=("generator",))
    generator = _generator_name(doc, m["generator"], join(where, "generator"))
    strategy = schema.string(doc, m.get("strategy", "inverse-scarcity"), join(where, "strategy"),
                             pattern=r"[a-z0-9][a-z0-9-]*", what="a strategy name (lowercase, digits, -)")
    if strategy not in REQUEST_STRATEGIES:
        raise doc.error(join(where, "strategy"), f"expected one of: {', '.join(REQUEST_STRATEGIES)} (other "
                        f"strategies: name the set itself as 'STORE.zarr#GROUP'), got {strategy!r}")
    needs = REQUEST_STRATEGIES[strategy]
    for key in REQUEST_PARAMS:
        if key in m and key not in needs:
            takes = f" (it takes {' and '.join(needs)})" if needs else ""
            raise doc.error(join(where, key), f"strategy {strategy} takes no {key}{takes}")
    missing = [k for k in needs if k not in m and k != "fraction"]
    if missing:
        raise doc.error(where, f"strategy {strategy} needs {' and '.join(missing)}")
    classes: tuple[str, ...] = ()
    if "classes" in m:
        w = join(where, "classes")
        raw = [m["classes"]] if isinstance(m["classes"], str) else schema.sequence(doc, m["classes"], w)
        classes = tuple(schema.string(doc, c, join(w, i), what="a class name") for i, c in enumerate(raw))
        if len(set(classes)) != len(classes):
            raise doc.error(w, f"a class is named twice: {list(classes)}")
    count = schema.integer(doc, m["count"], join(where, "count"), minimum=1) if "count" in m else None
    per_real = (schema.integer(doc, m["synthetic_per_real"], join(where, "synthetic_per_real"), minimum=1)
                if "synthetic_per_real" in m else None)
    fraction: float | dict[str, float] | None = None
    raw = m.get("fraction")
    if isinstance(raw, Mapping):
        fraction = {}
        for ds, f in schema.mapping(doc, raw, join(where, "fraction")).items():
            check_field(doc, "dataset", ds, join(join(where, "fraction"), ds))
            fraction[ds] = _fraction(doc, f, join(join(where, "fraction"), ds))
    elif raw is not None:
        fraction = _fraction(doc, raw, join(where, "fraction"))
    if strategy == "inverse-scarcity" and fraction is None:
        raise doc.error(where, "strategy inverse-scarcity needs a fraction (number, or mapping dataset -> number)")
    flt = _request_filter(doc, m["filter"], join(where, "filter")) if m.get("filter") is not None else None
    return SyntheticRequest(generator=generator, strategy=strategy, fraction=fraction, where=where, classes=classes,
                            count=count, synthetic_per_real=per_real, filter=flt)


def _request_filter(doc: Doc, value: Any, where: str) -> Any:
    """A request's `filter: {kind, threshold, k, recipe, recipe_set, max_draws}` (medaug.generators.filters)."""
    from medaug.generators.filters import FilterSpec

    m = schema.mapping(doc, value, where)
    if "classifier" in m:
        raise doc.error(join(where, "classifier"), "a study's filter trains its classifier by `recipe` (cached in "
                        "OUT/generator-eval/reference/); a classifier file is for medaug synthesize "
                        "--filter-classifier")
    try:
        return FilterSpec.from_dict(m)
    except MedaugError as exc:
        key = re.match(r"([a-z_]+): ", str(exc))
        raise doc.error(join(where, key.group(1)) if key else where,
                        str(exc)[key.end():] if key else str(exc)) from None


def _fraction(doc: Doc, value: Any, where: str) -> float:
    f = schema.number(doc, value, where, positive=True)
    try:
        from medaug.generators.strategies import check_fraction

        check_fraction(f)
    except ImportError:
        pass
    except MedaugError as exc:
        raise doc.error(where, str(exc)) from None
    return f


def _generators(doc: Doc, value: Any, where: str) -> dict[str, dict[str, Any]]:
    """`generators:` name -> config fields, each checked by that generator's config class
    (`Generator.make_config`): an unknown generator, unknown field or bad value is
    refused at its YAML path."""
    from medaug.generators import GENERATORS

    out: dict[str, dict[str, Any]] = {}
    for name, raw in schema.mapping(doc, value, where).items():
        w = join(where, name)
        if name not in GENERATORS:
            raise doc.error(w, f"unknown generator{schema.did_you_mean(name, GENERATORS.names())}; expected one "
                            f"of: {', '.join(GENERATORS.names())}")
        cls = GENERATORS.get(name)
        fields = schema.mapping(doc, raw, w)
        known = cls.config_class.field_names()
        for key in fields:
            if key not in known:
                raise doc.error(join(w, key), f"not a {name} setting{schema.did_you_mean(key, known)}; "
                                f"expected some of: {', '.join(known)}")
        try:
            cls.make_config(fields)
        except MedaugError as exc:
            bad = re.search(r"field '([A-Za-z0-9_]+)'", str(exc))
            raise doc.error(join(w, bad.group(1)) if bad and bad.group(1) in fields else w, str(exc)) from None
        out[name] = dict(fields)
    return out


def _generator_name(doc: Doc, value: Any, where: str) -> str:
    """A generator name; it need not be registered yet (a cell waits for its synthetic
    set, not for the generator): `unregistered_generators` lists those for a dry run."""
    return schema.string(doc, value, where, pattern=r"[a-z0-9][a-z0-9-]*", what="a generator name")


def unregistered_generators(study: Study) -> tuple[list[str], list[str]]:
    """(generators the study names that this medaug does not register, the registered ones)."""
    try:
        from medaug.generators import GENERATORS

        registered = GENERATORS.names()
    except ImportError:
        registered = []
    named = sorted({c.generator for c in study.cells if c.generator})
    return [g for g in named if g not in registered], registered


def _fields(doc: Doc, value: Any, where: str) -> dict[str, Any]:
    m = schema.mapping(doc, value, where)
    return {k: check_field(doc, k, v, join(where, k)) for k, v in m.items()}


# -- grid ----------------------------------------------------------------------

def _axes(doc: Doc, value: Any, where: str, defaults: dict[str, Any]) -> tuple[Axis, ...]:
    grid = schema.mapping(doc, value, where)
    axes = []
    for name, values in grid.items():
        w = join(where, name)
        if name == "generator":  # shorthand: generator: [null, cvae, cgan] + synthetic.strategy/fraction
            items = []
            for i, g in enumerate(schema.sequence(doc, values, w)):
                if g is None:
                    items.append(("none", {"synthetic": None}, join(w, i)))
                else:
                    req = _synthetic_request(doc, {"generator": g, **defaults}, join(w, i))
                    req = dataclasses.replace(req, where="synthetic")
                    items.append((req.generator, {"synthetic": req}, join(w, i)))
            axes.append(Axis(name, w, tuple(items)))
        elif name in SPEC_FIELDS:
            items = []
            _at_most_max_trials(doc, w, len(schema.sequence(doc, values, w)), "values")
            for i, v in enumerate(schema.sequence(doc, values, w)):
                checked = check_field(doc, name, v, join(w, i))
                items.append((_label(checked), {name: checked}, join(w, i)))
            axes.append(Axis(name, w, tuple(items)))
        elif isinstance(values, Mapping):  # a named axis: label -> partial spec
            if not re.fullmatch(NAME_PATTERN, name):
                raise doc.error(w, "a named axis needs a name of letters, digits, _ . -")
            items = []
            for label, fields in schema.mapping(doc, values, w).items():
                items.append((label, _fields(doc, fields, join(w, label)), join(w, label)))
            if not items:
                raise doc.error(w, "expected at least one labelled value")
            axes.append(Axis(name, w, tuple(items)))
        else:
            raise doc.error(w, f"unknown ExperimentSpec field{schema.did_you_mean(name, SPEC_FIELDS)}; a grid "
                            "axis is a spec field with a list of values, `generator`, or a named axis "
                            "(a mapping label -> fields)")
    return tuple(axes)


def _label(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, SyntheticRequest):
        return value.generator
    if value is None:
        return "none"
    if isinstance(value, (list, tuple)):
        return ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _at_most_max_trials(doc: Doc, where: str, count: int, what: str) -> None:
    if count > MAX_TRIALS:
        raise doc.error(where, f"{count:,} {what}; a study may have at most {MAX_TRIALS:,} trials (MAX_TRIALS): "
                        "split it into several studies")


def trial_count(axes: tuple[Axis, ...], search: tuple[SearchParam, ...], num_samples: int) -> tuple[int, int]:
    """(grid cells, trials) of a study, from the axis lengths alone: nothing is expanded."""
    cells = math.prod(len(axis.values) for axis in axes)
    return cells, cells * num_samples * math.prod(p.grid_size for p in search)


def _expand(doc: Doc, study: Study) -> tuple[tuple[Cell, ...], tuple[tuple[int, str, int], ...]]:
    """The grid's cells in order (first axis outermost), each validated as a whole spec,
    with cells that are the same experiment merged into the first (and listed)."""
    n_cells, n_trials = trial_count(study.axes, study.search, study.num_samples)
    if n_trials > MAX_TRIALS:
        per_cell = study.trials_per_cell
        raise doc.error("grid" if n_cells > 1 or not study.search else "search",
                        f"{n_cells:,} cell(s) x {per_cell:,} trial(s) per cell = {n_trials:,} trials; a study may "
                        f"have at most {MAX_TRIALS:,} trials (MAX_TRIALS): split it into several studies")
    cells = []
    specs = []
    for index, combo in enumerate(itertools.product(*(axis.values for axis in study.axes))):
        data = dict(study.base)
        origin = {k: join("base", k) for k in data}  # field -> YAML path of the value this cell uses
        labels = []
        generator = None
        for axis, (label, fields, item_where) in zip(study.axes, combo):
            data.update(fields)
            named = axis.name not in SPEC_FIELDS and axis.name != "generator"
            origin.update({k: join(item_where, k) if named else item_where for k in fields})
            labels.append((axis.name, label))
        where = " / ".join(w for _, _, w in combo) or "base"
        if "dataset" not in data:
            raise doc.error("base", "no dataset: set base.dataset or make dataset a grid axis")
        request = data.get("synthetic")
        if isinstance(request, SyntheticRequest):
            if isinstance(request.fraction, dict) and data["dataset"] not in request.fraction:
                raise doc.error(join(request.where, "fraction"), f"no fraction for dataset {data['dataset']!r}")
            generator = request.generator
            data["synthetic"] = request.resolve(data["dataset"], int(data.get("size", 28)), study.synthetic_root,
                                                study.synthetic_pattern)
        else:
            request = None
        _check_cell(doc, data, origin, request, study.searched_fields)
        try:
            spec = ExperimentSpec.from_dict(data, where=where)
        except MedaugError as exc:
            raise doc.error("", f"cell {index} ({where}): {exc}") from None
        specs.append(spec)
        cells.append(Cell(index=index, labels=tuple(labels), spec=spec_dict(spec, drop=study.searched_fields),
                          generator=generator, request=request))
    return _merge_cells(cells, specs)


def _merge_cells(cells: list[Cell], specs: list[ExperimentSpec]) -> tuple[tuple[Cell, ...],
                                                                        tuple[tuple[int, str, int], ...]]:
    """Keep the first cell of each spec (run_id; searched fields at their defaults, which
    Tune then samples alike): a second cell would train the same experiment again and
    write over its row. Returns the kept cells and (merged index, label, kept index)."""
    first: dict[str, int] = {}
    kept: list[Cell] = []
    merged: list[tuple[int, str, int]] = []
    for cell, spec in zip(cells, specs):
        if spec.run_id in first:
            merged.append((cell.index, cell.label, first[spec.run_id]))
            continue
        first[spec.run_id] = cell.index
        kept.append(cell)
    return tuple(kept), tuple(merged)


def _check_scheduler_epochs(doc: Doc, study: Study) -> None:
    """ASHA's first rung must fall within the epochs a trial trains."""
    sch = study.scheduler
    if sch.kind != "asha" or "epochs" in study.searched_fields or not study.cells:
        return
    longest = study.max_epochs
    if sch.max_t is None and sch.grace_period > longest:
        raise doc.error("scheduler.grace_period", f"expected at most the longest trial's epochs ({longest}), "
                        f"got {sch.grace_period}")


def _check_cell(doc: Doc, data: dict[str, Any], origin: dict[str, str], request: SyntheticRequest | None,
                searched: tuple[str, ...] = ()) -> None:
    """What depends on several fields of one cell, refused at the YAML path that set it:
    the size for the dataset and classifier, the dataset's data_options, the classes
    of a per-class request, a frozen backbone and `pretrained` only for transfer classifiers. (A size or
    classifier that Tune samples is checked with each trial's spec instead.)"""
    from medaug.classifiers.transfer import ARCHS
    from medaug.data.sources import class_names, data_source

    default = {f.name: f.default for f in dataclasses.fields(ExperimentSpec)}
    dataset = data["dataset"]
    source = data_source(dataset)
    size = data.get("size", default["size"])
    classifier = data.get("classifier", default["classifier"])
    arch = ARCHS.get(classifier)
    if "size" not in searched:
        try:
            source.check_size(size)
        except MedaugError as exc:
            raise doc.error(origin.get("size", origin["dataset"]), str(exc)) from None
    if arch is not None and "size" not in searched and size < arch.min_size:
        raise doc.error(origin.get("size", origin.get("classifier", "base")),
                        f"classifier {classifier!r} needs images of at least {arch.min_size} px, got {size}")
    if data.get("freeze_epochs") and arch is None:
        raise doc.error(origin["freeze_epochs"], f"only transfer classifiers ({', '.join(ARCHS)}) have a backbone "
                        f"to freeze; this cell's classifier is {classifier!r}")
    if data.get("pretrained") is not None and arch is None:
        raise doc.error(origin["pretrained"], f"only transfer classifiers ({', '.join(ARCHS)}) have ImageNet "
                        f"weights; this cell's classifier is {classifier!r}")
    if data.get("data_options"):
        try:
            data["data_options"] = source.check_options(data["data_options"], where=origin["data_options"])
        except MedaugError as exc:
            raise doc.error("", str(exc)) from None
    if request is not None and request.classes:
        names = class_names(dataset)
        if names is not None:
            for i, cls in enumerate(request.classes):
                if cls not in names:
                    close = [n for n in names if n.lower() == cls.lower()] or None
                    hint = f" (did you mean {close[0]!r}?)" if close else schema.did_you_mean(cls, names)
                    raise doc.error(join(join(request.where, "classes"), i),
                                    f"{cls!r} is not a class of {dataset}{hint}; expected one of: {', '.join(names)}")


def spec_dict(spec: ExperimentSpec, drop: tuple[str, ...] = ()) -> dict[str, Any]:
    return {k: v for k, v in spec.to_dict().items() if k not in drop}


# -- search, scheduler, resources -------------------------------------------------

def _search(doc: Doc, value: Any, num_samples: Any, base: dict[str, Any],
            axes: tuple[Axis, ...]) -> tuple[tuple[SearchParam, ...], int]:
    params = []
    axis_fields = {k for axis in axes for _, fields, _ in axis.values for k in fields}
    for name, raw in schema.mapping(doc, value, "search").items():
        w = join("search", name)
        if name not in SPEC_FIELDS:
            raise doc.error(w, f"unknown ExperimentSpec field{schema.did_you_mean(name, SPEC_FIELDS)}")
        if name in axis_fields or name in base:
            raise doc.error(w, f"{name!r} is also set in {'grid' if name in axis_fields else 'base'}; "
                            "a field is either fixed, a grid axis, or searched")
        m = schema.mapping(doc, raw, w, allowed=SEARCH_KINDS)
        if len(m) != 1:
            raise doc.error(w, f"expected exactly one of: {', '.join(SEARCH_KINDS)}")
        kind, args = next(iter(m.items()))
        wk = join(w, kind)
        values = schema.sequence(doc, args, wk)
        if kind in ("choice", "grid"):
            checked = tuple(check_field(doc, name, v, join(wk, i)) for i, v in enumerate(values))
        else:
            if len(values) != 2:
                raise doc.error(wk, "expected [low, high]")
            int_field = _FIELD_KINDS[name] == "int"
            if kind == "randint":
                if not int_field:
                    raise doc.error(wk, f"randint gives integers; {name!r} is not an integer field")
                lo, hi = (schema.integer(doc, v, join(wk, i)) for i, v in enumerate(values))
            else:
                if int_field or _FIELD_KINDS[name] != "float":
                    raise doc.error(wk, f"{kind} gives real numbers; use choice, grid or randint for {name!r}")
                lo, hi = (schema.number(doc, v, join(wk, i)) for i, v in enumerate(values))
                if kind == "loguniform" and lo <= 0:
                    raise doc.error(join(wk, 0), "loguniform needs low > 0")
            if not lo < hi:
                raise doc.error(wk, f"expected low < high, got [{lo}, {hi}]")
            check_field(doc, name, lo, join(wk, 0))
            check_field(doc, name, hi, join(wk, 1))
            checked = (lo, hi)
        params.append(SearchParam(name, kind, checked))
    samples = schema.integer(doc, num_samples, "num_samples", minimum=1)
    return tuple(params), samples


def _value_key(value: Any) -> str:
    """Equal spec values give equal keys (1.0 and 1 were normalised before this)."""
    return json.dumps(value, sort_keys=True, default=repr)


def _merge_search(doc: Doc, params: tuple[SearchParam, ...], num_samples: int,
                  axes: tuple[Axis, ...]) -> tuple[tuple[SearchParam, ...], int, tuple[str, ...]]:
    """Merge what would run one spec several times: repeated choice/grid values, and
    samples beyond the distinct combinations of a search without continuous terms.

    The trial count is checked (against MAX_TRIALS) before a randint range is
    enumerated as a grid, so nothing large is ever built."""
    notes: list[str] = []
    out: list[SearchParam] = []
    for p in params:
        if p.kind in ("choice", "grid"):
            first: dict[str, Any] = {}
            for v in p.args:
                first.setdefault(_value_key(v), v)
            values = tuple(first.values())
            if len(values) < len(p.args):
                notes.append(f"search.{p.field}.{p.kind}: {len(p.args) - len(values)} repeated value(s) merged "
                             f"({len(p.args)} -> {len(values)})")
                p = dataclasses.replace(p, args=values)
        out.append(p)
    random_terms = [p for p in out if p.kind != "grid"]
    if num_samples > 1 and not random_terms:
        notes.append(f"num_samples {num_samples}: the search has only grid terms, so each sample would repeat the "
                     f"same specs; each runs once ({num_samples - 1} repeat(s) per spec merged)")
        num_samples = 1
    elif num_samples > 1 and all(p.kind in ("choice", "randint") for p in random_terms):
        distinct = math.prod(len(p.args) if p.kind == "choice" else p.args[1] - p.args[0] + 1 for p in random_terms)
        if num_samples >= distinct:
            names = ", ".join(p.field for p in random_terms)
            notes.append(f"num_samples {num_samples} >= the {distinct} distinct combination(s) of {names}: each "
                         f"runs once instead of being sampled ({num_samples - distinct} repeat(s) per cell merged)")
            n_cells = math.prod(len(axis.values) for axis in axes)
            per_cell = distinct * math.prod(p.grid_size for p in out)
            _at_most_max_trials(doc, "search", n_cells * per_cell, "trials")
            out = [dataclasses.replace(p, kind="grid", args=p.args if p.kind == "choice"
                                       else tuple(range(p.args[0], p.args[1] + 1))) if p.kind != "grid" else p
                   for p in out]
            num_samples = 1
    return tuple(out), num_samples, tuple(notes)


def _scheduler(doc: Doc, value: Any, where: str, metric: str, mode: str) -> Scheduler:
    if value is None:
        return Scheduler(metric=metric, mode=mode)
    if isinstance(value, str):
        value = {"type": value}
    m = schema.mapping(doc, value, where, allowed=("type", "metric", "mode", "grace_period", "max_t",
                                                   "reduction_factor"))
    kind = m.get("type", "fifo")
    if kind not in SCHEDULERS:
        raise doc.error(join(where, "type"), f"expected one of: {', '.join(SCHEDULERS)}, got {kind!r}")
    if kind == "fifo" and set(m) - {"type"}:
        raise doc.error(join(where, sorted(set(m) - {"type"})[0]), "only ASHA takes this setting")
    s_metric = schema.string(doc, m.get("metric", metric), join(where, "metric"))
    if s_metric not in REPORTED_METRICS:
        raise doc.error(join(where, "metric"), f"expected one of: {', '.join(REPORTED_METRICS)}")
    s_mode = _mode(doc, m.get("mode", mode if s_metric == metric else
                                 ("min" if s_metric.endswith("loss") else "max")), join(where, "mode"))
    grace = schema.integer(doc, m.get("grace_period", 1), join(where, "grace_period"), minimum=1, maximum=MAX_COUNT)
    max_t = m.get("max_t")
    if max_t is not None:
        max_t = schema.integer(doc, max_t, join(where, "max_t"), minimum=1, maximum=MAX_COUNT)
        if max_t < grace:
            raise doc.error(join(where, "max_t"), f"expected max_t >= grace_period ({grace})")
    rf = schema.number(doc, m.get("reduction_factor", 2), join(where, "reduction_factor"), maximum=MAX_COUNT)
    if rf <= 1:
        raise doc.error(join(where, "reduction_factor"), "expected a number > 1")
    return Scheduler(kind=kind, metric=s_metric, mode=s_mode, grace_period=grace, max_t=max_t, reduction_factor=rf)


def _resources(doc: Doc, value: Any, where: str) -> Resources:
    m = schema.mapping(doc, value, where, allowed=("cpus", "gpus", "nodes", "tasks_per_node", "time", "mem",
                                                   "threads"))
    cpus = (schema.number(doc, m["cpus"], join(where, "cpus"), positive=True, maximum=MAX_COUNT)
            if "cpus" in m else None)
    gpus = schema.number(doc, m.get("gpus", 0), join(where, "gpus"), minimum=0, maximum=MAX_COUNT)
    nodes = schema.integer(doc, m.get("nodes", 1), join(where, "nodes"), minimum=1, maximum=MAX_COUNT)
    tasks = schema.integer(doc, m.get("tasks_per_node", 1), join(where, "tasks_per_node"), minimum=1,
                           maximum=MAX_COUNT)
    time_min = schema.minutes(doc, m["time"], join(where, "time")) if "time" in m else None
    mem = schema.memory(doc, m["mem"], join(where, "mem")) if "mem" in m else None
    threads = (schema.integer(doc, m["threads"], join(where, "threads"), minimum=1, maximum=MAX_COUNT)
               if "threads" in m else None)
    if gpus > 1 and gpus != int(gpus):
        raise doc.error(join(where, "gpus"), f"expected a fraction below 1 or a whole number, got {gpus}")
    return Resources(cpus=cpus, gpus=gpus, nodes=nodes, tasks_per_node=tasks, time_min=time_min, mem=mem,
                     threads=threads)
