"""`medaug generator eval`: how good are a generator's images? One Parquet row per evaluation.

For a checkpoint and its real data set (whose train split must be the one the
generator saw), an evaluation:

1. trains - or reuses from OUT/generator-eval/reference/ - the classifiers it needs on
   the real train split with `medaug.experiment.fit_and_test`, cached by (train, val and
   test content hashes, spec), so a study evaluating many generators on one set trains
   each once and their FIDs share one extractor (its digest and checkpoint hash are in
   every row):
   - the *reference* classifier, trained with `--recipe` (default `fast`, medaug's
     strongest cheap recipe; `seed000` is seed 000's CNN protocol, `--classifier` for
     `--classifier-epochs`). Its test metrics are TRTR; its softmax gives the
     confidence metric; the same recipe trained on generated images gives TSTR;
   - the *extractor* classifier whose penultimate layer holds the features of
     FID/KID/PR/DC (`--extractor`): `fast` (default) is a classifier trained with the
     `fast` recipe (fastnet's max-pooled 64-d features before its head); `classifier`
     is the protocol before issue 12, the 128-d penultimate layer of seed 000's CNN
     trained `--classifier-epochs` epochs (its numbers are unchanged); `inception` is
     Inception-v3 from local weights. Why `fast` by default: the 20-epoch CNN's
     features scored near-floor FIDs for BreastMNIST generators whose samples carried
     no label information (TSTR balanced ACC 0.50); a stronger classifier's features
     separate the classes, so a distance in them tracks what a classifier can use.
     `--recipe-set KEY=VALUE` overrides fields of the `fast` recipe (e.g. a shortened
     run in tests); the overrides are in the recorded specs;
2. draws n real train images, n real test images and n generated images with the
   labels of those train images (n = min(--n, |test|, |train|): the floor needs as many
   test images as generated ones). A generator that cannot sample but can
   reconstruct (jvae) is judged on reconstructions of those train images. `--steps`
   and `--guidance` set the sampler of a generator that has one (edm), refused for the
   others as `medaug synthesize` refuses them; the sampler is recorded in the row;
3. computes FID/KID of generated vs train and the floor (test vs train) with the same
   extractor and n, precision/recall (k=3) and density/coverage (k=5) of generated vs
   train features, RMSE/PSNR/SRE/SAM of each generated image against its nearest real
   train image (seed 003), the reference classifier's mean probability of the intended
   class on the generated images per class (seed 001 Table 2);
   *per-class FID*: for each class k, the generated images asked for class k against
   the drawn real train images of class k (and the per-class floor: real test of class
   k against the same), in the same features. A generator that drops a class (its
   class-k samples look like another class) shows a large FID for k; a class with
   fewer than 2 images on either side gets NaN. For a multi-label task class k means
   label k present;
4. checks memorisation (`medaug.generators.memorisation`): each generated image's
   nearest train image (within its class for single-label sets, else in the whole
   train split), in pixel space and in the features of the
   extractor above, the share of near-copies by Carlini et al. 2023's ratio test and its
   train-to-train baseline (row columns), and beside the row in
   OUT/generator-eval/memorisation/ the per-sample neighbours (<eval_id>.json) and a
   montage of the closest pairs (<eval_id>.png, pixel space);
5. with --tstr, trains the reference recipe on |train| generated images (the train
   split's labels; or on --tstr-n of them, TRTR then trained on the same draw of real
   train images; best epoch chosen on the real val split, as for TRTR) and tests it on
   the real test split (TSTR, seed 002 Table 4): ACC, balanced ACC, AUC and the recall of
   each class (0 for a class the generator dropped) beside the same numbers of TRTR.
   Balanced accuracy matters: on an imbalanced set (BreastMNIST: 73 % benign) a
   classifier that learned nothing but the majority class scores a high ACC.

The classifier training comes from the experiment layer (imported lazily: this module
sits below it in the design's layering and is called only from the CLI).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medaug.data.imageset import DatasetSplits, ImageSet
from medaug.errors import MedaugError
from medaug.store.generator_results import GENERATOR_EVAL_DIR, eval_path, write_eval_row

REFERENCE_DIR = "reference"
MEMORISATION_DIR = "memorisation"
#: fast: penultimate layer of a `fast`-recipe classifier (default); classifier: seed 000's
#: CNN (the protocol before issue 12); inception: Inception-v3 from local weights.
EXTRACTORS = ("fast", "classifier", "inception")
#: Recipes of the reference (TRTR, TSTR, confidence) classifier.
EVAL_RECIPES = ("fast", "seed000")
DEFAULT_EXTRACTOR = "fast"
DEFAULT_RECIPE = "fast"


@dataclass(frozen=True)
class EvalOptions:
    """What `medaug generator eval` takes besides the checkpoint and the output folder.

    `tstr_n` caps the TSTR training set (default: |train| images); below |train| the TRTR
    classifier trains on the same number of real train images (a seeded draw), so TSTR
    and TRTR compare like with like while a slow sampler (edm on OrganAMNIST's 34,581
    train images) stays affordable. `recipe_overrides` replace fields of the `fast`
    recipe (tests shorten it); `sampling`
    holds a sampler's options (edm: steps, guidance). `classifier` and
    `classifier_epochs` define the `seed000` recipe and the `classifier` extractor.
    """

    n: int = 2000
    extractor: str = DEFAULT_EXTRACTOR
    inception_weights: str | None = None
    tstr: bool = False
    tstr_n: int | None = None
    seed: int = 0
    recipe: str = DEFAULT_RECIPE
    recipe_overrides: Mapping[str, Any] = field(default_factory=dict)
    classifier: str = "cnn"
    classifier_epochs: int = 20
    kid_subsets: int = 100
    sampling: Mapping[str, Any] = field(default_factory=dict)
    device: str | None = "auto"
    overwrite: bool = False

    def __post_init__(self) -> None:
        from medaug.train.recipes import RECIPE_FIELDS

        if isinstance(self.n, bool) or not isinstance(self.n, int) or self.n < 10:
            raise MedaugError(f"--n {self.n!r}: expected an integer >= 10")
        if self.tstr_n is not None and (isinstance(self.tstr_n, bool) or not isinstance(self.tstr_n, int)
                                        or self.tstr_n < 10):
            raise MedaugError(f"--tstr-n {self.tstr_n!r}: expected an integer >= 10")
        if self.tstr_n is not None and not self.tstr:
            raise MedaugError("--tstr-n sets the size of the TSTR training set: it needs --tstr")
        if self.extractor not in EXTRACTORS:
            raise MedaugError(f"--extractor {self.extractor!r}: expected one of {EXTRACTORS}")
        if self.recipe not in EVAL_RECIPES:
            raise MedaugError(f"--recipe {self.recipe!r}: expected one of {EVAL_RECIPES}")
        stray = sorted(set(self.recipe_overrides) - RECIPE_FIELDS)
        if stray:
            raise MedaugError(f"--recipe-set {stray}: not fields of a recipe; expected some of {sorted(RECIPE_FIELDS)}")
        if self.extractor == "inception" and not self.inception_weights:
            raise MedaugError("--extractor inception needs --inception-weights PATH (a local torchvision "
                              "Inception-v3 state dict; nothing is downloaded)")
        if self.inception_weights and self.extractor != "inception":
            raise MedaugError("--inception-weights is used only with --extractor inception")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise MedaugError(f"--seed {self.seed!r}: expected an integer >= 0")
        if not isinstance(self.classifier_epochs, int) or self.classifier_epochs < 1:
            raise MedaugError(f"--classifier-epochs {self.classifier_epochs!r}: expected an integer >= 1")
        if not isinstance(self.kid_subsets, int) or self.kid_subsets < 1:
            raise MedaugError(f"--kid-subsets {self.kid_subsets!r}: expected an integer >= 1")


@dataclass
class Reference:
    """A classifier trained on the real train split, with its TRTR test metrics and cache file."""

    model: torch.nn.Module
    spec_json: str
    trtr_acc: float
    trtr_auc: float
    trtr_balanced_acc: float
    trtr_recall: list[float] | None = None
    checkpoint_hash: str = ""


def classifier_spec(train: ImageSet, options: EvalOptions):
    """Seed 000's protocol (no augmentation): the `seed000` recipe and the `classifier` extractor."""
    from medaug.experiment import ExperimentSpec

    return ExperimentSpec(dataset=train.name, size=train.size, classifier=options.classifier,
                          epochs=options.classifier_epochs, seed=0)


