"""ResNet-18, CIFAR variant (3x3 stem, no max-pool), with a width multiplier.

`width` is the channel count of the first stage (64 in the standard network); the stages use
width, 2*width, 4*width, 8*width channels.

Two options reproduce the network of Geiping et al. (2022) exactly (their `resnet18` config:
CIFAR stem, `downsample: C`, `initialization: skip-residual`):

- `downsample`: how a block that halves the resolution maps its input onto the residual.
  "B" (the default here, and torchvision's) is a strided 1x1 conv + BatchNorm; "C" (He et al.
  2019, "Bag of Tricks") is a 2x2 average pool, then a 1x1 conv + BatchNorm, so that the shortcut
  sees every input pixel instead of one in four. Both have the same parameters.
- `init`: "torch" (PyTorch's default initialisation) or "paper": Kaiming-normal (fan_out) conv
  weights, BatchNorm weight 1 / bias 0, and the last BatchNorm of every residual branch set to
  zero, so that each block starts as the identity (Goyal et al. 2017).
"""

from __future__ import annotations

import torch
from torch import nn

from dataworth.models.base import Classifier


def _shortcut(cin: int, cout: int, stride: int, downsample: str) -> nn.Module:
    if stride == 1 and cin == cout:
        return nn.Sequential()
    if downsample == "C" and stride != 1:
        return nn.Sequential(nn.AvgPool2d(stride, stride), nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout))
    return nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, downsample: str = "B"):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = _shortcut(cin, cout, stride, downsample)
        self.relu = nn.ReLU()

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


def resnet18_encoder(in_channels: int, width: int, downsample: str = "B") -> nn.Sequential:
    """Stem, four stages of two basic blocks, global average pool: features of 8 * width."""
    layers: list[nn.Module] = [
        nn.Conv2d(in_channels, width, 3, stride=1, padding=1, bias=False),
        nn.BatchNorm2d(width),
        nn.ReLU(),
    ]
    cin = width
    for stage, mult in enumerate((1, 2, 4, 8)):
        cout = width * mult
        stride = 1 if stage == 0 else 2
        layers += [BasicBlock(cin, cout, stride, downsample), BasicBlock(cout, cout, 1, downsample)]
        cin = cout
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    return nn.Sequential(*layers)


def paper_init(model: nn.Module) -> None:
    """Geiping et al.'s initialisation (their ResNet with `initialization: skip-residual`)."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.constant_(m.weight, 1)
            nn.init.constant_(m.bias, 0)
    for m in model.modules():
        if isinstance(m, BasicBlock):
            nn.init.constant_(m.bn2.weight, 0)


class ResNet18(Classifier):
    def __init__(self, in_channels: int, width: int, num_classes: int, downsample: str = "B", init: str = "torch"):
        super().__init__(resnet18_encoder(in_channels, width, downsample), 8 * width, num_classes)
        if init == "paper":
            paper_init(self)


class FlipInvariantResNet18(ResNet18):
    """ResNet-18 whose output is averaged over the image and its horizontal mirror (the paper's
    `flipinvariantresnet`, fig. 4): invariant to horizontal flips by construction. The features
    are averaged, which gives the same logits as averaging the logits (the head is linear)."""

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return (self.encoder(x) + self.encoder(torch.flip(x, [3]))) / 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class OrbitResNet18(ResNet18):
    """ResNet-18 after an orbit mapping (Gandikota et al. 2021; the paper's `orbitresnet`, fig. 4):
    of an image and its horizontal mirror, the network sees the one whose mean horizontal
    intensity gradient is larger, so both members of a flip orbit map to the same input."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.register_buffer("gradient", torch.tensor([[[[0.0, 0.0, 0.0], [0.0, -1.0, 1.0], [0.0, 0.0, 0.0]]]]))

    def _score(self, x: torch.Tensor) -> torch.Tensor:
        channels = x.shape[1]
        kernel = self.gradient.expand(channels, 1, 3, 3)
        return nn.functional.conv2d(x, kernel, padding=1, groups=channels).mean(dim=(1, 2, 3))

    def canonical(self, x: torch.Tensor) -> torch.Tensor:
        mirrored = torch.flip(x, [3])
        take_mirror = self._score(x) < self._score(mirrored)
        return torch.where(take_mirror[:, None, None, None], mirrored, x)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(self.canonical(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))
