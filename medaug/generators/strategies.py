"""How many synthetic images of which class: the mixing strategies of the seed studies.

A strategy turns the real training split's class counts into per-class numbers of
images to generate (`counts`), or, for `interleave-reconstructions`, into "one
reconstruction per real image, in the real order".

| strategy                    | parameters            | seed study                                  |
| --------------------------- | --------------------- | ------------------------------------------- |
| `inverse-scarcity`          | `fraction` F          | 000: add floor(F x |train|) images, allotted |
|                             |                       | to classes inversely to their frequency     |
| `per-class`                 | `classes`, `count` N  | 002: +128 images per minority class         |
| `ratio`                     | `synthetic_per_real` K| 002's future work: 1:1, 1:2, 1:3            |
| `interleave-reconstructions`| none                  | 000's Joint VAE: every real image followed  |
|                             |                       | by its reconstruction                       |

Seed 000 adds 4, 10, 4, 10, 10, 5, 10, 10 % to Path, Derma, OCT, Pneumonia, Breast,
OrganA, OrganC, OrganS and states the totals 3599, 700, 3899, 470, 54, 1729, 1300,
1394. Those are exactly floor(F x |train|) with the train sizes of the study's
Table 1 (MedMNIST v1: e.g. OrganA 34,581, where MedMNIST v2 has 34,561): so the
total is floored (4 % of 89,996 = 3599.84 -> 3599; 10 % of 546 = 54.6 -> 54), and
the fraction is taken as the decimal the user wrote (0.1 x 13,000 is 1300, not the
1300.0000000000002 of binary floating point, and 0.29 x 100 is 29, not 28).

Within the total, class k gets a share proportional to 1 / n_k (n_k its real count);
shares are rounded by the largest-remainder method so they sum to the total exactly
(ties go to the rarer class, then the lower index). A class with no real image gets
none: the generator never saw it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np

from medaug.errors import MedaugError

STRATEGIES = ("inverse-scarcity", "per-class", "ratio", "interleave-reconstructions")

#: Seed 000's fractions and the totals it reports, with the train sizes of its Table 1.
SEED000_FRACTIONS = {
    "pathmnist": (0.04, 89_996, 3599),
    "dermamnist": (0.10, 7_007, 700),
    "octmnist": (0.04, 97_477, 3899),
    "pneumoniamnist": (0.10, 4_708, 470),
    "breastmnist": (0.10, 546, 54),
    "organamnist": (0.05, 34_581, 1729),
    "organcmnist": (0.10, 13_000, 1300),
    "organsmnist": (0.10, 13_940, 1394),
}


def _counts_array(class_counts: Sequence[int] | np.ndarray, where: str) -> np.ndarray:
    counts = np.asarray(class_counts)
    if counts.ndim != 1 or counts.size == 0 or not np.issubdtype(counts.dtype, np.integer):
        raise MedaugError(f"{where}: class counts must be a non-empty 1-D integer array, got {counts.dtype} {counts.shape}")
    if (counts < 0).any():
        raise MedaugError(f"{where}: class counts must be >= 0, got {counts.tolist()}")
    return counts.astype(np.int64)


def scaled_total(n: int, fraction: float) -> int:
    """floor(fraction x n), with `fraction` read as the decimal it prints as (see module doc)."""
    return math.floor(Fraction(repr(float(fraction))) * int(n))


def check_fraction(fraction: float) -> float:
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not math.isfinite(fraction) \
            or not 0 < fraction <= 1:
        raise MedaugError(f"--fraction {fraction!r}: expected a fraction of |train| in (0, 1], e.g. 0.04 for 4 % "
                          "(use --strategy ratio for more synthetic than real images)")
    return float(fraction)


def inverse_scarcity(class_counts: Sequence[int] | np.ndarray, fraction: float) -> np.ndarray:
    """Per-class numbers summing to floor(fraction x |train|), proportional to 1 / n_k (seed 000)."""
    counts = _counts_array(class_counts, "inverse-scarcity")
    fraction = check_fraction(fraction)
    total = scaled_total(int(counts.sum()), fraction)
    present = counts > 0
    if not present.any():
        raise MedaugError("inverse-scarcity: the train split has no images")
    # Exact rational shares: total * (1/n_k) / sum_j (1/n_j).
    inv = [Fraction(1, int(c)) if c else Fraction(0) for c in counts]
    norm = sum(inv)
    shares = [total * w / norm for w in inv]
    out = np.array([math.floor(s) for s in shares], dtype=np.int64)
    remainders = [s - math.floor(s) for s in shares]
    left = total - int(out.sum())
    # Largest remainder first; ties to the rarer class, then the lower index.
    order = sorted((k for k in range(len(counts)) if present[k]),
                   key=lambda k: (-remainders[k], counts[k], k))
    for k in order[:left]:
        out[k] += 1
    return out


def check_count(count: int, name: str = "--count") -> int:
    if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 1:
        raise MedaugError(f"{name} {count!r}: expected an integer >= 1")
    return int(count)


def resolve_classes(class_names: Sequence[str], classes: Sequence[str | int]) -> list[int]:
    """Class indices for names or indices (ints or digit strings); refuses unknown, repeated, too many."""
    names = list(class_names)
    if not classes:
        raise MedaugError("--classes: name at least one class")
    if len(classes) > len(names):
        raise MedaugError(f"--classes names {len(classes)} classes; the data set has only {len(names)}: {names}")
    out: list[int] = []
    for c in classes:
        if isinstance(c, (int, np.integer)) and not isinstance(c, bool):
            k = int(c)
        elif isinstance(c, str) and c.strip() in names:
            k = names.index(c.strip())
        elif isinstance(c, str) and c.strip().isdigit():
            k = int(c.strip())
        else:
            raise MedaugError(f"--classes: unknown class {c!r}; expected an index 0..{len(names) - 1} or one of {names}")
        if not 0 <= k < len(names):
            raise MedaugError(f"--classes: class index {k} out of range 0..{len(names) - 1}")
        if k in out:
            raise MedaugError(f"--classes: class {names[k]!r} named twice")
        out.append(k)
    return out


def per_class(class_names: Sequence[str], classes: Sequence[str | int], count: int) -> np.ndarray:
    """`count` images for each named class, none for the others (seed 002: 128 per minority class)."""
    count = check_count(count)
    out = np.zeros(len(class_names), dtype=np.int64)
    out[resolve_classes(class_names, classes)] = count
    return out


def ratio(class_counts: Sequence[int] | np.ndarray, k: int) -> np.ndarray:
    """K synthetic images per real image of each class (1:1, 1:2, 1:3 of seed 002's future work)."""
    counts = _counts_array(class_counts, "ratio")
    k = check_count(k, "--synthetic-per-real")
    return counts * k


def labels_for_counts(counts: Sequence[int] | np.ndarray) -> np.ndarray:
    """Label array with class k repeated counts[k] times, in class order."""
    counts = _counts_array(counts, "counts")
    return np.repeat(np.arange(len(counts), dtype=np.int64), counts)


@dataclass(frozen=True)
class Strategy:
    """One strategy with its parameters, validated on construction (CLI or Python)."""

    name: str
    fraction: float | None = None
    classes: tuple[str, ...] = ()
    count: int | None = None
    synthetic_per_real: int | None = None

    def __post_init__(self) -> None:
        if self.name not in STRATEGIES:
            raise MedaugError(f"unknown strategy {self.name!r}; expected one of: {', '.join(STRATEGIES)}")
        object.__setattr__(self, "classes", tuple(str(c) for c in self.classes))
        needs = {
            "inverse-scarcity": {"fraction"},
            "per-class": {"classes", "count"},
            "ratio": {"synthetic_per_real"},
            "interleave-reconstructions": set(),
        }[self.name]
        given = {k for k in ("fraction", "classes", "count", "synthetic_per_real") if getattr(self, k) not in (None, ())}
        flag = {"fraction": "--fraction", "classes": "--classes", "count": "--count",
                "synthetic_per_real": "--synthetic-per-real"}
        if needs - given:
            raise MedaugError(f"strategy {self.name}: needs {', '.join(flag[k] for k in sorted(needs - given))}")
        if given - needs:
            raise MedaugError(f"strategy {self.name}: does not take {', '.join(flag[k] for k in sorted(given - needs))}")
        if self.fraction is not None:
            check_fraction(self.fraction)
        if self.count is not None:
            check_count(self.count)
        if self.synthetic_per_real is not None:
            check_count(self.synthetic_per_real, "--synthetic-per-real")

    @property
    def reconstructs(self) -> bool:
        return self.name == "interleave-reconstructions"

    def params(self) -> dict[str, Any]:
        """The parameters as provenance records them."""
        if self.name == "inverse-scarcity":
            return {"fraction": self.fraction}
        if self.name == "per-class":
            return {"classes": list(self.classes), "count": self.count}
        if self.name == "ratio":
            return {"synthetic_per_real": self.synthetic_per_real}
        return {}

    def counts(self, class_counts: Sequence[int] | np.ndarray, class_names: Sequence[str]) -> np.ndarray:
        """Per-class numbers of images to generate for a train split with these class counts."""
        counts = _counts_array(class_counts, self.name)
        if len(counts) != len(class_names):
            raise MedaugError(f"{self.name}: {len(counts)} class counts for {len(class_names)} class names")
        if self.name == "inverse-scarcity":
            return inverse_scarcity(counts, self.fraction)  # type: ignore[arg-type]
        if self.name == "per-class":
            return per_class(class_names, self.classes, self.count)  # type: ignore[arg-type]
        if self.name == "ratio":
            return ratio(counts, self.synthetic_per_real)  # type: ignore[arg-type]
        return counts.copy()  # one reconstruction per real image