def recipe_spec(train: ImageSet, recipe: str, options: EvalOptions):
    """The ExperimentSpec of a classifier trained with `recipe` (`fast` with `options.recipe_overrides`)."""
    from medaug.experiment import ExperimentSpec

    if recipe == "seed000":
        return classifier_spec(train, options)
    return ExperimentSpec.from_dict({"dataset": train.name, "size": train.size, "recipe": recipe, "seed": 0,
                                     **dict(options.recipe_overrides)}, where="--recipe-set")


def extractor_spec(train: ImageSet, options: EvalOptions):
    """The spec of the classifier whose penultimate layer is the extractor (None: Inception)."""
    if options.extractor == "inception":
        return None
    return classifier_spec(train, options) if options.extractor == "classifier" else recipe_spec(train, "fast", options)


def reference_classifier(splits: DatasetSplits, spec: Any, out_dir: Path, device: torch.device,
                         quiet: bool = True) -> Reference:
    """Train `spec`'s classifier on the real train split, or load it from the cache."""
    import hashlib

    from medaug.classifiers import build_classifier
    from medaug.experiment import fit_and_test
    from medaug.hashing import file_digest
    from medaug.store.atomic import atomic_write

    train = splits.train
    key = hashlib.sha256(f"{train.content_hash}|{splits.val.content_hash}|{splits.test.content_hash}|"
                         f"{spec.canonical_json()}".encode()).hexdigest()[:16]
    path = out_dir / GENERATOR_EVAL_DIR / REFERENCE_DIR / f"{train.name}-{train.size}-{spec.classifier}-{key}.pt"
    model = build_classifier(spec.classifier, train.channels, train.num_classes, train.size)
    if path.is_file():
        try:
            saved = torch.load(path, map_location="cpu", weights_only=True)
            model.load_state_dict(saved["state"])
            recall = saved.get("trtr_recall")  # caches written before per-class recall lack it
            return Reference(model.to(device).eval(), saved["spec_json"], float(saved["trtr_acc"]),
                             float(saved["trtr_auc"]), float(saved["trtr_balanced_acc"]),
                             [float(r) for r in recall] if recall is not None else None, file_digest(path)[:16])
        except Exception:  # a stale or damaged cache is retrained, never trusted
            pass
    fit = fit_and_test(spec, train, splits.val, splits.test, device=device, quiet=quiet)
    state = {k: v.detach().cpu().clone() for k, v in fit.model.state_dict().items()}
    recall = [float(r) for r in fit.test.recall]
    payload = {"state": state, "spec_json": spec.canonical_json(), "trtr_acc": float(fit.test.acc),
               "trtr_auc": float(fit.test.auc), "trtr_balanced_acc": float(fit.test.balanced_acc),
               "trtr_recall": recall}
    atomic_write(path, lambda tmp: torch.save(payload, tmp))
    model.load_state_dict(state)
    return Reference(model.to(device).eval(), spec.canonical_json(), float(fit.test.acc), float(fit.test.auc),
                     float(fit.test.balanced_acc), recall, file_digest(path)[:16])


