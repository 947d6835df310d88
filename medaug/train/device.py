"""Choose the training device at run time: CUDA when present, else CPU."""

from __future__ import annotations

import torch

from medaug.errors import MedaugError


def resolve_device(name: str | None = None) -> torch.device:
    """`None`/"auto" -> cuda if available else cpu; "cpu"/"cuda"/"cuda:N" as given (checked)."""
    if name in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise MedaugError(f"--device {name!r}: expected auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise MedaugError(f"--device {name}: CUDA is not available on this machine")
    return device
