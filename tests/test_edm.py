"""The ``edm`` generator: EDM preconditioning and loss, training, the Heun sampler,
classifier-free guidance, seeding, resume, and its CLI (fit, synthesize --steps/--guidance)."""

from __future__ import annotations

import math
from itertools import pairwise

import numpy as np
import pytest
import torch
from torch import nn

from conftest import make_medmnist_npz
from medaug import cli
from medaug.data.imageset import ImageSet
from medaug.generators import build_generator, load_generator
from medaug.generators.base import STATE_FILE, to_float, to_uint8
from medaug.generators.edm import (
    EDM,
    Denoiser,
    coefficients,
    denoising_loss,
    guided,
    heun_sample,
    loss_weight,
    sample_sigma,
    sigma_steps,
)
from medaug.generators.edm.networks import UNet, resolutions
from medaug.store.synthetic import read_synthetic_set

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = dict(model_channels=8, num_blocks=1, attention_res=8, dropout=0.0, batch_size=8, epochs=1,
            lr_rampup_kimg=0.0, sample_steps=3)


def tiny(**config) -> EDM:
    return build_generator("edm", 1, 28, 2, {**TINY, **config}, device="cpu")


def toy_set(n: int = 16, seed: int = 0) -> ImageSet:
    """Class 0 dark, class 1 bright, with noise: separable by mean brightness."""
    rng = np.random.default_rng(seed)
    labels = (np.arange(n) % 2).astype(np.int64)
    base = np.where(labels[:, None, None, None] == 1, 200, 40)
    images = (base + rng.integers(0, 30, (n, 1, 28, 28))).astype(np.uint8)
    return ImageSet("toy", "train", images, labels, ("dark", "bright"), "binary-class")


def randomise(gen: EDM, std: float = 0.05) -> None:
    """Non-zero weights everywhere (F starts at 0 by design, which would make every branch equal)."""
    torch.manual_seed(1)
    with torch.no_grad():
        for net in gen.nets.values():
            for p in net.parameters():
                p.add_(torch.randn_like(p) * std)


# ----------------------------------------------------------------------------- preconditioning and loss


def test_preconditioning_and_loss_weight_match_the_paper():
    sd = 0.5
    sigmas = [0.002, 0.1, 0.5, 1.0, 80.0]
    c_skip, c_out, c_in, c_noise = coefficients(torch.tensor(sigmas, dtype=torch.float64), sd)
    weight = loss_weight(torch.tensor(sigmas, dtype=torch.float64), sd)
    for i, s in enumerate(sigmas):  # EDM Table 1, written out again
        assert c_skip[i].item() == pytest.approx(sd ** 2 / (s ** 2 + sd ** 2), rel=1e-12)
        assert c_out[i].item() == pytest.approx(s * sd / math.sqrt(sd ** 2 + s ** 2), rel=1e-12)
        assert c_in[i].item() == pytest.approx(1 / math.sqrt(s ** 2 + sd ** 2), rel=1e-12)
        assert c_noise[i].item() == pytest.approx(math.log(s) / 4, rel=1e-12)
        assert weight[i].item() == pytest.approx((s ** 2 + sd ** 2) / (s * sd) ** 2, rel=1e-12)
        assert weight[i].item() == pytest.approx(1 / c_out[i].item() ** 2, rel=1e-9)  # unit effective weight
    # at sigma = sigma_data the skip and the net share the output equally
    assert c_skip[2].item() == pytest.approx(0.5) and c_out[2].item() == pytest.approx(0.5 / math.sqrt(2))
    # log-normal noise levels: ln sigma = P_mean + P_std n
    n = torch.tensor([-1.0, 0.0, 2.0])
    assert torch.allclose(sample_sigma(n, -1.2, 1.2), torch.exp(torch.tensor([-2.4, -1.2, 1.2])))


class Recorder(nn.Module):
    """A stand-in raw net F: returns a fixed function of its inputs and records them."""

    def forward(self, x, c_noise, index):
        self.seen = (x.detach().clone(), c_noise.detach().clone(), index.detach().clone())
        return torch.sin(3 * x) + c_noise.view(-1, 1, 1, 1) + index.view(-1, 1, 1, 1).float()