def class_confidence(model: torch.nn.Module, images: np.ndarray, labels: np.ndarray, task: str, num_classes: int,
                     device: torch.device) -> tuple[list[float], float]:
    """Mean classifier probability of the intended class, per class (NaN: no image) and overall (seed 001)."""
    from medaug.train.loop import predict

    x = torch.from_numpy(np.ascontiguousarray(images)).to(device)
    y = torch.from_numpy(np.ascontiguousarray(labels)).to(device)
    scores, _ = predict(model, x, y, task)
    p = scores[np.arange(len(labels)), labels]
    per_class = [float(p[labels == k].mean()) if (labels == k).any() else math.nan for k in range(num_classes)]
    return per_class, float(p.mean())


def generate(gen: Any, labels: np.ndarray, images_for_reconstruction: np.ndarray, seed: int) -> tuple[np.ndarray, str]:
    """Samples for `labels`, or (generators that only reconstruct) reconstructions of the given images."""
    if getattr(gen, "can_sample", True):
        return gen.sample(labels, seed), "sample"
    if getattr(gen, "can_reconstruct", False):
        return gen.reconstruct(images_for_reconstruction, labels, seed=seed), "reconstruct"
    raise MedaugError(f"generator {gen.name!r} can neither sample nor reconstruct images")


