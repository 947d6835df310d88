"""Issue 12 item 3, an evaluation that discriminates: the fast-recipe feature space by default
(the old extractor by name, with its old numbers), per-class FID and TSTR recall that show
a dropped class, TSTR/TRTR from the fast recipe, the report's rank correlation, and the
sampler options of `generator eval`."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from conftest import make_medmnist_npz
from medaug import cli
from medaug.data.medmnist import load_medmnist
from medaug.generators import baseline  # noqa: F401  (registers class-mean-noise)
from medaug.generators import evaluate
from medaug.generators.base import GENERATORS
from medaug.hashing import file_digest
from medaug.store.generator_results import GENERATOR_EVAL_DIR, read_eval_rows

pytestmark = pytest.mark.usefixtures("one_thread")

#: The fast recipe shortened to 30 steps on this set (the default is the full recipe).
SHORT = {"epochs": 6, "min_steps": 0, "batch_size": 8}
SHORT_ARGV = ["--recipe-set", "epochs=6", "--recipe-set", "min_steps=0", "--recipe-set", "batch_size=8"]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Two classes, 2:1 (class 0: a square at one of two places, class 1 at a third), a fitted
    class-mean-noise generator, and one OUT folder so the classifiers are trained once."""
    base = tmp_path_factory.mktemp("protocol")
    root = base / "data"
    path = make_medmnist_npz(root / "breastmnist.npz", n=(45, 15, 30), num_classes=3)
    arrays = dict(np.load(path))
    for split in ("train", "val", "test"):
        arrays[f"{split}_labels"] = np.where(arrays[f"{split}_labels"] == 2, 0, arrays[f"{split}_labels"])
    np.savez(path, **arrays)
    splits = load_medmnist("breastmnist", root=root, verify=False)
    ckpt = GENERATORS.get("class-mean-noise")(1, 28, 2, device="cpu").fit(splits.train, base / "gen", plots=False)
    return root, splits, ckpt, base / "out"


def options(**kw) -> evaluate.EvalOptions:
    return evaluate.EvalOptions(**{"n": 30, "recipe_overrides": SHORT, "kid_subsets": 3, "device": "cpu", **kw})


def test_fast_features_by_default_and_the_old_extractor_by_name(world):
    from medaug.experiment import fit_and_test
    from medaug.generators.base import load_generator
    from medaug.metrics.features import ClassifierFeatures
    from medaug.metrics.generative import frechet_distance

    root, splits, ckpt, out = world
    new = evaluate.evaluate_generator(ckpt, out, options(), splits=splits)
    assert new["extractor"] == "fast:fastnet" and json.loads(new["extractor_spec"])["classifier"] == "fastnet"
    cached = {file_digest(f)[:16] for f in (out / GENERATOR_EVAL_DIR / evaluate.REFERENCE_DIR).glob("*.pt")}
    assert cached == {new["extractor_checkpoint_hash"]}  # extractor and reference: one fast classifier
    old = evaluate.evaluate_generator(ckpt, out, options(extractor="classifier", recipe="seed000",
                                                         classifier_epochs=1), splits=splits)
    assert old["extractor"] == "classifier:cnn" and old["recipe"] == "seed000"
    assert old["extractor_hash"] != new["extractor_hash"] and old["fid"] != new["fid"]
    # the old protocol by hand: seed 000's CNN, its penultimate layer, the same draws
    spec = evaluate.classifier_spec(splits.train, options(classifier_epochs=1))
    features = ClassifierFeatures(fit_and_test(spec, splits.train, splits.val, splits.test, device="cpu").model)
    rng = np.random.default_rng(0)
    idx = np.sort(rng.choice(len(splits.train), 30, replace=False))
    gen = load_generator(ckpt, device="cpu")
    fake = gen.sample(splits.train.labels[idx], 0)
    assert features.digest == old["extractor_hash"]
    assert old["fid"] == pytest.approx(frechet_distance(features(splits.train.images[idx]), features(fake)), rel=1e-9)


def test_a_dropped_class_shows_in_per_class_fid_and_tstr_recall(world, monkeypatch):
    root, splits, ckpt, out = world
    clean = evaluate.evaluate_generator(ckpt, out, options(seed=1), splits=splits)
    # a generator that only makes class 0's images, whatever class it is asked for
    monkeypatch.setattr(evaluate, "generate",
                        lambda gen, labels, images, seed: (gen.sample(np.zeros_like(labels), seed), "sample"))
    dropped = evaluate.evaluate_generator(ckpt, out, options(seed=2, tstr=True), splits=splits)
    assert list(dropped["class_names"]) == list(splits.train.class_names)
    kept, gone = dropped["fid_per_class"]
    # class 1's samples (class 0 images) are far from real class 1; class 0's are as before
    assert gone > 10 * clean["fid_per_class"][1] and gone > 10 * clean["fid_floor_per_class"][1]
    assert kept == pytest.approx(clean["fid_per_class"][0], rel=0.2)
    assert all(math.isfinite(v) for v in dropped["fid_floor_per_class"])
    # TSTR by the fast recipe: class 1 is never predicted (recall 0); TRTR recalls both
    assert dropped["recipe"] == "fast" and json.loads(dropped["classifier_spec"])["classifier"] == "fastnet"
    assert dropped["tstr_recall_per_class"][1] == 0.0 and dropped["tstr_balanced_acc"] <= 0.5 + 1e-9
    assert min(dropped["trtr_recall_per_class"]) > 0.5 and 0 <= dropped["tstr_auc"] <= 1
    row = read_eval_rows(out).set_index("eval_id").loc[dropped["eval_id"]]
    assert list(row["tstr_recall_per_class"]) == dropped["tstr_recall_per_class"] and row["recipe"] == "fast"
    assert clean["tstr_recall_per_class"] is None  # no --tstr: no TSTR numbers


