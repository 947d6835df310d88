"""How long a generator study (`kind: generator`) will take: each trial's fit and its `generator eval`.

The rates, keys and arithmetic are those of a classifier study's estimate
(medaug/sweep/estimate.py); this module only counts the images a generator trial
processes (medaug/sweep/generator_study.py `run_trial`, medaug/generators/evaluate.py).
With the data set's split sizes n_train, n_val, n_test and n = min(eval n, n_train, n_test):

    fit    fit_images (n_train x epochs, or StyleGAN2's kimg)       / fit img/s    of the generator key
           + min(256, n_val) val_fd samples after every epoch        / sample img/s (epoch-loop generators)
    eval   n samples, and m more for TSTR                            / sample img/s
           (m = n_train, or eval tstr_n when smaller)
           3n + n_train images through the FID extractor's classifier (train, test and generated
           images; the whole train split for the memorisation check) / its eval img/s
           n through the reference classifier (the confidence)       / its eval img/s
           TSTR: the reference recipe trained on m generated images: `classifier_trial`
           (epochs_for(m) epochs, a val pass after each, the test pass; no state saves)

The reference classifier (and the extractor's, when it is another spec, and the TRTR
classifier on m real train images when m < n_train) is trained on the real data once
per data set in a study (cached in OUT/generator-eval/reference/):
an item of its own per data set (`ref`), in no trial's estimate. A fit's `fit_seconds` and
its evaluation's `wall_seconds` are what a trial's `fit_s` and `eval_s` estimate
(medaug/analysis/timing.py sets them side by side). Not estimated: Inception features
(no calibrated rate; said in a note), a VAE's per-epoch validation loss, checkpoint writes.

`medaug bench calibrate --study` measures what this needs (`calibration_targets`): each
cell's generator with its settings, and the evaluation's classifiers at the study's sizes.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from medaug.errors import MedaugError
from medaug.sweep.estimate import (
    Calibration,
    DataFacts,
    StudyEstimate,
    TrialEstimate,
    cached_facts,
    classifier_eval_key,
    classifier_trial,
    data_facts,
    fit_images,
    generator_key,
    start_estimate,
)


def eval_specs(trial: Any) -> tuple[Any, Any, Any]:
    """(EvalOptions, reference spec, extractor spec or None for Inception) of a trial's evaluation,
    built by generator eval's own functions (they read a train split's name and size only)."""
    from medaug.generators.evaluate import extractor_spec, recipe_spec
    from medaug.sweep.generator_study import make_eval_options

    options = make_eval_options(trial.eval)
    split = SimpleNamespace(name=trial.dataset, size=trial.size)
    return options, recipe_spec(split, options.recipe, options), extractor_spec(split, options)


def _eval_key(spec: Any, facts: DataFacts) -> str:
    return classifier_eval_key(spec.classifier, spec.size, facts.channels)


def trial_estimate(trial: Any, facts: DataFacts, cal: Calibration) -> TrialEstimate:
    """One trial: its fit (with the per-epoch val_fd samples) and its evaluation (without the
    reference classifier's training: `reference_estimate`)."""
    from medaug.generators import GENERATORS
    from medaug.generators.evaluate import tstr_size
    from medaug.generators.training import EpochGenerator
    from medaug.sweep.generator_study import VAL_FD_N

    cls = GENERATORS.get(trial.generator)
    options, ref_spec, feat_spec = eval_specs(trial)
    key = generator_key(trial.generator, trial.size, facts.channels, trial.config)
    n = min(options.n, facts.n_train, facts.n_test)
    fit_imgs = fit_images(trial.config, facts.n_train)
    val_fd = min(VAL_FD_N, facts.n_val) * trial.epochs if issubclass(cls, EpochGenerator) else 0
    m = tstr_size(options, facts.n_train) or 0
    samples = n + m
    features = 3 * n + facts.n_train if feat_spec is not None else 0
    tstr = classifier_trial(ref_spec, replace(facts, n_train=m), 0, cal, saves=False) if options.tstr else None
    est = TrialEstimate(kind="gen", label=f"{trial.generator} on {trial.dataset} {trial.size} px",
                        run_id=trial.trial_id, key=key, train_images=fit_imgs + (tstr.train_images if tstr else 0),
                        eval_images=features + n + (tstr.eval_images if tstr else 0), sample_images=val_fd + samples)
    est.notes.append(f"fit {fit_imgs:,} img" + (f", TSTR classifier {tstr.train_images:,} img" if tstr else ""))
    if options.extractor == "inception":
        est.notes.append("Inception features not estimated (no calibrated rate)")
    fit = cal.rate("generators", key, "fit_images_per_s")
    sample = cal.rate("generators", key, "sample_images_per_s")
    ref_key = _eval_key(ref_spec, facts)
    feat_key = _eval_key(feat_spec, facts) if feat_spec is not None else None
    ref_rate = cal.rate("evaluation", ref_key, "eval_images_per_s")
    feat_rate = cal.rate("evaluation", feat_key, "eval_images_per_s") if feat_key else None
    lacking = []
    if fit is None:
        lacking.append(f"generator {key}")
    elif sample is None:
        lacking.append(f"sampling of generator {key}" + ("" if getattr(cls, "can_sample", True) else
                                                          " (it only reconstructs: no rate is measured)"))
    lacking += [f"eval {k}" for k, r in ((ref_key, ref_rate), (feat_key, feat_rate)) if k and r is None]
    if tstr is not None and tstr.missing:
        lacking += tstr.missing.removeprefix("not calibrated: ").split(", ")
    if lacking:
        est.missing = "not calibrated: " + ", ".join(dict.fromkeys(lacking))
        return est
    fit_s = fit_imgs / fit + val_fd / sample
    eval_s = samples / sample + n / ref_rate + (features / feat_rate if feat_rate else 0.0) + (
        tstr.compute_s if tstr else 0.0)
    est.parts = {"fit_s": fit_s, "eval_s": eval_s}
    est.compute_s = fit_s + eval_s
    est.setup_s = cal.trial_setup_s or 0.0
    if trial.config.get("early_stopping_patience"):
        est.notes.append("early stopping may end the fit sooner")
    return est


def reference_key(trial: Any) -> str:
    """What makes two trials share their reference classifiers (evaluate.py caches them by the
    splits' content and the spec): data set, size, data options and the eval options."""
    return json.dumps([trial.dataset, trial.size, trial.data_options, trial.eval], sort_keys=True, default=repr)


def reference_estimate(trial: Any, facts: DataFacts, cal: Calibration) -> TrialEstimate:
    """The classifiers an evaluation trains on the real train split (reference, and the
    extractor's when another spec, the TRTR one on fewer images with eval tstr_n), once per
    data set in a study."""
    from medaug.generators.evaluate import tstr_size

    options, ref_spec, feat_spec = eval_specs(trial)
    specs = [ref_spec] + ([feat_spec] if feat_spec is not None and
                          feat_spec.canonical_json() != ref_spec.canonical_json() else [])
    parts = [classifier_trial(spec, facts, 0, cal, saves=False) for spec in specs]
    m = tstr_size(options, facts.n_train)
    if m is not None and m < facts.n_train:  # TRTR on the TSTR set's size
        specs.append(ref_spec)
        parts.append(classifier_trial(ref_spec, replace(facts, n_train=m), 0, cal, saves=False))
    est = TrialEstimate(kind="ref", label=f"reference classifier{'s' if len(parts) > 1 else ''} "
                        f"({', '.join(s.classifier for s in specs)}) on {trial.dataset} {trial.size} px, trained once",
                        key=parts[0].key, train_images=sum(p.train_images for p in parts),
                        eval_images=sum(p.eval_images for p in parts))
    missing = [p.missing for p in parts if p.missing]
    if missing:
        est.missing = "; ".join(missing)
    else:
        est.compute_s = sum(p.compute_s for p in parts)
    return est


def estimate_generator_study(study: Any, cal: Calibration | None, *, concurrency: int, cpus_per_trial: float,
                             gpus_per_trial: float, missing: str = "",
                             facts: Callable[[str, int, Mapping[str, Any]], DataFacts] | None = None
                             ) -> StudyEstimate:
    """Every cell's trial (searched fields at their defaults, x the trials per cell) and the
    reference classifiers of each data set. `cal` None: nothing is estimated, `missing` says why."""
    est = start_estimate(study, cal, concurrency=concurrency, cpus_per_trial=cpus_per_trial,
                         gpus_per_trial=gpus_per_trial, missing=missing)
    if cal is None:
        return est
    facts_of = cached_facts(facts)
    refs: dict[str, TrialEstimate] = {}
    for cell in study.cells:
        trial = study.trial(cell)
        f = facts_of(trial.dataset, trial.size, trial.data_options)
        if isinstance(f, MedaugError):
            item = TrialEstimate(kind="gen", label="", run_id=trial.trial_id, missing=f"split sizes unknown: {f}")
        else:
            item = trial_estimate(trial, f, cal)
            refs.setdefault(reference_key(trial), reference_estimate(trial, f, cal))
        item.label = f"{cell.label}: {item.label}" if item.label else cell.label
        item.cell, item.count = cell.index, study.trials_per_cell
        est.items.append(item)
    est.items += refs.values()
    if refs and est.concurrency > 1:
        est.notes.append("trials whose fits end together may each train a data set's reference classifier before "
                         "the first one is cached: up to that many times its estimate")
    return est


def calibration_targets(study: Any, *, data_root: str | Path | None = None, verify_md5: bool = True
                        ) -> tuple[list[Any], list[Any]]:
    """What `medaug bench calibrate --study` measures for a generator study: each cell's
    generator with its settings (fit and sampling) and the evaluation's classifiers
    (reference/TSTR and FID extractor: training and evaluation) at its data sets' sizes."""
    from medaug.sweep.calibrate import ClassifierTarget, GeneratorTarget

    classifiers: dict[str, ClassifierTarget] = {}
    generators: dict[str, GeneratorTarget] = {}
    for cell in study.cells:
        trial = study.trial(cell)
        facts = data_facts(trial.dataset, trial.size, trial.data_options, data_root, verify_md5)
        g = GeneratorTarget(trial.generator, trial.size, facts.channels, dict(trial.config))
        generators.setdefault(g.key, g)
        _, ref_spec, feat_spec = eval_specs(trial)
        for spec in (ref_spec, feat_spec):
            if spec is not None:
                t = ClassifierTarget(spec.classifier, spec.size, facts.channels, spec.batch_size, spec.augmentation,
                                     spec.ema, spec.translate)
                classifiers.setdefault(t.key, t)
    return list(classifiers.values()), list(generators.values())