def make_extractor(options: EvalOptions, reference: Reference | None, device: torch.device):
    """The feature extractor `options.extractor` names (`reference`: its classifier; None for Inception)."""
    from medaug.metrics.features import ClassifierFeatures, InceptionFeatures

    if options.extractor == "inception":
        return InceptionFeatures(options.inception_weights, device=device)  # type: ignore[arg-type]
    assert reference is not None
    return ClassifierFeatures(reference.model, name=extractor_label(options), device=device)


def extractor_label(options: EvalOptions) -> str:
    """The row's `extractor`: fast:fastnet, classifier:<name> (seed 000's protocol) or inception-v3."""
    return {"fast": "fast:fastnet", "classifier": f"classifier:{options.classifier}"}.get(options.extractor,
                                                                                       "inception-v3")


def default_fid_extractor(splits: DatasetSplits, out_dir: str | Path, device: torch.device | str | None = "auto",
                          *, classifier: str = "cnn", epochs: int = 20, quiet: bool = True):
    """The no-download FID extractor of a generator's periodic FID during training: the
    penultimate layer of seed 000's classifier trained on the real train split (the
    `classifier` extractor of `generator eval`, cached in OUT/generator-eval/reference/ and
    shared with `generator eval --extractor classifier --out OUT`).

    StyleGAN2-ADA's periodic FID (`medaug generator fit --set fid_kimg=K`) uses it.
    """
    from medaug.generators.base import resolve_device

    options = EvalOptions(extractor="classifier", classifier=classifier, classifier_epochs=epochs)
    dev = resolve_device(device)
    reference = reference_classifier(splits, classifier_spec(splits.train, options), Path(out_dir), dev, quiet=quiet)
    return make_extractor(options, reference, dev)


def eval_id(generator: str, dataset: str, size: int, ckpt_hash: str, extractor: str, n: int, seed: int,
            tstr: bool, recipe: str = DEFAULT_RECIPE, sampling: Mapping[str, Any] | None = None,
            tstr_n: int | None = None) -> str:
    """The evaluation's file name; the recipe, TSTR size and sampler options appear when not the defaults."""
    extra = "" if recipe == DEFAULT_RECIPE else f"-{recipe}"
    extra += f"-tstrn{tstr_n}" if tstr_n is not None else ""
    extra += "".join(f"-{k}{v:g}" if isinstance(v, float) else f"-{k}{v}" for k, v in sorted((sampling or {}).items()))
    return (f"{generator}-{dataset}-{size}-{ckpt_hash[:8]}-{extractor}-n{n}-s{seed}{'-tstr' if tstr else ''}"
            f"{extra}")


def evaluation_id(generator: str, ckpt_hash: str, train: ImageSet, n_test: int, options: EvalOptions,
                  sampling: Mapping[str, Any] | None) -> str:
    """The eval_id `evaluate_generator` gives this evaluation (`sampling`: the checked sampler options)."""
    tstr_n = tstr_size(options, len(train))
    return eval_id(generator, train.name, train.size, ckpt_hash, options.extractor, min(options.n, len(train), n_test),
                   options.seed, options.tstr, options.recipe, sampling,
                   tstr_n if tstr_n is not None and tstr_n < len(train) else None)


