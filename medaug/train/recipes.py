"""Training recipes: named, versioned presets of the training fields of an `ExperimentSpec`.

A recipe fixes everything about *how* a classifier is trained (network, optimiser,
schedule, length, batch, loss options and the recipe's own regularisation) and nothing
about *what* a study varies: the data set, image size, augmentation, WRS, synthetic set,
test-time augmentation and seed are never part of a recipe. `ExperimentSpec.from_dict`
expands `recipe: NAME` into these fields; any field given explicitly wins. A row records
every expanded value plus the recipe's name and version, and a recipe other than
`seed000` enters the run_id with its version, so editing a recipe's values (a new
version) never reuses the results of the old one.

| name          | what                                                                         |
| ------------- | ---------------------------------------------------------------------------- |
| `seed000`     | seed 000's protocol, medaug's defaults: baseline CNN, SGD lr 1e-3, 20 epochs |
| `medmnist-v2` | MedMNIST v2's benchmark protocol: ResNet-18, Adam, 100 epochs, lr/10 at 50, 75 |
| `fast`        | medaug's cheap strong baseline (see `FAST` below)                            |
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from medaug.errors import MedaugError

DEFAULT_RECIPE = "seed000"

#: The spec fields a recipe may set. The others (dataset, size, augmentation, wrs,
#: synthetic, tta, seed, data options, ...) are what studies vary or what data defines.
RECIPE_FIELDS = frozenset({
    "classifier", "optimizer", "nesterov", "lr", "momentum", "weight_decay", "schedule", "milestones",
    "warmup", "epochs", "min_steps", "batch_size", "label_smoothing", "ema", "translate", "select_metric",
})


@dataclass(frozen=True)
class Recipe:
    """A named training preset. `version` changes whenever `fields` do, or the network they
    name changes (fast 2: fastnet's logits scaled by 1/8)."""

    name: str
    version: int
    summary: str
    fields: MappingProxyType = field(default_factory=lambda: MappingProxyType({}))

    def __post_init__(self) -> None:
        stray = set(self.fields) - RECIPE_FIELDS
        if stray:
            raise ValueError(f"recipe {self.name}: {sorted(stray)} are not training fields")
        object.__setattr__(self, "fields", MappingProxyType(dict(self.fields)))


SEED000 = Recipe("seed000", 1, "seed 000's protocol (Le Roux 2021): baseline CNN, SGD lr 1e-3 momentum 0.9, "
                 "batch 64, 20 epochs, best validation ACC", {
                     "classifier": "cnn", "optimizer": "sgd", "nesterov": False, "lr": 1e-3, "momentum": 0.9,
                     "weight_decay": 0.0, "schedule": "none", "milestones": (0.5, 0.75), "warmup": 0.0,
                     "epochs": 20, "min_steps": 0, "batch_size": 64, "label_smoothing": 0.0, "ema": 0.0, "translate": 0.0,
                     "select_metric": "acc"})

#: MedMNIST v2 (Yang et al. 2023), section "Benchmark": ResNet-18 (28) at 28 px and ResNet-18
#: (224) above (medaug's `resnet18` takes the matching form by size), Adam lr 1e-3, batch 128,
#: 100 epochs, lr x 0.1 at epochs 50 and 75, no augmentation. The paper's script kept a
#: reference to the live model as its "best"; medaug tests a copy of the best-validation epoch.
MEDMNIST_V2 = Recipe("medmnist-v2", 1, "MedMNIST v2 benchmark: ResNet-18, Adam lr 1e-3, batch 128, 100 epochs, "
                     "lr/10 at epochs 50 and 75, best validation ACC", {
                         **SEED000.fields, "classifier": "resnet18", "optimizer": "adam", "schedule": "multistep",
                         "milestones": (0.5, 0.75), "epochs": 100, "batch_size": 128})

#: medaug's cheap strong baseline, chosen on validation ACC only (bench/README.md). A small
#: all-convolutional `fastnet` trained with Nesterov SGD, a short linear warm-up then linear
#: decay to zero, label smoothing, an EMA of the weights (the EMA weights are evaluated) and
#: random translations of up to 7 % of the image side (2 px at 28 px; not flips, which would
#: swap left and right organs in OrganAMNIST). Its one adaptive rule is the training length: `epochs` epochs, or more when that is fewer than
#: `min_steps` optimiser steps, so a set of a few hundred images gets as many updates as it
#: needs while a large set stops after `epochs` passes.
FAST = Recipe("fast", 2, "fastnet, Nesterov SGD lr 0.1 wd 5e-4, warm-up then linear decay, label smoothing 0.1, "
              "random translation up to 7 % of the side, EMA 0.99, batch 64, 10 epochs and at least 400 steps", {
                  **SEED000.fields, "classifier": "fastnet", "optimizer": "sgd", "nesterov": True, "lr": 0.1,
                  "momentum": 0.9, "weight_decay": 5e-4, "schedule": "linear", "warmup": 0.1, "epochs": 10,
                  "min_steps": 400, "batch_size": 64, "label_smoothing": 0.1, "ema": 0.99, "translate": 0.07})

RECIPES: dict[str, Recipe] = {r.name: r for r in (SEED000, MEDMNIST_V2, FAST)}


def get_recipe(name: Any) -> Recipe:
    """The recipe `name`; a one-line MedaugError naming the known ones otherwise."""
    if not isinstance(name, str) or name not in RECIPES:
        raise MedaugError(f"spec field 'recipe' = {name!r}; expected one of {', '.join(RECIPES)}")
    return RECIPES[name]


def expand(data: dict[str, Any]) -> dict[str, Any]:
    """`data` (plain spec fields) with its recipe's values filled in where it gives none."""
    recipe = get_recipe(data.get("recipe", DEFAULT_RECIPE))
    return {**recipe.fields, **data, "recipe": recipe.name}
