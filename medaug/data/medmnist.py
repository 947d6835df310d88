"""MedMNIST 2D data sets through the `medmnist` package's INFO and npz format.

Online users get medmnist's own download (md5 checked). Offline users point
`--data-root` or `MEDAUG_DATA_ROOT` at a folder holding the npz files. The md5 of
the file is always verified against INFO (medmnist itself checks it only when it
downloads). A pass is remembered for that exact version of the file (path, inode, size,
mtime and ctime, which a user cannot set back) so large 224-px files are hashed once, not
once per run; any rewrite or swap of the file is hashed again.
"""

from __future__ import annotations

import json
import os
import time
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


#: A file changed less than this long before it was hashed is not remembered: file
#: timestamps tick coarsely (a few ms, more on network file systems), so a rewrite within
#: the same tick could leave ctime unchanged (the "racy clean" case git also guards against).
CACHE_MIN_AGE_S = 2.0
#: At most this many verified files are remembered (the oldest entries go first).
CACHE_MAX_ENTRIES = 512


def _md5_cache_path() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "medaug" / "verified-md5.json"


def file_md5(path: Path) -> str:
    return file_digest(path, "md5")


def _cache_key(path: Path, st: os.stat_result) -> str:
    """What identifies one version of a file: where it is, which inode, and its change time.

    Size and mtime alone do not: anyone can write a same-size file and set its mtime back
    (os.utime, touch -r). ctime cannot be set by a user; every write, rename onto the
    path, chmod or utime moves it, and a file swapped in by rename is another inode.
    """
    return f"{path.resolve()}|{st.st_dev}|{st.st_ino}|{st.st_size}|{st.st_mtime_ns}|{st.st_ctime_ns}"


def _read_cache(cache_file: Path) -> dict[str, str]:
    """The cache as {key: md5}; anything else in the file (it is untrusted JSON) is ignored."""
    try:
        data = json.loads(cache_file.read_text())
    except (OSError, ValueError, UnicodeDecodeError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {k: v for k, v in data.items() if isinstance(k, str) and isinstance(v, str)}


def _remember(cache_file: Path, cache: dict[str, str], key: str, md5: str) -> None:
    from medaug.store.atomic import atomic_write_text

    cache.pop(key, None)
    cache[key] = md5
    keep = dict(list(cache.items())[-CACHE_MAX_ENTRIES:])
    try:
        atomic_write_text(cache_file, json.dumps(keep))
    except (OSError, MedaugError):
        pass  # a read-only or full home only costs re-hashing next time


def verify_md5(path: Path, expected: str) -> str:
    """Check the file's md5 against `expected`; remember a pass for this exact version of the file.

    A pass is remembered by (path, device, inode, size, mtime, ctime), see `_cache_key`,
    so a file replaced in any way is hashed again.
    """
    st = path.stat()
    key = _cache_key(path, st)
    cache_file = _md5_cache_path()
    cache = _read_cache(cache_file)
    if cache.get(key) == expected:
        return expected
    hashed_at = time.time_ns()
    actual = file_md5(path)
    if actual != expected:
        raise MedaugError(f"{path}: md5 {actual} does not match medmnist INFO md5 {expected} (corrupt or other version)")
    if hashed_at - st.st_ctime_ns > CACHE_MIN_AGE_S * 1e9:
        _remember(cache_file, cache, key, expected)
    return actual


def _same_version(a: os.stat_result, b: os.stat_result) -> bool:
    return (a.st_dev, a.st_ino, a.st_size, a.st_mtime_ns, a.st_ctime_ns) == \
        (b.st_dev, b.st_ino, b.st_size, b.st_mtime_ns, b.st_ctime_ns)


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


def _physical_memory() -> int:
    """Bytes of RAM (0 when the system does not say)."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, OSError, ValueError):
        return 0


def _check_npz_members(path: Path, keys: list[str]) -> None:
    """Look at the npz as the zip it is, before numpy decompresses anything: every key present,
    each member an .npy of plain numbers (no pickled objects) whose header agrees with its
    size, and all of them together within the machine's memory (a zip bomb is refused here,
    not after gigabytes of zeros were inflated). numpy would otherwise take a non-zip file
    for a pickle and answer with advice to unpickle it."""
    if not zipfile.is_zipfile(path):
        raise MedaugError(f"{path}: not a readable npz file (not a zip archive: empty, truncated or another format)")
    with zipfile.ZipFile(path) as zf:
        members = {info.filename.removesuffix(".npy"): info for info in zf.infolist()}
        missing = [k for k in keys if k not in members]
        if missing:
            raise MedaugError(f"{path}: missing keys {missing}; a MedMNIST npz holds {keys}")
        total = sum(members[k].file_size for k in keys)
        memory = _physical_memory()
        if memory and total > memory:
            raise MedaugError(f"{path}: its arrays unpack to {total / 2**30:.1f} GiB, more than this machine's "
                              f"memory ({memory / 2**30:.1f} GiB); not a MedMNIST file this machine can load")
        for k in keys:
            with zf.open(members[k]) as fh:
                version = np.lib.format.read_magic(fh)
                read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                               else np.lib.format.read_array_header_2_0)
                shape, _, dtype = read_header(fh)
                header_bytes = fh.tell()
            if dtype.hasobject:
                raise MedaugError(f"{path}: {k} holds Python objects ({dtype}), which are never unpickled; "
                                  "a MedMNIST npz holds numbers only")
            declared = int(np.prod(shape, dtype=object)) * dtype.itemsize
            if declared != members[k].file_size - header_bytes:
                raise MedaugError(f"{path}: {k} declares shape {tuple(shape)} of {dtype} ({declared} bytes) but "
                                  f"holds {members[k].file_size - header_bytes} bytes; the file is damaged")


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    keys = [f"{s}_{k}" for s in SPLITS for k in ("images", "labels")]
    try:
        _check_npz_members(path, keys)
        with np.load(path, allow_pickle=False) as npz:
            return {k: npz[k] for k in keys}
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError, EOFError, SyntaxError) as exc:
        reason = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise MedaugError(f"{path}: not a readable npz file ({type(exc).__name__}: {reason})") from None


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
    before = path.stat()
    md5 = verify_md5(path, expected_md5(name, size)) if verify else file_md5(path)
    arrays = _read_npz(path)
    if not _same_version(before, path.stat()):  # the md5 must be that of the bytes read
        raise MedaugError(f"{path}: the file changed while it was read (another process writing it?); rerun")
    sets = {s: _to_imageset(name, s, arrays[f"{s}_images"], arrays[f"{s}_labels"], info, size, path) for s in SPLITS}
    assert info["task"] in TASKS
    return DatasetSplits(name=name, train=sets["train"], val=sets["val"], test=sets["test"],
                         version=f"medmnist-{medmnist_version()}", md5=md5,
                         license=info.get("license", ""), source=str(path))