def class_members(labels: np.ndarray, num_classes: int, multi_label: bool) -> list[np.ndarray]:
    """Indices of each class's images (multi-label: images with label k present)."""
    labels = np.asarray(labels)
    if multi_label:
        return [np.flatnonzero(labels[:, k] > 0) for k in range(num_classes)]
    flat = labels.reshape(len(labels), -1)[:, 0] if labels.ndim > 1 else labels
    return [np.flatnonzero(flat == k) for k in range(num_classes)]


def per_class_fid(f_real: np.ndarray, real_labels: np.ndarray, f_other: np.ndarray, other_labels: np.ndarray,
                  num_classes: int, multi_label: bool) -> list[float]:
    """FID of each class's `f_other` features against the same class's `f_real` (NaN: < 2 images a side)."""
    from medaug.metrics.generative import frechet_distance

    real = class_members(real_labels, num_classes, multi_label)
    other = class_members(other_labels, num_classes, multi_label)
    return [frechet_distance(f_real[r], f_other[o]) if len(r) >= 2 and len(o) >= 2 else math.nan
            for r, o in zip(real, other)]


def evaluate_generator(checkpoint: str | Path, out_dir: str | Path, options: EvalOptions, *,
                       data_root: str | Path | None = None, splits: DatasetSplits | None = None,
                       verify_md5: bool = True, quiet: bool = True,
                       extra_columns: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Evaluate one checkpoint; write OUT/generator-eval/<eval_id>.parquet and return the row.

    `extra_columns`: more columns of the row's schema (a generator study's trial, status, fit)."""
    import torchmetrics
    import zarr

    from medaug import __version__
    from medaug.generators import baseline  # noqa: F401  (registers class-mean-noise)
    from medaug.generators.base import (
        load_generator,
        read_checkpoint_meta,
        resolve_device,
    )
    from medaug.generators.data import splits_of_checkpoint
    from medaug.generators.synthesize import (
        check_sampling_options,
        check_train_matches,
        checkpoint_content_hash,
    )
    from medaug.metrics import generative as gm

    t0 = time.perf_counter()
    out_dir = Path(out_dir)
    ckpt = Path(checkpoint).expanduser()
    meta = read_checkpoint_meta(ckpt)
    sampling = check_sampling_options(meta["name"], options.sampling)  # --steps for a GAN: refused now
    ckpt_hash = checkpoint_content_hash(ckpt)
    if options.extractor == "inception":
        from medaug.metrics.features import load_inception

        load_inception(options.inception_weights)  # refuse bad weights before any training  # type: ignore[arg-type]
    if splits is None:
        splits = splits_of_checkpoint(meta, data_root, verify_md5=verify_md5)
    train, test = splits.train, splits.test
    check_train_matches(meta, train, ckpt)
    n = min(options.n, len(train), len(test))
    if n < 10:
        raise MedaugError(f"{train.name}: too few images for an evaluation (n = {n}; need >= 10 per side)")
    ref_spec = recipe_spec(train, options.recipe, options)  # bad --recipe-set values refused before training
    feat_spec = extractor_spec(train, options)
    tstr_n = tstr_size(options, len(train))
    eid = evaluation_id(meta["name"], ckpt_hash, train, len(test), options, sampling)
    if not options.overwrite and eval_path(out_dir, eid).exists():
        raise MedaugError(f"{eval_path(out_dir, eid)}: this evaluation exists; pass --overwrite to redo it")
    device = resolve_device(options.device)
    gen = load_generator(ckpt, device=device)
    if sampling:
        gen.set_sampling(**sampling)  # type: ignore[attr-defined]  (checked: the generator lists them)

    reference = reference_classifier(splits, ref_spec, out_dir, device, quiet=quiet)
    feat_ref = None
    if feat_spec is not None:  # the same spec is the same cache file: trained once
        feat_ref = (reference if feat_spec.canonical_json() == ref_spec.canonical_json()
                    else reference_classifier(splits, feat_spec, out_dir, device, quiet=quiet))
    extractor = make_extractor(options, feat_ref, device)

    rng = np.random.default_rng(options.seed)
    train_idx = np.sort(rng.choice(len(train), n, replace=False))
    test_idx = np.sort(rng.choice(len(test), n, replace=False))
    labels = train.labels[train_idx]
    generated, mode = generate(gen, labels, train.images[train_idx], options.seed)

    f_train = extractor(train.images[train_idx])
    f_test = extractor(test.images[test_idx])
    f_gen = extractor(generated)
    fid = gm.frechet_distance(f_train, f_gen)
    fid_floor = gm.frechet_distance(f_train, f_test)
    fid_per_class = per_class_fid(f_train, labels, f_gen, labels, train.num_classes, train.multi_label)
    fid_floor_per_class = per_class_fid(f_train, labels, f_test, test.labels[test_idx], train.num_classes,
                                        train.multi_label)
    kid_mean, kid_std = gm.kernel_distance(f_train, f_gen, subsets=options.kid_subsets, seed=options.seed)
    kid_floor, _ = gm.kernel_distance(f_train, f_test, subsets=options.kid_subsets, seed=options.seed)
    precision, recall = gm.precision_recall(f_train, f_gen)
    density, coverage = gm.density_coverage(f_train, f_gen)
    pixels = gm.nearest_real_similarity(generated, train.images)
    per_class, mean_conf = class_confidence(reference.model, generated, labels, train.task, train.num_classes, device)
    memo = memorisation_check(generated, labels, f_gen, train, extractor, out_dir, eid, options.seed)

    tstr, trtr = None, reference
    if tstr_n is not None:
        tstr_splits = tstr_subset(splits, tstr_n, options.seed)
        if tstr_splits is not splits:
            trtr = reference_classifier(tstr_splits, ref_spec, out_dir, device, quiet=quiet)
        tstr = train_on_synthetic(gen, tstr_splits, ref_spec, options.seed, device, quiet)

    row: dict[str, Any] = {
        "eval_id": eid,
        "generator": meta["name"],
        "dataset": train.name,
        "size": train.size,
        "checkpoint": str(ckpt.resolve()),
        "checkpoint_hash": ckpt_hash,
        "train_hash": train.content_hash,
        "extractor": extractor_label(options),
        "extractor_hash": extractor.digest,
        "extractor_checkpoint_hash": feat_ref.checkpoint_hash if feat_ref is not None else None,
        "extractor_spec": feat_ref.spec_json if feat_ref is not None else None,
        "class_names": [str(c) for c in train.class_names],
        "n": n,
        "fid": fid,
        "fid_floor": fid_floor,
        "fid_per_class": fid_per_class,
        "fid_floor_per_class": fid_floor_per_class,
        "kid_mean": kid_mean,
        "kid_std": kid_std,
        "kid_floor_mean": kid_floor,
        "precision": precision,
        "recall": recall,
        "density": density,
        "coverage": coverage,
        **pixels,
        **memo,
        "confidence_per_class": per_class,
        "mean_confidence": mean_conf,
        "tstr_acc": float(tstr.acc) if tstr else None,
        "tstr_auc": float(tstr.auc) if tstr else None,
        "trtr_acc": trtr.trtr_acc,
        "trtr_auc": trtr.trtr_auc,
        "tstr_balanced_acc": float(tstr.balanced_acc) if tstr else None,
        "trtr_balanced_acc": trtr.trtr_balanced_acc,
        "tstr_recall_per_class": [float(r) for r in tstr.recall] if tstr else None,
        "trtr_recall_per_class": trtr.trtr_recall,
        "tstr_n": tstr_n,
        "recipe": ref_spec.recipe,
        "classifier_spec": reference.spec_json,
        "sampling": json.dumps(gen.sampling_provenance(), sort_keys=True)
        if hasattr(gen, "sampling_provenance") else None,
        "generated_by": mode,
        "seed": options.seed,
        "versions": json.dumps({"medaug": __version__, "torch": torch.__version__,
                                "torchmetrics": torchmetrics.__version__, "zarr": zarr.__version__,
                                "dataset": splits.version}, sort_keys=True),
        "wall_seconds": time.perf_counter() - t0,
        "device": str(device),
        "created_at": datetime.now(timezone.utc),
        **dict(extra_columns or {}),
    }
    write_eval_row(row, out_dir)
    return row


def memorisation_paths(out_dir: str | Path, eid: str) -> tuple[Path, Path]:
    """Where an evaluation's per-sample neighbours (JSON) and closest-pairs montage (PNG) go."""
    folder = Path(out_dir) / GENERATOR_EVAL_DIR / MEMORISATION_DIR
    return folder / f"{eid}.json", folder / f"{eid}.png"


