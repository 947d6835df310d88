"""AutoAugment (Cubuk et al. 2018) with per-sample sub-policies, batched by grouping.

Seed 004 (1699ee19099735b5, section 5.1.2) trains ResNets on MedMNIST with the
ImageNet, CIFAR-10 and SVHN AutoAugment policies. The policies, magnitude bins
(10) and op definitions here are those of `torchvision.transforms.v2.AutoAugment`
(nearest interpolation, fill 0), which the tests compare against.

Per sample, as torchvision does per image: draw one of the 25 sub-policies; for
each of its two ops, apply it with its probability and, for signed ops, negate the
magnitude with probability 0.5. To run this on a batch without a per-sample loop,
each of the two stages groups the samples that apply the same op with the same
signed magnitude and calls the `torchvision.transforms.v2.functional` op once per
group on the uint8 sub-batch (Sharpness uses medaug's own batched op, which is
bit-identical to torchvision's and much faster on small batches). A batch needs at
most a few dozen such calls, whatever its size; merging samples of different
sub-policies that share an op is exact, because the stages run in order.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import torch
from torchvision.transforms.v2 import InterpolationMode
from torchvision.transforms.v2 import functional as TF

from medaug.augment import ops
from medaug.augment.base import AUGMENTATIONS, Augmentation

SubPolicy = tuple[tuple[str, float, int | None], tuple[str, float, int | None]]

# (op, probability, magnitude bin) pairs, as published by Cubuk et al. and used by torchvision.
POLICIES: dict[str, tuple[SubPolicy, ...]] = {
    "imagenet": (
        (("Posterize", 0.4, 8), ("Rotate", 0.6, 9)),
        (("Solarize", 0.6, 5), ("AutoContrast", 0.6, None)),
        (("Equalize", 0.8, None), ("Equalize", 0.6, None)),
        (("Posterize", 0.6, 7), ("Posterize", 0.6, 6)),
        (("Equalize", 0.4, None), ("Solarize", 0.2, 4)),
        (("Equalize", 0.4, None), ("Rotate", 0.8, 8)),
        (("Solarize", 0.6, 3), ("Equalize", 0.6, None)),
        (("Posterize", 0.8, 5), ("Equalize", 1.0, None)),
        (("Rotate", 0.2, 3), ("Solarize", 0.6, 8)),
        (("Equalize", 0.6, None), ("Posterize", 0.4, 6)),
        (("Rotate", 0.8, 8), ("Color", 0.4, 0)),
        (("Rotate", 0.4, 9), ("Equalize", 0.6, None)),
        (("Equalize", 0.0, None), ("Equalize", 0.8, None)),
        (("Invert", 0.6, None), ("Equalize", 1.0, None)),
        (("Color", 0.6, 4), ("Contrast", 1.0, 8)),
        (("Rotate", 0.8, 8), ("Color", 1.0, 2)),
        (("Color", 0.8, 8), ("Solarize", 0.8, 7)),
        (("Sharpness", 0.4, 7), ("Invert", 0.6, None)),
        (("ShearX", 0.6, 5), ("Equalize", 1.0, None)),
        (("Color", 0.4, 0), ("Equalize", 0.6, None)),
        (("Equalize", 0.4, None), ("Solarize", 0.2, 4)),
        (("Solarize", 0.6, 5), ("AutoContrast", 0.6, None)),
        (("Invert", 0.6, None), ("Equalize", 1.0, None)),
        (("Color", 0.6, 4), ("Contrast", 1.0, 8)),
        (("Equalize", 0.8, None), ("Equalize", 0.6, None)),
    ),
    "cifar10": (
        (("Invert", 0.1, None), ("Contrast", 0.2, 6)),
        (("Rotate", 0.7, 2), ("TranslateX", 0.3, 9)),
        (("Sharpness", 0.8, 1), ("Sharpness", 0.9, 3)),
        (("ShearY", 0.5, 8), ("TranslateY", 0.7, 9)),
        (("AutoContrast", 0.5, None), ("Equalize", 0.9, None)),
        (("ShearY", 0.2, 7), ("Posterize", 0.3, 7)),
        (("Color", 0.4, 3), ("Brightness", 0.6, 7)),
        (("Sharpness", 0.3, 9), ("Brightness", 0.7, 9)),
        (("Equalize", 0.6, None), ("Equalize", 0.5, None)),
        (("Contrast", 0.6, 7), ("Sharpness", 0.6, 5)),
        (("Color", 0.7, 7), ("TranslateX", 0.5, 8)),
        (("Equalize", 0.3, None), ("AutoContrast", 0.4, None)),
        (("TranslateY", 0.4, 3), ("Sharpness", 0.2, 6)),
        (("Brightness", 0.9, 6), ("Color", 0.2, 8)),
        (("Solarize", 0.5, 2), ("Invert", 0.0, None)),
        (("Equalize", 0.2, None), ("AutoContrast", 0.6, None)),
        (("Equalize", 0.2, None), ("Equalize", 0.6, None)),
        (("Color", 0.9, 9), ("Equalize", 0.6, None)),
        (("AutoContrast", 0.8, None), ("Solarize", 0.2, 8)),
        (("Brightness", 0.1, 3), ("Color", 0.7, 0)),
        (("Solarize", 0.4, 5), ("AutoContrast", 0.9, None)),
        (("TranslateY", 0.9, 9), ("TranslateY", 0.7, 9)),
        (("AutoContrast", 0.9, None), ("Solarize", 0.8, 3)),
        (("Equalize", 0.8, None), ("Invert", 0.1, None)),
        (("TranslateY", 0.7, 9), ("AutoContrast", 0.9, None)),
    ),
    "svhn": (
        (("ShearX", 0.9, 4), ("Invert", 0.2, None)),
        (("ShearY", 0.9, 8), ("Invert", 0.7, None)),
        (("Equalize", 0.6, None), ("Solarize", 0.6, 6)),
        (("Invert", 0.9, None), ("Equalize", 0.6, None)),
        (("Equalize", 0.6, None), ("Rotate", 0.9, 3)),
        (("ShearX", 0.9, 4), ("AutoContrast", 0.8, None)),
        (("ShearY", 0.9, 8), ("Invert", 0.4, None)),
        (("ShearY", 0.9, 5), ("Solarize", 0.2, 6)),
        (("Invert", 0.9, None), ("AutoContrast", 0.8, None)),
        (("Equalize", 0.6, None), ("Rotate", 0.9, 3)),
        (("ShearX", 0.9, 4), ("Solarize", 0.3, 3)),
        (("ShearY", 0.8, 8), ("Invert", 0.7, None)),
        (("Equalize", 0.9, None), ("TranslateY", 0.6, 6)),
        (("Invert", 0.9, None), ("Equalize", 0.6, None)),
        (("Contrast", 0.3, 3), ("Rotate", 0.8, 4)),
        (("Invert", 0.8, None), ("TranslateY", 0.0, 2)),
        (("ShearY", 0.7, 6), ("Solarize", 0.4, 8)),
        (("Invert", 0.6, None), ("Rotate", 0.8, 4)),
        (("ShearY", 0.3, 7), ("TranslateX", 0.9, 3)),
        (("ShearX", 0.1, 6), ("Invert", 0.6, None)),
        (("Solarize", 0.7, 2), ("TranslateY", 0.6, 7)),
        (("ShearY", 0.8, 4), ("Invert", 0.8, None)),
        (("ShearX", 0.7, 9), ("TranslateY", 0.8, 3)),
        (("ShearY", 0.8, 5), ("AutoContrast", 0.7, None)),
        (("ShearX", 0.7, 2), ("Invert", 0.1, None)),
    ),
}

NUM_BINS = 10
SIGNED_OPS = frozenset(
    {"ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate", "Brightness", "Color", "Contrast", "Sharpness"}
)


@lru_cache(maxsize=4096)
def magnitude(op: str, bin_index: int | None, height: int, width: int) -> float:
    """The unsigned magnitude of `op` at `bin_index` of 10 bins (torchvision's table, float32)."""
    if bin_index is None:
        return 0.0
    top = {
        "ShearX": 0.3, "ShearY": 0.3, "Rotate": 30.0,
        "TranslateX": 150.0 / 331.0 * width, "TranslateY": 150.0 / 331.0 * height,
        "Brightness": 0.9, "Color": 0.9, "Contrast": 0.9, "Sharpness": 0.9,
    }
    if op in top:
        return float(torch.linspace(0.0, top[op], NUM_BINS)[bin_index])
    if op == "Solarize":
        return float(torch.linspace(1.0, 0.0, NUM_BINS)[bin_index])
    if op == "Posterize":
        return float((8 - (torch.arange(NUM_BINS) / ((NUM_BINS - 1) / 4))).round().int()[bin_index])
    raise ValueError(f"op {op!r} takes no magnitude")


def apply_op(images: torch.Tensor, op: str, value: float) -> torch.Tensor:
    """One AutoAugment op with a signed magnitude on a uint8 batch, as torchvision applies it."""
    nearest = InterpolationMode.NEAREST
    if op == "ShearX":
        shear = [math.degrees(math.atan(value)), 0.0]
        return TF.affine(images, angle=0.0, translate=[0, 0], scale=1.0, shear=shear,
                         interpolation=nearest, fill=None, center=[0, 0])
    if op == "ShearY":
        shear = [0.0, math.degrees(math.atan(value))]
        return TF.affine(images, angle=0.0, translate=[0, 0], scale=1.0, shear=shear,
                         interpolation=nearest, fill=None, center=[0, 0])
    if op == "TranslateX":
        return TF.affine(images, angle=0.0, translate=[int(value), 0], scale=1.0, shear=[0.0, 0.0],
                         interpolation=nearest, fill=None)
    if op == "TranslateY":
        return TF.affine(images, angle=0.0, translate=[0, int(value)], scale=1.0, shear=[0.0, 0.0],
                         interpolation=nearest, fill=None)
    simple: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
        "Rotate": lambda x: TF.rotate(x, angle=value, interpolation=nearest, fill=None),
        "Brightness": lambda x: TF.adjust_brightness(x, brightness_factor=1.0 + value),
        "Color": lambda x: TF.adjust_saturation(x, saturation_factor=1.0 + value),
        "Contrast": lambda x: TF.adjust_contrast(x, contrast_factor=1.0 + value),
        # bit-identical to TF.adjust_sharpness (tested), without its slow small-batch convolution
        "Sharpness": lambda x: ops.adjust_sharpness(
            x, torch.full((x.shape[0],), 1.0 + value, dtype=torch.float64, device=x.device)
        ),
        "Posterize": lambda x: TF.posterize(x, bits=int(value)),
        "Solarize": lambda x: TF.solarize(x, threshold=255.0 * value),
        "AutoContrast": TF.autocontrast,
        "Equalize": TF.equalize,
        "Invert": TF.invert,
    }
    if op not in simple:
        raise ValueError(f"unknown AutoAugment op {op!r}")
    return simple[op](images)


