"""Feature extractors for FID, KID, precision/recall and density/coverage.

Two kinds, one interface (`extractor(images uint8 N x C x H x W) -> float64 (N, D)`,
with a `name` and a `digest` that identify it in every result):

- `ClassifierFeatures` (the default; no download): the input of the last linear layer
  of a classifier trained on the real train split, e.g. the 128-d penultimate layer of
  seed 000's CNN. Images are normalised as in classifier training (x / 127.5 - 1).
  FIDs are comparable only between evaluations with the same digest.
- `InceptionFeatures`: torchvision's Inception-v3 architecture with weights read ONLY
  from a local file the user gives (`--inception-weights PATH`; nothing is downloaded),
  the 2048-d pool features. Images are scaled to [0, 1], grey repeated to RGB,
  resized to 299 x 299 (bilinear) and normalised with the ImageNet mean/std that
  torchvision's weights expect. Note: the FID papers' numbers use the TF-Inception
  port (pt_inception-2015-12-05), a slightly different network; values from
  torchvision weights are close but not identical to those.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch
from torch import nn

from medaug.errors import MedaugError
from medaug.hashing import file_digest

BATCH = 256
INCEPTION_SIZE = 299
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def normalise(images: torch.Tensor) -> torch.Tensor:
    """uint8 -> float in [-1, 1], as classifier training does (MedMNIST's Normalize(.5, .5))."""
    return images.float().mul_(1 / 127.5).sub_(1.0)


def state_digest(module: nn.Module) -> str:
    """sha256 (16 hex) of a module's state dict: names, shapes, dtypes and values."""
    h = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        h.update(f"{name}{t.dtype}{tuple(t.shape)}".encode())
        h.update(t.numpy().tobytes() if t.dtype != torch.bfloat16 else t.float().numpy().tobytes())
    return h.hexdigest()[:16]


def _last_linear(model: nn.Module) -> nn.Linear:
    last = None
    for module in model.modules():
        if isinstance(module, nn.Linear):
            last = module
    if last is None:
        raise MedaugError(f"{type(model).__name__}: no linear layer to take penultimate features from")
    return last


class FeatureExtractor:
    """Base: batched feature extraction on the model's device, float64 numpy out."""

    name: str
    digest: str

    def __init__(self, model: nn.Module, device: torch.device | str | None = None) -> None:
        self.model = model.eval()
        self.device = torch.device(device) if device is not None else next(model.parameters()).device
        self.model.to(self.device)

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    @torch.inference_mode()
    def __call__(self, images: np.ndarray) -> np.ndarray:
        images = np.asarray(images)
        if images.dtype != np.uint8 or images.ndim != 4:
            raise ValueError(f"feature extractor: expected uint8 N x C x H x W images, got {images.dtype} {images.shape}")
        out = []
        for start in range(0, len(images), BATCH):
            x = torch.from_numpy(np.ascontiguousarray(images[start:start + BATCH])).to(self.device)
            out.append(self.forward(self.preprocess(x)).double().cpu())
        return torch.cat(out).numpy() if out else np.zeros((0, 0))

    def describe(self) -> str:
        return f"{self.name}@{self.digest}"


class ClassifierFeatures(FeatureExtractor):
    """Penultimate-layer features of a trained classifier (the input of its last linear layer)."""

    def __init__(self, model: nn.Module, name: str = "classifier", device: torch.device | str | None = None) -> None:
        super().__init__(model, device)
        self.name = name
        self.digest = state_digest(model)
        self._head = _last_linear(model)

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        return normalise(images)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        captured: list[torch.Tensor] = []
        hook = self._head.register_forward_pre_hook(lambda _m, args: captured.append(args[0].flatten(1)))
        try:
            self.model(x)
        finally:
            hook.remove()
        return captured[-1].float()


def load_inception(weights: str | Path) -> nn.Module:
    """torchvision Inception-v3 with the state dict in `weights` (local file only), fc removed.

    Refuses (MedaugError) a missing or unreadable file and weights of another
    architecture (missing/unexpected keys or wrong shapes).
    """
    from torchvision.models import inception_v3

    path = Path(weights).expanduser()
    if not path.is_file():
        raise MedaugError(f"--inception-weights {path}: file not found (give a local torchvision Inception-v3 state dict)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a bad file
        raise MedaugError(f"--inception-weights {path}: not a readable torch state dict ({exc.__class__.__name__})") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise MedaugError(f"--inception-weights {path}: expected a state dict of tensors")
    aux = any(k.startswith("AuxLogits.") for k in state)
    num_classes = state["fc.weight"].shape[0] if isinstance(state.get("fc.weight"), torch.Tensor) else 1000
    model = inception_v3(weights=None, aux_logits=aux, init_weights=False, num_classes=num_classes)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = " ".join(str(exc).split())[:160]
        raise MedaugError(f"--inception-weights {path}: not torchvision Inception-v3 weights ({first})") from None
    model.fc = nn.Identity()
    model.AuxLogits = None
    model.aux_logits = False
    return model.eval()


class InceptionFeatures(FeatureExtractor):
    """2048-d pool features of torchvision's Inception-v3 with user-supplied local weights."""

    def __init__(self, weights: str | Path, device: torch.device | str | None = "cpu") -> None:
        model = load_inception(weights)
        super().__init__(model, device)
        self.name = "inception-v3"
        self.input_size = INCEPTION_SIZE  # tests may lower it (>= 75 px) to run fast
        self.digest = file_digest(Path(weights).expanduser())[:16]
        self._mean = torch.tensor(IMAGENET_MEAN, device=self.device).view(1, 3, 1, 1)
        self._std = torch.tensor(IMAGENET_STD, device=self.device).view(1, 3, 1, 1)

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        x = images.float() / 255.0
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        elif x.shape[1] != 3:
            raise ValueError(f"Inception-v3 takes 1- or 3-channel images, got {x.shape[1]} channels")
        x = torch.nn.functional.interpolate(x, size=(self.input_size, self.input_size), mode="bilinear",
                                            align_corners=False)
        return (x - self._mean) / self._std

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x).float()
