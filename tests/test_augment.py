"""Batched augmentation: per-sample randomness, shapes, determinism, and equivalence to
torchvision's ops (seed 000), Keras' affine transform (seeds 001/003) and AutoAugment (seed 004)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import ndimage
from torchvision.transforms.v2 import AutoAugment as TVAutoAugment
from torchvision.transforms.v2 import AutoAugmentPolicy
from torchvision.transforms.v2 import functional as TF

from medaug.augment import AUGMENTATIONS, build_augmentation, ops
from medaug.augment.autoaugment import NUM_BINS, POLICIES, SIGNED_OPS, AutoAugment, apply_op, magnitude
from medaug.augment.base import bernoulli, same_device, uniform
from medaug.augment.pipelines import KerasImageDataGenerator, SharpnessContrastFlip, build_classic_xray
from medaug.errors import MedaugError

NAMES = [
    "none", "sharpness-contrast-flip", "rot-shift-flip", "classic-xray",
    "autoaugment-imagenet", "autoaugment-cifar10", "autoaugment-svhn", "flip-shift-rotate-noise",
]


def _images(n: int, channels: int, size: int = 28, seed: int = 0) -> torch.Tensor:
    """Random uint8 images with some structure (a bright square), so geometry shows."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 160, (n, channels, size, size), generator=g, dtype=torch.uint8)
    x[:, :, 4:12, 6:16] = 230
    return x


def _gen(seed: int = 0, device: str = "cpu") -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed)


def _distinct(batch: torch.Tensor) -> int:
    return len({bytes(img.numpy().tobytes()) for img in batch})


# ---------------------------------------------------------------- registry and contract


def test_registry_holds_every_pipeline():
    assert sorted(NAMES) == AUGMENTATIONS.names()


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("channels", [1, 3])
def test_builds_and_keeps_shape_dtype_and_input(name, channels):
    aug = build_augmentation(name, channels)
    assert aug.name == name
    assert name in aug.describe()
    x = _images(8, channels, size=20)
    before = x.clone()
    y = aug(x, _gen())
    assert y.shape == x.shape and y.dtype == torch.uint8 and y.device == x.device
    assert torch.equal(x, before), "the input batch must not be modified in place"
    assert aug(x[:0], _gen()).shape == (0, channels, 20, 20)


@pytest.mark.parametrize("name", [n for n in NAMES if n != "none"])
def test_per_sample_randomness_and_seed(name):
    channels = 3
    one = _images(1, channels)
    batch = one.expand(64, -1, -1, -1).contiguous()
    aug = build_augmentation(name, channels)
    out = aug(batch, _gen(7))
    # 64 copies of one image come back as many different images
    assert _distinct(out) >= 16, f"{name}: only {_distinct(out)} distinct outputs of 64"
    assert torch.equal(out, aug(batch, _gen(7))), "same seed must give the same batch"
    assert not torch.equal(out, aug(batch, _gen(8)))


def test_sharpness_contrast_flip_grey_varies_per_sample():
    # single channel: 3 coin flips per sample, so at most 8 distinct outputs; expect most of them
    batch = _images(1, 1).expand(64, -1, -1, -1).contiguous()
    out = build_augmentation("sharpness-contrast-flip", 1)(batch, _gen(3))
    assert _distinct(out) >= 6


def test_none_is_identity():
    x = _images(4, 3)
    y = build_augmentation("none", 3)(x, _gen())
    assert torch.equal(y, x)


def test_bad_names_and_inputs():
    with pytest.raises(MedaugError, match="unknown augmentation 'nope'.*rot-shift-flip"):
        build_augmentation("nope", 1)
    with pytest.raises(MedaugError, match="autoaugment-cifar10"):
        build_augmentation("autoaugment-cifar10", 2)
    aug = build_augmentation("rot-shift-flip", 1)
    with pytest.raises(ValueError, match="uint8"):
        aug(torch.zeros(2, 1, 8, 8), _gen())
    with pytest.raises(ValueError, match="channels"):
        aug(torch.zeros(2, 3, 8, 8, dtype=torch.uint8), _gen())


def test_a_generator_on_another_device_is_refused_and_bare_cuda_is_the_current_device(monkeypatch):
    with pytest.raises(ValueError, match="generator on cpu but images on meta"):
        build_augmentation("none", 1)(torch.empty(2, 1, 4, 4, dtype=torch.uint8, device="meta"), _gen(0))
    # a torch.Generator("cuda") reports device 'cuda' while tensors report 'cuda:0' (seen on an H200)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 1)
    assert same_device("cuda", "cuda:1") and same_device("cuda:1", torch.device("cuda"))
    assert not same_device("cuda", "cuda:0") and not same_device("cuda:0", "cpu") and same_device("cpu", "cpu")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("name", NAMES)
