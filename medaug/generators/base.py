"""The generator interface every generative augmenter implements, and its checkpoints.

A `Generator` is built from (channels, size, num_classes, config), trained with
`fit(train)` on a training split only, and then asked for labelled images with
`sample(labels, seed)` (or, for the VAEs, for reconstructions of given images).
Images are uint8 N x C x H x W at this boundary; inside, nets work on floats in
[-1, 1] (tanh outputs).

A checkpoint is a folder:
    generator.json  what it is: name, shapes, class names, config, the dataset and
                    the content hash of the train split it saw, epochs reached, the
                    sha256 of state.pt, medaug and torch versions
    state.pt        state dicts of nets and optimizers plus loop counters, read back
                    with `torch.load(..., weights_only=True)` (no pickled code)
Both files are written atomically, state.pt first; generator.json carries the sha256
of the state.pt it belongs to, so a truncated, corrupted or half-updated checkpoint
is refused on load with one line instead of being silently half-loaded.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import math
import pickle
import platform
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import numpy as np
import torch
from torch import nn

from medaug import __version__
from medaug.data.imageset import ImageSet
from medaug.errors import MedaugError
from medaug.hashing import file_digest
from medaug.registry import Registry
from medaug.store.atomic import atomic_write, atomic_write_text

GENERATORS: Registry[type[Generator]] = Registry("generator")

META_FILE = "generator.json"
STATE_FILE = "state.pt"
CHECKPOINT_DIR = "checkpoint"
FORMAT_VERSION = 1
SIZES = (28, 32, 64)
SAMPLE_BATCH = 256

G = TypeVar("G", bound="Generator")
C = TypeVar("C", bound="GeneratorConfig")


# --------------------------------------------------------------------------- config

#: Bounds of the common config fields (the published settings sit far inside them).
MAX_EPOCHS = 100_000
MAX_BATCH = 65_536
MAX_LATENT = 8192


@dataclass(frozen=True)
class GeneratorConfig:
    """Settings shared by all generators; each generator subclasses it for its own.

    `width` multiplies every channel count of the nets (1.0 = the published
    architecture; tests use less). `early_stopping_patience` counts epochs without a
    better validation loss before training stops (0 = off; only generators with a
    validation loss use it). Defaults here are generic: a generator's class
    attribute `defaults` overrides them (e.g. cvae: epochs 200, latent 150).
    """

    epochs: int = 100
    batch_size: int = 64
    lr: float = 2e-4
    latent_dim: int = 128
    seed: int = 0
    beta1: float = 0.5
    beta2: float = 0.999
    width: float = 1.0
    early_stopping_patience: int = 0

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            kind = _field_type(f)
            if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
                raise self._bad(f.name, "an integer")
            if kind is float:
                if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                    raise self._bad(f.name, "a finite number")
                object.__setattr__(self, f.name, float(value))
            if kind is str and not isinstance(value, str):
                raise self._bad(f.name, "a string")
            if kind is bool and not isinstance(value, bool):
                raise self._bad(f.name, "true or false")
        # upper bounds too: an absurd value is refused here, not by the allocator mid-build
        self._check(1 <= self.epochs <= MAX_EPOCHS, "epochs", f"an integer in [1, {MAX_EPOCHS}]")
        self._check(2 <= self.batch_size <= MAX_BATCH, "batch_size", f"an integer in [2, {MAX_BATCH}]")
        self._check(0 < self.lr <= 10, "lr", "a number in (0, 10]")
        self._check(1 <= self.latent_dim <= MAX_LATENT, "latent_dim", f"an integer in [1, {MAX_LATENT}]")
        self._check(0 <= self.seed <= 2**32 - 1, "seed", "an integer in [0, 2**32 - 1]")
        self._check(0 <= self.beta1 < 1, "beta1", "a number in [0, 1)")
        self._check(0 <= self.beta2 < 1, "beta2", "a number in [0, 1)")
        self._check(0 < self.width <= 4, "width", "a number in (0, 4]")
        self._check(self.early_stopping_patience >= 0, "early_stopping_patience", "an integer >= 0 (0 = off)")

    def _bad(self, name: str, expected: str) -> MedaugError:
        return MedaugError(f"generator config field {name!r} = {getattr(self, name)!r}; expected {expected}")

    def _check(self, ok: bool, name: str, expected: str) -> None:
        if not ok:
            raise self._bad(name, expected)

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def from_dict(cls: type[C], values: Mapping[str, Any]) -> C:
        """Build from a mapping, refusing keys this config does not have."""
        if not isinstance(values, Mapping):
            raise MedaugError(f"generator config must be a mapping, got {type(values).__name__}")
        unknown = sorted(set(values) - set(cls.field_names()))
        if unknown:
            raise MedaugError(
                f"unknown generator config field(s) {', '.join(unknown)} for {cls.__name__}; "
                f"expected some of: {', '.join(cls.field_names())}"
            )
        return cls(**dict(values))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def replace(self: C, **changes: Any) -> C:
        return self.from_dict({**self.to_dict(), **changes})


def _field_type(f: dataclasses.Field) -> type | None:
    name = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", "")
    return {"int": int, "float": float, "str": str, "bool": bool}.get(name)


# --------------------------------------------------------------------------- helpers

def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """None/"auto" -> CUDA when present, else CPU; "cpu", "cuda", "cuda:N" as given (checked)."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise MedaugError(f"device {device!r}: expected auto, cpu, cuda or cuda:N") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise MedaugError(f"device {device}: CUDA is not available on this machine")
    return dev


