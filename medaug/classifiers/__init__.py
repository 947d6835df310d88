"""Classifiers by name: `build_classifier("cnn", in_channels, num_classes, size)`.

| name          | what                                                        | file        |
| ------------- | ----------------------------------------------------------- | ----------- |
| `cnn`         | seed 000's baseline CNN (Fig. 9, MedMNIST getting-started)  | cnn.py      |
| `resnet18`    | ResNet-18, MedMNIST's 28-px form or torchvision's form      | resnet.py   |
| `resnet50`    | ResNet-50, same two forms (seed 004)                        | resnet.py   |
| `fricker-cnn` | seed 001's Keras classifier (conv + LeakyReLU + Dropout)    | fricker.py  |
| `fastnet`     | the `fast` recipe's small all-conv network (airbench-style) | fastnet.py  |
| `inception_v3`, `efficientnet_b0`, `vgg11_bn`, `resnet18_tv`, `resnet50_tv` | torchvision transfer models, local ImageNet weights only (seeds 002, 003) | transfer.py |

Every model returns logits (N, num_classes) for float input (N, C, size, size) in
about [-1, 1]. A new model family is one new file plus one `@CLASSIFIERS.register`
line, and its import below.
"""

from medaug.classifiers.base import CLASSIFIERS, MIN_SIZE, build_classifier, check_size, count_parameters

# Imported for their registrations.
from medaug.classifiers import cnn, fastnet, fricker, resnet, transfer  # noqa: E402,F401  isort: skip

__all__ = ["CLASSIFIERS", "MIN_SIZE", "build_classifier", "check_size", "count_parameters"]
