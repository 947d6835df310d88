"""Synthetic image sets in Zarr v3, with provenance, and their mixing into a training split.

A store is a Zarr v3 directory (`STORE.zarr`); each synthetic set is one group in it,
named by `"STORE.zarr#GROUP"`:

    GROUP/images   uint8  N x C x H x W, chunked by images, Blosc(zstd, bitshuffle)
    GROUP/labels   int64  (N,)  (or (N, L) of 0/1 for multi-label tasks)
    GROUP attributes:
        medaug_synthetic_set  format version (1)
        set_id                content hash of images + labels (as `ImageSet.content_hash`)
        n, channels, size     what the arrays hold
        provenance            generator name and config, checkpoint hashes (and its path
                              relative to the store's folder, never a machine path), the
                              content hash of the train split the generator saw, dataset
                              name/version/md5, strategy and its parameters, seed, medaug
                              version, creation time (UTC), class_names, task
        complete              true, written last

The group is written under a hidden temporary name (`.tmp-GROUP-<random>`) and renamed
to GROUP only after `complete` is set, so a reader sees a whole set or none; a reader
also refuses any group whose `complete` flag is missing (a crash of another writer),
and re-hashes what it read against `set_id` (a corrupted chunk is refused, never used).
A failed write (a full disk is one line: "no space left writing STORE#GROUP") leaves no
temporary group, nor a store it created. Files and folders get 0666/0777 & ~umask.
Plain `zarr` + numpy read a set without medaug: `zarr.open_group(STORE, mode="r")[GROUP]`.

Sets are untrusted files. Before a pixel is read, `open_set_header` checks the metadata:
Zarr v3 only (never v2, whose object arrays can unpickle), codecs from an allow-list,
format version, 16-hex set_id, provenance types, at least one image, images uint8
(N, 1|3, size, size), within the machine's memory, and labels int64 (N,) (or (N, L)) as
the attributes say; then the
class ids are range-checked and the content re-hashed. `read_set_id` gives a set's id
from its metadata alone, whatever path spells the reference.

The leakage rule of the design lives in `mix_into_train`: a set is mixed into a
training split only when its provenance says its generator was trained on exactly
that split (same content hash), so val/test images never reach training through a
generator.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from medaug.data.imageset import TASKS, ImageSet, content_hash
from medaug.errors import MedaugError
from medaug.store.atomic import NO_SPACE_ERRNOS, check_writable, disk_full, is_no_space, no_space_error

FORMAT_VERSION = 1
FORMAT_KEY = "medaug_synthetic_set"
TMP_PREFIX = ".tmp-"
#: Strategy whose sets are interleaved with the real split (real 0, synthetic 0, real 1, ...).
INTERLEAVE_STRATEGY = "interleave-reconstructions"
#: Provenance keys a set must carry; `write_synthetic_set` refuses a set without them.
REQUIRED_PROVENANCE = ("generator", "dataset", "train_hash", "class_names", "task", "strategy", "seed")
#: Target bytes per images chunk (about 4 MiB uncompressed).
CHUNK_BYTES = 4 << 20
_GROUP_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,127}$")


@dataclass(frozen=True, eq=False)
class SyntheticSet:
    """One synthetic set read back from a store."""

    ref: str
    images: np.ndarray
    labels: np.ndarray
    provenance: dict[str, Any]
    set_id: str
    attrs: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.images)

    @property
    def class_names(self) -> tuple[str, ...]:
        return tuple(self.provenance["class_names"])

    @property
    def task(self) -> str:
        return str(self.provenance["task"])

    def to_imageset(self, split: str = "synthetic") -> ImageSet:
        """The set as an ImageSet (name = the dataset it imitates)."""
        return ImageSet(name=str(self.provenance["dataset"]), split=split, images=self.images, labels=self.labels,
                        class_names=self.class_names, task=self.task, content_hash=self.set_id)


def parse_ref(ref: str) -> tuple[Path, str]:
    """`"STORE.zarr#GROUP"` -> (store path, group name), refusing malformed references."""
    if not isinstance(ref, str) or ref.count("#") != 1:
        raise MedaugError(f"synthetic set reference {ref!r}: expected STORE.zarr#GROUP")
    store, group = ref.split("#")
    if not store or not group:
        raise MedaugError(f"synthetic set reference {ref!r}: expected STORE.zarr#GROUP (both parts non-empty)")
    check_group_name(group)
    return Path(store).expanduser(), group


def make_ref(store: str | Path, group: str) -> str:
    return f"{store}#{group}"


def check_group_name(group: str) -> None:
    if not isinstance(group, str) or not _GROUP_NAME.match(group):
        raise MedaugError(
            f"synthetic set group name {group!r}: expected 1-128 characters from A-Z a-z 0-9 _ . + -, "
            "not starting with a dot or dash"
        )


def images_chunks(shape: tuple[int, ...]) -> tuple[int, ...]:
    """Chunk whole images, about CHUNK_BYTES per chunk."""
    per_image = int(np.prod(shape[1:])) or 1
    n = max(1, min(int(shape[0]) or 1, CHUNK_BYTES // per_image))
    return (n, *shape[1:])


def _jsonable(value: Any, where: str) -> Any:
    """Round-trip through JSON so that attributes hold plain data only (no numpy scalars)."""
    def default(obj: Any) -> Any:
        if isinstance(obj, np.generic):
            return obj.item()
        if isinstance(obj, np.ndarray):
            return obj.tolist()
        if isinstance(obj, Path):
            return str(obj)
        raise TypeError(type(obj).__name__)

    try:
        return json.loads(json.dumps(value, default=default))
    except (TypeError, ValueError) as exc:
        raise MedaugError(f"{where}: provenance is not plain JSON data ({exc})") from None


def _validate(images: np.ndarray, labels: np.ndarray, provenance: dict[str, Any], where: str) -> ImageSet:
    if not isinstance(provenance, dict):
        raise MedaugError(f"{where}: provenance must be a mapping")
    missing = [k for k in REQUIRED_PROVENANCE if k not in provenance]
    if missing:
        raise MedaugError(f"{where}: provenance lacks {missing}; required: {list(REQUIRED_PROVENANCE)}")
    if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.ndim != 4:
        raise MedaugError(f"{where}: images must be a uint8 N x C x H x W array, got "
                          f"{getattr(images, 'dtype', type(images).__name__)} {getattr(images, 'shape', '')}")
    if len(images) == 0:
        raise MedaugError(f"{where}: a synthetic set needs at least one image")
    labels = np.asarray(labels)
    if not np.issubdtype(labels.dtype, np.integer):
        raise MedaugError(f"{where}: labels must be integers, got {labels.dtype}")
    # ImageSet checks label shape/range against the class names and the task.
    return ImageSet(name=str(provenance["dataset"]), split="synthetic", images=np.ascontiguousarray(images),
                    labels=labels.astype(np.int64), class_names=tuple(provenance["class_names"]),
                    task=str(provenance["task"]))


def _open_store(store: Path, mode: str):
    import zarr

    try:
        return zarr.open_group(str(store), mode=mode, zarr_format=3)
    except Exception as exc:  # zarr raises several types for a missing or unreadable store
        raise MedaugError(f"{store}: not a readable Zarr v3 store ({exc.__class__.__name__}: {exc})") from None


def list_groups(store: str | Path) -> list[str]:
    """Names of the (finished or not) set groups in a store, hidden temporaries excluded."""
    store = Path(store)
    if not (store / "zarr.json").is_file():
        return []
    root = _open_store(store, "r")
    return sorted(k for k in root.group_keys() if not k.startswith("."))


def write_synthetic_set(store: str | Path, group: str, images: np.ndarray, labels: np.ndarray,
                        provenance: dict[str, Any]) -> str:
    """Write one set as `store#group`, whole or not at all; return its set_id.

    `provenance` must hold at least REQUIRED_PROVENANCE; `created_at` (UTC) and
    `medaug_version` are added when absent. Refuses (MedaugError, nothing written) an
    existing group, a malformed array or provenance, and a store path that is not a
    directory store.
    """
    from medaug import __version__

    store = Path(store).expanduser()
    check_group_name(group)
    where = make_ref(store, group)
    imageset = _validate(images, labels, provenance, where)
    prov = dict(provenance)
    prov.setdefault("medaug_version", __version__)
    prov.setdefault("created_at", datetime.now(timezone.utc).isoformat(timespec="seconds"))
    prov = _jsonable(prov, where)
    check_store_writable(store, group)
    set_id = imageset.content_hash
    tmp_name = f"{TMP_PREFIX}{group}-{uuid.uuid4().hex[:8]}"
    tmp_dir = store / tmp_name
    new_store = not store.exists()
    done = False
    try:
        try:
            _write_group(store, tmp_name, imageset, prov, set_id)
        except Exception as exc:
            if is_no_space(exc) or (tmp_dir.is_dir() and _folder_full(tmp_dir)):
                raise no_space_error(where) from None
            raise
        try:
            os.rename(tmp_dir, store / group)
        except OSError:
            raise MedaugError(f"{where}: group appeared while writing (another writer?); nothing written") from None
        done = True
    finally:
        if tmp_dir.exists():
            shutil.rmtree(tmp_dir, ignore_errors=True)
        if not done and new_store:
            _remove_if_empty(store)
    return set_id


def check_store_writable(store: Path, group: str) -> None:
    """Refuse, before any work, a store path where the group cannot be written (MedaugError)."""
    where = make_ref(store, group)
    if store.exists() and not store.is_dir():
        raise MedaugError(f"{store}: exists and is not a Zarr directory store")
    if store.is_dir() and not (store / "zarr.json").is_file() and any(store.iterdir()):
        # a folder of other files (a results folder, a home directory) is never made into a store
        raise MedaugError(f"{store}: a folder that is not a Zarr store (no zarr.json) and not empty; "
                          "expected a new or empty folder, or an existing store")
    if (store / group).exists():
        raise MedaugError(f"{where}: group exists already; choose another --group or store")
    check_writable(store / "zarr.json", what="synthetic set store")


def _folder_full(folder: Path) -> bool:
    """Whether the disk holding `folder` has no room for one more block (probe file, removed)."""
    probe = folder / f".probe-{uuid.uuid4().hex[:8]}"
    try:
        probe.touch()
    except OSError as exc:
        return exc.errno in NO_SPACE_ERRNOS
    try:
        return disk_full(probe)
    finally:
        probe.unlink(missing_ok=True)


def _remove_if_empty(store: Path) -> None:
    """Remove a store this writer created if a failed write left only its root metadata."""
    try:
        if store.is_dir() and {p.name for p in store.iterdir()} <= {"zarr.json"}:
            shutil.rmtree(store, ignore_errors=True)
    except OSError:
        pass


def _write_group(store: Path, name: str, data: ImageSet, provenance: dict[str, Any], set_id: str) -> None:
    from zarr.codecs import BloscCodec

    root = _open_store(store, "a")
    g = root.create_group(name)
    compressor = BloscCodec(cname="zstd", clevel=5, shuffle="bitshuffle")
    images = g.create_array("images", shape=data.images.shape, dtype="uint8",
                            chunks=images_chunks(data.images.shape), compressors=compressor)
    images[...] = data.images
    labels = g.create_array("labels", shape=data.labels.shape, dtype="int64", chunks=data.labels.shape,
                            compressors=BloscCodec(cname="zstd", clevel=5, shuffle="shuffle"))
    labels[...] = data.labels
    g.attrs.update({
        FORMAT_KEY: FORMAT_VERSION,
        "set_id": set_id,
        "n": len(data),
        "channels": data.channels,
        "size": data.size,
        "provenance": provenance,
    })
    g.attrs["complete"] = True  # last: a group without it is refused by readers


#: Codecs a set's arrays may use. Sets are untrusted files: an allow-list keeps any codec
#: that could run code while decoding (a pickle codec, should one ever be registered) out.
SAFE_CODECS = frozenset({"bytes", "blosc", "zstd", "gzip", "crc32c", "transpose", "sharding_indexed",
                         "numcodecs.blosc", "numcodecs.zstd", "numcodecs.gzip", "numcodecs.zlib",
                         "numcodecs.lz4", "numcodecs.crc32c", "numcodecs.shuffle"})
_SET_ID = re.compile(r"^[0-9a-f]{16}$")


@dataclass(frozen=True)
class SetHeader:
    """What a set's metadata says, checked without reading its pixels (see `open_set_header`)."""

    ref: str
    set_id: str
    n: int
    channels: int
    size: int
    provenance: dict[str, Any]
    attrs: dict[str, Any]


