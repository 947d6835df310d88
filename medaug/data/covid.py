"""The COVID-19 Radiography Database, preprocessed as in seed 003 (Fedoruk et al.).

Published layout (Kaggle: tawsifurrahman/covid19-radiography-database)::

    COVID-19_Radiography_Dataset/
        COVID/images/COVID-1.png ...             299x299 grayscale PNG
        COVID/masks/COVID-1.png ...              256x256 lung mask, same file name
        Normal/{images,masks}/Normal-<n>.png
        Lung_Opacity/{images,masks}/Lung_Opacity-<n>.png
        Viral Pneumonia/{images,masks}/Viral Pneumonia-<n>.png   (note the space)
        COVID.metadata.xlsx ...                  FILE NAME, FORMAT, SIZE, URL (optional)

Preprocessing (seed 003, "Data preprocessing"): each image is cropped to the
bounding rectangle of its lung mask (the mask rescaled to the image size with
nearest-neighbour; non-zero pixels are lung), and the crop is resized to 256x256
(`size`). Images stay uint8 here; the [0, 1] scaling of seed 003 happens on the
training device like every other data set. An image whose mask is missing or
empty is skipped and reported (file, reason), never used uncropped.

Copies without masks (many public copies of the database ship only `<class>/images`):
`lung_crop=False` (data option `lung_crop: false`) skips the crop and resizes each whole
radiograph instead; masks are then not read at all. It is a choice made by name and
recorded (the spec's data_options, the row's data_provenance, the cache key), never a
fallback: with the crop on, a class whose masks folder is missing or holds no mask of
any of its images is a one-line error that names the folder and the option.

Splits (seed 003, "GAN training process"): a held-out test set drawn per class
(200 COVID + 200 Normal), recorded by file names, then a stratified validation
split of the rest (0.1, Keras' validation_split in seed 003's classic-augmentation
slide). The draw is by hashed file names (medaug/data/splits.py), so a split seed
names the same files on every machine; the seed is the data split's own and does
not change with the training run's seed, so all runs of a study share one test set.

Preprocessed images are cached per class in Zarr (`~/.cache/medaug/covid/` unless
`cache_dir` is given; $XDG_CACHE_HOME is honoured), keyed by the class's file list
with sizes and mtimes, the output size and the resampling, so a sweep decodes the
~21k PNGs once and a 2-class and a 4-class study share the COVID and Normal entries.
The split is cheap and is recomputed on every load; it is not part of the key.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from medaug.data.imageio import map_threads, open_image, resampling
from medaug.data.imageset import DatasetSplits, ImageSet
from medaug.data.splits import file_list_hash, stratified_indices
from medaug.errors import MedaugError

log = logging.getLogger(__name__)

DATASET_DIR = "COVID-19_Radiography_Dataset"
#: All four classes of the database, in label order (Normal first so COVID is label 1,
#: the positive class of the binary task).
CLASSES = ("Normal", "COVID", "Lung_Opacity", "Viral Pneumonia")
#: Named class subsets: seed 003's binary COVID-vs-Normal task, and all four classes.
CLASS_SUBSETS: dict[str, tuple[str, ...]] = {"covid-normal": ("Normal", "COVID"), "all": CLASSES}
#: The ImageSet / DatasetSplits name for each named subset.
DATASET_NAMES = {"covid-normal": "covid19-radiography", "all": "covid19-radiography-4class"}
#: Seed 003 held out 200 images of each class.
SEED003_TEST_PER_CLASS = 200
CACHE_FORMAT = 1
CHUNK_IMAGES = 64


@dataclass(frozen=True)
class CovidManifest:
    """What a `load_covid` call used: files per split, skipped files, counts, provenance.

    `files` maps split -> relative paths (e.g. "COVID/images/COVID-17.png") in
    ImageSet row order; `test_files` is the held-out set to record in result rows.
    `file_list_hash` identifies the source files (names and byte sizes).
    """

    source: str
    classes: tuple[str, ...]
    size: int
    resample: str
    split_seed: int
    val_fraction: float
    test_per_class: dict[str, int]
    files: dict[str, tuple[str, ...]]
    skipped: tuple[tuple[str, str], ...]
    counts: dict[str, dict[str, int]]
    file_list_hash: str
    cache_entries: tuple[str, ...] = ()
    cache_hits: int = 0
    lung_crop: bool = True

    @property
    def test_files(self) -> tuple[str, ...]:
        return self.files["test"]

    def to_dict(self) -> dict:
        """Plain JSON-able data (tuples become lists)."""
        return json.loads(json.dumps(asdict(self)))


@dataclass(frozen=True)
class _Entry:
    """One image file of the database and its mask (None when missing)."""

    rel: str
    image: Path
    mask: Path | None

    def stat_key(self) -> list:
        s = self.image.stat()
        m = self.mask.stat() if self.mask is not None else None
        return [self.rel, s.st_size, s.st_mtime_ns, m.st_size if m else -1, m.st_mtime_ns if m else -1]


@dataclass
class _ClassPool:
    """The usable, preprocessed images of one class (cache unit)."""

    files: list[str]
    images: np.ndarray
    skipped: list[tuple[str, str]]


def dataset_dir(root: str | Path) -> Path:
    """The folder holding the class folders: `root` itself or `root/COVID-19_Radiography_Dataset`."""
    root = Path(root).expanduser()
    if (root / DATASET_DIR).is_dir():
        return root / DATASET_DIR
    if not root.is_dir():
        raise MedaugError(f"{root}: COVID-19 Radiography folder not found")
    return root


def resolve_classes(classes: str | Sequence[str]) -> tuple[str, ...]:
    """A subset name ("covid-normal", "all") or a list of class folder names -> class tuple."""
    if isinstance(classes, str):
        if classes not in CLASS_SUBSETS:
            raise MedaugError(f"COVID class subset {classes!r}; expected one of {sorted(CLASS_SUBSETS)} "
                              "or a list of classes")
        return CLASS_SUBSETS[classes]
    chosen = tuple(classes)
    unknown = [c for c in chosen if c not in CLASSES]
    if unknown or len(chosen) < 2 or len(set(chosen)) != len(chosen):
        raise MedaugError(f"COVID classes {list(chosen)}; expected at least 2 distinct names from {list(CLASSES)}")
    return chosen


def dataset_name(classes: tuple[str, ...]) -> str:
    """"covid19-radiography" (Normal/COVID), "covid19-radiography-4class", else one naming the classes."""
    for subset, members in CLASS_SUBSETS.items():
        if classes == members:
            return DATASET_NAMES[subset]
    return "covid19-radiography-" + "-".join(c.replace(" ", "_") for c in classes)


def _natural_key(name: str) -> list:
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]


def scan_class(root: Path, cls: str, masks: bool = True) -> list[_Entry]:
    """The PNG images of one class folder with their masks (None where the mask file is missing).

    `masks=False` (no lung crop) looks for no masks. With masks, a class whose masks folder
    is missing or matches none of its images is refused: that copy of the database has no
    masks, and cropping is impossible rather than a per-file accident.
    """
    images_dir = root / cls / "images"
    if not images_dir.is_dir():
        raise MedaugError(f"{images_dir}: folder not found; expected the published layout {cls}/images/*.png")
    masks_dir = root / cls / "masks"
    names = sorted((p.name for p in images_dir.iterdir() if p.suffix.lower() == ".png" and not p.name.startswith(".")),
                   key=_natural_key)
    if not names:
        raise MedaugError(f"{images_dir}: no PNG images")
    entries = []
    for name in names:
        mask = masks_dir / name
        entries.append(_Entry(rel=f"{cls}/images/{name}", image=images_dir / name,
                              mask=mask if masks and mask.is_file() else None))
    if masks and all(e.mask is None for e in entries):
        what = "folder not found" if not masks_dir.is_dir() else f"no mask of any of its {len(entries)} images"
        raise MedaugError(f"{masks_dir}: {what}; seed 003's lung crop needs the masks (a copy of the database "
                          "without them: data option lung_crop=false resizes whole images, recorded in the row)")
    return entries


def mask_bbox(mask: Image.Image, image_size: tuple[int, int]) -> tuple[int, int, int, int] | None:
    """(left, top, right, bottom) of the non-zero mask pixels after scaling the mask to `image_size`
    (width, height) with nearest-neighbour; right/bottom are exclusive. None when the mask is empty."""
    m = mask.convert("L") if mask.mode != "L" else mask
    if m.size != image_size:
        m = m.resize(image_size, Image.Resampling.NEAREST)
    return m.getbbox()


def lung_crop(image: Image.Image, mask: Image.Image, size: int, resample: str = "bilinear") -> np.ndarray | None:
    """Seed 003's preprocessing of one radiograph: crop to the lung mask's bounding box, resize to size x size.

    Returns uint8 (size, size), or None when the mask is empty.
    """
    img = image.convert("L") if image.mode != "L" else image
    box = mask_bbox(mask, img.size)
    if box is None:
        return None
    return np.asarray(img.crop(box).resize((size, size), resampling(resample)), dtype=np.uint8)


def whole_image(image: Image.Image, size: int, resample: str = "bilinear") -> np.ndarray:
    """A radiograph without the lung crop (`lung_crop=False`): grayscale, resized to size x size."""
    img = image.convert("L") if image.mode != "L" else image
    return np.asarray(img.resize((size, size), resampling(resample)), dtype=np.uint8)


def _preprocess(entry: _Entry, size: int, resample: str, crop: bool = True) -> tuple[np.ndarray | None, str]:
    if not crop:
        return whole_image(open_image(entry.image, "L"), size, resample), ""
    if entry.mask is None:
        return None, "mask missing"
    image = open_image(entry.image, "L")
    mask = open_image(entry.mask, "L")
    crop = lung_crop(image, mask, size, resample)
    return (None, "mask empty") if crop is None else (crop, "")


def _build_pool(entries: list[_Entry], size: int, resample: str, workers: int | None,
                lung_crop: bool = True) -> _ClassPool:
    results = map_threads(lambda e: _preprocess(e, size, resample, lung_crop), entries, workers)
    files, crops, skipped = [], [], []
    for entry, (crop, reason) in zip(entries, results):
        if crop is None:
            skipped.append((entry.rel, reason))
        else:
            files.append(entry.rel)
            crops.append(crop)
    images = np.stack(crops)[:, None] if crops else np.zeros((0, 1, size, size), np.uint8)
    return _ClassPool(files=files, images=np.ascontiguousarray(images), skipped=skipped)


# ---------------------------------------------------------------------------------------- cache


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "medaug" / "covid"


def _images_sha256(images: np.ndarray) -> str:
    return hashlib.sha256(memoryview(np.ascontiguousarray(images)).cast("B")).hexdigest()


def cache_key(cls: str, entries: list[_Entry], size: int, resample: str, lung_crop: bool = True) -> str:
    """sha256 of everything the preprocessed pool of one class depends on (whole images
    without the crop key apart; cropped pools keep the keys they had)."""
    payload = {"format": CACHE_FORMAT, "class": cls, "size": size, "resample": resample,
               "files": [e.stat_key() for e in entries]}
    if not lung_crop:
        payload["crop"] = "none"
    return hashlib.sha256(json.dumps(payload, separators=(",", ":")).encode()).hexdigest()


def _cache_path(cache_dir: Path, cls: str, key: str) -> Path:
    return cache_dir / f"{cls.replace(' ', '_')}-{key[:24]}.zarr"


def _read_cache(path: Path, key: str, size: int) -> _ClassPool | None:
    """The cached pool, or None when absent, incomplete or corrupted (then it is rebuilt)."""
    if not path.exists():
        return None
    import zarr

    try:
        group = zarr.open_group(str(path), mode="r")
        attrs = group.attrs.asdict()
        if attrs.get("format") != CACHE_FORMAT or attrs.get("key") != key or not attrs.get("complete"):
            raise ValueError("key or format mismatch")
        files = list(attrs["files"])
        images = np.asarray(group["images"][...])
        if images.dtype != np.uint8 or images.shape != (len(files), 1, size, size):
            raise ValueError(f"images {images.dtype} {images.shape}")
        if _images_sha256(images) != attrs["sha256"]:
            raise ValueError("checksum mismatch")
        skipped = [(str(f), str(r)) for f, r in attrs["skipped"]]
    except Exception as exc:  # any damage to the entry means: rebuild it
        log.warning("COVID cache entry %s unusable (%s); rebuilding it", path, exc)
        return None
    return _ClassPool(files=files, images=images, skipped=skipped)


def _write_cache(path: Path, key: str, cls: str, pool: _ClassPool) -> None:
    """Write the pool to a temporary folder beside `path`, then rename it into place."""
    import zarr
    from zarr.codecs import BloscCodec

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"
    try:
        group = zarr.open_group(str(tmp), mode="w")
        n, _, h, w = pool.images.shape
        arr = group.create_array("images", shape=pool.images.shape, dtype="uint8",
                                 chunks=(max(1, min(CHUNK_IMAGES, n)), 1, h, w),
                                 compressors=BloscCodec(cname="zstd", clevel=3, shuffle="bitshuffle"))
        if n:
            arr[...] = pool.images
        group.attrs.update({"format": CACHE_FORMAT, "key": key, "class": cls, "files": pool.files,
                            "skipped": [list(s) for s in pool.skipped], "sha256": _images_sha256(pool.images)})
        group.attrs["complete"] = True  # written last: an entry without it is never trusted
        if path.exists():  # a damaged entry: move it aside first so the rename below can land
            trash = path.parent / f".{path.name}.{uuid.uuid4().hex[:8]}.trash"
            os.replace(path, trash)
            shutil.rmtree(trash, ignore_errors=True)
        try:
            os.replace(tmp, path)
        except OSError:
            if not path.exists():  # not a concurrent writer that got there first
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _class_pool(root: Path, cls: str, size: int, resample: str, cache_dir: Path | None,
                workers: int | None, lung_crop: bool = True) -> tuple[_ClassPool, str | None, bool]:
    """(pool, cache entry path or None, whether it came from the cache)."""
    entries = scan_class(root, cls, masks=lung_crop)
    if cache_dir is None:
        return _build_pool(entries, size, resample, workers, lung_crop), None, False
    key = cache_key(cls, entries, size, resample, lung_crop)
    path = _cache_path(cache_dir, cls, key)
    pool = _read_cache(path, key, size)
    if pool is not None:
        return pool, str(path), True
    pool = _build_pool(entries, size, resample, workers, lung_crop)
    try:
        _write_cache(path, key, cls, pool)
    except OSError as exc:  # a read-only cache only costs decoding again next time
        log.warning("could not write COVID cache entry %s (%s)", path, exc)
    return pool, str(path), False


# ---------------------------------------------------------------------------------------- metadata


def read_metadata(root: Path, cls: str) -> dict[str, dict[str, str]] | None:
    """Rows of `<cls>.metadata.xlsx` by lower-case file stem, when the file and openpyxl are there."""
    path = root / f"{cls}.metadata.xlsx"
    if not path.is_file():
        return None
    try:
        import openpyxl
    except ImportError:
        log.info("%s present but openpyxl is not installed; metadata not read", path)
        return None
    try:
        sheet = openpyxl.load_workbook(path, read_only=True).active
        rows = sheet.iter_rows(values_only=True)
        header = [str(h).strip().upper() if h is not None else "" for h in next(rows)]
        out = {}
        for row in rows:
            record = {h: "" if v is None else str(v) for h, v in zip(header, row)}
            name = record.get("FILE NAME", "")
            if name:
                out[Path(name).stem.lower() if name.lower().endswith(".png") else name.lower()] = record
        return out
    except Exception as exc:  # metadata is informative only; never fatal
        log.warning("%s: could not read metadata (%s)", path, exc)
        return None


# ---------------------------------------------------------------------------------------- loader


def _test_counts(test_per_class: int | Mapping[str, int], classes: tuple[str, ...]) -> dict[str, int]:
    if isinstance(test_per_class, Mapping):
        unknown = sorted(set(test_per_class) - set(classes))
        if unknown:
            raise MedaugError(f"test_per_class names classes {unknown} not in {list(classes)}")
        counts = {c: test_per_class.get(c, 0) for c in classes}
    else:
        counts = {c: test_per_class for c in classes}
    for c, n in counts.items():
        if not isinstance(n, int) or isinstance(n, bool) or n < 0:
            raise MedaugError(f"test_per_class[{c!r}] = {n!r}; expected an integer >= 0")
    return counts


def load_covid(
    root: str | Path,
    classes: str | Sequence[str] = "covid-normal",
    size: int = 256,
    test_per_class: int | Mapping[str, int] = SEED003_TEST_PER_CLASS,
    val_fraction: float = 0.1,
    split_seed: int = 0,
    *,
    cache: bool = True,
    cache_dir: str | Path | None = None,
    resample: str = "bilinear",
    workers: int | None = None,
    lung_crop: bool = True,
) -> tuple[DatasetSplits, CovidManifest]:
    """Load the COVID-19 Radiography Database cropped to the lungs (seed 003's preprocessing),
    or with `lung_crop=False` as whole radiographs (a copy without masks; recorded in the manifest).

    `root` is the `COVID-19_Radiography_Dataset` folder or its parent. `classes` is
    "covid-normal" (seed 003; labels Normal=0, COVID=1), "all" (four classes) or a
    list of class folder names. `test_per_class` images per class (an int or a
    {class: n} mapping) are held out as the test set, then `val_fraction` of each
    class's remaining images form the validation set; both drawn by `split_seed`.
    Returns the splits (uint8 1 x size x size images) and a `CovidManifest`.
    """
    chosen = resolve_classes(classes)
    check_covid_size(size)
    if not isinstance(val_fraction, (int, float)) or not 0 <= val_fraction < 1:
        raise MedaugError(f"COVID val_fraction {val_fraction!r}; expected a number in [0, 1)")
    if not isinstance(split_seed, int) or split_seed < 0:
        raise MedaugError(f"COVID split_seed {split_seed!r}; expected an integer >= 0")
    if not isinstance(lung_crop, bool):
        raise MedaugError(f"COVID lung_crop {lung_crop!r}; expected true or false")
    resampling(resample)
    n_test = _test_counts(test_per_class, chosen)
    folder = dataset_dir(root)
    missing = [c for c in chosen if not (folder / c).is_dir()]
    if missing:
        raise MedaugError(f"{folder}: class folder(s) {missing} not found; expected the published layout "
                          f"{DATASET_DIR}/{{{','.join(CLASSES)}}}/{{images,masks}}")
    cache_root = (Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()) if cache else None

    files: list[str] = []
    labels: list[np.ndarray] = []
    blocks: list[np.ndarray] = []
    skipped: list[tuple[str, str]] = []
    cache_entries: list[str] = []
    hits = 0
    for label, cls in enumerate(chosen):
        pool, entry, hit = _class_pool(folder, cls, size, resample, cache_root, workers, lung_crop)
        hits += hit
        if entry:
            cache_entries.append(entry)
        if len(pool.files) < n_test[cls] + 1:
            raise MedaugError(f"{folder / cls}: {len(pool.files)} usable images (after {len(pool.skipped)} skipped); "
                              f"{n_test[cls]} test images + at least 1 training image needed")
        files += pool.files
        labels.append(np.full(len(pool.files), label, np.int64))
        blocks.append(pool.images)
        skipped += pool.skipped
        metadata = read_metadata(folder, cls)
        if metadata is not None:
            unlisted = [f for f in pool.files if Path(f).stem.lower() not in metadata]
            if unlisted:
                log.warning("%s: %d images not listed in %s.metadata.xlsx (e.g. %s)", folder / cls, len(unlisted),
                            cls, unlisted[0])
    for rel, reason in skipped:
        log.warning("COVID-19 Radiography: skipped %s (%s)", rel, reason)

    label_arr = np.concatenate(labels)
    class_sizes = np.bincount(label_arr, minlength=len(chosen))
    n_val = [int(np.floor(val_fraction * (class_sizes[i] - n_test[c]) + 0.5)) for i, c in enumerate(chosen)]
    n_val = [min(v, int(class_sizes[i] - n_test[c] - 1)) for i, (v, c) in enumerate(zip(n_val, chosen))]
    index = stratified_indices(files, label_arr, len(chosen), n_val, [n_test[c] for c in chosen], split_seed)
    images = np.concatenate(blocks)

    name = dataset_name(chosen)
    task = "binary-class" if len(chosen) == 2 else "multi-class"
    sets = {s: ImageSet(name=name, split=s, images=images[idx], labels=label_arr[idx], class_names=chosen, task=task)
            for s, idx in index.items()}
    sizes_hash = file_list_hash([rel, (folder / rel).stat().st_size] for rel in sorted(files + [s[0] for s in skipped]))
    manifest = CovidManifest(
        source=str(folder), classes=chosen, size=size, resample=resample, split_seed=split_seed,
        val_fraction=float(val_fraction), test_per_class=n_test,
        files={s: tuple(files[i] for i in idx) for s, idx in index.items()},
        skipped=tuple(skipped),
        counts={s: {c: int((label_arr[idx] == i).sum()) for i, c in enumerate(chosen)} for s, idx in index.items()},
        file_list_hash=sizes_hash, cache_entries=tuple(cache_entries), cache_hits=hits, lung_crop=lung_crop,
    )
    splits = DatasetSplits(name=name, train=sets["train"], val=sets["val"], test=sets["test"],
                           version=f"files-{sizes_hash}", md5=sizes_hash, source=str(folder))
    return splits, manifest


# ---------------------------------------------------------------------------------------- prepare


@dataclass(frozen=True)
class PreparedClass:
    """One class's preprocessed pool as `prepare_covid` found or built it."""

    name: str
    images: int  # PNG files in <class>/images
    usable: int
    skipped: tuple[tuple[str, str], ...]
    cache_entry: str
    cache_hit: bool


#: The radiographs are 299 x 299 px; a side beyond this only upsamples, at size^2 bytes per image.
MAX_COVID_SIZE = 1024


def check_covid_size(size: object) -> None:
    if not isinstance(size, int) or isinstance(size, bool) or not 8 <= size <= MAX_COVID_SIZE:
        raise MedaugError(f"COVID size {size!r}; expected an integer in [8, {MAX_COVID_SIZE}]")


def prepare_covid(root: str | Path, classes: str | Sequence[str] = "covid-normal", size: int = 256, *,
                  cache_dir: str | Path | None = None, resample: str = "bilinear",
                  workers: int | None = None, lung_crop: bool = True) -> list[PreparedClass]:
    """Decode, crop and resize every image of `classes` once into the Zarr cache
    (`lung_crop=False`: whole images, the cache that `lung_crop: false` trials read).

    What `load_covid` does first, without drawing splits: run it once before a sweep
    (`medaug data covid-prepare`) so that no trial decodes the ~21k PNGs itself.
    Trials must then use the same size and resampling and see the same cache folder
    ($XDG_CACHE_HOME, or ~/.cache, + /medaug/covid unless `cache_dir` is given).
    """
    chosen = resolve_classes(classes)
    check_covid_size(size)
    resampling(resample)
    folder = dataset_dir(root)
    missing = [c for c in chosen if not (folder / c).is_dir()]
    if missing:
        raise MedaugError(f"{folder}: class folder(s) {missing} not found; expected the published layout "
                          f"{DATASET_DIR}/{{{','.join(CLASSES)}}}/{{images,masks}}")
    cache_root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    out = []
    for cls in chosen:
        pool, entry, hit = _class_pool(folder, cls, size, resample, cache_root, workers, lung_crop)
        out.append(PreparedClass(name=cls, images=len(pool.files) + len(pool.skipped), usable=len(pool.files),
                                 skipped=tuple(pool.skipped), cache_entry=entry or "", cache_hit=hit))
    return out
