"""MedMNIST 2D data sets through the `medmnist` package's INFO and npz format.

Online users get medmnist's own download (md5 checked). Offline users point
`--data-root` or `MEDAUG_DATA_ROOT` at a folder holding the npz files. The md5 of
the file is always verified against INFO (medmnist itself checks it only when it
downloads); a verified (path, size, mtime) is remembered so large 224-px files are
hashed once, not once per run.
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import numpy as np

from medaug.data.imageset import TASKS, DatasetSplits, ImageSet
from medaug.errors import MedaugError
from medaug.hashing import file_digest

DATA_ROOT_ENV = "MEDAUG_DATA_ROOT"
SIZES = (28, 64, 128, 224)
# The twelve 2D sets of MedMNIST v2, by the short names the CLI and studies use.
DATASETS_2D = (
    "pathmnist", "chestmnist", "dermamnist", "octmnist", "pneumoniamnist", "retinamnist",
    "breastmnist", "bloodmnist", "tissuemnist", "organamnist", "organcmnist", "organsmnist",
)
SPLITS = ("train", "val", "test")


def _info() -> dict:
    import medmnist.info

    return medmnist.info.INFO


def medmnist_version() -> str:
    import medmnist.info

    return str(getattr(medmnist.info, "__version__", "unknown"))


def default_root() -> Path:
    """`MEDAUG_DATA_ROOT` if set, else medmnist's own default root (~/.medmnist)."""
    env = os.environ.get(DATA_ROOT_ENV)
    if env:
        return Path(env).expanduser()
    import medmnist.info

    return Path(medmnist.info.DEFAULT_ROOT).expanduser()


def dataset_info(name: str) -> dict:
    """medmnist's INFO entry for a 2D data set name (refusing 3D and unknown names)."""
    if name not in DATASETS_2D:
        raise MedaugError(f"unknown dataset {name!r}; expected one of: {', '.join(DATASETS_2D)}")
    return _info()[name]


def file_name(name: str, size: int) -> str:
    check_size(size)
    return f"{name}.npz" if size == 28 else f"{name}_{size}.npz"


def check_size(size: int) -> None:
    if size not in SIZES:
        raise MedaugError(f"unsupported size {size}; expected one of {SIZES}")


def expected_md5(name: str, size: int) -> str:
    info = dataset_info(name)
    return info["MD5"] if size == 28 else info[f"MD5_{size}"]


def _md5_cache_path() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "medaug" / "verified-md5.json"


def file_md5(path: Path) -> str:
    return file_digest(path, "md5")


def verify_md5(path: Path, expected: str) -> str:
    """Check the file's md5 against `expected`; remember a pass by (path, size, mtime)."""
    st = path.stat()
    key = f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}"
    cache_file = _md5_cache_path()
    try:
        cache = json.loads(cache_file.read_text())
    except (OSError, ValueError):
        cache = {}
    if cache.get(key) == expected:
        return expected
    actual = file_md5(path)
    if actual != expected:
        raise MedaugError(f"{path}: md5 {actual} does not match medmnist INFO md5 {expected} (corrupt or other version)")
    cache[key] = expected
    try:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache_file.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(cache))
        tmp.replace(cache_file)
    except OSError:
        pass  # a read-only home only costs re-hashing next time
    return actual


def download(name: str, size: int, root: Path) -> Path:
    """medmnist's own download of one npz (md5 checked by it), for online users."""
    info = dataset_info(name)
    url = info["url"] if size == 28 else info[f"url_{size}"]
    from torchvision.datasets.utils import download_url

    root.mkdir(parents=True, exist_ok=True)
    try:
        download_url(url=url, root=str(root), filename=file_name(name, size), md5=expected_md5(name, size))
    except Exception as exc:  # network errors come in many types
        raise MedaugError(
            f"download of {name} ({size} px) from {url} failed ({exc.__class__.__name__}); "
            f"offline, put {file_name(name, size)} in a folder and pass --data-root or set {DATA_ROOT_ENV}"
        ) from None
    return root / file_name(name, size)


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    keys = [f"{s}_{k}" for s in SPLITS for k in ("images", "labels")]
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = [k for k in keys if k not in npz.files]
            if missing:
                raise MedaugError(f"{path}: missing keys {missing}; a MedMNIST npz holds {keys}")
            return {k: npz[k] for k in keys}
    except (zipfile.BadZipFile, ValueError, OSError) as exc:
        raise MedaugError(f"{path}: not a readable npz file ({exc})") from None