def test_denoiser_wraps_the_net_as_the_paper_and_loss_on_fixed_tensors():
    torch.manual_seed(0)
    f = Recorder()
    d = Denoiser(f, null_class=2, sigma_data=0.5)
    x = torch.randn(3, 1, 4, 4)
    sigma = torch.tensor([0.02, 0.7, 20.0])
    labels = torch.tensor([0, 1, 1])
    out = d(x, sigma, labels)
    s = sigma.view(-1, 1, 1, 1)
    c_in = 1 / (s ** 2 + 0.25).sqrt()
    expected_f = torch.sin(3 * c_in * x) + (sigma.log() / 4).view(-1, 1, 1, 1) + labels.view(-1, 1, 1, 1).float()
    expected = 0.25 / (s ** 2 + 0.25) * x + s * 0.5 / (s ** 2 + 0.25).sqrt() * expected_f
    assert torch.allclose(out, expected, atol=1e-5)
    assert torch.allclose(f.seen[0], c_in * x, atol=1e-6) and torch.equal(f.seen[2], labels)
    # the loss: lambda(sigma) x mean over pixels of (D(y + sigma n) - y)^2, per sample
    y, noise = torch.rand(3, 1, 4, 4) * 2 - 1, torch.randn(3, 1, 4, 4)
    loss = denoising_loss(d, y, labels, sigma, noise)
    dn = d(y + s * noise, sigma, labels)
    manual = (s.flatten() ** 2 + 0.25) / (s.flatten() * 0.5) ** 2 * ((dn - y) ** 2).mean(dim=(1, 2, 3))
    assert loss.shape == (3,) and torch.allclose(loss, manual, rtol=1e-5)


def test_training_noise_levels_are_log_normal():
    gen = tiny()
    sigma, noise, drop = gen.step_randomness(8_000)
    logs = sigma.log()
    assert abs(float(logs.mean()) - (-1.2)) < 0.05 and abs(float(logs.std()) - 1.2) < 0.05
    assert abs(float(noise.std()) - 1.0) < 0.01 and abs(float(drop.float().mean()) - 0.1) < 0.015


def test_unet_handles_every_size_natively():
    assert resolutions(28) == [28, 14, 7] and resolutions(32) == [32, 16, 8]
    assert resolutions(64) == [64, 32, 16, 8] and resolutions(256) == [256, 128, 64, 32, 16, 8]
    for size in (28, 32, 64):
        net = UNet(3, size, 4, model_channels=8, attention_res=8)
        out = net(torch.randn(2, 3, size, size), torch.zeros(2), torch.tensor([0, 4]))
        assert out.shape == (2, 3, size, size)


# ----------------------------------------------------------------------------- training


def test_one_training_tick_lowers_the_denoising_loss():
    gen = tiny(lr=2e-3)
    train = toy_set(32)
    x = to_float(torch.from_numpy(train.images))
    y = torch.from_numpy(train.labels)
    g = torch.Generator().manual_seed(5)
    sigma = torch.tensor([0.05, 0.2, 0.5, 1.0, 2.0, 5.0, 0.1, 1.5] * 4)
    noise = torch.randn(x.shape, generator=g)

    def fixed_loss() -> float:
        gen.train_mode(False)
        with torch.no_grad():
            return float(denoising_loss(gen.nets["net"], x, y, sigma, noise).mean())

    before = fixed_loss()
    gen.train_mode(True)
    for _ in range(40):
        idx = torch.randint(0, len(x), (8,))
        gen.train_step(x[idx], y[idx])
        gen.global_step += 1
    after = fixed_loss()
    assert after < 0.7 * before, (before, after)


def test_label_dropout_gives_the_unconditional_branch():
    gen = tiny()
    randomise(gen)
    net = gen.nets["net"].eval()
    x = torch.randn(4, 1, 28, 28)
    labels = torch.tensor([0, 1, 1, 0])
    with torch.no_grad():
        uncond = net(x, 0.8, None)
        cond = net(x, 0.8, labels)
        dropped = net(x, 0.8, labels, torch.ones(4, dtype=torch.bool))
        half = net(x, 0.8, labels, torch.tensor([True, False, True, False]))
    assert torch.equal(dropped, uncond)
    assert not torch.allclose(cond, uncond, atol=1e-4)  # the label matters
    assert torch.equal(half[[0, 2]], uncond[[0, 2]]) and torch.equal(half[[1, 3]], cond[[1, 3]])
    # training with label_dropout = 1 trains the unconditional branch only
    gen1 = tiny(label_dropout=1.0)
    sigma, noise, drop = gen1.step_randomness(4)
    assert bool(drop.all())
    gen1.train_mode(False)
    with torch.no_grad():
        a = denoising_loss(gen1.nets["net"], x, labels, sigma, noise, drop)
        b = denoising_loss(gen1.nets["net"], x, None, sigma, noise)
    assert torch.equal(a, b)


