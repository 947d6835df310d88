"""Generator metrics on inputs with known answers: FID vs the Gaussian closed form, KID, PR, DC, pixels."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from medaug.errors import MedaugError
from medaug.metrics import generative as gm
from medaug.metrics.features import ClassifierFeatures, InceptionFeatures, load_inception, normalise


def test_fid_matches_gaussian_closed_form():
    rng = np.random.default_rng(0)
    d = 4
    a = rng.normal(size=(d, d))
    s1 = a @ a.T / d + 0.5 * np.eye(d)
    b = rng.normal(size=(d, d))
    s2 = b @ b.T / d + 0.2 * np.eye(d)
    m1, m2 = np.zeros(d), np.array([1.0, -0.5, 0.25, 2.0])
    exact = gm.frechet_distance_gaussians(m1, s1, m2, s2)
    x = rng.multivariate_normal(m1, s1, size=20_000)
    y = rng.multivariate_normal(m2, s2, size=20_000)
    assert gm.frechet_distance(x, y) == pytest.approx(exact, rel=0.03)
    # the closed form itself, by hand: N(0, I) vs N(0.5 * 1, 2.25 I) in 8-d: 8 * 0.25 + 8 * (1 + 2.25 - 3)
    assert gm.frechet_distance_gaussians(np.zeros(8), np.eye(8), np.full(8, 0.5), 2.25 * np.eye(8)) == pytest.approx(4.0)


def test_fid_same_set_zero_and_symmetric():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(500, 6)), rng.normal(loc=0.3, size=(400, 6))
    assert gm.frechet_distance(x, x) == pytest.approx(0.0, abs=1e-6)
    assert gm.frechet_distance(x, y) == pytest.approx(gm.frechet_distance(y, x), rel=1e-6)
    with pytest.raises(ValueError, match="dimensions"):
        gm.frechet_distance(x, y[:, :3])


def _kid_by_hand(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD^2 with k(a, b) = (a.b / d + 1)^3 on whole sets (Binkowski et al. 2018, eq. 2)."""
    d = x.shape[1]
    k = lambda a, b: (a @ b.T / d + 1.0) ** 3  # noqa: E731
    kxx, kyy, kxy = k(x, x), k(y, y), k(x, y)
    m = len(x)
    return ((kxx.sum() - np.trace(kxx)) + (kyy.sum() - np.trace(kyy))) / (m * (m - 1)) - 2 * kxy.mean()


def test_kid_sanity():
    rng = np.random.default_rng(2)
    x, x2 = rng.normal(size=(400, 5)), rng.normal(size=(400, 5))
    far = rng.normal(loc=1.0, size=(400, 5))
    same_mean, same_std = gm.kernel_distance(x, x2, subsets=20)
    far_mean, far_std = gm.kernel_distance(x, far, subsets=20)
    assert abs(same_mean) < 3 * same_std + 1e-3
    assert far_mean > 0.1 and far_mean > 10 * abs(same_mean) and far_std > 0
    # seeded: the same call gives the same numbers
    assert gm.kernel_distance(x, far, subsets=5, seed=3) == gm.kernel_distance(x, far, subsets=5, seed=3)


def test_kid_equals_unbiased_mmd_on_whole_sets():
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(30, 3)), rng.normal(loc=0.5, size=(30, 3))
    # subsets of all 30 points are permutations of the whole sets: every subset gives the hand value
    mean, std = gm.kernel_distance(x, y, subsets=3, subset_size=30)
    assert mean == pytest.approx(_kid_by_hand(x, y), rel=1e-9)
    assert std == pytest.approx(0.0, abs=1e-12)


def _line_sets():
    """Real points 0..9 on a line; 4 generated points among them (0.5..3.5) and 4 far away."""
    real = np.stack([np.arange(10.0), np.zeros(10)], axis=1)
    near = np.stack([np.arange(4) + 0.5, np.zeros(4)], axis=1)
    far = np.stack([np.arange(4.0), np.full(4, 100.0)], axis=1)
    return real, np.concatenate([near, far])


def test_precision_recall_known_answer():
    real, fake = _line_sets()
    precision, recall = gm.precision_recall(real, fake, k=3)
    # near points lie in real 3-NN balls (radius 2 or 3), far ones do not: 4 / 8.
    # generated 3-NN balls: 0.5 +- 3, 1.5 +- 2, 2.5 +- 2, 3.5 +- 3 cover real 0..6: 7 / 10.
    assert precision == pytest.approx(0.5)
    assert recall == pytest.approx(0.7)


def test_density_coverage_known_answer():
    real, fake = _line_sets()
    density, coverage = gm.density_coverage(real, fake, k=3)
    # real balls: 0 and 9 radius 3, the others radius 2. Real balls holding a generated point: 0..5 -> 6 / 10.
    # balls holding 0.5: {0,1,2}; 1.5: {0,1,2,3}; 2.5: {0,1,2,3,4}; 3.5: {2,3,4,5}; far: none -> 16 / (3 x 8).
    assert coverage == pytest.approx(0.6)
    assert density == pytest.approx(16 / 24)
    identical_density, identical_coverage = gm.density_coverage(real, real, k=3)
    assert identical_coverage == 1.0 and identical_density > 1.0


