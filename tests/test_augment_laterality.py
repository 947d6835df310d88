"""Pipelines that move content across the midline, on classes defined by their side (OrganAMNIST):
which pipelines say so, which class lists have left/right pairs, and the warning that training
and the geometric generator give."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from medaug.augment import AUGMENTATIONS, build_augmentation
from medaug.augment.laterality import lateral_pairs, side_swap_warning
from medaug.augment.pipelines import KerasImageDataGenerator
from medaug.augment.variants import FlipShiftRotateNoise
from medaug.data.imageset import ImageSet
from medaug.data.medmnist import load_medmnist
from medaug.generators import build_generator
from medaug.train.loop import TrainConfig, train_classifier

ORGAN = ("bladder", "femur-left", "femur-right", "heart", "kidney-left", "kidney-right", "liver", "lung-left",
         "lung-right", "pancreas", "spleen")
BLOOD = ("basophil", "eosinophil", "erythroblast", "immature granulocytes(myelocytes, metamyelocytes and "
         "promyelocytes)", "lymphocyte", "monocyte", "neutrophil", "platelet")


def test_left_right_pairs_of_medmnist_class_lists():
    assert lateral_pairs(ORGAN) == [("femur-left", "femur-right"), ("kidney-left", "kidney-right"),
                                    ("lung-left", "lung-right")]
    assert lateral_pairs(BLOOD) == [] and lateral_pairs(("malignant", "normal, benign")) == []
    assert lateral_pairs(("Left Breast", "RIGHT BREAST", "left")) == [("Left Breast", "RIGHT BREAST")]


def test_each_registered_pipeline_says_whether_it_swaps_sides():
    said = {name: build_augmentation(name, 1).swaps_sides() for name in AUGMENTATIONS.names()}
    assert said["none"] is None and said["classic-xray"] is None  # rotations of 5 degrees, no flips
    assert all(said[n] is None for n in said if n.startswith("autoaugment"))  # rotations up to 30 degrees
    assert said["sharpness-contrast-flip"] == "horizontal flips (p=0.5)"
    assert said["rot-shift-flip"] == "horizontal flips (p=0.5) and rotations up to 90 degrees"
    assert said["flip-shift-rotate-noise"] == "horizontal flips (p=0.125) and rotations by 110 degrees (p=0.125)"
    assert KerasImageDataGenerator(1, name="v", vertical_flip=True, rotation_range=45).swaps_sides() is None
    assert FlipShiftRotateNoise(1, probabilities=(1, 0, 1, 1, 1, 1, 1, 1)).swaps_sides() == \
        "rotations by 110 degrees (p=0.143)"


def test_the_warning_names_the_pipeline_the_set_and_its_pairs():
    flip = build_augmentation("rot-shift-flip", 1)
    assert side_swap_warning(flip, "organamnist", ORGAN) == (
        "augmentation 'rot-shift-flip' applies horizontal flips (p=0.5) and rotations up to 90 degrees, and "
        "organamnist's classes come in left/right pairs (femur-left/femur-right, kidney-left/kidney-right, "
        "lung-left/lung-right): images moved to the other side keep a label that is now wrong")
    assert side_swap_warning(flip, "bloodmnist", BLOOD) is None
    assert side_swap_warning(build_augmentation("classic-xray", 1), "organamnist", ORGAN) is None


def _lateral_set(split: str, n: int = 12) -> ImageSet:
    rng = np.random.default_rng(0)
    labels = (np.arange(n) % 2).astype(np.int64)
    images = rng.integers(0, 256, (n, 1, 28, 28), dtype=np.uint8)
    return ImageSet("lateralmnist", split, images, labels, ("kidney-left", "kidney-right"), "binary-class")


@pytest.mark.parametrize("augmentation, warned", [("sharpness-contrast-flip", True), ("classic-xray", False)])
def test_training_warns_once_for_a_pipeline_that_swaps_sides(caplog, augmentation, warned):
    from medaug.classifiers import build_classifier

    torch.manual_seed(0)
    model = build_classifier("cnn", 1, 2, 28)
    config = TrainConfig(augmentation=augmentation, epochs=1, batch_size=6)
    with caplog.at_level(logging.WARNING, logger="medaug.train.loop"):
        train_classifier(model, _lateral_set("train"), _lateral_set("val", 6), config, torch.device("cpu"))
    hits = [r.getMessage() for r in caplog.records if "left/right pairs (kidney-left/kidney-right)" in r.getMessage()]
    assert len(hits) == int(warned), caplog.text
    if warned:
        assert hits[0].startswith(f"augmentation '{augmentation}' applies horizontal flips")


def test_the_geometric_generator_warns_when_fitted_on_a_lateral_set(caplog, tmp_path):
    gen = build_generator("geometric", 1, 28, 2, {"bank_per_class": 4, "batch_size": 6}, device="cpu")
    with caplog.at_level(logging.WARNING, logger="medaug.generators.geometric"):
        gen.fit(_lateral_set("train"), tmp_path / "fit", plots=False)
    assert any(r.getMessage().startswith("geometric: augmentation 'rot-shift-flip' applies") for r in caplog.records)


def test_the_real_organamnist_class_list_has_the_three_pairs(tmp_path):
    from conftest import make_medmnist_npz

    make_medmnist_npz(tmp_path / "organamnist.npz", num_classes=11, n=(44, 22, 22))
    data = load_medmnist("organamnist", root=tmp_path, verify=False)
    assert len(lateral_pairs(data.train.class_names)) == 3
