"""Memorisation check (issue 12 item 2): planted copies flagged, fresh samples not, the
train-to-train baseline without self-matches, the chunked search equal to brute force, and
its use by `medaug synthesize --drop-near-copies` and `medaug generator eval`."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from conftest import make_medmnist_npz
from medaug import cli
from medaug.data.medmnist import load_medmnist
from medaug.generators import baseline  # noqa: F401  (registers class-mean-noise)
from medaug.generators import evaluate
from medaug.generators import memorisation as mem
from medaug.generators.base import GENERATORS
from medaug.store.generator_results import COLUMN_NAMES, read_eval_rows


def toy_train(n: int = 120, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 1, 8, 8), dtype=np.uint8), np.arange(n) % 2


def noisy(images: np.ndarray, amount: int, seed: int) -> np.ndarray:
    noise = np.random.default_rng(seed).integers(-amount, amount + 1, images.shape)
    return np.clip(images.astype(np.int64) + noise, 0, 255).astype(np.uint8)


def test_flags_planted_copies_and_near_copies_not_fresh_samples():
    train, labels = toy_train()
    copies = train[:10]
    near = noisy(train[10:20], 4, seed=1)
    fresh = np.random.default_rng(2).integers(60, 200, (20, 1, 8, 8), dtype=np.uint8)  # another distribution
    samples = np.concatenate([copies, near, fresh])
    s_labels = np.concatenate([labels[:20], np.arange(20) % 2])
    found, base = mem.check(samples, train, sample_labels=s_labels, train_labels=labels, k=10)
    assert found.near_copy.tolist() == [True] * 20 + [False] * 20
    assert found.index[:20].tolist() == list(range(20)) and (found.distance[:10] == 0).all()
    assert (found.distance[10:20] > 0).all() and found.share == pytest.approx(0.5)
    assert found.k_used == {"0": 10, "1": 10}
    # baseline: every train image against the rest, itself excluded (else all would be copies at d = 0)
    assert len(base.distance) == len(train) and (base.distance > 0).all() and base.share == 0.0
    assert (base.index != np.arange(len(train))).all()
    # without labels the search runs over the whole train split and finds the same copies
    flat = mem.nearest_train(samples, train, k=10)
    assert flat.k_used == {"all": 10} and flat.near_copy[:20].all() and not flat.near_copy[20:].any()


def test_baseline_counts_a_duplicate_but_never_itself():
    train, labels = toy_train(60)
    train[7] = train[3]  # a genuine duplicate inside train (same class: 3 and 7 are both odd)
    base = mem.nearest_train(train, train, sample_labels=labels, train_labels=labels, k=5,
                             self_index=np.arange(60))
    assert np.flatnonzero(base.near_copy).tolist() == [3, 7]
    assert base.index[3] == 7 and base.index[7] == 3 and base.distance[3] == 0
    assert base.k_used == {"0": 5, "1": 5}
    # a class with a single train image: k = 0 after excluding itself, nothing to compare with
    one = mem.nearest_train(train[:1], train[:1], sample_labels=labels[:1], train_labels=labels[:1],
                            self_index=np.array([0]))
    assert one.index[0] == -1 and not one.near_copy[0] and np.isnan(one.share)


def brute(query: torch.Tensor, ref: torch.Tensor, k: int, exclude: np.ndarray | None = None):
    d = torch.cdist(query.double(), ref.double())
    if exclude is not None:
        for i, e in enumerate(exclude):
            if e >= 0:
                d[i, e] = float("inf")
    return torch.topk(d, k, dim=1, largest=False)


@pytest.mark.parametrize("features", [False, True])
def test_chunked_search_equals_brute_force(monkeypatch, features):
    monkeypatch.setattr(mem, "QUERY_CHUNK", 7)
    monkeypatch.setattr(mem, "TRAIN_CHUNK", 11)  # several blocks each way, a top-k merged across train blocks
    rng = np.random.default_rng(5)
    if features:
        query, ref = rng.normal(size=(30, 16)), rng.normal(size=(45, 16))
        q, r = torch.from_numpy(query), torch.from_numpy(ref)
    else:
        query = rng.integers(0, 256, (30, 1, 4, 4), dtype=np.uint8)
        ref = rng.integers(0, 256, (45, 1, 4, 4), dtype=np.uint8)
        q, r = (torch.from_numpy(a).flatten(1).double() / 127.5 - 1 for a in (query, ref))
    exclude = np.where(np.arange(30) % 3 == 0, np.arange(30), -1)
    for k in (1, 5, 45):
        excl = exclude if k < 45 else None
        d, i = mem.nearest_k(query, ref, k, exclude=excl)
        want_d, want_i = brute(q, r, k, excl)
        if k < 45:  # the whole ordering of 45 integer-pixel distances has ties; the first few do not
            assert np.array_equal(i, want_i.numpy())
        np.testing.assert_allclose(d, want_d.numpy(), rtol=1e-5, atol=1e-5)
    # a reference smaller than k leaves inf / -1 in the slots it cannot fill
    d, i = mem.nearest_k(query, ref[:3], 5)
    assert (i[:, 3:] == -1).all() and np.isinf(d[:, 3:]).all() and (i[:, :3] >= 0).all()


def test_summary_and_montage(tmp_path):
    train, labels = toy_train(40)
    samples = np.concatenate([train[:2], noisy(train[2:6], 60, seed=3)])
    found, base = mem.check(samples, train, sample_labels=labels[:6], train_labels=labels, k=5)
    s = mem.summary(found, base, labels[:6], 2)
    assert s["near_copies"] == int(found.near_copy.sum()) and sum(s["near_copies_per_class"]) == s["near_copies"]
    assert s["distance_quantiles"][0] == 0.0 and s["baseline_n"] == 40
    path = mem.write_montage(samples, train, found, tmp_path / "m.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    js = mem.write_json(tmp_path / "m.json", {"summary": s, "pixel": mem.per_sample(found), "x": float("nan")})
    assert js.read_text().count("null") >= 1 and "NaN" not in js.read_text()


# ------------------------------------------------------------------ generator eval, synthesize

@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """A tiny breastmnist-like set and a fitted class-mean-noise checkpoint (no copies by itself)."""
    base = tmp_path_factory.mktemp("memo")
    root = base / "data"
    make_medmnist_npz(root / "breastmnist.npz", n=(40, 12, 12))
    splits = load_medmnist("breastmnist", root=root, verify=False)
    gen = GENERATORS.get("class-mean-noise")(1, 28, 2, device="cpu")
    return root, splits, gen.fit(splits.train, base / "gen", plots=False)


def test_generator_eval_reports_near_copies_and_writes_montage(tmp_path, fitted, monkeypatch, capsys):
    root, splits, ckpt = fitted
    # seed 000's CNN features: the fast recipe's features separate this toy set's two classes so
    # well that each class collapses to a point, where the feature-space ratio test flags every
    # sample (an open question for issue 12's benchmark: see its note); pixel space is unaffected
    options = evaluate.EvalOptions(n=12, classifier_epochs=1, kid_subsets=2, device="cpu", extractor="classifier",
                                   recipe="seed000")
    clean = evaluate.evaluate_generator(ckpt, tmp_path, options, splits=splits)
    assert clean["near_copy_share_pixel"] == 0.0 and clean["near_copy_share_feature"] < 0.5, clean
    # plant copies: the "generator" returns the very train images whose labels it was asked for
    monkeypatch.setattr(evaluate, "generate", lambda gen, labels, images, seed: (images.copy(), "sample"))
    argv = ["generator", "eval", "--checkpoint", str(ckpt), "--n", "12", "--seed", "1", "--classifier-epochs", "1",
            "--kid-subsets", "2", "--device", "cpu", "--data-root", str(root), "--no-verify-md5", "--out",
            str(tmp_path), "--extractor", "classifier", "--recipe", "seed000"]
    assert cli.main(argv) == 0
    assert "near-copies" in capsys.readouterr().out
    rows = read_eval_rows(tmp_path).set_index("seed")
    assert {"near_copy_share_pixel", "near_copy_baseline_feature", "nn_distance_pixel_quantiles"} <= set(COLUMN_NAMES)
    copied = rows.loc[1]
    assert copied["near_copy_share_pixel"] == 1.0 and copied["near_copy_share_feature"] == 1.0
    assert copied["near_copy_baseline_pixel"] == rows.loc[0]["near_copy_baseline_pixel"] < 0.5
    assert copied["near_copy_k"] == mem.NEAR_COPY_K
    assert "within class" in copied["near_copy_rule"] and list(copied["nn_distance_pixel_quantiles"])[-1] == 0.0
    json_path, png_path = evaluate.memorisation_paths(tmp_path, copied["eval_id"])
    assert png_path.read_bytes()[:4] == b"\x89PNG"
    detail = json.loads(json_path.read_text())
    drawn = np.sort(np.random.default_rng(1).choice(len(splits.train), 12, replace=False))
    assert detail["pixel"]["nn_index"] == drawn.tolist() and all(detail["pixel"]["near_copy"])
    assert detail["pixel"]["nn_distance"] == [0.0] * 12 and detail["pixel"]["k_used"] == {"0": 20, "1": 20}


def plant_copies(monkeypatch, train: np.ndarray, train_labels: np.ndarray, every_seed: bool = False) -> None:
    """Make the loaded generator's first draw (seed 3) hold copies: samples 0, 1 and 6 exact copies of
    train images of their class, sample 7 one with slight noise. With `every_seed`, every draw copies."""
    from medaug.generators import base

    real_load = base.load_generator

    def load(ckpt, device=None):
        gen = real_load(ckpt, device=device)
        sample = gen.sample

        def planted(labels, seed):
            out = sample(labels, seed)
            if seed == 3 or every_seed:
                for i in (range(len(labels)) if every_seed else (0, 1, 6, 7)):
                    src = np.flatnonzero(train_labels == labels[i])[i % 5]
                    out[i] = noisy(train[src:src + 1], 2, seed=i)[0] if i == 7 else train[src]
            return out

        gen.sample = planted
        return gen

    monkeypatch.setattr(base, "load_generator", load)


def test_synthesize_drop_near_copies(tmp_path, fitted, monkeypatch, capsys):
    from medaug.store.synthetic import list_groups, read_synthetic_set

    root, splits, ckpt = fitted
    train = splits.train
    plant_copies(monkeypatch, train.images, train.labels)
    base = ["synthesize", "--checkpoint", str(ckpt), "--strategy", "per-class", "--classes", "0,1", "--count", "6",
            "--seed", "3", "--out", str(tmp_path / "s.zarr"), "--data-root", str(root), "--no-verify-md5",
            "--device", "cpu"]
    assert cli.main(base) == 0 and cli.main([*base, "--drop-near-copies"]) == 0
    assert "dropped 4" in capsys.readouterr().out
    groups = list_groups(tmp_path / "s.zarr")
    assert len(groups) == 2
    plain, kept = (read_synthetic_set(f"{tmp_path / 's.zarr'}#{g}") for g in sorted(groups, key=len))
    assert kept.ref.endswith("-nocopies") and not plain.ref.endswith("-nocopies")
    memo = plain.provenance["memorisation"]
    assert memo["near_copies_per_class"] == [2, 2] and memo["near_copy_share"] == pytest.approx(4 / 12)
    assert memo["k"] == mem.NEAR_COPY_K and memo["within"] == "class" and memo["baseline_share"] == 0.0
    assert memo["dropped"] is False and "dropped_per_class" not in memo
    record = kept.provenance["memorisation"]
    assert record["dropped"] is True and record["dropped_per_class"] == [2, 2] and len(record["redraw_seeds"]) == 1
    assert kept.labels.tolist() == [0] * 6 + [1] * 6 == plain.labels.tolist()
    # exactly the planted samples were dropped: the others are kept in order, the gaps refilled by the extra draw
    assert np.array_equal(kept.images[[0, 1, 2, 3]], plain.images[[2, 3, 4, 5]])
    assert np.array_equal(kept.images[[6, 7, 8, 9]], plain.images[[8, 9, 10, 11]])
    planted = plain.images[[0, 1, 6, 7]].reshape(4, -1)
    assert not (kept.images.reshape(12, -1)[:, None, :] == planted[None]).all(-1).any()
    again = mem.nearest_train(kept.images, train.images, sample_labels=kept.labels, train_labels=train.labels)
    assert not again.near_copy.any()


def test_synthesize_drop_near_copies_refusals(tmp_path, fitted, monkeypatch, capsys):
    from medaug.store.synthetic import list_groups

    root, splits, ckpt = fitted
    plant_copies(monkeypatch, splits.train.images, splits.train.labels, every_seed=True)
    out = tmp_path / "s.zarr"
    base = ["synthesize", "--checkpoint", str(ckpt), "--strategy", "per-class", "--classes", "0,1", "--count", "6",
            "--seed", "3", "--out", str(out), "--data-root", str(root), "--no-verify-md5", "--device", "cpu",
            "--drop-near-copies"]
    assert cli.main(base) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "after 48 draws (the limit: max_draws 8 x 6" in err[0] and "nothing was written" in err[0]
    from medaug.generators.synthesize import checkpoint_content_hash

    unfiltered = f"class-mean-noise-breastmnist-per-class-s3-{checkpoint_content_hash(ckpt)[:8]}"
    assert cli.main([*base, "--group", unfiltered]) == 2 and "-nocopies" in capsys.readouterr().err
    assert not out.exists() or list_groups(out) == []
