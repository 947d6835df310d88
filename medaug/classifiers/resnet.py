"""ResNet-18 and ResNet-50 in the two forms MedMNIST trains them (seed 004).

- Small images (size <= 32, i.e. MedMNIST's 28 px): MedMNIST's own ResNet
  (`experiments/MedMNIST2D/models.py`, as the code of seed 004): a 3x3 stride-1 stem
  convolution and NO max-pool, so 28 px reach the last stage as 4 x 4 instead of 1 x 1.
- Larger images (64, 128, 224, ...): torchvision's ResNet (MedMNIST uses
  `torchvision.models.resnet18/50` there): a 7x7 stride-2 stem plus a 3x3 stride-2
  max-pool, with torchvision's initialisation. Its state-dict keys are torchvision's,
  so torchvision weights load (after replacing `conv1`/`fc` when the shapes differ).

ResNet-18 stacks BasicBlocks [2, 2, 2, 2]; ResNet-50 Bottlenecks [3, 4, 6, 3]
(seed 004, section 3). The blocks are torchvision's, which match MedMNIST's: a 1x1
conv + BN shortcut where shape changes, stride on the 3x3 conv of a Bottleneck.
Both forms end in global average pooling and one linear layer; they return logits.
"""

from __future__ import annotations

import torch
from torch import nn
from torchvision.models.resnet import BasicBlock, Bottleneck

from medaug.classifiers.base import CLASSIFIERS, check_size

#: Images up to this side get MedMNIST's small-image stem (3x3 stride 1, no max-pool).
SMALL_MAX_SIZE = 32


class ResNet(nn.Module):
    """A ResNet whose stem depends on the image size (see the module docstring)."""

    def __init__(self, block: type[BasicBlock] | type[Bottleneck], layers: list[int], in_channels: int,
                 num_classes: int, size: int) -> None:
        super().__init__()
        self.small_input = size <= SMALL_MAX_SIZE
        self.inplanes = 64
        if self.small_input:
            self.conv1 = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
        else:
            self.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        # Identity keeps the state-dict keys and the forward identical across the two forms.
        self.maxpool: nn.Module = nn.Identity() if self.small_input else nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, 64, layers[0], stride=1)
        self.layer2 = self._make_layer(block, 128, layers[1], stride=2)
        self.layer3 = self._make_layer(block, 256, layers[2], stride=2)
        self.layer4 = self._make_layer(block, 512, layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512 * block.expansion, num_classes)
        if not self.small_input:  # torchvision's initialisation; MedMNIST's small ResNet keeps PyTorch defaults
            for m in self.modules():
                if isinstance(m, nn.Conv2d):
                    nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                elif isinstance(m, nn.BatchNorm2d):
                    nn.init.ones_(m.weight)
                    nn.init.zeros_(m.bias)

    def _make_layer(self, block: type[BasicBlock] | type[Bottleneck], planes: int, blocks: int,
                    stride: int) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, planes * block.expansion, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(planes * block.expansion),
            )
        layers = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


@CLASSIFIERS.register("resnet18")
def resnet18(in_channels: int, num_classes: int, size: int = 28) -> ResNet:
    """ResNet-18 (BasicBlock x [2, 2, 2, 2]); small-image stem when size <= 32."""
    check_size("resnet18", size)
    return ResNet(BasicBlock, [2, 2, 2, 2], in_channels, num_classes, size)


@CLASSIFIERS.register("resnet50")
def resnet50(in_channels: int, num_classes: int, size: int = 28) -> ResNet:
    """ResNet-50 (Bottleneck x [3, 4, 6, 3]); small-image stem when size <= 32."""
    check_size("resnet50", size)
    return ResNet(Bottleneck, [3, 4, 6, 3], in_channels, num_classes, size)
