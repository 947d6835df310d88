"""The classifier registry and the checks every classifier factory shares.

A classifier is registered by name as a factory
`factory(in_channels: int, num_classes: int, size: int) -> torch.nn.Module`.
The module's forward takes float images (N, C, size, size) normalised to about
[-1, 1] and returns logits (N, num_classes): softmax / sigmoid belong to the loss
and to evaluation, never to the model.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from medaug.errors import MedaugError
from medaug.registry import Registry

ClassifierFactory = Callable[[int, int, int], nn.Module]

CLASSIFIERS: Registry[ClassifierFactory] = Registry("classifier")

#: The smallest image side any classifier here accepts: MedMNIST's 28 px.
MIN_SIZE = 28


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_size(name: str, size: int, min_size: int = MIN_SIZE) -> None:
    """Refuse an image side the classifier `name` cannot take (one-line MedaugError)."""
    if not _is_int(size) or size < min_size:
        raise MedaugError(f"classifier {name!r}: image size {size!r} not supported; expected an integer >= {min_size}")


def build_classifier(name: str, in_channels: int, num_classes: int, size: int) -> nn.Module:
    """Build the registered classifier `name` for (in_channels, size x size) images.

    Returns a freshly initialised module whose forward maps float images
    (N, in_channels, size, size), normalised to about [-1, 1], to logits
    (N, num_classes). Raises MedaugError for an unknown name, a channel or class
    count below 1, or an image size the model cannot take.
    """
    factory = CLASSIFIERS.get(name)
    if not _is_int(in_channels) or in_channels < 1:
        raise MedaugError(f"classifier {name!r}: in_channels {in_channels!r}; expected an integer >= 1")
    if not _is_int(num_classes) or num_classes < 1:
        raise MedaugError(f"classifier {name!r}: num_classes {num_classes!r}; expected an integer >= 1")
    check_size(name, size)
    return factory(in_channels, num_classes, size)


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (as torchsummary's 'Total params' counts them)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