# ----------------------------------------------------------------------------- sampler


def test_sigma_steps_are_edm_algorithm_1():
    t = sigma_steps(18).tolist()
    assert len(t) == 19 and t[0] == pytest.approx(80.0) and t[17] == pytest.approx(0.002) and t[18] == 0.0
    i, n = 5, 18
    expected = (80 ** (1 / 7) + i / (n - 1) * (0.002 ** (1 / 7) - 80 ** (1 / 7))) ** 7
    assert t[i] == pytest.approx(expected, rel=1e-12)
    assert sigma_steps(1).tolist() == [80.0, 0.0]


# Heun's error on a narrow Gaussian (std 0.6) is measured, not rounding: 18 steps give std 0.633,
# 50 steps 0.605, 200 steps 0.601 (6 steps: 1.01, the step from sigma 1.6 to 0.23 overshoots).
@pytest.mark.parametrize("steps, tol", [(18, 0.06), (64, 0.01)])
def test_heun_sampler_with_the_ideal_denoiser_recovers_a_gaussian(steps, tol):
    mu, s = 0.3, 0.6
    calls = []

    def ideal(x, sigma):  # E[y | y + sigma n = x] for y ~ N(mu, s^2)
        calls.append(sigma)
        return mu + s ** 2 / (s ** 2 + sigma ** 2) * (x - mu)

    z = torch.randn(40_000, 1, generator=torch.Generator().manual_seed(0))
    x = heun_sample(ideal, z, steps=steps)
    assert abs(float(x.mean()) - mu) < 0.015 and abs(float(x.std()) - s) < tol * s
    assert len(calls) == 2 * steps - 1  # Heun: one correction per step except the last


def test_heun_sampler_is_second_order():
    """Doubling the steps divides the error (against a 2000-step solution) by about 4."""
    mu, s = 0.3, 0.6

    def ideal(x, sigma):
        return mu + s ** 2 / (s ** 2 + sigma ** 2) * (x - mu)

    z = torch.randn(2000, 1, generator=torch.Generator().manual_seed(0))
    ref = heun_sample(ideal, z, steps=2000)
    errors = [float((heun_sample(ideal, z, steps=n) - ref).abs().max()) for n in (18, 36, 72)]
    assert all(3.0 < a / b < 6.0 for a, b in pairwise(errors)), errors


def test_heun_sampler_with_the_ideal_denoiser_recovers_a_two_point_mixture():
    def ideal(x, sigma):  # y = +-1 with probability 1/2: E[y | x] = tanh(x / sigma^2)
        return torch.tanh(x / sigma ** 2)

    z = torch.randn(40_000, 1, generator=torch.Generator().manual_seed(1))
    x = heun_sample(ideal, z, steps=18)
    assert abs(float(x.mean())) < 0.02 and abs(float(x.var()) - 1.0) < 0.02
    assert float((x.abs() - 1).abs().max()) < 0.01  # every sample lands on a mode
    assert abs(float((x > 0).float().mean()) - 0.5) < 0.01


