"""Reading image files (PIL) into uint8 arrays, in parallel threads.

Shared by the COVID-19 Radiography and class-folder loaders. PIL releases the GIL
while it decodes and resizes, so a thread pool scales over cores without the cost
of shipping arrays between processes. An unreadable file is bad input: a one-line
MedaugError naming it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import numpy as np
from PIL import Image

from medaug.errors import MedaugError

T = TypeVar("T")
R = TypeVar("R")

#: Extensions the class-folder loader treats as images (compared lower-case).
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")

RESAMPLING = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
}
FITS = ("squash", "center-crop")


def resampling(name: str) -> Image.Resampling:
    try:
        return RESAMPLING[name]
    except KeyError:
        raise MedaugError(f"resample {name!r}; expected one of {sorted(RESAMPLING)}") from None


def default_workers() -> int:
    """Decoding threads: the cores this process may use, at most 8."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(8, cores))


def map_threads(fn: Callable[[T], R], items: Iterable[T], workers: int | None = None) -> list[R]:
    """`[fn(x) for x in items]` over a thread pool, in order; the first exception propagates."""
    items = list(items)
    workers = default_workers() if workers is None else workers
    if workers <= 1 or len(items) <= 1:
        return [fn(x) for x in items]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(fn, items))


def open_image(path: Path, mode: str, draft_size: int | None = None) -> Image.Image:
    """Decode `path` fully into PIL mode `mode` ("L" or "RGB"), or raise a MedaugError naming it.

    `draft_size` lets JPEG decode at a reduced scale that still has both sides >=
    draft_size (much faster for large photographs such as ISIC's 1024 px images).
    """
    try:
        with Image.open(path) as img:
            if draft_size is not None and img.format == "JPEG":
                img.draft(mode, (draft_size, draft_size))
            img.load()
            return img.convert(mode) if img.mode != mode else img.copy()
    except FileNotFoundError:
        raise MedaugError(f"{path}: image file not found") from None
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise MedaugError(f"{path}: unreadable image ({exc.__class__.__name__}: {exc})") from None


def resize_square(img: Image.Image, size: int, fit: str = "squash", resample: str = "bilinear") -> Image.Image:
    """Resize to size x size: "squash" scales each axis; "center-crop" first crops the central square."""
    if fit == "center-crop":
        w, h = img.size
        side = min(w, h)
        left, top = (w - side) // 2, (h - side) // 2
        img = img.crop((left, top, left + side, top + side))
    elif fit != "squash":
        raise MedaugError(f"fit {fit!r}; expected one of {FITS}")
    return img.resize((size, size), resampling(resample))


def to_chw(img: Image.Image) -> np.ndarray:
    """A PIL "L" or "RGB" image as a uint8 C x H x W array."""
    arr = np.asarray(img, dtype=np.uint8)
    return arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)


def load_resized(path: Path, size: int, channels: int, fit: str = "squash", resample: str = "bilinear") -> np.ndarray:
    """Read one image file as uint8 (channels, size, size)."""
    mode = {1: "L", 3: "RGB"}.get(channels)
    if mode is None:
        raise MedaugError(f"channels {channels!r}; expected 1 or 3")
    img = open_image(path, mode, draft_size=2 * size)
    return np.ascontiguousarray(to_chw(resize_square(img, size, fit, resample)))