def test_rank_correlation_and_its_ci():
    import pandas as pd

    from medaug.analysis import plots
    from medaug.analysis.stats import rank_correlation

    up = rank_correlation([1, 2, 3, 4, 5], [0.1, 0.4, 0.5, 2.0, 9.0])
    assert (up.rho, up.lo, up.hi) == (1.0, 1.0, 1.0)
    x, y = np.arange(12.0), np.arange(12.0) + np.random.default_rng(0).normal(0, 4, 12)
    a, b, c = rank_correlation(x, y, seed=3), rank_correlation(x, y, seed=3), rank_correlation(x, y, seed=4)
    assert a == b and (a.lo, a.hi) != (c.lo, c.hi) and a.lo < a.rho < a.hi
    few = rank_correlation([1, 2], [2, 1])
    assert math.isnan(few.rho) and "too few" in few.text
    ev = pd.DataFrame({"dataset": ["a", "a", "b", "b"], "generator": ["g1", "g2", "g1", "g2"],
                       "fid": [1.0, 2.0, 3.0, 4.0], "fid_floor": [0.0] * 4, "precision": [0.5] * 4,
                       "recall": [0.5] * 4, "tstr_acc": [0.9, 0.8, 0.7, 0.6], "trtr_acc": [0.9] * 4})
    fig = plots.fidelity_utility_figure(ev, None)
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert any("Spearman ρ = -1.00" in t for t in texts)
    assert "Spearman rho = -1.00" in plots.fidelity_utility_text(ev, None)
    two = plots.fidelity_utility_figure(ev.iloc[:2], None)
    assert any("too few" in t.get_text() for ax in two.axes for t in ax.texts)
    assert "too few" in plots.fidelity_utility_text(ev.iloc[:2], None)


def test_cli_steps_and_guidance_for_edm_refused_for_a_gan(world, tmp_path, capsys):
    root, splits, _, out = world
    common = ["--data-root", str(root), "--no-verify-md5", "--device", "cpu"]
    assert cli.main(["generator", "fit", "--dataset", "breastmnist", "--generator", "edm", "--epochs", "1",
                     "--batch-size", "8", "--set", "model_channels=8", "--set", "sample_steps=3",
                     "--out", str(tmp_path / "edm"), "--quiet", *common]) == 0
    argv = ["generator", "eval", "--n", "10", "--kid-subsets", "2", "--out", str(out), "--quiet", *SHORT_ARGV, *common]
    assert cli.main([*argv, "--checkpoint", str(tmp_path / "edm" / "checkpoint"), "--steps", "2",
                     "--guidance", "1.5"]) == 0
    assert "sampler" in capsys.readouterr().out
    row = read_eval_rows(out).set_index("generator").loc["edm"]
    sampling = json.loads(row["sampling"])
    assert (sampling["steps"], sampling["guidance"]) == (2, 1.5) and row["eval_id"].endswith("-guidance1.5-steps2")
    gan = GENERATORS.get("cgan")(1, 28, 2, {"epochs": 1, "batch_size": 16}, device="cpu")
    gan_ckpt = gan.fit(splits.train, tmp_path / "cgan", plots=False)
    before = sorted((out / GENERATOR_EVAL_DIR).glob("*.parquet"))
    assert cli.main([*argv, "--checkpoint", str(gan_ckpt), "--steps", "2"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "--steps" in err and "cgan" in err and "edm" in err
    assert sorted((out / GENERATOR_EVAL_DIR).glob("*.parquet")) == before


def test_tstr_n_caps_tstr_and_trains_trtr_on_as_many_real_images(world, monkeypatch):
    from medaug.experiment import fit_and_test

    root, splits, ckpt, out = world
    asked: list[int] = []
    sample = GENERATORS.get("class-mean-noise").sample

    def counting(self, labels, seed):
        asked.append(len(labels))
        return sample(self, labels, seed)

    monkeypatch.setattr(GENERATORS.get("class-mean-noise"), "sample", counting)
    full = evaluate.evaluate_generator(ckpt, out, options(tstr=True, overwrite=True), splits=splits)
    capped = evaluate.evaluate_generator(ckpt, out, options(tstr=True, tstr_n=20, overwrite=True), splits=splits)
    assert full["tstr_n"] == len(splits.train) == 45 and capped["tstr_n"] == 20
    assert asked == [30, 45, 30, 20]  # the FID draw, then the TSTR set of each evaluation
    assert capped["eval_id"] == full["eval_id"] + "-tstrn20"
    # TRTR of the capped evaluation: the reference recipe on the same seeded draw of 20 real images
    sub = evaluate.tstr_subset(splits, 20, 0)
    assert len(sub.train) == 20 and sub.val is splits.val and sub.test is splits.test
    by_hand = fit_and_test(evaluate.recipe_spec(splits.train, "fast", options()), sub.train, sub.val, sub.test,
                           device="cpu").test
    assert capped["trtr_acc"] == pytest.approx(by_hand.acc) and capped["trtr_auc"] == pytest.approx(by_hand.auc)
    plain = evaluate.evaluate_generator(ckpt, out, options(overwrite=True), splits=splits)
    assert full["trtr_acc"] == plain["trtr_acc"] and plain["tstr_n"] is None
    # a cap at or above |train| is |train|: the same evaluation as none
    assert evaluate.tstr_subset(splits, 45, 0) is splits
    with pytest.raises(evaluate.MedaugError, match="--tstr-n sets the size of the TSTR training set"):
        options(tstr_n=20)
    with pytest.raises(evaluate.MedaugError, match=r"--tstr-n 5: expected an integer >= 10"):
        options(tstr=True, tstr_n=5)
