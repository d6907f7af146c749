"""ConvMixer (Trockman & Kolter 2022) as Geiping et al. (2022) build it for 32x32 images (their
`convmixer` config: dim 256, depth 16, kernel 7, patch size 1).

A patch embedding (conv with kernel = stride = patch size), then `depth` blocks of a residual
depthwise conv (GELU, BatchNorm) followed by a pointwise conv (GELU, BatchNorm); global average
pool and a Linear head. `width` is dim.
"""

from __future__ import annotations

from torch import nn

from dataworth.models.base import Classifier


class Residual(nn.Module):
    def __init__(self, fn: nn.Module):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x) + x


class ConvMixer(Classifier):
    def __init__(self, in_channels: int, dim: int, num_classes: int, depth: int = 16, kernel_size: int = 7,
                 patch_size: int = 1):
        blocks = [
            nn.Sequential(
                Residual(nn.Sequential(nn.Conv2d(dim, dim, kernel_size, groups=dim, padding="same"), nn.GELU(),
                                       nn.BatchNorm2d(dim))),
                nn.Conv2d(dim, dim, 1),
                nn.GELU(),
                nn.BatchNorm2d(dim),
            )
            for _ in range(depth)
        ]
        encoder = nn.Sequential(
            nn.Conv2d(in_channels, dim, patch_size, stride=patch_size), nn.GELU(), nn.BatchNorm2d(dim),
            *blocks, nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )
        super().__init__(encoder, dim, num_classes)
