"""The experiment unit: one `ExperimentSpec` in, one `ResultRow` out.

Every layer above (the CLI, Ray Tune sweeps, SLURM jobs) schedules this and nothing
else; it knows nothing of Ray or SLURM. A spec is frozen, typed, validated on
construction, and hashes to a stable `run_id`, so the same spec always lands in the
same result file and a finished result is never silently recomputed or overwritten.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from medaug.errors import MedaugError

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("none", "cosine", "multistep")
SELECT_METRICS = ("acc", "auc")


@dataclass(frozen=True)
class ExperimentSpec:
    """Everything that defines one training run; defaults are seed 000's protocol.

    `synthetic` names a synthetic set as "STORE.zarr#GROUP" (None: real data only).
    `milestones` are fractions of `epochs` where a multistep schedule divides the
    learning rate by 10.
    """

    dataset: str
    size: int = 28
    classifier: str = "cnn"
    augmentation: str = "none"
    wrs: bool = False
    synthetic: str | None = None
    optimizer: str = "sgd"
    lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 0.0
    schedule: str = "none"
    milestones: tuple[float, ...] = (0.5, 0.75)
    epochs: int = 20
    batch_size: int = 64
    seed: int = 0
    select_metric: str = "acc"

    def __post_init__(self) -> None:
        def bad(name: str, expected: str) -> MedaugError:
            return MedaugError(f"spec field {name!r} = {getattr(self, name)!r}; expected {expected}")

        if not isinstance(self.dataset, str) or not self.dataset:
            raise bad("dataset", "a dataset name")
        if self.optimizer not in OPTIMIZERS:
            raise bad("optimizer", f"one of {OPTIMIZERS}")
        if self.schedule not in SCHEDULES:
            raise bad("schedule", f"one of {SCHEDULES}")
        if self.select_metric not in SELECT_METRICS:
            raise bad("select_metric", f"one of {SELECT_METRICS}")
        if not isinstance(self.epochs, int) or self.epochs < 1:
            raise bad("epochs", "an integer >= 1")
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise bad("batch_size", "an integer >= 1")
        if not isinstance(self.seed, int) or self.seed < 0:
            raise bad("seed", "an integer >= 0")
        if not (isinstance(self.lr, (int, float)) and self.lr > 0):
            raise bad("lr", "a number > 0")
        if not (0 <= self.momentum < 1):
            raise bad("momentum", "a number in [0, 1)")
        if self.weight_decay < 0:
            raise bad("weight_decay", "a number >= 0")
        object.__setattr__(self, "milestones", tuple(float(m) for m in self.milestones))
        if any(not 0 < m < 1 for m in self.milestones) or list(self.milestones) != sorted(self.milestones):
            raise bad("milestones", "increasing fractions of the epochs, each in (0, 1)")
        if not isinstance(self.wrs, bool):
            raise bad("wrs", "true or false")

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["milestones"] = list(self.milestones)
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "spec") -> ExperimentSpec:
        """Build from plain data (YAML/JSON), refusing unknown keys by name."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise MedaugError(f"{where}: unknown field(s) {unknown}; expected some of {sorted(known)}")
        if "dataset" not in data:
            raise MedaugError(f"{where}: missing required field 'dataset'")
        data = dict(data)
        if "milestones" in data:
            data["milestones"] = tuple(data["milestones"])
        try:
            return cls(**data)
        except TypeError as exc:
            raise MedaugError(f"{where}: {exc}") from None

    def canonical_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    @property
    def run_id(self) -> str:
        """Stable id: dataset, main choices and a hash of the whole spec."""
        digest = hashlib.sha256(self.canonical_json().encode()).hexdigest()[:10]
        parts = [self.dataset, str(self.size), self.classifier, self.augmentation, "wrs" if self.wrs else "nowrs",
                 f"s{self.seed}", digest]
        return "-".join(parts)

    def replace(self, **changes: Any) -> ExperimentSpec:
        return dataclasses.replace(self, **changes)


SPEC_FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(ExperimentSpec))