def test_guidance_zero_is_unconditional_and_one_is_conditional():
    gen = tiny()
    randomise(gen)
    labels = np.array([0, 1, 0, 1, 1, 0])
    seed, steps = 7, 4
    ema = gen.nets["ema"].eval()
    z = torch.randn(len(labels), 1, 28, 28, generator=torch.Generator().manual_seed(seed))
    y = torch.from_numpy(labels)
    with torch.no_grad():
        uncond = to_uint8(heun_sample(lambda x, s: ema(x, s, None), z, steps).clamp(-1, 1))
        cond = to_uint8(heun_sample(lambda x, s: ema(x, s, y), z, steps).clamp(-1, 1))
    g0 = gen.sample(labels, seed, steps=steps, guidance=0.0)
    g1 = gen.sample(labels, seed, steps=steps, guidance=1.0)
    np.testing.assert_array_equal(g0, uncond)
    np.testing.assert_array_equal(g1, cond)
    assert (g0 != g1).any()
    # other scales mix the two denoisers: D = D_u + w (D_c - D_u), in one batch
    x = torch.randn(6, 1, 28, 28)
    with torch.no_grad():
        mixed = guided(ema, y, 1.5)(x, 2.0)
        d_u, d_c = ema(x, 2.0, None), ema(x, 2.0, y)
        assert torch.allclose(mixed, d_u + 1.5 * (d_c - d_u), atol=1e-5)
        assert torch.allclose(guided(ema, y, 0.0)(x, 2.0), d_u) and torch.allclose(guided(ema, y, 1.0)(x, 2.0), d_c)
    assert (gen.steps, gen.guidance) == (3, 1.0)  # per-call options do not stick


def test_same_seed_same_images():
    a, b = tiny(seed=3), tiny(seed=3)
    randomise(a)
    randomise(b)
    labels = np.array([0, 1, 1, 0])
    np.testing.assert_array_equal(a.sample(labels, 11), b.sample(labels, 11))
    np.testing.assert_array_equal(a.sample(labels, 11), a.sample(labels, 11))
    assert (a.sample(labels, 11) != a.sample(labels, 12)).any()


def test_briefly_trained_conditional_samples_are_recognised(tmp_path):
    """Dark vs bright toy classes; the fixed classifier is 'mean brightness above 127'."""
    gen = tiny(model_channels=8, batch_size=16, epochs=25, lr=3e-3, sample_steps=5)
    gen.fit(toy_set(32), tmp_path, plots=False)
    labels = np.repeat([0, 1], 12)
    images = gen.sample(labels, seed=0)
    predicted = (images.reshape(len(images), -1).mean(1) > 127).astype(int)
    accuracy = float((predicted == labels).mean())
    assert accuracy >= 0.8, accuracy


# ----------------------------------------------------------------------------- checkpoints


def test_save_resume_continues_identically(tmp_path):
    train = toy_set(16)
    straight = tiny(epochs=2, dropout=0.1)
    ck1 = straight.fit(train, tmp_path / "straight", plots=False)
    first = tiny(epochs=1, dropout=0.1)
    first.fit(train, tmp_path / "resumed", plots=False)
    second = tiny(epochs=2, dropout=0.1)
    ck2 = second.fit(train, tmp_path / "resumed", resume=True, plots=False)
    s1 = torch.load(ck1 / STATE_FILE, weights_only=True)
    s2 = torch.load(ck2 / STATE_FILE, weights_only=True)
    assert s1["global_step"] == s2["global_step"] == 4
    for net in ("net", "ema"):
        for k, t in s1["nets"][net].items():
            assert torch.equal(t, s2["nets"][net][k]), (net, k)
    assert torch.equal(s1["optims"]["adam"]["state"][0]["exp_avg_sq"], s2["optims"]["adam"]["state"][0]["exp_avg_sq"])
    loaded = load_generator(ck2, device="cpu")
    assert isinstance(loaded, EDM) and loaded.epoch == 2 and loaded.finished
    np.testing.assert_array_equal(loaded.sample(np.array([0, 1]), 4), straight.sample(np.array([0, 1]), 4))


# ----------------------------------------------------------------------------- CLI


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("edm") / "data"
    make_medmnist_npz(root / "breastmnist.npz", n=(24, 8, 8))
    return root


