"""Synthetic-sample filters: keep only the samples that pass a test, draw more until each class is full.

A synthetic request (`medaug synthesize --filter KIND`, a study's `synthetic: {..., filter: {...}}`)
may carry one filter, applied to every drawn sample before the set is written:

- `confidence`: a classifier trained on the real train split must give the sample's
  conditioning label a probability >= `threshold` (softmax of its logits, as seed 001's
  confidence metric and `generator eval` compute it). The classifier is a file
  (`--filter-classifier FILE`: a state dict with its spec, loaded with
  `weights_only=True`, as `medaug train --save-classifier` and `generator eval`'s
  reference cache write it; one trained with a synthetic set is refused) or trained
  here with a named recipe (`fast` by default, `seed000`; `recipe_set` overrides
  fields of `fast`) through `generator eval`'s
  reference cache (DIR/generator-eval/reference/, so the classifier of one data set is
  trained once and shared with `generator eval --out DIR`);
- `realism`: the realism score of Kynkaanniemi et al. 2019 (eq. 3) in the penultimate
  features of that classifier, R(g) = max_j r_j / ||g - x_j|| over the real train
  features x_j of the sample's class whose k-NN radius r_j (k = 3, the paper's) is in
  the smaller half (the paper discards the larger half, outliers whose balls would
  swallow everything). R >= 1 means the sample lies inside some real point's k-NN
  ball: inside the real data's feature manifold. Kept: R >= `threshold` (default 1);
- `near-copy`: the ratio test of `medaug.generators.memorisation` (Carlini et al. 2023;
  pixel space, within the class): a sample whose nearest train image is closer than
  `threshold` (default 1/3) x its k-th nearest (k = 50), or at distance 0, is dropped.
  `--drop-near-copies` is this filter with its defaults.

Drawing (`draw_filtered`): the first draw is the unfiltered set's own draw (same seed,
so a filtered set starts from exactly the samples its unfiltered twin holds). While a
class is short, further draws (seeds derived from the set's seed and the round) ask
for what is missing divided by the acceptance rate seen so far (x 1.25, Laplace
smoothed: a class that accepted nothing yet still asks for a bounded number), never
more than `max_draws` x the requested count of that class in all. A class still short
at that limit raises one MedaugError line and nothing is written; the loop never runs
on. The first accepted samples of each class, in draw order, are written.

What the set's provenance records (`filter`): the filter and its parameters, its tag,
its rule in words, the classifier (source, spec, checkpoint hash), and per class the
requested, drawn, accepted, rejected and kept counts, plus each round's seed and
counts, so that every round can be redrawn and rejudged.

The set's group name ends in the filter's tag (`conf0.9`, `real1`, `nocopies`; a
classifier other than the default adds a short hash), so filtered and unfiltered sets,
and two thresholds, never share a group.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from medaug.errors import MedaugError

FILTER_KINDS = ("confidence", "realism", "near-copy")
#: Recipes a filter classifier may be trained with (those of `generator eval`'s reference).
FILTER_RECIPES = ("fast", "seed000")
DEFAULT_RECIPE = "fast"
REALISM_K = 3  # Kynkaanniemi et al. 2019's k
DEFAULT_MAX_DRAWS = 8.0
MAX_ROUNDS = 64  # a guard only: the per-class draw limit ends the loop long before
#: Keys of a filter mapping (a study's `filter:`; `FilterSpec.to_dict`).
FILTER_KEYS = ("kind", "threshold", "k", "classifier", "recipe", "recipe_set", "max_draws")

Judge = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


def _near_copy_defaults() -> tuple[float, int]:
    from medaug.generators.memorisation import NEAR_COPY_K, NEAR_COPY_RATIO

    return NEAR_COPY_RATIO, NEAR_COPY_K


def _num(x: float) -> str:
    """A threshold as text, exact to 10 significant digits (0.9999999 is not 1: tags must differ)."""
    return f"{x:.10g}"


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(float(x))


@dataclass(frozen=True)
class FilterSpec:
    """One filter of a synthetic request, validated on construction (CLI, YAML or Python).

    `threshold`: confidence, probability in (0, 1] (required); realism, score > 0 (default
    1); near-copy, ratio in (0, 1] (default 1/3). `k`: realism's k-NN (default 3), the
    near-copy test's k (default 50). `classifier`: a classifier file (confidence,
    realism); without one, `recipe` (+ `recipe_set` overrides of `fast`) trains it.
    `max_draws`: at most this many draws per requested image of a class (>= 1).
    """

    kind: str
    threshold: float | None = None
    k: int | None = None
    classifier: str | None = None
    recipe: str = DEFAULT_RECIPE
    recipe_set: tuple[tuple[str, Any], ...] = ()
    max_draws: float = DEFAULT_MAX_DRAWS

    def __post_init__(self) -> None:
        if self.kind not in FILTER_KINDS:
            raise MedaugError(f"filter {self.kind!r}: expected one of {', '.join(FILTER_KINDS)}")
        t = self.threshold
        if t is None:
            if self.kind == "confidence":
                raise MedaugError("filter confidence needs a threshold (the least probability of the sample's "
                                  "label to keep it, in (0, 1])")
            t = 1.0 if self.kind == "realism" else _near_copy_defaults()[0]
        if not _is_number(t):
            raise MedaugError(f"filter {self.kind} threshold {t!r}: expected a finite number")
        if self.kind == "realism" and not t > 0:
            raise MedaugError(f"filter realism threshold {t!r}: expected a number > 0 (1: inside the real manifold)")
        if self.kind != "realism" and not 0 < t <= 1:
            raise MedaugError(f"filter {self.kind} threshold {t!r}: expected a number in (0, 1]")
        object.__setattr__(self, "threshold", float(t))
        k = self.k
        if k is None:
            k = REALISM_K if self.kind == "realism" else _near_copy_defaults()[1] if self.kind == "near-copy" else None
        elif self.kind == "confidence":
            raise MedaugError("filter confidence takes no k (realism and near-copy do)")
        if k is not None and (isinstance(k, bool) or not isinstance(k, int) or k < 1):
            raise MedaugError(f"filter {self.kind} k {k!r}: expected an integer >= 1")
        object.__setattr__(self, "k", k)
        if self.kind == "near-copy" and (self.classifier is not None or self.recipe != DEFAULT_RECIPE
                                         or self.recipe_set):
            raise MedaugError("filter near-copy works in pixel space and takes no classifier, recipe or recipe_set")
        if self.classifier is not None and (not isinstance(self.classifier, str) or not self.classifier.strip()):
            raise MedaugError(f"filter classifier {self.classifier!r}: expected a file path")
        if self.classifier is not None and (self.recipe != DEFAULT_RECIPE or self.recipe_set):
            raise MedaugError("filter: a classifier file and a recipe that would train one exclude each other")
        if self.recipe not in FILTER_RECIPES:
            raise MedaugError(f"filter recipe {self.recipe!r}: expected one of {', '.join(FILTER_RECIPES)}")
        overrides = tuple(sorted(dict(self.recipe_set).items()))
        if overrides and self.recipe != "fast":
            raise MedaugError("filter recipe_set overrides fields of the fast recipe only")
        from medaug.train.recipes import RECIPE_FIELDS

        stray = sorted(set(dict(overrides)) - RECIPE_FIELDS)
        if stray:
            raise MedaugError(f"filter recipe_set {stray}: not fields of a recipe; expected some of "
                              f"{sorted(RECIPE_FIELDS)}")
        object.__setattr__(self, "recipe_set", overrides)
        if not _is_number(self.max_draws) or not 1 <= float(self.max_draws) <= 1000:
            raise MedaugError(f"filter max_draws {self.max_draws!r}: expected a number in [1, 1000] (draws per "
                              "requested image)")
        object.__setattr__(self, "max_draws", float(self.max_draws))

    @property
    def needs_classifier(self) -> bool:
        return self.kind in ("confidence", "realism")

    def tag(self, classifier_hash: str | None = None) -> str:
        """What the group name ends in: kind, threshold, a non-default k, and a short hash of a
        classifier other than the default recipe's (`classifier_hash` of a file)."""
        t = _num(self.threshold)
        if self.kind == "near-copy":
            ratio, k = _near_copy_defaults()
            text = "nocopies" + ("" if self.threshold == ratio else t) + ("" if self.k == k else f"-k{self.k}")
            return text
        text = ("conf" if self.kind == "confidence" else "real") + t
        if self.kind == "realism" and self.k != REALISM_K:
            text += f"-k{self.k}"
        if self.classifier is not None:
            text += f"-c{(classifier_hash or 'file')[:8]}"
        elif self.recipe != DEFAULT_RECIPE or self.recipe_set:
            ident = json.dumps([self.recipe, [list(p) for p in self.recipe_set]], sort_keys=True)
            text += f"-{self.recipe}{hashlib.sha256(ident.encode()).hexdigest()[:6]}"
        return text

    def rule(self) -> str:
        """The filter in words (the provenance's `rule`)."""
        if self.kind == "confidence":
            return f"keep p(conditioning label | classifier) >= {_num(self.threshold)}"
        if self.kind == "realism":
            return (f"keep realism score >= {_num(self.threshold)} (Kynkaanniemi et al. 2019: max over real features of "
                    f"the class of k-NN radius / distance, k = {self.k}, larger half of the radii discarded)")
        return (f"drop near-copies: d(nearest train) < {_num(self.threshold)} x d({self.k}-th nearest train) or "
                "d(nearest) = 0, pixel space, within class (Carlini et al. 2023)")

    def to_dict(self) -> dict[str, Any]:
        """The filter as plain JSON data (what a study's job and the provenance carry)."""
        return {"kind": self.kind, "threshold": self.threshold, "k": self.k, "classifier": self.classifier,
                "recipe": self.recipe if self.needs_classifier else None,
                "recipe_set": {k: v for k, v in self.recipe_set}, "max_draws": self.max_draws}

    def cli_options(self) -> str:
        """The `medaug synthesize` options that ask for this filter."""
        parts = [f"--filter {self.kind}"]
        default = FilterSpec(kind=self.kind, threshold=self.threshold if self.kind == "confidence" else None)
        if self.kind == "confidence" or self.threshold != default.threshold:
            parts.append(f"--filter-threshold {self.threshold!r}")
        if self.k != default.k:
            parts.append(f"--filter-k {self.k}")
        if self.classifier is not None:
            parts.append(f"--filter-classifier {self.classifier}")
        if self.needs_classifier and self.recipe != DEFAULT_RECIPE:
            parts.append(f"--filter-recipe {self.recipe}")
        parts += [f"--filter-recipe-set {k}={json.dumps(v)}" for k, v in self.recipe_set]
        if self.max_draws != DEFAULT_MAX_DRAWS:
            parts.append(f"--max-draws {self.max_draws:g}")
        return " ".join(parts)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str | None = None) -> FilterSpec:
        """A filter from a mapping of FILTER_KEYS. An unknown key or bad value is one MedaugError,
        prefixed by `where` when given ("KEY: ..." for a key that is not a filter's)."""
        def fail(message: str) -> MedaugError:
            return MedaugError(f"{where}: {message}" if where else message)

        if not isinstance(data, Mapping):
            raise fail(f"expected a mapping {{kind, threshold, ...}}, got {type(data).__name__}")
        stray = [k for k in data if k not in FILTER_KEYS]
        if stray:
            raise fail(f"{stray[0]}: unknown filter key; expected some of {', '.join(FILTER_KEYS)}")
        if "kind" not in data:
            raise fail(f"needs a kind ({', '.join(FILTER_KINDS)})")
        values = {k: v for k, v in data.items() if v is not None}
        raw_set = values.pop("recipe_set", {}) or {}
        if not isinstance(raw_set, Mapping):
            raise fail("recipe_set: expected a mapping of recipe fields")
        try:
            return cls(**values, recipe_set=tuple(raw_set.items()))
        except MedaugError as exc:
            raise fail(str(exc)) from None