def to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] -> float [-1, 1], on the images' device."""
    return images.float().mul_(1 / 127.5).sub_(1.0)


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """float [-1, 1] -> uint8 numpy (rounded, clipped)."""
    return ((images.detach().float() + 1.0) * 127.5).round_().clamp_(0, 255).to(torch.uint8).cpu().numpy()


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:200] or exc.__class__.__name__


# --------------------------------------------------------------------------- interface

class Generator(ABC):
    """A generative model of labelled images behind one interface.

    Subclasses set `name`, `conditional` (the nets see labels), `can_sample`
    (`sample(labels)` works), `can_reconstruct`, `config_class` and `defaults`,
    build their nets into `self.nets` and optimizers into `self.optims` (dicts by
    name: that is what checkpoints hold), and implement `train_step` and `_sample`.
    The training loop itself is shared: see `medaug/generators/training.py`.
    """

    name: ClassVar[str]
    conditional: ClassVar[bool]
    can_sample: ClassVar[bool] = True
    can_reconstruct: ClassVar[bool] = False
    kind: ClassVar[str] = "gan"  # "vae" or "gan": which loss curves and early stopping apply
    config_class: ClassVar[type[GeneratorConfig]] = GeneratorConfig
    defaults: ClassVar[Mapping[str, Any]] = {}
    sizes: ClassVar[tuple[int, ...]] = SIZES  # image sizes this generator accepts

    def __init__(self, channels: int, size: int, num_classes: int,
                 config: GeneratorConfig | Mapping[str, Any] | None = None,
                 device: torch.device | str | None = "cpu") -> None:
        if channels not in (1, 3):
            raise MedaugError(f"{self.name}: channels = {channels}; expected 1 or 3")
        if size not in self.sizes:
            raise MedaugError(f"{self.name}: image size {size}; expected one of {self.sizes}")
        if not isinstance(num_classes, int) or num_classes < 1:
            raise MedaugError(f"{self.name}: num_classes = {num_classes!r}; expected an integer >= 1")
        self.channels = channels
        self.size = size
        self.num_classes = num_classes
        self.config = self.make_config(config)
        self.device = resolve_device(device)
        self.class_names: tuple[str, ...] = tuple(str(i) for i in range(num_classes))
        self.dataset: dict[str, Any] = {}
        # Loop counters; checkpoints hold them and `resume` restores them.
        self.epoch = 0
        self.global_step = 0
        self.loop_state: dict[str, float | int] = {}
        self.best_nets: dict[str, dict[str, torch.Tensor]] | None = None
        self.finished = False
        self.nets: dict[str, nn.Module] = {}
        self.optims: dict[str, torch.optim.Optimizer] = {}
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.config.seed)  # same seed -> same initial weights
            try:
                self.build()
            except (MemoryError, RuntimeError) as exc:  # torch's CPU allocator raises RuntimeError
                if not isinstance(exc, MemoryError) and "allocate" not in str(exc):
                    raise
                raise MedaugError(f"{self.name}: its nets at this config ({self.config.to_dict()}) do not fit in "
                                  "this machine's memory; lower latent_dim, width or the image size") from None
        for net in self.nets.values():
            net.to(self.device)
        self.optims = self.build_optimizers()

    # -- construction ---------------------------------------------------------------

    @classmethod
    def make_config(cls, config: GeneratorConfig | Mapping[str, Any] | None = None,
                    **overrides: Any) -> GeneratorConfig:
        """This generator's config: its defaults, then `config`, then `overrides`."""
        if isinstance(config, GeneratorConfig):
            if not isinstance(config, cls.config_class):
                raise MedaugError(f"{cls.name}: config is a {type(config).__name__}; "
                                  f"expected {cls.config_class.__name__}")
            values = config.to_dict()
        else:
            values = {**cls.defaults, **dict(config or {})}
        return cls.config_class.from_dict({**values, **overrides})

    @abstractmethod
    def build(self) -> None:
        """Create `self.nets` (called under torch.manual_seed(config.seed))."""

    @abstractmethod
    def build_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """Optimizers over `self.nets`, by name."""

    def adam(self, *modules: nn.Module, lr: float | None = None) -> torch.optim.Adam:
        params = [p for m in modules for p in m.parameters()]
        return torch.optim.Adam(params, lr=lr or self.config.lr, betas=(self.config.beta1, self.config.beta2))

    # -- training -------------------------------------------------------------------

    @abstractmethod
    def fit(self, train: ImageSet, out_dir: str | Path, *, val: ImageSet | None = None, resume: bool = False,
            quiet: bool = True, provenance: Mapping[str, Any] | None = None, plots: bool = True) -> Path:
        """Train on `train` (a TRAIN split) and return the checkpoint folder out_dir/checkpoint.

        `val` is used only for early stopping (VAEs); `resume` continues from the last
        epoch checkpointed in out_dir; `provenance` adds the data set's version/md5 to
        the checkpoint; `plots` draws loss curves and a sample montage at the end.
        Each kind of training has one loop: `training.EpochGenerator` (the epoch loop
        of the VAEs, GANs and the baseline) or StyleGAN2-ADA's kimg loop.
        """

    @abstractmethod
    def train_step(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
        """One optimisation step on a batch (x float [-1, 1] on device, y int64 labels); losses by name."""

    def validation_loss(self, x: torch.Tensor, y: torch.Tensor) -> float | None:
        """Loss on validation images for early stopping; None where a generator has none."""
        return None

    def batch_indices(self, labels: np.ndarray, batch_size: int, generator: torch.Generator, rank: int = 0,
                      world: int = 1) -> list[np.ndarray]:
        """One epoch's batches of row indices into the train set, this rank's share.

        Every rank draws the same permutation (same generator seed) and keeps every
        `world`-th index, so ranks see disjoint equal-size shards. A last batch of
        one image joins the batch before it (batch norm needs two).
        """
        n = len(labels) - len(labels) % world
        perm = torch.randperm(len(labels), generator=generator).numpy()[:n][rank::world]
        return split_batches(perm, batch_size)

    def train_mode(self, on: bool) -> None:
        for net in self.nets.values():
            net.train(on)

    # -- generation -----------------------------------------------------------------

    def sample(self, labels: np.ndarray, seed: int) -> np.ndarray:
        """uint8 (N, C, H, W): one image per requested label, the same for the same seed."""
        labels = self.check_labels(labels)
        if not self.can_sample:
            raise MedaugError(self.cannot_sample_reason())
        gen = torch.Generator().manual_seed(int(seed))
        out = np.empty((len(labels), self.channels, self.size, self.size), dtype=np.uint8)
        self.train_mode(False)
        with torch.no_grad():
            for start in range(0, len(labels), SAMPLE_BATCH):
                y = labels[start:start + SAMPLE_BATCH]
                x = self._sample(torch.from_numpy(y).to(self.device), gen)
                out[start:start + len(y)] = to_uint8(x)
        return out

    def _sample(self, y: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """Float [-1, 1] images (len(y), C, size, size); draw noise on CPU from `gen`."""
        raise MedaugError(self.cannot_sample_reason())

    def cannot_sample_reason(self) -> str:
        return f"generator {self.name!r} cannot sample labelled images"

    def reconstruct(self, images: np.ndarray, labels: np.ndarray | None = None, seed: int = 0) -> np.ndarray:
        """uint8 reconstructions of uint8 images (VAEs only); others raise MedaugError."""
        raise MedaugError(f"generator {self.name!r} cannot reconstruct images (only the VAEs can)")

    def check_labels(self, labels: np.ndarray) -> np.ndarray:
        labels = np.asarray(labels)
        if labels.ndim != 1 or (labels.size and not np.issubdtype(labels.dtype, np.integer)):
            raise MedaugError(f"{self.name}: labels must be a 1-D integer array, got {labels.dtype} {labels.shape}")
        if labels.size and (labels.min() < 0 or labels.max() >= self.num_classes):
            raise MedaugError(f"{self.name}: labels must be in 0..{self.num_classes - 1}, "
                              f"got {int(labels.min())}..{int(labels.max())}")
        return labels.astype(np.int64)

    def check_images(self, images: np.ndarray) -> np.ndarray:
        images = np.asarray(images)
        if images.dtype != np.uint8 or images.shape[1:] != (self.channels, self.size, self.size):
            raise MedaugError(f"{self.name}: images must be uint8 (N, {self.channels}, {self.size}, {self.size}), "
                              f"got {images.dtype} {images.shape}")
        return images

    def noise(self, n: int, gen: torch.Generator, dim: int | None = None) -> torch.Tensor:
        """Standard normal noise drawn on CPU from `gen` (identical on every device), moved to the device."""
        return torch.randn(n, dim or self.config.latent_dim, generator=gen).to(self.device)

    # -- provenance and checkpoints ---------------------------------------------------

    @property
    def provenance(self) -> dict[str, Any]:
        """What a synthetic set records about the model that made it."""
        return {"generator": self.name, "config": self.config.to_dict(), "channels": self.channels,
                "size": self.size, "num_classes": self.num_classes, "class_names": list(self.class_names),
                "dataset": dict(self.dataset), "epoch": self.epoch, "finished": self.finished,
                "state_sha256": getattr(self, "state_sha256", "")}

    def meta(self) -> dict[str, Any]:
        return {"format": FORMAT_VERSION, "name": self.name, "channels": self.channels, "size": self.size,
                "num_classes": self.num_classes, "class_names": list(self.class_names),
                "config": self.config.to_dict(), "dataset": dict(self.dataset), "epoch": self.epoch,
                "global_step": self.global_step, "finished": self.finished,
                "medaug_version": __version__, "torch_version": torch.__version__,
                "python_version": platform.python_version()}

    def state(self) -> dict[str, Any]:
        """Everything `save` writes to state.pt: tensors, numbers and strings only."""
        state: dict[str, Any] = {
            "format": FORMAT_VERSION, "name": self.name, "epoch": self.epoch, "global_step": self.global_step,
            "loop_state": dict(self.loop_state),
            "nets": {k: v.state_dict() for k, v in self.nets.items()},
            "optims": {k: v.state_dict() for k, v in self.optims.items()},
        }
        if self.best_nets is not None:
            state["best_nets"] = self.best_nets
        return state

    def save(self, ckpt_dir: str | Path) -> None:
        """Write state.pt, then generator.json naming its sha256 (each atomically)."""
        ckpt_dir = Path(ckpt_dir)
        buf = io.BytesIO()
        torch.save(self.state(), buf)
        data = buf.getvalue()
        atomic_write(ckpt_dir / STATE_FILE, lambda tmp: tmp.write_bytes(data))
        self.state_sha256 = hashlib.sha256(data).hexdigest()
        meta = {**self.meta(), "state_sha256": self.state_sha256}
        atomic_write_text(ckpt_dir / META_FILE, json.dumps(meta, indent=2, sort_keys=True) + "\n")

    def load_state(self, state: Mapping[str, Any], *, optimizers: bool = True) -> None:
        try:
            for k, net in self.nets.items():
                net.load_state_dict(state["nets"][k])
            if optimizers:
                for k, opt in self.optims.items():
                    opt.load_state_dict(state["optims"][k])
            self.epoch = int(state["epoch"])
            self.global_step = int(state["global_step"])
            self.loop_state = dict(state.get("loop_state", {}))
            self.best_nets = state.get("best_nets")
        except (KeyError, RuntimeError, ValueError, TypeError) as exc:
            raise MedaugError(f"checkpoint state does not fit generator {self.name!r}: {_one_line(exc)}") from None

    @classmethod
    def load(cls: type[G], ckpt_dir: str | Path, device: torch.device | str | None = "auto") -> G:
        """Rebuild a saved generator (it must be a `cls.name` checkpoint)."""
        ckpt_dir = Path(ckpt_dir)
        meta = read_checkpoint_meta(ckpt_dir)
        if meta["name"] != cls.name:
            raise MedaugError(f"{ckpt_dir}: holds a {meta['name']!r} generator, not {cls.name!r}")
        try:
            config = cls.config_class.from_dict(meta["config"])
            gen = cls(meta["channels"], meta["size"], meta["num_classes"], config, device=device)
        except MedaugError as exc:
            raise _unusable(ckpt_dir, ckpt_dir / META_FILE, str(exc)) from None
        restore_state(gen, ckpt_dir, meta)
        gen.class_names = tuple(meta["class_names"])
        gen.dataset = dict(meta["dataset"])
        gen.finished = bool(meta["finished"])
        gen.state_sha256 = meta["state_sha256"]
        gen.after_load()
        return gen

    def after_load(self) -> None:
        """Hook for generators with derived state."""


# --------------------------------------------------------------------------- checkpoint reading

MAX_META_SIZE = 4096  # px; larger than any generator builds, small enough to refuse absurd shapes early
_META_KEYS = {"format": int, "name": str, "channels": int, "size": int, "num_classes": int, "class_names": list,
              "config": dict, "dataset": dict, "epoch": int, "finished": bool, "state_sha256": str}


def start_over(ckpt_dir: str | Path) -> str:
    """The tail of every 'this checkpoint is unusable' error: how to get a usable one."""
    return f"to start over, delete {ckpt_dir} and fit again (`medaug generator fit`, or another --out)"


def _unusable(ckpt_dir: str | Path, path: str | Path, why: str) -> MedaugError:
    return MedaugError(f"{path}: {why}; {start_over(ckpt_dir)}")


def read_checkpoint_meta(ckpt_dir: str | Path) -> dict[str, Any]:
    """generator.json of a checkpoint folder, checked for its fields (MedaugError if not).

    The file is untrusted (an output folder may be shared or planted): it is only ever
    parsed as JSON, and every field the loaders use is checked before use."""
    ckpt_dir = Path(ckpt_dir)
    path = ckpt_dir / META_FILE
    if not path.is_file():
        raise MedaugError(f"{ckpt_dir}: not a generator checkpoint (no {META_FILE})")
    try:
        meta = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise _unusable(ckpt_dir, path, f"unreadable or corrupted JSON ({_one_line(exc)})") from None
    if not isinstance(meta, dict):
        raise _unusable(ckpt_dir, path, "expected a JSON object")
    for key, kind in _META_KEYS.items():
        if not isinstance(meta.get(key), kind) or (kind is int and isinstance(meta.get(key), bool)):
            raise _unusable(ckpt_dir, path, f"field {key!r} missing or not a {kind.__name__}")
    if meta["format"] != FORMAT_VERSION:
        raise _unusable(ckpt_dir, path, f"checkpoint format {meta['format']}; this medaug reads format "
                                        f"{FORMAT_VERSION}")
    if meta["name"] not in GENERATORS:
        raise _unusable(ckpt_dir, path, f"unknown generator {meta['name']!r}; expected one of: "
                                        f"{', '.join(GENERATORS.names())}")
    names = meta["class_names"]
    if meta["channels"] not in (1, 3) or not 1 <= meta["size"] <= MAX_META_SIZE or meta["num_classes"] < 1 \
            or len(names) != meta["num_classes"] or not all(isinstance(n, str) for n in names):
        raise _unusable(ckpt_dir, path, f"shapes do not add up ({meta['channels']} channels, {meta['size']} px, "
                                        f"{meta['num_classes']} classes, {len(names)} class names)")
    if meta["epoch"] < 0:
        raise _unusable(ckpt_dir, path, f"field 'epoch' = {meta['epoch']}; expected >= 0")
    return meta


def read_checkpoint_state(ckpt_dir: Path, meta: Mapping[str, Any], device: torch.device) -> dict[str, Any]:
    """state.pt, verified against the sha256 in generator.json, loaded with weights_only=True.

    Never unpickles anything but tensors and plain containers: a state.pt holding other
    pickled objects (code) is refused without running it."""
    path = Path(ckpt_dir) / STATE_FILE
    if not path.is_file():
        raise _unusable(ckpt_dir, ckpt_dir, f"checkpoint has no {STATE_FILE}")
    if file_digest(path) != meta["state_sha256"]:
        raise _unusable(ckpt_dir, path, f"sha256 differs from {META_FILE} "
                                        "(corrupted, truncated or interrupted while writing)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch warns about foreign pickle protocols before refusing them
            state = torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:  # torch raises many types for a bad file; never quote its hints (weights_only=False)
        if isinstance(exc, pickle.UnpicklingError):  # garbage, or pickled objects other than tensors
            why = "unreadable checkpoint state: not a tensors-only torch file (refused; nothing in it was run)"
        else:
            why = f"unreadable checkpoint state ({exc.__class__.__name__})"
        raise _unusable(ckpt_dir, path, why) from None
    if not isinstance(state, dict) or state.get("name") != meta["name"]:
        raise _unusable(ckpt_dir, path, f"state does not belong to a {meta['name']!r} checkpoint")
    return state


def restore_state(gen: Generator, ckpt_dir: str | Path, meta: Mapping[str, Any],
                  also: Callable[[Mapping[str, Any]], None] | None = None) -> dict[str, Any]:
    """Read state.pt (verified, tensors only) into `gen`, and into `also` (e.g. a trainer).

    A state that does not fit (a foreign or crafted file whose sha256 was updated too)
    is one line naming the file and how to start over, never a traceback."""
    ckpt_dir = Path(ckpt_dir)
    state = read_checkpoint_state(ckpt_dir, meta, gen.device)
    try:
        gen.load_state(state)
        if also is not None:
            also(state)
    except MedaugError as exc:
        raise _unusable(ckpt_dir, ckpt_dir / STATE_FILE, str(exc)) from None
    except (KeyError, IndexError, TypeError, ValueError, AttributeError, RuntimeError) as exc:
        raise _unusable(ckpt_dir, ckpt_dir / STATE_FILE,
                        f"state does not fit generator {gen.name!r} ({_one_line(exc)})") from None
    return state


def checkpoint_hash(ckpt_dir: str | Path) -> str:
    """The checkpoint's identity: sha256 of its state.pt (verified against generator.json)."""
    meta = read_checkpoint_meta(ckpt_dir)
    path = Path(ckpt_dir) / STATE_FILE
    if not path.is_file() or file_digest(path) != meta["state_sha256"]:
        raise _unusable(ckpt_dir, path, f"missing or its sha256 differs from {META_FILE} "
                                        "(corrupted, truncated or interrupted while writing)")
    return meta["state_sha256"]


def load_generator(ckpt_dir: str | Path, device: torch.device | str | None = "auto",
                   expect: str | None = None) -> Generator:
    """Load any generator checkpoint by the name in its generator.json.

    `expect` (a generator name) refuses a checkpoint of another generator.
    """
    meta = read_checkpoint_meta(ckpt_dir)
    if expect is not None and meta["name"] != expect:
        raise MedaugError(f"{ckpt_dir}: holds a {meta['name']!r} generator, not {expect!r}")
    return GENERATORS.get(meta["name"]).load(ckpt_dir, device=device)


def check_fit_data(gen: Generator, train: ImageSet, val: ImageSet | None) -> None:
    """Refuse splits the generator was not built for (shapes, multi-label, not a train split); every loop calls it."""
    for split in (train, val):
        if split is None:
            continue
        where = f"{split.name}/{split.split}"
        if split.multi_label:
            raise MedaugError(f"{where}: generators model single-label data; {split.task!r} is multi-label")
        if (split.channels, split.size, split.num_classes) != (gen.channels, gen.size, gen.num_classes):
            raise MedaugError(
                f"{where}: {split.channels} channels, {split.size} px, {split.num_classes} classes; "
                f"the {gen.name} generator was built for {gen.channels}, {gen.size}, {gen.num_classes}"
            )
    if train.split != "train":
        raise MedaugError(f"{train.name}/{train.split}: generators are fitted on a train split only")
    if len(train) < 2:
        raise MedaugError(f"{train.name}/train: needs at least 2 images, has {len(train)}")


def fit_dataset(train: ImageSet, val: ImageSet | None, provenance: Mapping[str, Any] | None) -> dict[str, Any]:
    """What a checkpoint records of the data it was fitted on (a resume must see the same)."""
    return {"name": train.name, "task": train.task, "split": train.split, "train_hash": train.content_hash,
            "val_hash": val.content_hash if val is not None else "",
            "class_counts": train.class_counts().tolist(), **dict(provenance or {})}


def checkpoint_to_resume(out_dir: Path, ckpt: Path, resume: bool) -> Mapping[str, Any] | None:
    """The metadata of the checkpoint to resume (None for a fresh fit); refuses a resume with
    nothing to resume, and a fresh fit over an existing checkpoint."""
    if resume:
        if not (ckpt / META_FILE).is_file():
            raise MedaugError(f"{out_dir}: nothing to resume (no {ckpt.name}/{META_FILE})")
        return read_checkpoint_meta(ckpt)
    if (ckpt / META_FILE).exists():
        raise MedaugError(f"{out_dir}: already holds a generator checkpoint; pass --resume or choose another --out")
    return None


def check_resumable(gen: Generator, meta: Mapping[str, Any], dataset: Mapping[str, Any], where: str | Path,
                    may_change: tuple[str, ...]) -> None:
    """Refuse to resume another generator, shapes, train split or config; only the
    schedule fields in `may_change` (how long to train) may differ."""
    if meta["name"] != gen.name:
        raise MedaugError(f"{where}: holds a {meta['name']!r} generator; cannot resume it as {gen.name!r}")
    if (meta["channels"], meta["size"], meta["num_classes"]) != (gen.channels, gen.size, gen.num_classes):
        raise MedaugError(f"{where}: was trained on other shapes ({meta['channels']} ch, {meta['size']} px, "
                          f"{meta['num_classes']} classes)")
    if meta["dataset"].get("train_hash") != dataset["train_hash"]:
        raise MedaugError(f"{where}: was trained on another train split (hash "
                          f"{meta['dataset'].get('train_hash')}, now {dataset['train_hash']})")
    saved = {k: v for k, v in meta["config"].items() if k not in may_change}
    now = {k: v for k, v in gen.config.to_dict().items() if k not in may_change}
    if saved != now:
        diff = sorted(k for k in set(saved) | set(now) if saved.get(k) != now.get(k))
        raise MedaugError(f"{where}: config differs from the checkpoint's in {', '.join(diff)} "
                          f"(only {', '.join(may_change)} may change)")


def split_batches(index: np.ndarray, batch_size: int) -> list[np.ndarray]:
    batches = [index[i:i + batch_size] for i in range(0, len(index), batch_size)]
    if len(batches) > 1 and len(batches[-1]) == 1:
        batches[-2] = np.concatenate([batches[-2], batches.pop()])
    return batches
