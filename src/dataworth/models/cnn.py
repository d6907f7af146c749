from __future__ import annotations

from torch import nn

from dataworth.models.base import Classifier


def _block1d(cin: int, cout: int, stride: int) -> list[nn.Module]:
    return [nn.Conv1d(cin, cout, 3, stride=stride, padding=1, bias=False), nn.BatchNorm1d(cout), nn.ReLU()]


def _block2d(cin: int, cout: int, stride: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]


class CNN1d(Classifier):
    """Three conv-BN-ReLU blocks (width, 2*width, 2*width; the last two strided), global average pool."""

    def __init__(self, in_channels: int, width: int, num_classes: int):
        encoder = nn.Sequential(
            *_block1d(in_channels, width, 1),
            *_block1d(width, 2 * width, 2),
            *_block1d(2 * width, 2 * width, 2),
            nn.AdaptiveAvgPool1d(1),
            nn.Flatten(),
        )
        super().__init__(encoder, 2 * width, num_classes)


class CNN2d(Classifier):
    """Three conv-BN-ReLU blocks (width, 2*width, 4*width; the last two strided), global average pool."""

    def __init__(self, in_channels: int, width: int, num_classes: int):
        encoder = nn.Sequential(
            *_block2d(in_channels, width, 1),
            *_block2d(width, 2 * width, 2),
            *_block2d(2 * width, 4 * width, 2),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        super().__init__(encoder, 4 * width, num_classes)