def test_pixel_metrics_hand_cases():
    r = np.full((1, 1, 4, 4), 102, np.uint8)   # 0.4
    g = np.full((1, 1, 4, 4), 153, np.uint8)   # 0.6
    m = gm.pair_metrics(g, r)
    assert m["rmse"][0] == pytest.approx(0.2)
    assert m["psnr"][0] == pytest.approx(10 * math.log10(1 / 0.04))  # 13.98 dB
    assert m["sre"][0] == pytest.approx(10 * math.log10(0.16 / 0.04))  # 6.02 dB
    assert m["sam"][0] == pytest.approx(0.0, abs=1e-6)  # same direction
    same = gm.pair_metrics(r, r)
    assert same["rmse"][0] == 0 and same["psnr"][0] == gm.PSNR_CAP and same["sre"][0] == gm.PSNR_CAP

    red = np.zeros((1, 3, 2, 2), np.uint8)
    red[:, 0] = 255
    green = np.zeros_like(red)
    green[:, 1] = 255
    yellow = red + green
    assert gm.pair_metrics(green, red)["sam"][0] == pytest.approx(90.0)
    assert gm.pair_metrics(yellow, red)["sam"][0] == pytest.approx(45.0)
    # one channel: the angle between the images as vectors: (1, 0) vs (1, 1) -> 45 degrees
    a = np.array([[[[255, 0]]]], np.uint8)
    b = np.array([[[[255, 255]]]], np.uint8)
    assert gm.pair_metrics(a, b)["sam"][0] == pytest.approx(45.0)


def test_nearest_real_and_similarity():
    real = np.stack([np.full((1, 3, 3), v, np.uint8) for v in (0, 100, 200)])
    gen = np.stack([np.full((1, 3, 3), v, np.uint8) for v in (190, 10, 100)])
    assert gm.nearest_real(gen, real).tolist() == [2, 0, 1]
    # chunked over both sets == brute force
    rng = np.random.default_rng(0)
    many_real = rng.integers(0, 256, (300, 1, 6, 6), dtype=np.uint8)
    many_gen = rng.integers(0, 256, (70, 1, 6, 6), dtype=np.uint8)
    brute = ((many_gen.reshape(70, 1, -1).astype(float) - many_real.reshape(1, 300, -1)) ** 2).sum(-1).argmin(1)
    assert gm.nearest_real(many_gen, many_real, chunk=32).tolist() == brute.tolist()
    sim = gm.nearest_real_similarity(gen, real)
    assert sim["rmse"] == pytest.approx((10 / 255 + 10 / 255 + 0) / 3)
    assert sim["psnr"] == pytest.approx((2 * 10 * math.log10(255**2 / 100) + gm.PSNR_CAP) / 3)


def test_normalise_matches_classifier_training():
    from medaug.train.loop import normalise as train_normalise

    x = torch.arange(256, dtype=torch.uint8).view(1, 1, 16, 16)
    assert torch.equal(normalise(x), train_normalise(x))


def test_classifier_features_are_the_penultimate_layer():
    from medaug.classifiers import build_classifier

    torch.manual_seed(0)
    model = build_classifier("cnn", 1, 3, 28).eval()
    images = np.random.default_rng(0).integers(0, 256, (5, 1, 28, 28), dtype=np.uint8)
    ext = ClassifierFeatures(model, name="classifier:cnn", device="cpu")
    feats = ext(images)
    assert feats.shape == (5, 128) and feats.dtype == np.float64
    with torch.no_grad():
        x = normalise(torch.from_numpy(images))
        h = model.pool(model.layer5(model.layer4(model.layer3(model.layer2(model.layer1(x))))))
        expected = model.fc[:4](torch.flatten(h, 1))
    np.testing.assert_allclose(feats, expected.double().numpy(), rtol=1e-5, atol=1e-6)
    assert len(ext.digest) == 16 and ext.digest == ClassifierFeatures(model).digest


def test_inception_weights_refused_when_missing_or_wrong(tmp_path):
    with pytest.raises(MedaugError, match="not found"):
        load_inception(tmp_path / "missing.pth")
    from medaug.classifiers import build_classifier

    wrong = tmp_path / "cnn.pth"
    torch.save(build_classifier("cnn", 3, 2, 28).state_dict(), wrong)
    with pytest.raises(MedaugError, match="not torchvision Inception-v3"):
        load_inception(wrong)
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a torch file")
    with pytest.raises(MedaugError, match="not a readable"):
        load_inception(junk)


def test_inception_features_from_local_weights(tmp_path):
    from torchvision.models import inception_v3

    torch.manual_seed(0)
    weights = tmp_path / "inception.pth"
    torch.save(inception_v3(weights=None, aux_logits=False, init_weights=False).state_dict(), weights)
    ext = InceptionFeatures(weights, device="cpu")
    assert ext.input_size == 299
    ext.input_size = 75  # the smallest input Inception-v3 takes: the same code path, 16x less compute
    images = np.random.default_rng(0).integers(0, 256, (2, 1, 28, 28), dtype=np.uint8)
    feats = ext(images)
    assert feats.shape == (2, 2048) and np.isfinite(feats).all()
    assert ext.name == "inception-v3" and len(ext.digest) == 16