# ----------------------------------------------------------------------------- scores

def realism_scores(real: np.ndarray, samples: np.ndarray, k: int = REALISM_K, chunk: int = 1024) -> np.ndarray:
    """Realism score of each sample against the real features (Kynkaanniemi et al. 2019, eq. 3).

    R(g) = max_j r_j / ||g - x_j|| over the real points x_j whose k-NN radius r_j (k-th
    nearest other real point) is among the smaller half (ceil(n / 2) points: the paper
    discards the larger half). R >= 1: g is inside some kept real k-NN ball. A sample at
    distance 0 from a real point scores inf. Needs more than k real points.
    """
    import torch

    from medaug.metrics.generative import knn_radii

    r = torch.as_tensor(np.asarray(real, dtype=np.float64)).reshape(len(real), -1)
    g = torch.as_tensor(np.asarray(samples, dtype=np.float64)).reshape(len(samples), -1)
    if len(r) <= k:
        raise MedaugError(f"realism score: {len(r)} real points, needs more than k = {k}")
    radii = knn_radii(r, k)
    keep = torch.argsort(radii, stable=True)[: len(r) - len(r) // 2]
    centres, radii = r[keep], radii[keep]
    out = []
    for i in range(0, len(g), chunk):
        d = torch.cdist(g[i:i + chunk], centres, compute_mode="donot_use_mm_for_euclid_dist")  # exact 0 for a copy
        ratio = torch.where(d > 0, radii[None, :] / d.clamp(min=1e-300), torch.full_like(d, math.inf))
        out.append(ratio.max(dim=1).values)
    return torch.cat(out).numpy() if out else np.zeros(0)


def label_probability(model: Any, images: np.ndarray, labels: np.ndarray, task: str, device: Any) -> np.ndarray:
    """The classifier's probability of each image's label (softmax over its logits)."""
    import torch

    from medaug.train.loop import predict

    x = torch.from_numpy(np.ascontiguousarray(images)).to(device)
    y = torch.from_numpy(np.ascontiguousarray(labels)).to(device)
    scores, _ = predict(model, x, y, task)
    return scores[np.arange(len(labels)), labels]


# ----------------------------------------------------------------------------- classifier

def save_classifier(path: str | Path, model: Any, spec_json: str, train_hash: str | None = None,
                    extra: Mapping[str, Any] | None = None) -> str:
    """Write a classifier file (state dict, its spec, the train split's hash) atomically; its sha256 (16 hex)."""
    import torch

    from medaug.hashing import file_digest
    from medaug.store.atomic import atomic_write

    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    payload = {"state": state, "spec_json": spec_json, **({"train_hash": train_hash} if train_hash else {}),
               **dict(extra or {})}
    path = Path(path)
    atomic_write(path, lambda tmp: torch.save(payload, tmp))
    return file_digest(path)[:16]


def classifier_file_hash(spec: FilterSpec) -> str | None:
    """sha256 (16 hex) of the filter's classifier file (None: it trains one); refused when missing."""
    from medaug.hashing import file_digest

    if spec.classifier is None:
        return None
    path = Path(spec.classifier).expanduser()
    if not path.is_file():
        raise MedaugError(f"--filter-classifier {path}: no such file")
    return file_digest(path)[:16]


def load_classifier(path: str | Path, train: Any, device: Any) -> tuple[Any, dict[str, Any]]:
    """A classifier file (see `save_classifier`; `generator eval`'s reference cache has the same
    keys) as a model on `device` in eval mode, and its provenance. Loaded with weights_only=True
    (tensors and plain data only); refused in one line when unreadable, of another data set,
    size or train split, or of another shape."""
    import torch

    from medaug.classifiers import build_classifier
    from medaug.hashing import file_digest

    path = Path(path).expanduser()
    if not path.is_file():
        raise MedaugError(f"--filter-classifier {path}: no such file")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - a damaged file or a foreign pickle: refused, never executed
        raise MedaugError(f"{path}: not a readable classifier file ({type(exc).__name__})") from None
    if not isinstance(payload, dict) or not isinstance(payload.get("state"), dict) \
            or not isinstance(payload.get("spec_json"), str):
        raise MedaugError(f"{path}: not a classifier file (expected a state dict and its spec_json)")
    try:
        spec = json.loads(payload["spec_json"])
        name = spec["classifier"]
    except (ValueError, KeyError, TypeError):
        raise MedaugError(f"{path}: its spec_json names no classifier") from None
    if spec.get("dataset") not in (None, train.name) or spec.get("size") not in (None, train.size):
        raise MedaugError(f"{path}: a classifier of {spec.get('dataset')} at {spec.get('size')} px, not of "
                          f"{train.name} at {train.size} px")
    if spec.get("synthetic"):
        raise MedaugError(f"{path}: trained with the synthetic set {spec['synthetic']}; a filter's classifier must "
                          "know the real train split only")
    if payload.get("train_hash") not in (None, train.content_hash):
        raise MedaugError(f"{path}: trained on train split hash {payload['train_hash']}, not this data's "
                          f"{train.content_hash}")
    model = build_classifier(name, train.channels, train.num_classes, train.size)
    try:
        model.load_state_dict(payload["state"])
    except (RuntimeError, KeyError, TypeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise MedaugError(f"{path}: weights do not fit classifier {name!r} for this data ({first})") from None
    info = {"source": "file", "file": path.name, "classifier": name, "spec": payload["spec_json"],
            "checkpoint_hash": file_digest(path)[:16]}
    return model.to(device).eval(), info


def trained_classifier(spec: FilterSpec, splits: Any, cache_dir: str | Path, device: Any,
                       quiet: bool = True) -> tuple[Any, dict[str, Any]]:
    """The filter's classifier trained with `spec.recipe` on the real train split, or loaded from
    `generator eval`'s reference cache under `cache_dir` (the same function trains and caches it)."""
    from medaug.generators.evaluate import (
        REFERENCE_DIR,
        EvalOptions,
        recipe_spec,
        reference_classifier,
    )
    from medaug.store.generator_results import GENERATOR_EVAL_DIR

    options = EvalOptions(recipe=spec.recipe, recipe_overrides=dict(spec.recipe_set), device=None)
    ref_spec = recipe_spec(splits.train, spec.recipe, options)
    ref = reference_classifier(splits, ref_spec, Path(cache_dir), device, quiet=quiet)
    return ref.model.eval(), {"source": "trained", "recipe": spec.recipe, "classifier": ref_spec.classifier,
                              "spec": ref.spec_json, "checkpoint_hash": ref.checkpoint_hash,
                              "cache": f"{GENERATOR_EVAL_DIR}/{REFERENCE_DIR}", "trtr_acc": ref.trtr_acc,
                              "trtr_balanced_acc": ref.trtr_balanced_acc}


@dataclass
class PreparedFilter:
    """A filter ready to judge samples: `judge(images, labels) -> (keep mask, scores)`."""

    spec: FilterSpec
    judge: Judge
    classifier: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def tag(self) -> str:
        return self.spec.tag(self.classifier["checkpoint_hash"] if self.classifier else None)


def prepare(spec: FilterSpec, splits: Any, *, device: Any = "cpu", cache_dir: str | Path | None = None,
            quiet: bool = True) -> PreparedFilter:
    """Load or train what the filter needs (its classifier, the real features) and return its judge."""
    from medaug.generators import memorisation as mem

    train = splits.train
    if spec.kind == "near-copy":
        def near_copy(images: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            found = mem.nearest_train(images, train.images, sample_labels=labels, train_labels=train.labels,
                                      k=int(spec.k), ratio=float(spec.threshold))
            with np.errstate(divide="ignore", invalid="ignore"):
                ratio = np.where(found.distance == 0, 0.0, found.distance / found.kth_distance)
            return ~found.near_copy, ratio

        return PreparedFilter(spec, near_copy)
    from medaug.generators.base import resolve_device

    dev = resolve_device(device)
    if spec.classifier is not None:
        model, info = load_classifier(spec.classifier, train, dev)
    else:
        if cache_dir is None:
            raise MedaugError(f"filter {spec.kind}: needs a classifier file or a folder to cache the one it trains")
        model, info = trained_classifier(spec, splits, cache_dir, dev, quiet=quiet)

    if spec.kind == "confidence":
        def confidence(images: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            p = label_probability(model, images, labels, train.task, dev)
            return p >= spec.threshold, p

        return PreparedFilter(spec, confidence, info)

    from medaug.metrics.features import ClassifierFeatures

    extractor = ClassifierFeatures(model, name=f"filter:{info['classifier']}", device=dev)
    real = extractor(train.images)
    small = [(train.class_names[c], int(n)) for c, n in enumerate(train.class_counts()) if n <= int(spec.k)]
    if small:
        name, n = small[0]
        raise MedaugError(f"filter realism: class {name!r} has {n} train images; the k-NN balls need more than "
                          f"k = {spec.k}")

    def realism(images: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        feats = extractor(images)
        scores = np.full(len(images), math.nan)
        for c in np.unique(labels):
            rows = np.flatnonzero(labels == c)
            scores[rows] = realism_scores(real[train.labels == c], feats[rows], int(spec.k))
        return scores >= spec.threshold, scores

    return PreparedFilter(spec, realism, info, {"features": extractor.describe(), "within": "class"})


# ----------------------------------------------------------------------------- drawing

def redraw_seed(seed: int, round_: int) -> int:
    """Seed of the `round_`-th extra draw (1, 2, ...): derived, never another set's seed."""
    return int(np.random.SeedSequence([seed, round_]).generate_state(1)[0] >> 1)


def next_draw(counts: np.ndarray, drawn: np.ndarray, accepted: np.ndarray, limit: np.ndarray) -> np.ndarray:
    """Per class, how many to draw next: what is missing over the acceptance rate seen so far
    ((accepted + 1) / (drawn + 1), x 1.25), at least what is missing, at most what the limit leaves."""
    missing = np.maximum(counts - accepted, 0)
    rate = (accepted + 1) / (drawn + 1)
    want = np.ceil(1.25 * missing / np.minimum(rate, 1.0)).astype(np.int64)
    want = np.maximum(want, missing)
    return np.where(missing > 0, np.minimum(want, np.maximum(limit - drawn, 0)), 0)


def draw_filtered(sample: Callable[[np.ndarray, int], np.ndarray], counts: np.ndarray, seed: int,
                  prepared: PreparedFilter, class_names: tuple[str, ...] | list[str],
                  first: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray, dict]:
    """Draw, judge and redraw until each class has `counts[c]` accepted samples (module doc).

    `first` is the draw already made with `seed` (labels `labels_for_counts(counts)`).
    Returns the images and labels to write (class order, draw order within a class) and
    the provenance's `filter` record. Raises one MedaugError line when a class is still
    short after `max_draws` x its count.
    """
    from medaug.generators.memorisation import plain
    from medaug.generators.strategies import labels_for_counts

    spec = prepared.spec
    counts = np.asarray(counts, dtype=np.int64)
    k = len(counts)
    limit = np.ceil(spec.max_draws * counts).astype(np.int64)
    drawn = np.zeros(k, dtype=np.int64)
    accepted = np.zeros(k, dtype=np.int64)
    keep_images: list[np.ndarray] = []
    keep_labels: list[np.ndarray] = []
    rounds: list[dict[str, Any]] = []
    scores_kept: list[np.ndarray] = []
    for round_ in range(MAX_ROUNDS):
        if round_ == 0:
            ask, s = counts.copy(), seed
            labels = labels_for_counts(ask)
            images = first[0] if first is not None else sample(labels, s)
        else:
            ask = next_draw(counts, drawn, accepted, limit)
            if not ask.any():
                break
            s = redraw_seed(seed, round_)
            labels = labels_for_counts(ask)
            images = sample(labels, s)
        keep, scores = prepared.judge(images, labels)
        keep = np.asarray(keep, dtype=bool)
        drawn += ask
        got = np.bincount(labels[keep], minlength=k)
        accepted += got
        rounds.append({"seed": int(s), "drawn_per_class": ask.tolist(), "accepted_per_class": got.tolist()})
        keep_images.append(images[keep])
        keep_labels.append(labels[keep])
        scores_kept.append(np.asarray(scores, dtype=np.float64)[keep])
        if (accepted >= counts).all():
            break
    short = [c for c in range(k) if accepted[c] < counts[c]]
    if short:
        c = short[0]
        tally = ", ".join(f"{name} {int(a)}/{int(d)}" for name, a, d in zip(class_names, accepted, drawn) if d)
        raise MedaugError(
            f"filter {spec.kind} ({spec.rule()}): class {class_names[c]!r} has {int(accepted[c])} of "
            f"{int(counts[c])} images after {int(drawn[c])} draws (the limit: max_draws {spec.max_draws:g} x "
            f"{int(counts[c])}; accepted/drawn: {tally}); nothing was written - lower the threshold or raise "
            "max_draws")
    all_images, all_labels = np.concatenate(keep_images), np.concatenate(keep_labels)
    all_scores = np.concatenate(scores_kept)
    order = np.concatenate([np.flatnonzero(all_labels == c)[:n] for c, n in enumerate(counts)])
    kept_scores = all_scores[order]
    record = {
        **spec.to_dict(), "tag": prepared.tag, "rule": spec.rule(),
        "classifier": prepared.classifier, **prepared.extra,  # its file name and hash, never a machine path
        "requested_per_class": counts.tolist(), "drawn_per_class": drawn.tolist(),
        "accepted_per_class": accepted.tolist(), "rejected_per_class": (drawn - accepted).tolist(),
        "kept_per_class": counts.tolist(), "max_draws_per_class": limit.tolist(),
        "acceptance_rate": float(accepted.sum() / drawn.sum()) if drawn.sum() else None,
        "kept_score_min": float(kept_scores.min()) if len(kept_scores) else None,
        "rounds": rounds,
    }
    return np.ascontiguousarray(all_images[order]), all_labels[order], plain(record)
