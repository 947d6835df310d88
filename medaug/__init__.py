"""medaug: measure how much data augmentation improves medical image classifiers."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("medaug")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+source"