def _codec_names(codecs: Any) -> list[str]:
    """Names of all codecs in an array's metadata `codecs` list, nested sharding codecs included."""
    names: list[str] = []
    for codec in codecs or ():
        if not isinstance(codec, dict):
            names.append(repr(codec))
            continue
        names.append(str(codec.get("name")))
        config = codec.get("configuration") or {}
        if isinstance(config, dict):
            names += _codec_names(config.get("codecs")) + _codec_names(config.get("index_codecs"))
    return names


def _check_array(ref: str, g: Any, key: str) -> Any:
    """The array `key` of group `g`: a Zarr v3 array using safe codecs only (MedaugError otherwise)."""
    import zarr

    try:
        arr = g[key]
    except KeyError:
        raise MedaugError(f"{ref}: array {key!r} missing; the set is corrupt") from None
    except Exception as exc:
        raise MedaugError(f"{ref}: unreadable {key!r} metadata ({exc.__class__.__name__})") from None
    if not isinstance(arr, zarr.Array) or arr.metadata.zarr_format != 3:
        raise MedaugError(f"{ref}: {key!r} is not a Zarr v3 array")
    meta = arr.metadata.to_dict()
    unsafe = [c for c in _codec_names(meta.get("codecs")) if c not in SAFE_CODECS]
    if unsafe or meta.get("storage_transformers"):
        raise MedaugError(f"{ref}: {key!r} uses codecs {unsafe or meta.get('storage_transformers')}; "
                          f"a synthetic set may use only {sorted(SAFE_CODECS)}")
    return arr


