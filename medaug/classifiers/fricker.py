"""Seed 001's classifier (Fricker et al.): strided convolutions, LeakyReLU, Dropout, dense head.

Seed 001, section 2.5: "a series of convolutions 2D activated by LeakyReLU and
implements a Dropout layer ... The output layer is the size of the number of labels
(classes) ... we use a softmax". The paper's Figure 9 is an image that the text does
not describe, and the code was Keras (TensorFlow). Where the seed is silent, medaug
takes the values of the Keras examples the paper's models follow (its CVAE encoder is
the Keras CVAE example's) and Keras defaults:

- two Conv2D(3x3, strides 2, padding "same") with 32 and 64 filters, as the Keras
  CVAE example's encoder (28 -> 14 -> 7 px);
- LeakyReLU with Keras' default negative slope 0.3 (PyTorch's default is 0.01);
- Flatten, then one Dropout(0.5) (the Keras "simple MNIST convnet" example's rate),
  then Dense(num_classes);
- Keras' default initialisers: Glorot-uniform weights, zero biases.

The model returns logits: seed 001's softmax is applied by the loss
(`CrossEntropyLoss`) and by evaluation, not inside the model.
"""

from __future__ import annotations

import torch
from torch import nn

from medaug.classifiers.base import CLASSIFIERS, check_size

KERAS_LEAKY_SLOPE = 0.3
DROPOUT = 0.5
FILTERS = (32, 64)


def _out_side(size: int) -> int:
    """Side after the strided 'same' convolutions: ceil(size / 2) per layer."""
    for _ in FILTERS:
        size = (size + 1) // 2
    return size


@CLASSIFIERS.register("fricker-cnn")
class FrickerCNN(nn.Module):
    """Conv(32,3,s2)+LeakyReLU, Conv(64,3,s2)+LeakyReLU, Flatten, Dropout(0.5), Dense. Returns logits."""

    def __init__(self, in_channels: int, num_classes: int, size: int = 28) -> None:
        super().__init__()
        check_size("fricker-cnn", size)
        layers: list[nn.Module] = []
        c_in = in_channels
        for c_out in FILTERS:
            layers += [nn.Conv2d(c_in, c_out, kernel_size=3, stride=2, padding=1), nn.LeakyReLU(KERAS_LEAKY_SLOPE)]
            c_in = c_out
        self.features = nn.Sequential(*layers)
        side = _out_side(size)
        self.dropout = nn.Dropout(DROPOUT)
        self.fc = nn.Linear(c_in * side * side, num_classes)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.flatten(self.features(x), 1)
        return self.fc(self.dropout(x))
