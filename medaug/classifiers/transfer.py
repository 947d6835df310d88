"""Transfer-learning classifiers from torchvision, with ImageNet weights from local files only.

| name              | torchvision model | first conv           | new head(s)             | min size | study    |
| ----------------- | ----------------- | -------------------- | ----------------------- | -------- | -------- |
| `inception_v3`    | `inception_v3`    | `Conv2d_1a_3x3.conv` | `fc` (+ `AuxLogits.fc`) | 75       | seed 003 |
| `efficientnet_b0` | `efficientnet_b0` | `features.0.0`       | `classifier.1`          | 28       | seed 003 |
| `vgg11_bn`        | `vgg11_bn`        | `features.0`         | `classifier.6`          | 32       | seed 002 |
| `resnet18_tv`     | `resnet18`        | `conv1`              | `fc`                    | 28       | seed 004 |
| `resnet50_tv`     | `resnet50`        | `conv1`              | `fc`                    | 28       | seed 004 |

Seed 003 fine-tuned ImageNet-pretrained InceptionV3 and EfficientNet-B0 on 256 px
lung crops; seed 002 a pretrained VGG11-bn on ISIC 2019; `resnet18_tv`/`resnet50_tv` are
torchvision's ResNets for pretrained use beside `resnet18`/`resnet50` (resnet.py). Minimum
sizes: VGG's five 2x2 max-pools need 32 px, InceptionV3 75 px; the others take MedMNIST's 28.
Here:

- Weights come ONLY from a file the user provides: the `weights` argument (a file
  or a folder), else the folder in `$MEDAUG_WEIGHTS_DIR`, where the file carries
  torchvision's own name (e.g. `resnet18-f37072fd.pth`) or `<name>.pth`. Nothing is
  ever downloaded. A missing file, a file that is not a state dict, or a state dict
  of another architecture (keys or shapes differ) is a one-line MedaugError. With
  neither given, the model starts from torchvision's random initialisation (logged).
- 1-channel input: the pretrained first convolution's weights are summed over RGB,
  so a grayscale image gives the response the RGB net gives to that image copied
  into all three channels (any other channel count: the sum spread evenly).
- N classes: the ImageNet head(s) are replaced by new linear layers (PyTorch's
  default initialisation, from the global RNG: seed it before building).
- Input: like every medaug classifier, float images normalised to [-1, 1]; the
  model maps them to the normalisation its weights were trained with (ImageNet
  mean/std; InceptionV3's Google weights: [-1, 1], i.e. torchvision's
  transform_input, done here for any channel count).
- InceptionV3's auxiliary classifier needs 299 px inputs (its 5x5 pooling after
  Mixed_6e): it is kept at size >= 299 and dropped below (seed 003's 256 px, like the
  Keras InceptionV3 it used, which has no auxiliary head). With it, the training
  forward returns torchvision's `InceptionOutputs(logits, aux_logits)`; eval returns
  logits. `classifier_loss` / `main_logits` accept either form.
- Frozen-backbone warm-up: `set_backbone_trainable(model, False)` leaves only the
  new head(s) trainable; call it with True to fine-tune everything. BatchNorm
  running statistics still update in train mode while frozen.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import torch
from torch import nn
from torchvision import models

from medaug.classifiers.base import CLASSIFIERS
from medaug.errors import MedaugError

log = logging.getLogger(__name__)

WEIGHTS_DIR_ENV = "MEDAUG_WEIGHTS_DIR"
#: InceptionV3's auxiliary head needs Mixed_6e maps of >= 17 x 17, i.e. 299 px input.
INCEPTION_AUX_MIN_SIZE = 299
#: torchvision's reference training script weighs the auxiliary loss by 0.4.
AUX_WEIGHT = 0.4
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class TransferArch:
    """How one torchvision model is adapted: where its first conv and head(s) are."""

    name: str
    build: Callable[[bool], nn.Module]  # (init_weights) -> the 1000-class, 3-channel ImageNet model
    first_conv: str
    heads: tuple[str, ...]
    min_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    weights_enum: type  # torchvision's weights enum: file names and URLs for messages, never downloaded

    def weight_file_names(self) -> list[str]:
        """File names accepted in a weights folder: torchvision's (newest first) and `<name>.pth`."""
        names = [Path(urlparse(w.url).path).name for w in reversed(list(self.weights_enum))]
        return names + [f"{self.name}.pth"]