def memorisation_check(generated: np.ndarray, labels: np.ndarray, f_gen: np.ndarray, train: ImageSet, extractor: Any,
                       out_dir: Path, eid: str, seed: int) -> dict[str, Any]:
    """Near-copies of train images among `generated`, in pixel space and in `extractor`'s features.

    Neighbours come from the whole train split (within the sample's class; over all of
    train for a multi-label task). Writes the per-sample JSON and the montage; returns the
    row's memorisation columns.
    """
    from medaug.generators import memorisation as mem

    s_lab, t_lab = (None, None) if train.multi_label else (labels, train.labels)
    where = mem.within(s_lab, t_lab)
    pixel, pixel_base = mem.check(generated, train.images, sample_labels=s_lab, train_labels=t_lab, seed=seed)
    feature, feature_base = mem.check(f_gen, extractor(train.images), sample_labels=s_lab, train_labels=t_lab,
                                      seed=seed)
    json_path, png_path = memorisation_paths(out_dir, eid)
    mem.write_json(json_path, {
        "eval_id": eid, "rule": mem.describe(mem.NEAR_COPY_K, where), "k": mem.NEAR_COPY_K, "within": where,
        "extractor": extractor.describe(), "labels": np.asarray(labels).tolist(),
        "pixel": {**mem.summary(pixel, pixel_base, s_lab, train.num_classes), **mem.per_sample(pixel)},
        "feature": {**mem.summary(feature, feature_base, s_lab, train.num_classes), **mem.per_sample(feature)},
    })
    mem.write_montage(generated, train.images, pixel, png_path,
                      title=f"{eid}: closest pairs, sample | nearest train image (red: near-copy, pixel space)")
    return {"near_copy_rule": mem.describe(mem.NEAR_COPY_K, where), "near_copy_k": mem.NEAR_COPY_K,
            "near_copy_share_pixel": pixel.share, "near_copy_baseline_pixel": pixel_base.share,
            "near_copy_share_feature": feature.share, "near_copy_baseline_feature": feature_base.share,
            "nn_distance_pixel_quantiles": pixel.quantiles(), "nn_distance_feature_quantiles": feature.quantiles()}


