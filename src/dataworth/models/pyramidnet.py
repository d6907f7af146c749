"""PyramidNet (Han et al. 2017), CIFAR version, as Geiping et al. (2022) build it (their
`pyramidnet110` config: depth 110, alpha 84, basic blocks; code from dyhan0920/PyramidNet-PyTorch).

Channels grow linearly by alpha / (3 n) per block (n = 18 blocks per stage for depth 110), from
16 after the stem to 16 + alpha at the end. Blocks are BN-conv-BN-ReLU-conv-BN; the shortcut
is the identity (a 2x2 average pool where the block halves the resolution) with the missing
channels zero-padded, so shortcuts have no parameters. `width` is alpha.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from dataworth.models.base import Classifier


class PyramidBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.residual = nn.Sequential(
            nn.BatchNorm2d(cin),
            nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(),
            nn.Conv2d(cout, cout, 3, padding=1, bias=False),
            nn.BatchNorm2d(cout),
        )
        self.pool = nn.AvgPool2d(2, 2, ceil_mode=True) if stride != 1 else None
        self.extra_channels = cout - cin

    def forward(self, x):
        out = self.residual(x)
        shortcut = self.pool(x) if self.pool is not None else x
        if self.extra_channels:
            shortcut = nn.functional.pad(shortcut, (0, 0, 0, 0, 0, self.extra_channels))
        return out + shortcut


def pyramid_channels(depth: int, alpha: float, start: int = 16) -> list[int]:
    """Output channels of each basic block: the running sum start + k * alpha / (3 n), rounded."""
    n = (depth - 2) // 6
    rate = alpha / (3 * n)
    return [int(round(start + (k + 1) * rate)) for k in range(3 * n)]


class PyramidNet(Classifier):
    def __init__(self, in_channels: int, alpha: int, num_classes: int, depth: int = 110):
        if (depth - 2) % 6:
            raise ValueError(f"PyramidNet depth must be 6n+2 (basic blocks), not {depth}")
        n = (depth - 2) // 6
        layers: list[nn.Module] = [nn.Conv2d(in_channels, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16)]
        cin = 16
        for k, cout in enumerate(pyramid_channels(depth, alpha)):
            stride = 2 if k in (n, 2 * n) else 1  # the first block of stages 2 and 3 halves the resolution
            layers.append(PyramidBlock(cin, cout, stride))
            cin = cout
        layers += [nn.BatchNorm2d(cin), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        super().__init__(nn.Sequential(*layers), cin, num_classes)
        for m in self.modules():  # their initialisation: He-normal over fan_out, BatchNorm 1 / 0
            if isinstance(m, nn.Conv2d):
                fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
                with torch.no_grad():
                    m.weight.normal_(0, math.sqrt(2.0 / fan_out))
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)