def _int_attr(ref: str, attrs: dict[str, Any], key: str) -> int:
    value = attrs.get(key)
    if isinstance(value, bool) or not isinstance(value, int):
        raise MedaugError(f"{ref}: attribute {key!r} is {value!r}; expected an integer")
    return value


def _check_provenance(ref: str, provenance: Any) -> dict[str, Any]:
    if not isinstance(provenance, dict) or any(k not in provenance for k in REQUIRED_PROVENANCE):
        raise MedaugError(f"{ref}: provenance missing or lacks {list(REQUIRED_PROVENANCE)}")
    names = provenance["class_names"]
    if not isinstance(names, list) or not names or not all(isinstance(c, str) for c in names):
        raise MedaugError(f"{ref}: provenance class_names is {names!r}; expected a non-empty list of names")
    if provenance["task"] not in TASKS:
        raise MedaugError(f"{ref}: provenance task {provenance['task']!r}; expected one of {TASKS}")
    for key in ("dataset", "train_hash", "strategy"):
        if not isinstance(provenance[key], str) or not provenance[key]:
            raise MedaugError(f"{ref}: provenance {key} is {provenance[key]!r}; expected a non-empty string")
    return provenance


def physical_memory() -> int:
    """Bytes of RAM (0 when the system does not say)."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, OSError, ValueError):
        return 0


def _check_plain_files(ref: str, folder: Path) -> None:
    """Everything zarr will read under the group is a folder or a regular file: a pipe (a
    planted zarr.json or chunk) would block the reader forever, a device never end."""
    if folder.is_symlink() or not folder.is_dir():
        return  # a missing group is named by the lookup that follows
    for parent, dirs, names in os.walk(folder):
        for name in (*dirs, *names):
            path = Path(parent) / name
            if not (path.is_dir() or path.is_file()) or (name in dirs and path.is_symlink()):
                raise MedaugError(f"{ref}: {path} is not a regular file or folder (a pipe, device, socket or "
                                  "linked folder); the set is damaged or planted: delete and rewrite it")


def _open_header(ref: str) -> tuple[SetHeader, Any, Any]:
    """Open `ref` and check everything its metadata says; return (header, images array, labels array).

    No pixel is read: the arrays' shapes, dtypes and codecs come from their metadata.
    """
    store, group = parse_ref(ref)
    if not (store / "zarr.json").is_file():
        raise MedaugError(f"{store}: no Zarr v3 store here (zarr.json missing)")
    _check_plain_files(ref, store / group)
    root = _open_store(store, "r")
    try:
        g = root[group]
    except KeyError:
        groups = list_groups(store)
        raise MedaugError(f"{ref}: no group {group!r} in the store; it holds: {', '.join(groups) or 'nothing'}") from None
    except Exception as exc:
        raise MedaugError(f"{ref}: unreadable group metadata ({exc.__class__.__name__})") from None
    import zarr

    if not isinstance(g, zarr.Group):
        raise MedaugError(f"{ref}: is an array, not a synthetic set group")
    attrs = dict(g.attrs)
    if attrs.get("complete") is not True:
        raise MedaugError(f"{ref}: set is incomplete (no 'complete' flag: its writer did not finish); delete and rewrite it")
    if attrs.get(FORMAT_KEY) != FORMAT_VERSION:
        raise MedaugError(f"{ref}: not a medaug synthetic set of format version {FORMAT_VERSION} "
                          f"(found {attrs.get(FORMAT_KEY)!r})")
    set_id = attrs.get("set_id")
    if not isinstance(set_id, str) or not _SET_ID.match(set_id):
        raise MedaugError(f"{ref}: set_id {set_id!r}; expected 16 hex digits (a content hash)")
    provenance = _check_provenance(ref, attrs.get("provenance"))
    n, channels, size = (_int_attr(ref, attrs, k) for k in ("n", "channels", "size"))
    if n <= 0:
        raise MedaugError(f"{ref}: the set holds {n} images; a synthetic set needs at least one")
    images, labels = _check_array(ref, g, "images"), _check_array(ref, g, "labels")
    if images.dtype != np.uint8 or tuple(images.shape) != (n, channels, size, size) or channels not in (1, 3):
        raise MedaugError(f"{ref}: images are {images.dtype} {tuple(images.shape)}; expected uint8 (N, C, H, W) = "
                          f"({n}, {channels}, {size}, {size}) with 1 or 3 channels, as its attributes say")
    nbytes, memory = n * channels * size * size, physical_memory()
    if memory and nbytes > memory:
        raise MedaugError(f"{ref}: claims {n} images of {channels}x{size}x{size} ({nbytes / 2**30:.1f} GiB), "
                          f"more than this machine's memory ({memory / 2**30:.1f} GiB)")
    n_classes = len(provenance["class_names"])
    multi = str(provenance["task"]).startswith("multi-label")
    expected_shape = (n, n_classes) if multi else (n,)
    if labels.dtype != np.int64 or tuple(labels.shape) != expected_shape:
        hint = ""
        if not multi and tuple(labels.shape) == (n, 1):
            hint = " (single-label sets store labels as a vector: write labels.reshape(-1))"
        raise MedaugError(f"{ref}: labels are {labels.dtype} {tuple(labels.shape)}; expected int64 "
                          f"{expected_shape} for a {provenance['task']} set of {n_classes} classes{hint}")
    header = SetHeader(ref=ref, set_id=set_id, n=n, channels=channels, size=size, provenance=provenance, attrs=attrs)
    return header, images, labels


def open_set_header(ref: str) -> SetHeader:
    """Check a set's metadata (complete, format, set_id, provenance, array shapes, dtypes, codecs).

    Cheap: reads only metadata, never pixels, and never the content hash. Refuses
    (MedaugError, one line naming `ref`) what `read_synthetic_set` would refuse before reading.
    """
    return _open_header(ref)[0]


def read_set_id(ref: str) -> str:
    """The content id (`set_id`) of the set `"STORE.zarr#GROUP"`, after `open_set_header`'s checks.

    Identifies the set whatever path names it ('/abs/s.zarr#g', 'syn//s.zarr#g', ...):
    the hash of its images and labels, checked again when the set is read for training.
    """
    return open_set_header(ref).set_id


def read_synthetic_set(ref: str, *, verify: bool = True) -> SyntheticSet:
    """Read `"STORE.zarr#GROUP"`; refuse a missing, incomplete, malformed or corrupt set (MedaugError).

    Sets are untrusted files: the metadata is checked first (`open_set_header`), then the
    pixels and labels are read (never unpickled: Zarr v3 with safe codecs only) and their
    values checked against the provenance (class ids in range, multi-label 0/1).
    `verify` re-hashes images + labels against the stored set_id.
    """
    header, images_arr, labels_arr = _open_header(ref)
    try:
        images = np.asarray(images_arr[...])
        labels = np.asarray(labels_arr[...])
    except Exception as exc:  # decompression or I/O errors of truncated/corrupted chunks
        raise MedaugError(f"{ref}: corrupt data ({exc.__class__.__name__}: {str(exc)[:120]})") from None
    prov = header.provenance
    n_classes = len(prov["class_names"])
    if str(prov["task"]).startswith("multi-label"):
        if not np.isin(labels, (0, 1)).all():
            raise MedaugError(f"{ref}: multi-label labels must be 0 or 1")
    elif labels.min() < 0 or labels.max() >= n_classes:
        raise MedaugError(f"{ref}: class ids {int(labels.min())}..{int(labels.max())} out of range; "
                          f"expected 0..{n_classes - 1} ({n_classes} classes in its provenance)")
    if verify and content_hash(images, labels) != header.set_id:
        raise MedaugError(f"{ref}: content hash {content_hash(images, labels)} != set_id {header.set_id}; "
                          "the set is corrupt")
    return SyntheticSet(ref=ref, images=images, labels=labels, provenance=prov, set_id=header.set_id,
                        attrs=header.attrs)


def interleave(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """[first[0], second[0], first[1], second[1], ...] for equal-length arrays."""
    out = np.empty((2 * len(first), *first.shape[1:]), dtype=first.dtype)
    out[0::2] = first
    out[1::2] = second
    return out


def check_compatible(train: ImageSet, synthetic: SyntheticSet) -> None:
    """Refuse a set that was not generated from exactly this training split (no leakage)."""
    prov, ref = synthetic.provenance, synthetic.ref
    if prov["dataset"] != train.name:
        raise MedaugError(f"{ref}: generated for dataset {prov['dataset']!r}; this run trains on {train.name!r}")
    if synthetic.images.shape[1:] != train.images.shape[1:]:
        raise MedaugError(f"{ref}: images are {tuple(synthetic.images.shape[1:])} (C, H, W); "
                          f"the train split's are {tuple(train.images.shape[1:])}")
    if prov["train_hash"] != train.content_hash:
        raise MedaugError(
            f"{ref}: its generator was trained on split hash {prov['train_hash']}, not on this train split "
            f"({train.content_hash}); refused to prevent val/test leakage"
        )
    if tuple(prov["class_names"]) != train.class_names or prov["task"] != train.task:
        raise MedaugError(f"{ref}: classes/task {list(prov['class_names'])}/{prov['task']!r} differ from the train "
                          f"split's {list(train.class_names)}/{train.task!r}")


def mix_into_train(train: ImageSet, ref: str) -> tuple[ImageSet, dict[str, Any]]:
    """Real train split plus the synthetic set `ref`, after the leakage and shape checks.

    Returns (mixed ImageSet with split "train+synthetic", info) where info holds
    `set_id`, `provenance` (dict), `provenance_json` (canonical JSON), `n_synthetic`
    and `ref`. Real images come first and synthetic ones after; a set made by the
    interleave-reconstructions strategy (seed 000's Joint VAE) is interleaved instead:
    every real image followed by its reconstruction.
    """
    if train.split != "train":
        raise MedaugError(f"synthetic sets mix into the train split only, not {train.split!r}")
    synthetic = read_synthetic_set(ref)
    check_compatible(train, synthetic)
    prov = synthetic.provenance
    if prov["strategy"] == INTERLEAVE_STRATEGY:
        if len(synthetic) != len(train):
            raise MedaugError(f"{ref}: an interleave set must hold one reconstruction per real image "
                              f"({len(train)}), found {len(synthetic)}")
        images = interleave(train.images, synthetic.images)
        labels = interleave(train.labels, synthetic.labels)
    else:
        images = np.concatenate([train.images, synthetic.images])
        labels = np.concatenate([train.labels, synthetic.labels])
    mixed = ImageSet(name=train.name, split="train+synthetic", images=images, labels=labels,
                     class_names=train.class_names, task=train.task)
    info = {
        "set_id": synthetic.set_id,
        "provenance": prov,
        "provenance_json": json.dumps(prov, sort_keys=True),
        "n_synthetic": len(synthetic),
        "ref": ref,
    }
    return mixed, info
