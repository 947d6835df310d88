"""Augmentations that move image content across the vertical midline, on classes defined by side.

OrganAMNIST's classes include femur-left / femur-right, kidney-left / kidney-right and
lung-left / lung-right: axial CT slices where the side of the body is the label. A
horizontal flip, or a rotation of 90 degrees or more, puts a left organ where right
organs are and keeps its label, so a share of the training images is mislabelled. In
medaug's OrganAMNIST generator study, seed 001's `rot-shift-flip` (flips, rotations up to
90 degrees) made geometric copies of real images whose TSTR recall was 3 % on femur-right
and 2 % on kidney-right (bench/README.md). Seed studies replicate such pipelines on
purpose, so this is a warning, not a refusal.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from medaug.augment.base import Augmentation

__all__ = ["lateral_pairs", "side_swap_warning"]


def lateral_pairs(class_names: Sequence[str]) -> list[tuple[str, str]]:
    """Pairs of class names that differ only in 'left' / 'right' (case-insensitive), in class order."""
    by_lower = {name.lower(): name for name in class_names}
    pairs = []
    for lower, name in by_lower.items():
        for m in re.finditer("left", lower):
            other = lower[:m.start()] + "right" + lower[m.end():]
            if other in by_lower:
                pairs.append((name, by_lower[other]))
    return pairs


def side_swap_warning(augmentation: Augmentation, dataset: str, class_names: Sequence[str]) -> str | None:
    """One line when `augmentation` can swap sides and `dataset` has left/right classes, else None."""
    how = augmentation.swaps_sides()
    pairs = lateral_pairs(class_names)
    if how is None or not pairs:
        return None
    shown = ", ".join(f"{a}/{b}" for a, b in pairs)
    return (f"augmentation {augmentation.name!r} applies {how}, and {dataset}'s classes come in left/right "
            f"pairs ({shown}): images moved to the other side keep a label that is now wrong")
