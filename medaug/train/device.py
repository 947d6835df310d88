"""Choose the training device at run time: CUDA when present, else CPU."""

from __future__ import annotations

import torch

from medaug.errors import MedaugError

EXPECTED = "expected auto, cpu, cuda or cuda:N"


def resolve_device(name: str | None = None) -> torch.device:
    """`None`/"auto" -> cuda if available else cpu; "cpu"/"cuda"/"cuda:N" as given (checked).

    Refused here, before anything is loaded: other device types (mps, meta, xla: the
    training loop is written for CPU and CUDA) and a CUDA index this machine lacks.
    """
    if name in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise MedaugError(f"--device {name!r}: {EXPECTED}") from None
    if device.type not in ("cpu", "cuda") or (device.type == "cpu" and device.index not in (None, 0)):
        raise MedaugError(f"--device {name!r}: {EXPECTED}")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise MedaugError(f"--device {name}: CUDA is not available on this machine")
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise MedaugError(f"--device {name}: this machine has {count} CUDA device(s), cuda:0 to cuda:{count - 1}")
    return device