def test_runs_on_cuda_with_a_cuda_generator(name):
    x = _images(16, 3).cuda()
    y = build_augmentation(name, 3)(x, _gen(0, "cuda"))
    assert y.device == x.device and y.dtype == torch.uint8 and y.shape == x.shape


# ---------------------------------------------------------------- seed 000: torchvision equivalence


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("factor", [0.0, 0.5, 2.0, 3.7])
def test_sharpness_matches_torchvision(channels, factor):
    x = _images(3, channels, size=17, seed=1)
    ours = ops.adjust_sharpness(x, torch.full((3,), factor, dtype=torch.float64))
    for i in range(3):
        assert torch.equal(ours[i], TF.adjust_sharpness(x[i], sharpness_factor=factor))
    # per-sample factors: each sample gets its own
    mixed = ops.adjust_sharpness(x, torch.tensor([1.0, factor, 0.3], dtype=torch.float64))
    assert torch.equal(mixed[0], x[0]) and torch.equal(mixed[1], ours[1])


@pytest.mark.parametrize("channels", [1, 3])
def test_autocontrast_matches_torchvision(channels):
    x = (_images(4, channels, seed=2) // 3 + 40).to(torch.uint8)  # a narrow range to stretch
    x[1, 0] = 77  # a flat channel stays as it is
    ours = ops.autocontrast(x)
    for i in range(4):
        assert torch.equal(ours[i], TF.autocontrast(x[i]))
    masked = ops.autocontrast(x, torch.tensor([True, False, True, False]))
    assert torch.equal(masked[1], x[1]) and torch.equal(masked[3], x[3]) and torch.equal(masked[2], ours[2])


@pytest.mark.parametrize("shift", [-0.05, -0.013, 0.0, 0.031, 0.05, 0.4])
def test_hue_matches_torchvision_within_one_level(shift):
    x = torch.randint(0, 256, (2, 3, 16, 16), generator=_gen(4), dtype=torch.uint8)
    x[1, :, :4] = 128  # grey pixels (no hue) stay grey
    # ties for the maximum channel, which decide the hue formula: r=g, g=b, r=b, and black/white
    x[0, 1, :3] = x[0, 0, :3]
    x[0, 2, 3:6] = x[0, 1, 3:6]
    x[0, 2, 6:9] = x[0, 0, 6:9]
    x[0, :, 9] = 0
    x[0, :, 10] = 255
    ours = ops.adjust_hue(x, torch.full((2,), shift))
    for i in range(2):
        ref = TF.adjust_hue(x[i], hue_factor=shift)
        assert (ours[i].int() - ref.int()).abs().max() <= 1
    # a one-channel image has no hue, as in torchvision
    grey = _images(2, 1)
    assert torch.equal(ops.adjust_hue(grey, torch.full((2,), 0.3)), grey)


def test_flip_matches_torchvision_and_is_per_sample():
    x = _images(3, 3, seed=5)
    out = ops.flip(x, torch.tensor([True, False, True]))
    assert torch.equal(out[0], TF.horizontal_flip(x[0])) and torch.equal(out[2], TF.horizontal_flip(x[2]))
    assert torch.equal(out[1], x[1])
    assert torch.equal(ops.flip(x, torch.ones(3, dtype=torch.bool), dim=-2), TF.vertical_flip(x))


@pytest.mark.parametrize("channels", [1, 3])
def test_sharpness_contrast_flip_equals_the_torchvision_chain(channels):
    """Whole pipeline vs torchvision's ops applied image by image with the same per-sample draws."""
    x = _images(12, channels, seed=6)
    aug = SharpnessContrastFlip(channels)
    out = aug(x, _gen(11))
    # replay the draws in the pipeline's order: sharpen, contrast, [hue], flip
    g = _gen(11)
    sharpen, contrast = bernoulli(g, 12, 0.5), bernoulli(g, 12, 0.5)
    hue = uniform(g, 12, -0.05, 0.05) if channels == 3 else None
    mirror = bernoulli(g, 12, 0.5)
    for i in range(12):
        ref = x[i]
        if sharpen[i]:
            ref = TF.adjust_sharpness(ref, sharpness_factor=2.0)
        if contrast[i]:
            ref = TF.autocontrast(ref)
        if hue is not None:
            ref = TF.adjust_hue(ref, hue_factor=float(hue[i]))
        if mirror[i]:
            ref = TF.horizontal_flip(ref)
        assert (out[i].int() - ref.int()).abs().max() <= (1 if channels == 3 else 0), f"sample {i}"


def test_forced_flip_really_flips():
    x = _images(5, 1)
    aug = SharpnessContrastFlip(1, sharpness_p=0.0, contrast_p=0.0, flip_p=1.0)
    assert torch.equal(aug(x, _gen()), x.flip(-1))
    keras_h = KerasImageDataGenerator(1, name="h", horizontal_flip=True, flip_p=1.0)
    assert torch.equal(keras_h(x, _gen()), x.flip(-1))
    keras_v = KerasImageDataGenerator(1, name="v", vertical_flip=True, flip_p=1.0)
    assert torch.equal(keras_v(x, _gen()), x.flip(-2))
    keras_none = KerasImageDataGenerator(1, name="no-op")
    assert torch.equal(keras_none(x, _gen()), x)


# ---------------------------------------------------------------- seeds 001/003: Keras equivalence


def _keras_reference(img: np.ndarray, rot, tx, ty, shear, zx, zy) -> np.ndarray:
    """keras_preprocessing's apply_affine_transform (order 1, fill_mode 'nearest'), in float64."""
    t, s = np.deg2rad(rot), np.deg2rad(shear)
    rotation = np.array([[np.cos(t), -np.sin(t), 0], [np.sin(t), np.cos(t), 0], [0, 0, 1]])
    shift = np.array([[1, 0, tx], [0, 1, ty], [0, 0, 1]])
    shearing = np.array([[1, -np.sin(s), 0], [0, np.cos(s), 0], [0, 0, 1]])
    zoom = np.array([[zx, 0, 0], [0, zy, 0], [0, 0, 1]])
    m = rotation @ shift @ shearing @ zoom
    h, w = img.shape[-2:]
    ox, oy = h / 2 - 0.5, w / 2 - 0.5
    m = np.array([[1, 0, ox], [0, 1, oy], [0, 0, 1]]) @ m @ np.array([[1, 0, -ox], [0, 1, -oy], [0, 0, 1]])
    return np.stack([
        ndimage.affine_transform(ch.astype(np.float64), m[:2, :2], m[:2, 2], order=1, mode="nearest")
        for ch in img
    ])


@pytest.mark.parametrize(
    "params",
    [
        dict(rot=30.0, tx=3.0, ty=-2.0, shear=0.0, zx=1.0, zy=1.0),
        dict(rot=-75.0, tx=-4.4, ty=5.1, shear=12.0, zx=0.9, zy=1.1),
        dict(rot=4.0, tx=0.7, ty=-1.2, shear=-3.0, zx=1.08, zy=0.93),
    ],
)
def test_keras_affine_matches_keras_reference(params):
    x = _images(1, 2, size=28, seed=9)[:, :, :20]  # non-square: 20 rows x 28 columns
    p = {k: torch.tensor([v], dtype=torch.float32) for k, v in params.items()}
    no = torch.zeros(1, dtype=torch.bool)
    theta = ops.keras_affine_matrices(
        20, 28, rotation_deg=p["rot"], shift_rows=p["tx"], shift_cols=p["ty"], shear_deg=p["shear"],
        zoom_rows=p["zx"], zoom_cols=p["zy"], flip_cols=no, flip_rows=no,
    )
    ours = ops.warp(x, theta)[0].numpy().astype(np.int32)
    ref = np.clip(np.round(_keras_reference(x[0].numpy(), **params)), 0, 255).astype(np.int32)
    diff = np.abs(ours - ref)
    assert diff.max() <= 1 and (diff > 0).mean() < 0.02


def test_classic_xray_brightness_saturates_instead_of_wrapping():
    x = torch.full((2, 1, 10, 10), 200, dtype=torch.uint8)
    bright = build_classic_xray(1, brightness_range=(1.4, 1.4))
    assert (bright(x, _gen()) == 255).all()
    dark = build_classic_xray(1, brightness_range=(0.6, 0.6), rotation_range=0.0, width_shift_range=0.0,
                              height_shift_range=0.0, shear_range=0.0, zoom_range=0.0)
    assert (dark(x, _gen()) == 120).all()


def test_rot_shift_flip_moves_content_per_sample():
    x = _images(64, 1, seed=12)
    out = build_augmentation("rot-shift-flip", 1)(x, _gen(1))
    changed = (out != x).flatten(1).any(1)
    assert changed.all()


# ---------------------------------------------------------------- seed 004: AutoAugment


@pytest.mark.parametrize("policy", ["imagenet", "cifar10", "svhn"])
def test_policies_and_magnitudes_are_torchvision_s(policy):
    tv = TVAutoAugment(AutoAugmentPolicy(policy))
    assert [tuple(sp) for sp in tv._policies] == list(POLICIES[policy])  # torchvision's (private) table
    for op, (fn, signed) in tv._AUGMENTATION_SPACE.items():
        assert signed == (op in SIGNED_OPS)
        table = fn(NUM_BINS, 20, 28)
        for b in range(NUM_BINS):
            want = 0.0 if table is None else float(table[b])
            assert magnitude(op, None if table is None else b, 20, 28) == want


def test_autoaugment_op_frequencies_follow_the_policy():
    aug = AutoAugment(3, "imagenet")
    n = 20_000
    plan = aug.draw_plan(n, _gen(0))
    counts = torch.bincount(plan.sub_policy, minlength=25).double() / n
    assert (counts - 1 / 25).abs().max() < 0.012
    for stage in range(2):
        applied = plan.applied[:, stage]
        for k, sub in enumerate(POLICIES["imagenet"]):
            p = sub[stage][1]
            rate = applied[plan.sub_policy == k].double().mean().item()
            assert abs(rate - p) < 0.08, (k, stage, rate, p)
    # per op name: expected applications per sample = sum over sub-policies of p / 25
    expected: dict[str, float] = {}
    for sub in POLICIES["imagenet"]:
        for op, p, _ in sub:
            expected[op] = expected.get(op, 0.0) + p / 25
    observed: dict[str, float] = {}
    for stage in range(2):
        for k, sub in enumerate(POLICIES["imagenet"]):
            hit = (plan.applied[:, stage] & (plan.sub_policy == k)).sum().item()
            observed[sub[stage][0]] = observed.get(sub[stage][0], 0.0) + hit / n
    for op, want in expected.items():
        assert abs(observed[op] - want) < 0.02, (op, observed[op], want)
    assert abs(plan.negative.double().mean().item() - 0.5) < 0.02


@pytest.mark.parametrize("policy", ["imagenet", "cifar10", "svhn"])
@pytest.mark.parametrize("channels", [1, 3])
def test_batched_autoaugment_equals_torchvision_per_image(policy, channels):
    """Grouping must give each sample exactly its own ops: compare with a per-image loop."""
    aug = AutoAugment(channels, policy)
    x = _images(48, channels, size=24, seed=13)
    plan = aug.draw_plan(48, _gen(5))
    out = aug.apply_plan(x, plan)
    for i in range(48):
        ref = x[i : i + 1]
        for stage in range(2):
            if not plan.applied[i, stage]:
                continue
            op, _, b = POLICIES[policy][int(plan.sub_policy[i])][stage]
            value = magnitude(op, b, 24, 24)
            if op in SIGNED_OPS and plan.negative[i, stage]:
                value = -value
            ref = apply_op(ref, op, value)
        assert torch.equal(out[i : i + 1], ref), f"sample {i}"
    # two images of one batch get different ops
    ops_drawn = {(int(s), tuple(a.tolist())) for s, a in zip(plan.sub_policy, plan.applied)}
    assert len(ops_drawn) > 10


def test_autoaugment_sharpness_is_torchvision_s_at_every_policy_magnitude():
    x = _images(6, 3, size=16, seed=14)
    for b in range(NUM_BINS):
        for sign in (1.0, -1.0):
            value = sign * magnitude("Sharpness", b, 16, 16)
            assert torch.equal(apply_op(x, "Sharpness", value), TF.adjust_sharpness(x, 1.0 + value))


def test_autoaugment_rotate_uses_torchvision_semantics():
    x = _images(1, 1, size=24)
    assert torch.equal(apply_op(x, "Rotate", 30.0), TF.rotate(x, 30.0))
    assert torch.equal(apply_op(x, "Solarize", 0.5), TF.solarize(x, 127.5))
    sheared = apply_op(x, "ShearX", 0.3)
    assert torch.equal(sheared, TF.affine(x, angle=0.0, translate=[0, 0], scale=1.0,
                                          shear=[math.degrees(math.atan(0.3)), 0.0], center=[0, 0]))