def test_cli_fit_then_synthesize_records_the_sampler(tmp_path, data_root, capsys):
    run = tmp_path / "run"
    common = ["--data-root", str(data_root), "--no-verify-md5", "--device", "cpu"]
    assert cli.main(["generator", "fit", "--dataset", "breastmnist", "--generator", "edm", "--epochs", "1",
                     "--batch-size", "8", "--set", "model_channels=8", "--set", "sample_steps=2", "--out", str(run),
                     "--quiet", *common]) == 0
    ckpt = run / "checkpoint"
    store = tmp_path / "sets.zarr"
    base = ["synthesize", "--checkpoint", str(ckpt), "--strategy", "per-class", "--classes", "0,1", "--count", "2",
            "--seed", "5", "--out", str(store), *common]
    assert cli.main([*base, "--steps", "4", "--guidance", "1.5", "--group", "guided"]) == 0
    s = read_synthetic_set(f"{store}#guided")
    sampling = s.provenance["sampling"]
    assert sampling["sampler"] == "edm-heun" and sampling["steps"] == 4 and sampling["guidance"] == 1.5
    assert sampling["net_evaluations"] == 14 and s.provenance["generator"] == "edm"
    expected = load_generator(ckpt, device="cpu").sample(s.labels, 5, steps=4, guidance=1.5)
    np.testing.assert_array_equal(s.images, expected)
    # without the options: the checkpoint's defaults, recorded as well (what a study's sets get)
    assert cli.main([*base, "--group", "plain"]) == 0
    plain = read_synthetic_set(f"{store}#plain").provenance["sampling"]
    assert (plain["steps"], plain["guidance"]) == (2, 1.0)
    capsys.readouterr()
    # bad values: one line, exit 2, nothing written
    for extra, message in ((["--steps", "0"], "--steps 0"), (["--guidance", "-1"], "--guidance -1"),
                           (["--guidance", "nan"], "--guidance nan")):
        assert cli.main([*base, *extra, "--group", "bad"]) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1
        assert not (store / "bad").exists()


def test_cli_steps_on_a_generator_without_sampler_is_one_line(tmp_path, data_root, capsys):
    run = tmp_path / "cmn"
    common = ["--data-root", str(data_root), "--no-verify-md5", "--device", "cpu"]
    assert cli.main(["generator", "fit", "--dataset", "breastmnist", "--generator", "class-mean-noise",
                     "--epochs", "1", "--out", str(run), "--quiet", *common]) == 0
    capsys.readouterr()
    store = tmp_path / "sets.zarr"
    for extra in (["--steps", "4"], ["--guidance", "2"]):
        code = cli.main(["synthesize", "--checkpoint", str(run / "checkpoint"), "--strategy", "per-class",
                         "--classes", "0", "--count", "2", "--seed", "0", "--out", str(store), *extra, *common])
        err = capsys.readouterr().err
        assert code == 2 and len(err.strip().splitlines()) == 1, err
        assert extra[0] in err and "class-mean-noise" in err and "edm" in err
        assert not store.exists()


def test_a_study_fit_job_makes_an_edm_set(tmp_path, data_root):
    """--make-synthetic's worker (sweep/synthetic_stage.run_fit_job) with a study's `generators: {edm: ...}`."""
    from medaug.sweep.synthetic_stage import FitJob, SetToMake, run_fit_job

    store = tmp_path / "synthetic" / "edm.zarr"
    job = FitJob(dataset="breastmnist", size=28, data_options={}, generator="edm",
                 config={"epochs": 1, "batch_size": 8, "model_channels": 8, "sample_steps": 3, "guidance": 2.0},
                 fit_dir=str(tmp_path / "fit"), data_root=str(data_root), verify_md5=False, device="cpu",
                 sets=(SetToMake(ref=f"{store}#g", store=str(store), group="g",
                                 strategy={"name": "inverse-scarcity", "fraction": 0.25}),))
    result = run_fit_job(job)
    torch.set_num_threads(1)
    assert result["ok"] and result["made"] == [f"{store}#g"]
    sampling = read_synthetic_set(f"{store}#g").provenance["sampling"]
    assert (sampling["sampler"], sampling["steps"], sampling["guidance"]) == ("edm-heun", 3, 2.0)


def test_bf16_autocast_runs_the_unet_only():
    """The CUDA path's autocast (here on CPU, where torch also has bf16): F in bf16, D in float32, close."""
    gen = tiny()
    randomise(gen)
    net = gen.nets["net"].eval()
    x, y = torch.randn(4, 1, 28, 28), torch.tensor([0, 1, 0, 1])
    with torch.no_grad():
        full = net(x, 0.7, y)
        net.autocast_dtype = torch.bfloat16
        half = net(x, 0.7, y)
    assert half.dtype == torch.float32 and not torch.equal(half, full)
    assert float((half - full).abs().max()) < 0.05
    assert tiny().nets["net"].autocast_dtype is None  # CPU generators train in float32