def _inception(init: bool) -> nn.Module:
    return models.inception_v3(weights=None, aux_logits=True, transform_input=False, init_weights=init)


ARCHS: dict[str, TransferArch] = {
    a.name: a
    for a in (
        TransferArch("inception_v3", _inception, "Conv2d_1a_3x3.conv", ("fc", "AuxLogits.fc"), 75,
                     (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), models.Inception_V3_Weights),
        TransferArch("efficientnet_b0", lambda init: models.efficientnet_b0(weights=None), "features.0.0",
                     ("classifier.1",), 28, IMAGENET_MEAN, IMAGENET_STD, models.EfficientNet_B0_Weights),
        TransferArch("vgg11_bn", lambda init: models.vgg11_bn(weights=None), "features.0", ("classifier.6",), 32,
                     IMAGENET_MEAN, IMAGENET_STD, models.VGG11_BN_Weights),
        TransferArch("resnet18_tv", lambda init: models.resnet18(weights=None), "conv1", ("fc",), 28,
                     IMAGENET_MEAN, IMAGENET_STD, models.ResNet18_Weights),
        TransferArch("resnet50_tv", lambda init: models.resnet50(weights=None), "conv1", ("fc",), 28,
                     IMAGENET_MEAN, IMAGENET_STD, models.ResNet50_Weights),
    )
}


class TransferClassifier(nn.Module):
    """A torchvision model adapted to `in_channels` and `num_classes`, taking [-1, 1] input.

    `net` is the torchvision model (its state-dict keys are torchvision's under
    `net.`); `head_names` are the replaced head modules inside `net`.
    """

    def __init__(self, arch: TransferArch, net: nn.Module, in_channels: int, heads: tuple[str, ...],
                 weights: Path | None) -> None:
        super().__init__()
        self.arch = arch.name
        self.net = net
        self.head_names = heads
        self.weights = str(weights) if weights is not None else None
        if in_channels == 3:
            mean, std = torch.tensor(arch.mean), torch.tensor(arch.std)
        else:
            mean = torch.full((in_channels,), sum(arch.mean) / 3)
            std = torch.full((in_channels,), sum(arch.std) / 3)
        # x in [-1, 1] -> (x01 - mean) / std with x01 = (x + 1) / 2
        self.register_buffer("scale", (0.5 / std).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("shift", ((0.5 - mean) / std).view(1, -1, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor):  # Tensor, or InceptionOutputs in training with the aux head
        return self.net(x * self.scale + self.shift)

    def is_head_parameter(self, name: str) -> bool:
        """Whether the parameter `name` (as from named_parameters()) belongs to a new head."""
        return any(name.startswith(f"net.{h}.") for h in self.head_names)


def _get(root: nn.Module, dotted: str) -> nn.Module:
    return root.get_submodule(dotted)


def _set(root: nn.Module, dotted: str, module: nn.Module) -> None:
    parent, _, leaf = dotted.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, leaf, module)


def resolve_weights(name: str, weights: str | Path | None = None) -> Path | None:
    """The weights file for `name`: `weights` (a file, or a folder to look in), else $MEDAUG_WEIGHTS_DIR.

    None when neither is given. Raises MedaugError when the file is not there.
    """
    arch = get_arch(name)
    names = arch.weight_file_names()
    if weights is not None:
        path = Path(weights).expanduser()
        if path.is_file():
            return path
        if not path.is_dir():
            raise MedaugError(f"{path}: ImageNet weights file for {name} not found")
        folder, where = path, str(path)
    else:
        env = os.environ.get(WEIGHTS_DIR_ENV)
        if not env:
            return None
        folder, where = Path(env).expanduser(), f"${WEIGHTS_DIR_ENV}={env}"
    for file_name in names:
        if (folder / file_name).is_file():
            return folder / file_name
    url = list(arch.weights_enum)[-1].url
    raise MedaugError(f"{where}: no ImageNet weights for {name}; expected one of {names} "
                      f"(medaug never downloads: fetch {url} yourself)")


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """A state dict from a file, with `torch.load(weights_only=True)`; one-line MedaugError otherwise.

    Accepts a bare state dict, or one under "state_dict"/"model", with or without
    DDP's "module." prefix.
    """
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle, zip and format errors come in many types
        detail = (str(exc).strip().splitlines() or [""])[0][:160]
        raise MedaugError(f"{path}: not a readable PyTorch state dict ({exc.__class__.__name__}: {detail})") from None
    if isinstance(data, Mapping) and len(data) == 1 and next(iter(data)) in ("state_dict", "model"):
        data = next(iter(data.values()))
    if not isinstance(data, Mapping) or not data or not all(isinstance(v, torch.Tensor) for v in data.values()):
        raise MedaugError(f"{path}: expected a state dict (parameter name -> tensor)")
    keys = list(data)
    if all(k.startswith("module.") for k in keys):
        data = {k[len("module."):]: v for k, v in data.items()}
    return dict(data)


def _check_architecture(path: Path, arch: TransferArch, state: Mapping[str, torch.Tensor],
                        expected: Mapping[str, torch.Tensor]) -> None:
    """Refuse a state dict whose keys or shapes are not the model's (the heads' shapes may differ)."""
    missing = [k for k in expected if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in expected]
    is_head = lambda k: any(k.startswith(f"{h}.") for h in arch.heads)  # noqa: E731
    wrong = [f"{k} {tuple(state[k].shape)} vs {tuple(expected[k].shape)}" for k in expected
             if k in state and state[k].shape != expected[k].shape and not is_head(k)]
    if missing or unexpected or wrong:
        parts = []
        for label, items in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)):
            if items:
                parts.append(f"{len(items)} {label} (e.g. {items[0]})")
        raise MedaugError(f"{path}: not {arch.name} ImageNet weights: {'; '.join(parts)}")


