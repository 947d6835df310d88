"""Synthetic-sample filters (issue 13 item 3, medaug/generators/filters.py): a confidence filter
keeps exactly the samples its classifier puts above the threshold, every round recomputable from
the provenance; two thresholds make two groups; an unreachable count stops at the draw limit in
one line; realism scores match the paper's formula and reject samples off the real manifold; the
near-copy filter is --drop-near-copies; a trained filter classifier is cached and shared; a
study's filter validates, resolves to its own group and reaches the fit job.

The constructed classifier (`brightness-probe`) scores an image by its mean pixel value m
(in [-1, 1]): logit(class 1) - logit(class 0) = -2 W (m - B), so the probability of each
label is known in closed form, and its penultimate feature is m itself. (The toy generator's
class 0 is slightly brighter than its class 1: this sign lets each class pass about half.)
"""

from __future__ import annotations

import io
import json
import math

import numpy as np
import pytest
import torch
from conftest import make_medmnist_npz
from torch import nn

from medaug import cli
from medaug.classifiers import CLASSIFIERS
from medaug.data.medmnist import load_medmnist
from medaug.errors import MedaugError
from medaug.generators import (
    baseline,  # noqa: F401  (registers class-mean-noise)
    filters,
)
from medaug.generators.base import GENERATORS, load_generator
from medaug.generators.filters import FilterSpec
from medaug.generators.strategies import Strategy, labels_for_counts
from medaug.generators.synthesize import synthesize
from medaug.hashing import file_digest
from medaug.store.synthetic import list_groups, read_synthetic_set

PROBE = "brightness-probe"
W = 200.0
PER_CLASS = Strategy(name="per-class", classes=("0", "1"), count=10)


