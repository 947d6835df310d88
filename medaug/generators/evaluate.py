"""`medaug generator eval`: how good are a generator's images? One Parquet row per evaluation.

For a checkpoint and its real data set (whose train split must be the one the
generator saw), an evaluation:

1. trains - or reuses from OUT/generator-eval/reference/ - a reference classifier on
   the real train split with `medaug.experiment.fit_and_test` (a fixed spec: seed 000's
   CNN protocol by default). Its test metrics are TRTR; its penultimate layer is the
   default feature extractor; its softmax gives the confidence metric. Caching it by
   (data, spec) makes FIDs of different generators on one data set comparable: they
   share the extractor (its digest is in every row);
2. draws n real train images, n real test images and n generated images with the
   labels of those train images (n = min(--n, |test|, |train|): the floor needs as many
   test images as generated ones). A generator that cannot sample but can
   reconstruct (jvae) is judged on reconstructions of those train images;
3. computes FID/KID of generated vs train and the floor (test vs train) with the same
   extractor and n, precision/recall (k=3) and density/coverage (k=5) of generated vs
   train features, RMSE/PSNR/SRE/SAM of each generated image against its nearest real
   train image (seed 003), the reference classifier's mean probability of the intended
   class on the generated images per class (seed 001 Table 2);
4. checks memorisation (`medaug.generators.memorisation`): each generated image's
   nearest image in the whole train split, in pixel space and in the features of the
   extractor above, the share of near-copies by Carlini et al. 2023's ratio test and its
   train-to-train baseline (row columns), and beside the row in
   OUT/generator-eval/memorisation/ the per-sample neighbours (<eval_id>.json) and a
   montage of the closest pairs (<eval_id>.png, pixel space);
5. with --tstr, trains the same classifier spec on |train| generated images (the train
   split's labels; best epoch chosen on the real val split, as for TRTR) and tests it on
   the real test split (TSTR, seed 002 Table 4). Balanced accuracy is reported beside
   ACC/AUC: on an imbalanced set (BreastMNIST: 73 % benign) a classifier that learned
   nothing but the majority class scores a high ACC.

The classifier training comes from the experiment layer (imported lazily: this module
sits below it in the design's layering and is called only from the CLI).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
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
EXTRACTORS = ("classifier", "inception")


@dataclass(frozen=True)
class EvalOptions:
    """What `medaug generator eval` takes besides the checkpoint and the output folder."""

    n: int = 2000
    extractor: str = "classifier"
    inception_weights: str | None = None
    tstr: bool = False
    seed: int = 0
    classifier: str = "cnn"
    classifier_epochs: int = 20
    kid_subsets: int = 100
    device: str | None = "auto"
    overwrite: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.n, bool) or not isinstance(self.n, int) or self.n < 10:
            raise MedaugError(f"--n {self.n!r}: expected an integer >= 10")
        if self.extractor not in EXTRACTORS:
            raise MedaugError(f"--extractor {self.extractor!r}: expected one of {EXTRACTORS}")
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
    """The reference classifier trained on real data, with its TRTR test metrics."""

    model: torch.nn.Module
    spec_json: str
    trtr_acc: float
    trtr_auc: float
    trtr_balanced_acc: float


def classifier_spec(train: ImageSet, options: EvalOptions):
    """The ExperimentSpec of the reference and TSTR classifiers (seed 000's protocol, no augmentation)."""
    from medaug.experiment import ExperimentSpec

    return ExperimentSpec(dataset=train.name, size=train.size, classifier=options.classifier,
                          epochs=options.classifier_epochs, seed=0)


def reference_classifier(splits: DatasetSplits, options: EvalOptions, out_dir: Path, device: torch.device,
                         quiet: bool = True) -> Reference:
    """Train the reference classifier on the real train split, or load it from the cache."""
    import hashlib

    from medaug.classifiers import build_classifier
    from medaug.experiment import fit_and_test
    from medaug.store.atomic import atomic_write

    train = splits.train
    spec = classifier_spec(train, options)
    key = hashlib.sha256(f"{train.content_hash}|{splits.val.content_hash}|{splits.test.content_hash}|"
                         f"{spec.canonical_json()}".encode()).hexdigest()[:16]
    path = out_dir / GENERATOR_EVAL_DIR / REFERENCE_DIR / f"{train.name}-{train.size}-{options.classifier}-{key}.pt"
    model = build_classifier(spec.classifier, train.channels, train.num_classes, train.size)
    if path.is_file():
        try:
            saved = torch.load(path, map_location="cpu", weights_only=True)
            model.load_state_dict(saved["state"])
            return Reference(model.to(device).eval(), saved["spec_json"], float(saved["trtr_acc"]),
                             float(saved["trtr_auc"]), float(saved["trtr_balanced_acc"]))
        except Exception:  # a stale or damaged cache is retrained, never trusted
            pass
    fit = fit_and_test(spec, train, splits.val, splits.test, device=device, quiet=quiet)
    state = {k: v.detach().cpu().clone() for k, v in fit.model.state_dict().items()}
    payload = {"state": state, "spec_json": spec.canonical_json(), "trtr_acc": float(fit.test.acc),
               "trtr_auc": float(fit.test.auc), "trtr_balanced_acc": float(fit.test.balanced_acc)}
    atomic_write(path, lambda tmp: torch.save(payload, tmp))
    model.load_state_dict(state)
    return Reference(model.to(device).eval(), spec.canonical_json(), float(fit.test.acc), float(fit.test.auc),
                     float(fit.test.balanced_acc))


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


def make_extractor(options: EvalOptions, reference: Reference, device: torch.device):
    from medaug.metrics.features import ClassifierFeatures, InceptionFeatures

    if options.extractor == "inception":
        return InceptionFeatures(options.inception_weights, device=device)  # type: ignore[arg-type]
    return ClassifierFeatures(reference.model, name=f"classifier:{options.classifier}", device=device)


def default_fid_extractor(splits: DatasetSplits, out_dir: str | Path, device: torch.device | str | None = "auto",
                          *, classifier: str = "cnn", epochs: int = 20, quiet: bool = True):
    """The default, no-download FID extractor for `splits`: the penultimate layer of the
    reference classifier trained on the real train split (cached in
    OUT/generator-eval/reference/, shared with `generator eval --out OUT`, so FIDs logged
    during training and those of a later evaluation use the same features).

    StyleGAN2-ADA's periodic FID (`medaug generator fit --set fid_kimg=K`) uses it.
    """
    from medaug.generators.base import resolve_device

    options = EvalOptions(classifier=classifier, classifier_epochs=epochs)
    dev = resolve_device(device)
    reference = reference_classifier(splits, options, Path(out_dir), dev, quiet=quiet)
    return make_extractor(options, reference, dev)


def eval_id(generator: str, dataset: str, size: int, ckpt_hash: str, extractor: str, n: int, seed: int,
            tstr: bool) -> str:
    return f"{generator}-{dataset}-{size}-{ckpt_hash[:8]}-{extractor}-n{n}-s{seed}{'-tstr' if tstr else ''}"


def evaluate_generator(checkpoint: str | Path, out_dir: str | Path, options: EvalOptions, *,
                       data_root: str | Path | None = None, splits: DatasetSplits | None = None,
                       verify_md5: bool = True, quiet: bool = True) -> dict[str, Any]:
    """Evaluate one checkpoint; write OUT/generator-eval/<eval_id>.parquet and return the row."""
    import torchmetrics
    import zarr

    from medaug import __version__
    from medaug.generators import baseline  # noqa: F401  (registers class-mean-noise)
    from medaug.generators.base import load_generator, read_checkpoint_meta, resolve_device
    from medaug.generators.data import splits_of_checkpoint
    from medaug.generators.synthesize import check_train_matches, checkpoint_content_hash
    from medaug.metrics import generative as gm

    t0 = time.perf_counter()
    out_dir = Path(out_dir)
    ckpt = Path(checkpoint).expanduser()
    meta = read_checkpoint_meta(ckpt)
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
    extractor_label = f"classifier:{options.classifier}" if options.extractor == "classifier" else "inception-v3"
    eid = eval_id(meta["name"], train.name, train.size, ckpt_hash, options.extractor, n, options.seed, options.tstr)
    if not options.overwrite and eval_path(out_dir, eid).exists():
        raise MedaugError(f"{eval_path(out_dir, eid)}: this evaluation exists; pass --overwrite to redo it")
    device = resolve_device(options.device)
    gen = load_generator(ckpt, device=device)

    reference = reference_classifier(splits, options, out_dir, device, quiet=quiet)
    extractor = make_extractor(options, reference, device)

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
    kid_mean, kid_std = gm.kernel_distance(f_train, f_gen, subsets=options.kid_subsets, seed=options.seed)
    kid_floor, _ = gm.kernel_distance(f_train, f_test, subsets=options.kid_subsets, seed=options.seed)
    precision, recall = gm.precision_recall(f_train, f_gen)
    density, coverage = gm.density_coverage(f_train, f_gen)
    pixels = gm.nearest_real_similarity(generated, train.images)
    per_class, mean_conf = class_confidence(reference.model, generated, labels, train.task, train.num_classes, device)
    memo = memorisation_check(generated, labels, f_gen, train, extractor, out_dir, eid, options.seed)

    tstr_acc = tstr_auc = tstr_bacc = None
    if options.tstr:
        tstr_acc, tstr_auc, tstr_bacc = train_on_synthetic(gen, splits, options, device, quiet)

    row: dict[str, Any] = {
        "eval_id": eid,
        "generator": meta["name"],
        "dataset": train.name,
        "size": train.size,
        "checkpoint": str(ckpt.resolve()),
        "checkpoint_hash": ckpt_hash,
        "train_hash": train.content_hash,
        "extractor": extractor_label,
        "extractor_hash": extractor.digest,
        "n": n,
        "fid": fid,
        "fid_floor": fid_floor,
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
        "tstr_acc": tstr_acc,
        "tstr_auc": tstr_auc,
        "trtr_acc": reference.trtr_acc,
        "trtr_auc": reference.trtr_auc,
        "tstr_balanced_acc": tstr_bacc,
        "trtr_balanced_acc": reference.trtr_balanced_acc,
        "classifier_spec": reference.spec_json,
        "generated_by": mode,
        "seed": options.seed,
        "versions": json.dumps({"medaug": __version__, "torch": torch.__version__,
                                "torchmetrics": torchmetrics.__version__, "zarr": zarr.__version__,
                                "dataset": splits.version}, sort_keys=True),
        "wall_seconds": time.perf_counter() - t0,
        "device": str(device),
        "created_at": datetime.now(timezone.utc),
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


def train_on_synthetic(gen: Any, splits: DatasetSplits, options: EvalOptions, device: torch.device,
                       quiet: bool = True) -> tuple[float, float, float]:
    """TSTR: the reference spec trained on |train| generated images (train labels), tested on real test.

    Returns test (ACC, AUC, balanced ACC).
    """
    from medaug.experiment import fit_and_test

    train = splits.train
    images, _ = generate(gen, train.labels, train.images, options.seed)
    synthetic = ImageSet(name=train.name, split="train", images=images, labels=train.labels.copy(),
                         class_names=train.class_names, task=train.task)
    fit = fit_and_test(classifier_spec(train, options), synthetic, splits.val, splits.test, device=device, quiet=quiet)
    return float(fit.test.acc), float(fit.test.auc), float(fit.test.balanced_acc)