def _load_pretrained(arch: TransferArch, path: Path) -> nn.Module:
    """Build the ImageNet model on the meta device and assign the file's tensors (no init, no copy)."""
    state = read_state_dict(path)
    with torch.device("meta"):
        net = arch.build(False)
    _check_architecture(path, arch, state, net.state_dict())
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    expected = net.state_dict()
    for k in arch.heads:  # a head of another class count: replaced below anyway
        for key in [s for s in state if s.startswith(f"{k}.") and state[s].shape != expected[s].shape]:
            state[key] = torch.empty(expected[key].shape)
    net.load_state_dict(state, strict=False, assign=True)
    for module in net.modules():  # BatchNorm counters absent from old files
        for bname, buf in list(module.named_buffers(recurse=False)):
            if buf is not None and buf.is_meta:
                setattr(module, bname, torch.zeros(buf.shape, dtype=buf.dtype))
    return net


def adapt_first_conv(net: nn.Module, dotted: str, in_channels: int) -> None:
    """Give the first convolution `in_channels` inputs, summing its RGB weights (spread evenly if not 1)."""
    conv = _get(net, dotted)
    assert isinstance(conv, nn.Conv2d) and conv.in_channels == 3, f"{dotted} is not a 3-channel Conv2d"
    if in_channels == 3:
        return
    new = nn.Conv2d(in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding, conv.dilation,
                    conv.groups, conv.bias is not None, conv.padding_mode)
    with torch.no_grad():
        summed = conv.weight.sum(dim=1, keepdim=True)
        new.weight.copy_(summed.repeat(1, in_channels, 1, 1) / in_channels)
        if conv.bias is not None:
            new.bias.copy_(conv.bias)
    _set(net, dotted, new)


def get_arch(name: str) -> TransferArch:
    try:
        return ARCHS[name]
    except KeyError:
        names = ", ".join(sorted(ARCHS))
        raise MedaugError(f"unknown transfer classifier {name!r}; expected one of: {names}") from None