def tstr_size(options: EvalOptions, n_train: int) -> int | None:
    """Images TSTR (and TRTR) train on: |train|, or `tstr_n` below it; None without TSTR."""
    if not options.tstr:
        return None
    return n_train if options.tstr_n is None else min(options.tstr_n, n_train)


def tstr_subset(splits: DatasetSplits, m: int, seed: int) -> DatasetSplits:
    """`splits` with a seeded draw of `m` train images (the splits themselves when m = |train|)."""
    import dataclasses

    if m >= len(splits.train):
        return splits
    index = np.sort(np.random.default_rng([seed, m]).choice(len(splits.train), m, replace=False))
    return dataclasses.replace(splits, train=splits.train.subset(index))


def train_on_synthetic(gen: Any, splits: DatasetSplits, spec: Any, seed: int, device: torch.device,
                       quiet: bool = True):
    """TSTR: `spec` (the reference recipe) trained on |train| generated images (train labels),
    tested on real test. Returns the test `ClassificationMetrics` (ACC, AUC, balanced ACC,
    per-class recall, ...)."""
    from medaug.experiment import fit_and_test

    train = splits.train
    images, _ = generate(gen, train.labels, train.images, seed)
    synthetic = ImageSet(name=train.name, split="train", images=images, labels=train.labels.copy(),
                         class_names=train.class_names, task=train.task)
    return fit_and_test(spec, synthetic, splits.val, splits.test, device=device, quiet=quiet).test
