from __future__ import annotations

import math

from torch import nn

from dataworth.models.base import Classifier


class MLP(Classifier):
    """Two hidden layers of `width` units with ReLU, on the flattened input."""

    def __init__(self, sample_shape: tuple[int, ...], width: int, num_classes: int):
        encoder = nn.Sequential(
            nn.Flatten(),
            nn.Linear(math.prod(sample_shape), width),
            nn.ReLU(),
            nn.Linear(width, width),
            nn.ReLU(),
        )
        super().__init__(encoder, width, num_classes)
