"""Seed 000's baseline CNN: the MedMNIST getting-started `Net`.

Seed 000 (Fig. 9, PathMNIST: 3 channels, 9 classes, 235,225 parameters) trains this
network for every data set, changing only the output width. It is the `Net` of
MedMNIST's getting-started notebook, layer for layer.
"""

from __future__ import annotations

import torch
from torch import nn

from medaug.classifiers.base import CLASSIFIERS, check_size

#: The image side the network was designed for: layer5 then yields 64 x 4 x 4.
NATIVE_SIZE = 28


def _conv_bn_relu(c_in: int, c_out: int, padding: int = 0) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, kernel_size=3, padding=padding), nn.BatchNorm2d(c_out), nn.ReLU()]


@CLASSIFIERS.register("cnn")
class BaselineCNN(nn.Module):
    """Five 3x3 conv + BN + ReLU layers (two max-pools) and a three-layer MLP head.

    layer1 Conv2d(in,16,3)+BN+ReLU; layer2 Conv2d(16,16,3)+BN+ReLU+MaxPool(2);
    layer3 Conv2d(16,64,3)+BN+ReLU; layer4 Conv2d(64,64,3)+BN+ReLU;
    layer5 Conv2d(64,64,3,padding=1)+BN+ReLU+MaxPool(2);
    fc Linear(64*4*4,128)+ReLU+Linear(128,128)+ReLU+Linear(128,num_classes).

    Defined for 28 px, where layer5 leaves exactly 64 x 4 x 4 and the model is the
    seed's network unchanged (235,225 parameters for 3 channels / 9 classes). For a
    larger `size` (64, 128, 224, ...) an adaptive average pool to 4 x 4 is inserted
    before the head (parameter-free, so the count is the same at every size);
    this is medaug's extension, not part of seed 000 (which used 28 px only).
    Returns logits.
    """

    def __init__(self, in_channels: int, num_classes: int, size: int = NATIVE_SIZE) -> None:
        super().__init__()
        check_size("cnn", size, NATIVE_SIZE)
        self.layer1 = nn.Sequential(*_conv_bn_relu(in_channels, 16))
        self.layer2 = nn.Sequential(*_conv_bn_relu(16, 16), nn.MaxPool2d(kernel_size=2, stride=2))
        self.layer3 = nn.Sequential(*_conv_bn_relu(16, 64))
        self.layer4 = nn.Sequential(*_conv_bn_relu(64, 64))
        self.layer5 = nn.Sequential(*_conv_bn_relu(64, 64, padding=1), nn.MaxPool2d(kernel_size=2, stride=2))
        self.pool: nn.Module = nn.Identity() if size == NATIVE_SIZE else nn.AdaptiveAvgPool2d(4)
        self.fc = nn.Sequential(
            nn.Linear(64 * 4 * 4, 128),
            nn.ReLU(),
            nn.Linear(128, 128),
            nn.ReLU(),
            nn.Linear(128, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layer5(self.layer4(self.layer3(self.layer2(self.layer1(x)))))
        x = self.pool(x)
        return self.fc(torch.flatten(x, 1))