def _to_imageset(name: str, split: str, images: np.ndarray, labels: np.ndarray, info: dict, size: int,
                 path: Path) -> ImageSet:
    where = f"{path}: {split}"
    channels = int(info["n_channels"])
    if images.dtype != np.uint8:
        raise MedaugError(f"{where}_images has dtype {images.dtype}; expected uint8")
    if channels == 1 and images.ndim == 3:
        images = images[:, None]
    elif channels == 3 and images.ndim == 4 and images.shape[-1] == 3:
        images = images.transpose(0, 3, 1, 2)
    else:
        expected = "(N, H, W)" if channels == 1 else "(N, H, W, 3)"
        raise MedaugError(f"{where}_images has shape {images.shape}; expected {expected} for {name}")
    if images.shape[2:] != (size, size):
        raise MedaugError(f"{where}_images are {images.shape[2]}x{images.shape[3]}; expected {size}x{size}")
    task = info["task"]
    n_classes = len(info["label"])
    if labels.ndim != 2 or len(labels) != len(images):
        raise MedaugError(f"{where}_labels has shape {labels.shape}; expected ({len(images)}, 1 or {n_classes})")
    if not np.issubdtype(labels.dtype, np.integer):
        raise MedaugError(f"{where}_labels has dtype {labels.dtype}; expected an integer type")
    if task.startswith("multi-label"):
        if labels.shape[1] != n_classes:
            raise MedaugError(f"{where}_labels has {labels.shape[1]} columns; expected {n_classes} for multi-label {name}")
        if not np.isin(labels, (0, 1)).all():
            raise MedaugError(f"{where}_labels: multi-label values must be 0 or 1")
        labels = labels.astype(np.int64)
    else:
        if labels.shape[1] != 1:
            raise MedaugError(f"{where}_labels has shape {labels.shape}; expected ({len(images)}, 1)")
        labels = labels[:, 0].astype(np.int64)
        if len(labels) and (labels.min() < 0 or labels.max() >= n_classes):
            raise MedaugError(
                f"{where}_labels out of range: {int(labels.min())}..{int(labels.max())}, expected 0..{n_classes - 1}"
            )
    class_names = tuple(info["label"][str(i)] for i in range(n_classes))
    return ImageSet(name=name, split=split, images=np.ascontiguousarray(images), labels=labels,
                    class_names=class_names, task=task)


def load_medmnist(name: str, size: int = 28, root: str | Path | None = None, download_missing: bool = False,
                  verify: bool = True) -> DatasetSplits:
    """Load the train/val/test ImageSets of one MedMNIST 2D set from its npz file.

    `root` defaults to `default_root()`. A missing file is downloaded only when
    `download_missing` is set; otherwise the error says where it was looked for.
    """
    info = dataset_info(name)
    check_size(size)
    root = Path(root).expanduser() if root is not None else default_root()
    path = root / file_name(name, size)
    if not path.is_file():
        if not download_missing:
            raise MedaugError(
                f"{path}: data file not found; pass --data-root DIR or set {DATA_ROOT_ENV} to the folder "
                f"holding {file_name(name, size)} (or --download when online)"
            )
        path = download(name, size, root)
    md5 = verify_md5(path, expected_md5(name, size)) if verify else file_md5(path)
    arrays = _read_npz(path)
    sets = {s: _to_imageset(name, s, arrays[f"{s}_images"], arrays[f"{s}_labels"], info, size, path) for s in SPLITS}
    assert info["task"] in TASKS
    return DatasetSplits(name=name, train=sets["train"], val=sets["val"], test=sets["test"],
                         version=f"medmnist-{medmnist_version()}", md5=md5,
                         license=info.get("license", ""), source=str(path))