def build_transfer(name: str, in_channels: int, num_classes: int, size: int, weights: str | Path | None = None,
                   freeze_backbone: bool = False, aux_logits: bool | None = None,
                   pretrained: bool | None = None) -> TransferClassifier:
    """Build the torchvision model `name` for `in_channels` x `size` px images and `num_classes` classes.

    `weights`: a file or folder with ImageNet weights (else $MEDAUG_WEIGHTS_DIR; else
    random initialisation). `freeze_backbone`: only the new head(s) trainable.
    `aux_logits` (InceptionV3 only): None keeps the auxiliary head when size >= 299;
    True demands it (refused below 299 px). `pretrained`: True refuses to build without
    weights, False ignores any and initialises randomly, None uses them when found.
    """
    arch = get_arch(name)
    for field, value, least in (("in_channels", in_channels, 1), ("num_classes", num_classes, 1),
                                ("size", size, arch.min_size)):
        if not isinstance(value, int) or isinstance(value, bool) or value < least:
            raise MedaugError(f"classifier {name!r}: {field} {value!r}; expected an integer >= {least}")
    heads = arch.heads
    if name == "inception_v3":
        if aux_logits and size < INCEPTION_AUX_MIN_SIZE:
            raise MedaugError(f"classifier {name!r}: the auxiliary head needs size >= {INCEPTION_AUX_MIN_SIZE}, "
                              f"got {size}")
        keep_aux = size >= INCEPTION_AUX_MIN_SIZE if aux_logits is None else aux_logits
        heads = heads if keep_aux else ("fc",)
    elif aux_logits:
        raise MedaugError(f"classifier {name!r}: aux_logits applies to inception_v3 only")

    path = resolve_weights(name, weights) if pretrained is not False else None
    if path is None and pretrained:
        raise MedaugError(f"classifier {name!r}: pretrained requested but no ImageNet weights found; pass a file "
                          f"or set ${WEIGHTS_DIR_ENV}")
    if path is not None:
        net = _load_pretrained(arch, path)
        log.info("classifier %s: ImageNet weights from %s", name, path)
    elif pretrained is False:
        net = arch.build(True)
    else:
        net = arch.build(True)
        log.warning("classifier %s: no ImageNet weights (pass a file or set $%s); random initialisation",
                    name, WEIGHTS_DIR_ENV)
    if name == "inception_v3" and heads == ("fc",):
        net.AuxLogits = None
        net.aux_logits = False
    adapt_first_conv(net, arch.first_conv, in_channels)
    for head in heads:
        old = _get(net, head)
        _set(net, head, nn.Linear(old.in_features, num_classes))
    model = TransferClassifier(arch, net, in_channels, heads, path)
    if freeze_backbone:
        set_backbone_trainable(model, False)
    return model


def set_backbone_trainable(model: nn.Module, trainable: bool) -> None:
    """Freeze (False) or unfreeze (True) everything but the new head(s) of a TransferClassifier."""
    if not isinstance(model, TransferClassifier):
        raise MedaugError(f"set_backbone_trainable needs a transfer classifier, got {type(model).__name__}")
    for pname, param in model.named_parameters():
        param.requires_grad_(True if model.is_head_parameter(pname) else trainable)


def head_parameters(model: TransferClassifier) -> Iterator[nn.Parameter]:
    return (p for n, p in model.named_parameters() if model.is_head_parameter(n))


def backbone_parameters(model: TransferClassifier) -> Iterator[nn.Parameter]:
    return (p for n, p in model.named_parameters() if not model.is_head_parameter(n))


def split_outputs(outputs) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(logits, aux logits or None) of a model output: a tensor, or InceptionOutputs / (logits, aux)."""
    if isinstance(outputs, torch.Tensor):
        return outputs, None
    if isinstance(outputs, (tuple, list)) and len(outputs) == 2:
        return outputs[0], outputs[1]
    raise TypeError(f"model output {type(outputs).__name__}: expected a tensor or (logits, aux_logits)")


def main_logits(outputs) -> torch.Tensor:
    """The main logits of a model output (drops InceptionV3's auxiliary logits in training)."""
    return split_outputs(outputs)[0]


def classifier_loss(outputs, targets: torch.Tensor, criterion: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                    aux_weight: float = AUX_WEIGHT) -> torch.Tensor:
    """criterion(logits, targets), plus aux_weight * criterion(aux, targets) when there are aux logits.

    Works for every classifier's output (a plain logits tensor gives the plain loss),
    so a training loop can call it unconditionally. Logits are cast to float32 (AMP).
    """
    logits, aux = split_outputs(outputs)
    loss = criterion(logits.float(), targets)
    if aux is not None and aux_weight:
        loss = loss + aux_weight * criterion(aux.float(), targets)
    return loss


def _register(name: str) -> None:
    def factory(in_channels: int, num_classes: int, size: int) -> TransferClassifier:
        return build_transfer(name, in_channels, num_classes, size)

    factory.__doc__ = f"torchvision {name} (ImageNet weights from ${WEIGHTS_DIR_ENV} when set); see transfer.py."
    CLASSIFIERS.register(name)(factory)


for _name in ARCHS:
    _register(_name)