class BrightnessProbe(nn.Module):
    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.head = nn.Linear(1, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(x.mean(dim=(1, 2, 3))[:, None])


if PROBE not in CLASSIFIERS:
    CLASSIFIERS.register(PROBE)(lambda channels, num_classes, size: BrightnessProbe(num_classes))


def brightness(images: np.ndarray) -> np.ndarray:
    return (images.astype(np.float64) / 127.5 - 1.0).reshape(len(images), -1).mean(1)


def probe_p(images: np.ndarray, labels: np.ndarray, centre: float) -> np.ndarray:
    """The probe's probability of each image's label, computed here in float64 (not by the filter)."""
    p1 = 1.0 / (1.0 + np.exp(2 * W * (brightness(images) - centre)))
    return np.where(labels == 1, p1, 1.0 - p1)


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """A tiny breastmnist-like set, a fitted class-mean-noise checkpoint and its first draw's brightness centre."""
    base = tmp_path_factory.mktemp("filters")
    root = base / "data"
    make_medmnist_npz(root / "breastmnist.npz", n=(40, 12, 12))
    splits = load_medmnist("breastmnist", root=root, verify=False)
    ckpt = GENERATORS.get("class-mean-noise")(1, 28, 2, device="cpu").fit(splits.train, base / "gen", plots=False)
    first = load_generator(ckpt, device="cpu").sample(labels_for_counts([10, 10]), 3)
    return root, splits, ckpt, float(np.median(brightness(first)))


def probe_file(path, centre: float, dataset: str = "breastmnist", train_hash: str | None = None):
    """A classifier file of the probe, as `save_classifier` writes one."""
    model = BrightnessProbe(2)
    with torch.no_grad():
        model.head.weight.copy_(torch.tensor([[W], [-W]]))
        model.head.bias.copy_(torch.tensor([-W * centre, W * centre]))
    spec = json.dumps({"classifier": PROBE, "dataset": dataset, "size": 28})
    filters.save_classifier(path, model, spec, train_hash)
    return path


def run(fitted, out, threshold: float | None = None, **kw):
    _, splits, ckpt, _ = fitted
    flt = kw.pop("sample_filter", None)
    if threshold is not None:
        flt = FilterSpec(kind="confidence", threshold=threshold, classifier=str(kw.pop("classifier")))
    return synthesize(ckpt, kw.pop("strategy", PER_CLASS), 3, out, splits=splits, device="cpu", sample_filter=flt,
                      **kw)


def test_confidence_filter_keeps_exactly_the_samples_above_the_threshold(tmp_path, fitted):
    _, splits, ckpt, centre = fitted
    clf = probe_file(tmp_path / "probe.pt", centre, train_hash=splits.train.content_hash)
    out = tmp_path / "s.zarr"
    plain = read_synthetic_set(run(fitted, out).ref)
    t = 0.6
    result = run(fitted, out, threshold=t, classifier=clf)
    kept = read_synthetic_set(result.ref)
    # exactly the first draw's samples at or above the threshold, in order, then refills that pass too
    p_first = probe_p(plain.images, plain.labels, centre)
    assert np.abs(p_first - t).min() > 1e-4  # no sample so close that float32 vs float64 could decide
    p_kept = probe_p(kept.images, kept.labels, centre)
    assert (p_kept >= t).all() and kept.labels.tolist() == [0] * 10 + [1] * 10
    prov = kept.provenance["filter"]
    first_round = prov["rounds"][0]
    for c in (0, 1):
        passed = plain.images[(plain.labels == c) & (p_first >= t)]
        assert 0 < len(passed) < 10 and first_round["accepted_per_class"][c] == len(passed)
        assert np.array_equal(kept.images[kept.labels == c][:len(passed)], passed)
    # the provenance: the filter, its classifier's hash (a file name, never a machine path), counts per class
    assert prov["kind"] == "confidence" and prov["threshold"] == t and prov["tag"] == f"conf0.6-c{file_digest(clf)[:8]}"
    assert prov["classifier"]["checkpoint_hash"] == file_digest(clf)[:16] and prov["classifier"]["file"] == "probe.pt"
    assert str(tmp_path) not in json.dumps(kept.provenance)
    assert prov["requested_per_class"] == prov["kept_per_class"] == [10, 10]
    drawn, acc, rej = (np.array(prov[k]) for k in ("drawn_per_class", "accepted_per_class", "rejected_per_class"))
    assert (drawn == acc + rej).all() and (acc >= 10).all() and (rej > 0).all()
    assert first_round["seed"] == 3 and first_round["drawn_per_class"] == [10, 10] and len(prov["rounds"]) >= 2
    # every round can be redrawn and rejudged from what the provenance records
    gen = load_generator(ckpt, device="cpu")
    for rnd in prov["rounds"]:
        labels = labels_for_counts(rnd["drawn_per_class"])
        p = probe_p(gen.sample(labels, rnd["seed"]), labels, centre)
        assert np.bincount(labels[p >= t], minlength=2).tolist() == rnd["accepted_per_class"]
    assert sum(np.array(r["drawn_per_class"]) for r in prov["rounds"]).tolist() == drawn.tolist()
    assert prov["kept_score_min"] >= t
    assert "filter" not in plain.provenance and not plain.ref.endswith(prov["tag"])


def test_two_thresholds_give_two_groups_and_the_cli_prints_the_counts(tmp_path, fitted, capsys):
    root, _, ckpt, centre = fitted
    clf = probe_file(tmp_path / "probe.pt", centre)
    out = tmp_path / "s.zarr"
    base = ["synthesize", "--checkpoint", str(ckpt), "--strategy", "per-class", "--classes", "0,1", "--count", "10",
            "--seed", "3", "--out", str(out), "--data-root", str(root), "--no-verify-md5", "--device", "cpu",
            "--filter", "confidence", "--filter-classifier", str(clf)]
    assert cli.main([*base, "--filter-threshold", "0.6"]) == 0
    assert "filter confidence (threshold 0.6, classifier brightness-probe" in capsys.readouterr().out
    assert cli.main([*base, "--filter-threshold", "0.8"]) == 0
    groups = sorted(list_groups(out))
    assert len(groups) == 2 and groups[0].endswith(f"-conf0.6-c{file_digest(clf)[:8]}")
    assert groups[1].endswith(f"-conf0.8-c{file_digest(clf)[:8]}")
    high = read_synthetic_set(f"{out}#{groups[1]}")
    assert (probe_p(high.images, high.labels, centre) >= 0.8).all()
    # a rerun of one threshold is refused (the group exists), and so is the unfiltered name for a filtered set
    assert cli.main([*base, "--filter-threshold", "0.8"]) == 2
    unfiltered = groups[0][:-len(f"-conf0.6-c{file_digest(clf)[:8]}")]
    assert cli.main([*base, "--filter-threshold", "0.7", "--group", unfiltered]) == 2
    assert "the name of the set without the filter" in capsys.readouterr().err
    # filter options without --filter, and a confidence filter without a threshold: one line, exit 2
    assert cli.main([*base[:-4], "--filter-threshold", "0.5"]) == 2
    assert "--filter-threshold: needs --filter KIND" in capsys.readouterr().err
    assert cli.main(base) == 2
    assert "filter confidence needs a threshold" in capsys.readouterr().err


def test_an_unreachable_count_stops_at_the_draw_limit_in_one_line(tmp_path, fitted, monkeypatch, capsys):
    from medaug.generators import base as gbase

    root, _, ckpt, centre = fitted
    clf = probe_file(tmp_path / "probe.pt", centre)
    calls: list[int] = []
    real_load = gbase.load_generator

    def counting(path, device=None):
        gen = real_load(path, device=device)
        sample = gen.sample
        gen.sample = lambda labels, seed: (calls.append(len(labels)), sample(labels, seed))[1]
        return gen

    monkeypatch.setattr(gbase, "load_generator", counting)
    out = tmp_path / "s.zarr"
    argv = ["synthesize", "--checkpoint", str(ckpt), "--strategy", "per-class", "--classes", "0,1", "--count", "10",
            "--seed", "3", "--out", str(out), "--data-root", str(root), "--no-verify-md5", "--device", "cpu",
            "--filter", "confidence", "--filter-classifier", str(clf), "--filter-threshold", "0.9999999",
            "--max-draws", "5"]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "after 50 draws (the limit: max_draws 5 x 10" in err[0], err
    assert "nothing was written" in err[0] and "class 'malignant'" in err[0] and ">= 0.9999999)" in err[0]
    assert sum(calls) == 100 and len(calls) <= 4  # 5 x 10 per class, in a few rounds, then it stops
    assert not out.exists() or list_groups(out) == []
    # the draw planner itself: never beyond the limit, never less than what is missing while the limit allows
    counts, limit = np.array([10, 10]), np.array([50, 50])
    assert filters.next_draw(counts, np.array([10, 50]), np.array([0, 3]), limit).tolist() == [40, 0]
    assert filters.next_draw(counts, np.array([10, 10]), np.array([9, 10]), limit).tolist() == [2, 0]


def test_realism_score_is_the_papers_formula_and_rejects_samples_off_the_manifold(tmp_path, fitted, monkeypatch):
    rng = np.random.default_rng(0)
    real = rng.normal(size=(41, 3))
    real[0] = 40.0  # an outlier: its huge k-NN ball is among the larger half, discarded (else it swallows g)
    samples = np.concatenate([rng.normal(size=(30, 3)), [[30.0, 30.0, 30.0], real[5]]])
    got = filters.realism_scores(real, samples, k=3)
    d = np.linalg.norm(real[:, None] - real[None], axis=2)
    radii = np.sort(d, axis=1)[:, 3]  # k-th nearest other point (column 0 is the point itself)
    keep = np.argsort(radii, kind="stable")[:21]
    assert 0 not in keep
    want = [max(radii[j] / np.linalg.norm(g - real[j]) for j in keep) if not (g == real[keep]).all(1).any()
            else math.inf for g in samples]
    assert np.allclose(got[:-1], want[:-1]) and got[-1] == math.inf and got[-2] < 0.2
    assert 0 < (got[:30] >= 1).mean() < 1  # some inside the real manifold, some outside
    with pytest.raises(MedaugError, match="needs more than k = 3"):
        filters.realism_scores(real[:3], samples)

    # in synthesize: the probe's feature is the mean brightness; planted white images are off the manifold
    _, splits, ckpt, centre = fitted
    clf = probe_file(tmp_path / "probe.pt", centre)
    from medaug.generators import base as gbase

    real_load = gbase.load_generator

    def planting(path, device=None):
        gen = real_load(path, device=device)
        sample = gen.sample

        def planted(labels, seed):
            out = sample(labels, seed)
            out[::3] = 255
            return out

        gen.sample = planted
        return gen

    monkeypatch.setattr(gbase, "load_generator", planting)
    # the toy generator's samples huddle near each class's mean brightness, between the real modes: R ~ 0.2-1.3
    result = run(fitted, tmp_path / "s.zarr", sample_filter=FilterSpec(kind="realism", threshold=0.3,
                                                                       classifier=str(clf)))
    kept = read_synthetic_set(result.ref)
    prov = kept.provenance["filter"]
    assert result.ref.endswith(f"-real0.3-c{file_digest(clf)[:8]}") and prov["within"] == "class"
    assert not (kept.images == 255).all(axis=(1, 2, 3)).any()
    # the first draw's verdicts, recomputed here from the real brightness of each class
    first = planted_first = load_generator(ckpt, device="cpu").sample(labels_for_counts([10, 10]), 3)
    planted_first[::3] = 255
    labels = labels_for_counts([10, 10])
    train_m = brightness(splits.train.images)
    for c in (0, 1):
        score = filters.realism_scores(train_m[splits.train.labels == c, None],
                                       brightness(first[labels == c])[:, None])
        passed = first[labels == c][score >= 0.3]
        assert 0 < prov["rounds"][0]["accepted_per_class"][c] == len(passed) < 10
        assert np.array_equal(kept.images[kept.labels == c][:len(passed)], passed)


def test_near_copy_filter_is_drop_near_copies(tmp_path, fitted, monkeypatch):
    from medaug.generators import base as gbase

    _, splits, _, _ = fitted
    train = splits.train
    real_load = gbase.load_generator

    def copying(path, device=None):
        gen = real_load(path, device=device)
        sample = gen.sample

        def planted(labels, seed):
            out = sample(labels, seed)
            if seed == 3:  # the first draw holds 2 exact copies per class
                for i in (0, 1, 10, 11):
                    out[i] = train.images[np.flatnonzero(train.labels == labels[i])[i % 5]]
            return out

        gen.sample = planted
        return gen

    monkeypatch.setattr(gbase, "load_generator", copying)
    a = run(fitted, tmp_path / "a.zarr", drop_near_copies=True)
    b = run(fitted, tmp_path / "b.zarr", sample_filter=FilterSpec(kind="near-copy"))
    sa, sb = read_synthetic_set(a.ref), read_synthetic_set(b.ref)
    assert a.ref.endswith("-nocopies") and a.ref.split("#")[1] == b.ref.split("#")[1]
    assert np.array_equal(sa.images, sb.images) and sa.provenance["filter"] == sb.provenance["filter"]
    prov = sb.provenance["filter"]
    assert prov["rounds"][0]["accepted_per_class"] == [8, 8] and prov["rejected_per_class"] == [2, 2]
    assert sb.provenance["memorisation"]["dropped_per_class"] == [2, 2]
    # a looser ratio is another filter, another group; --drop-near-copies with another filter is refused
    c = run(fitted, tmp_path / "a.zarr", sample_filter=FilterSpec(kind="near-copy", threshold=0.5))
    assert c.ref.endswith("-nocopies0.5")
    with pytest.raises(MedaugError, match="one filter per set"):
        run(fitted, tmp_path / "d.zarr", drop_near_copies=True,
            sample_filter=FilterSpec(kind="confidence", threshold=0.5))


def test_a_trained_filter_classifier_is_cached_and_shared(tmp_path, fitted, one_thread):
    _, splits, _, _ = fitted
    short = (("epochs", 1), ("min_steps", 0), ("batch_size", 8))
    cache = tmp_path / "evalout"
    spec = FilterSpec(kind="confidence", threshold=0.05, recipe_set=short)
    first = run(fitted, tmp_path / "s.zarr", sample_filter=spec, classifier_cache=cache)
    files = list((cache / "generator-eval" / "reference").glob("*.pt"))
    assert len(files) == 1
    clf = first.provenance["filter"]["classifier"]
    assert clf["source"] == "trained" and clf["recipe"] == "fast" and clf["checkpoint_hash"] == file_digest(files[0])[:16]
    assert json.loads(clf["spec"])["epochs"] == 1 and first.ref.split("#")[1].split("-conf0.05-")[1].startswith("fast")
    mtime = files[0].stat().st_mtime_ns
    second = run(fitted, tmp_path / "s.zarr", classifier_cache=cache,
                 sample_filter=FilterSpec(kind="confidence", threshold=0.1, recipe_set=short))
    assert files[0].stat().st_mtime_ns == mtime and second.provenance["filter"]["classifier"] == clf
    # the cached file is itself a classifier file that --filter-classifier loads
    _, info = filters.load_classifier(files[0], splits.train, torch.device("cpu"))
    assert info["checkpoint_hash"] == clf["checkpoint_hash"] and info["classifier"] == "fastnet"
    with pytest.raises(MedaugError, match="not of breastmnist|not a readable"):
        filters.load_classifier(probe_file(tmp_path / "other.pt", 0.0, dataset="bloodmnist"), splits.train, "cpu")
    (tmp_path / "junk.pt").write_bytes(b"not a zip")
    with pytest.raises(MedaugError, match="not a readable classifier file"):
        filters.load_classifier(tmp_path / "junk.pt", splits.train, "cpu")


STUDY = """
name: filtered
base: {{dataset: breastmnist, epochs: 1}}
synthetic: {{root: {root}, seed: 3}}
grid:
  method:
    none: {{}}
    plain: {{synthetic: {{generator: class-mean-noise, strategy: inverse-scarcity, fraction: 0.1}}}}
    conf05: {{synthetic: {{generator: class-mean-noise, strategy: inverse-scarcity, fraction: 0.1,
             filter: {{kind: confidence, threshold: 0.5, recipe_set: {{epochs: 1, min_steps: 0, batch_size: 8}}}}}}}}
    conf09: {{synthetic: {{generator: class-mean-noise, strategy: inverse-scarcity, fraction: 0.1,
             filter: {{kind: confidence, threshold: 0.9}}}}}}
    real: {{synthetic: {{generator: class-mean-noise, strategy: inverse-scarcity, fraction: 0.1,
           filter: {{kind: realism, max_draws: 4}}}}}}
"""


def test_a_study_sweeps_the_threshold_and_its_filter_validates_in_a_dry_run(tmp_path, fitted, capsys):
    from sweep_helpers import write

    from medaug.commands.sweep import print_dry_run
    from medaug.sweep.study import load_study
    from medaug.sweep.synthetic_stage import plan_fits

    root = fitted[0]
    path = write(tmp_path / "f.yaml", STUDY.format(root=tmp_path / "syn"))
    study = load_study(path)
    refs = [c.synthetic for c in study.cells]
    store = f"{tmp_path / 'syn'}/breastmnist_28/class-mean-noise.zarr#inverse-scarcity-0.1"
    assert refs[:3] == [None, store, f"{store}-conf0.5-fast{refs[2].rsplit('-fast', 1)[1]}"]
    assert refs[3:] == [f"{store}-conf0.9", f"{store}-real1"] and len(set(refs)) == 5
    assert study.cells[2].request.filter == FilterSpec(kind="confidence", threshold=0.5,
                                                       recipe_set=(("batch_size", 8), ("epochs", 1), ("min_steps", 0)))
    buf = io.StringIO()
    print_dry_run(study, "local", None, tmp_path / "out", buf, data_root=root, verify_md5=False)
    text = buf.getvalue()
    assert "--filter confidence --filter-threshold 0.9 --seed 3" in text and "--filter realism --max-draws 4" in text
    assert cli.main(["sweep", str(path), "--dry-run", "--out", str(tmp_path / "out"), "--data-root", str(root),
                     "--no-verify-md5"]) == 0
    capsys.readouterr()
    # the fit job carries each set's filter, which rebuilds the same FilterSpec in the worker
    plan = plan_fits(study, tmp_path / "out", data_root=root, verify_md5=False)
    sets = {s.group: s for job in plan.fits for s in job.sets}
    assert len(plan.fits) == 1 and len(sets) == 4
    rebuilt = [FilterSpec.from_dict(s.filter) if s.filter else None for s in sorted(sets.values(), key=lambda s: s.ref)]
    assert rebuilt == [None] + [c.request.filter for c in sorted(study.cells[2:], key=lambda c: c.synthetic)]
    # a bad filter is refused at its YAML path
    for old, new, where in (("threshold: 0.9}", "}", "conf09.synthetic.filter: filter confidence needs a threshold"),
                            ("kind: realism,", "kind: realism, classifier: x.pt,", "filter.classifier: a study's"),
                            ("max_draws: 4", "max_draw: 4", "real.synthetic.filter.max_draw: unknown filter key")):
        bad = write(tmp_path / "bad.yaml", STUDY.format(root=tmp_path / "syn").replace(old, new))
        with pytest.raises(MedaugError, match=where.replace(".", r"\.")):
            load_study(bad)


def test_a_study_fit_job_writes_the_filtered_set_beside_the_plain_one(tmp_path, fitted, one_thread):
    from sweep_helpers import write

    from medaug.sweep.study import load_study
    from medaug.sweep.synthetic_stage import plan_fits, run_fit_job

    root = fitted[0]
    short = "recipe_set: {epochs: 1, min_steps: 0, batch_size: 8}"
    path = write(tmp_path / "f.yaml", f"""
name: filtered-fit
base: {{dataset: breastmnist, epochs: 1}}
eval: false
synthetic: {{root: {tmp_path / 'syn'}, seed: 3, strategy: inverse-scarcity, fraction: 0.2}}
grid:
  method:
    plain: {{synthetic: {{generator: class-mean-noise, strategy: inverse-scarcity, fraction: 0.2}}}}
    conf: {{synthetic: {{generator: class-mean-noise, strategy: inverse-scarcity, fraction: 0.2,
           filter: {{kind: confidence, threshold: 0.3, {short}}}}}}}
""")
    study = load_study(path)
    out = tmp_path / "out"
    [job] = plan_fits(study, out, data_root=root, verify_md5=False, device="cpu").fits
    result = run_fit_job(job)
    assert result["ok"] and sorted(result["made"]) == sorted(c.synthetic for c in study.cells)
    plain, kept = (read_synthetic_set(c.synthetic) for c in study.cells)
    prov = kept.provenance["filter"]
    assert "filter" not in plain.provenance and len(plain) == len(kept) == sum(prov["kept_per_class"])
    assert prov["classifier"]["source"] == "trained" and study.cells[1].synthetic.endswith(f"-0.2-{prov['tag']}")
    assert prov["tag"].startswith("conf0.3-fast")
    [cached] = (out / "generator-eval" / "reference").glob("*.pt")  # in the study's OUT, shared with its evaluations
    assert prov["classifier"]["checkpoint_hash"] == file_digest(cached)[:16]
    assert all(c.synthetic_mismatch() is None for c in study.cells)  # each set is what its request asked for


def test_a_classifier_saved_by_medaug_train_filters_a_set(tmp_path, fitted, one_thread):
    root = fitted[0]
    clf = tmp_path / "clf.pt"
    train = ["train", "--dataset", "breastmnist", "--epochs", "1", "--batch-size", "8", "--seed", "0",
             "--out", str(tmp_path / "runs"), "--data-root", str(root), "--no-verify-md5", "--device", "cpu",
             "--quiet", "--save-classifier", str(clf)]
    assert cli.main(train) == 0
    import pandas as pd

    row = pd.read_parquet(tmp_path / "runs" / "results").iloc[0]
    result = run(fitted, tmp_path / "s.zarr", sample_filter=FilterSpec(kind="confidence", threshold=0.05,
                                                                       classifier=str(clf)))
    info = result.provenance["filter"]["classifier"]
    assert info["spec"] == row["spec_json"] and info["classifier"] == "cnn" and info["source"] == "file"
    assert info["checkpoint_hash"] == file_digest(clf)[:16] and result.ref.endswith(f"-conf0.05-c{file_digest(clf)[:8]}")
    # a classifier that saw a synthetic set is refused: the filter's judge must know the real data only
    torch.save({**torch.load(clf, weights_only=True), "spec_json": json.dumps(
        {**json.loads(row["spec_json"]), "synthetic": "x.zarr#g"})}, tmp_path / "mixed.pt")
    with pytest.raises(MedaugError, match="trained with the synthetic set x.zarr#g"):
        run(fitted, tmp_path / "s.zarr", sample_filter=FilterSpec(kind="confidence", threshold=0.05,
                                                                  classifier=str(tmp_path / "mixed.pt")))