@dataclass(frozen=True)
class AutoAugmentPlan:
    """The random choices for one batch: which sub-policy, which ops fire, which signs.

    sub_policy: int64 (N,); applied, negative: bool (N, 2), one column per op of the
    sub-policy (negative only matters for signed ops).
    """

    sub_policy: torch.Tensor
    applied: torch.Tensor
    negative: torch.Tensor


class AutoAugment(Augmentation):
    """AutoAugment with one of the published policies, each sample drawing its own sub-policy."""

    def __init__(self, channels: int, policy: str) -> None:
        super().__init__(channels)
        if channels not in (1, 3):
            raise ValueError(f"AutoAugment works on 1- or 3-channel images, got {channels}")
        if policy not in POLICIES:
            raise ValueError(f"unknown AutoAugment policy {policy!r}; expected one of {sorted(POLICIES)}")
        self.policy = policy
        self.name = f"autoaugment-{policy}"
        self.sub_policies = POLICIES[policy]
        self._probabilities = torch.tensor([[p for _, p, _ in sp] for sp in self.sub_policies])

    def draw_plan(self, n: int, generator: torch.Generator) -> AutoAugmentPlan:
        """Per-sample choices, drawn from `generator` in a fixed order."""
        device = generator.device
        sub = torch.randint(len(self.sub_policies), (n,), generator=generator, device=device)
        fire = torch.rand(n, 2, generator=generator, device=device)
        sign = torch.rand(n, 2, generator=generator, device=device)
        # torchvision applies an op when rand <= probability, and negates when rand <= 0.5
        applied = fire <= self._probabilities.to(device)[sub]
        return AutoAugmentPlan(sub_policy=sub, applied=applied, negative=sign <= 0.5)

    def apply_plan(self, images: torch.Tensor, plan: AutoAugmentPlan) -> torch.Tensor:
        """Run both stages: per stage, one torchvision call per distinct (op, signed magnitude)."""
        _, _, h, w = images.shape
        out = images.clone()
        for stage in range(2):
            # code = sub-policy * 2 + negative, for the samples whose op fires in this stage
            codes = plan.sub_policy * 2 + plan.negative[:, stage].long()
            codes = torch.where(plan.applied[:, stage], codes, torch.full_like(codes, -1))
            groups: dict[tuple[str, float], list[int]] = {}
            for code in torch.unique(codes).tolist():
                if code < 0:
                    continue
                sub_index, negative = divmod(code, 2)
                op, _, bin_index = self.sub_policies[sub_index][stage]
                value = magnitude(op, bin_index, h, w)
                if negative and op in SIGNED_OPS:
                    value = -value
                groups.setdefault((op, value), []).append(code)
            for (op, value), group_codes in groups.items():
                member = codes == group_codes[0]
                for extra in group_codes[1:]:
                    member |= codes == extra
                index = member.nonzero().squeeze(1)
                out.index_copy_(0, index, apply_op(out.index_select(0, index), op, value))
        return out

    def apply(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return self.apply_plan(images, self.draw_plan(images.shape[0], generator))

    def describe(self) -> str:
        return f"{self.name}(Cubuk et al. 2018 {self.policy} policy, 25 sub-policies, per sample, nearest, fill 0)"


@AUGMENTATIONS.register("autoaugment-imagenet")
def build_autoaugment_imagenet(channels: int) -> Augmentation:
    """Seed 004: AutoAugment, ImageNet policy."""
    return AutoAugment(channels, "imagenet")


@AUGMENTATIONS.register("autoaugment-cifar10")
def build_autoaugment_cifar10(channels: int) -> Augmentation:
    """Seed 004: AutoAugment, CIFAR-10 policy."""
    return AutoAugment(channels, "cifar10")


@AUGMENTATIONS.register("autoaugment-svhn")
def build_autoaugment_svhn(channels: int) -> Augmentation:
    """Seed 004: AutoAugment, SVHN policy."""
    return AutoAugment(channels, "svhn")
