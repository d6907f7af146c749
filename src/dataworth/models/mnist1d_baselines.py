"""The four baselines of the MNIST-1D benchmark (Greydanus 2020; Greydanus & Bau 2024), written
after the architectures of the paper's `notebooks/models.py` (greydanus/mnist1d):

- `linear`:      logistic regression, one Linear layer on the flattened signal;
- `mnist1d_mlp`: Linear(L, w) -> ReLU, then a residual hidden layer h + ReLU(Linear(w, w)(h)),
                 then the head (the paper's MLPBase: w = 100 by default, 256 in its benchmark recipe);
- `mnist1d_cnn`: three plain convolutions with ReLU, no BatchNorm, no pooling (kernel 5 stride 2
                 padding 1, then kernel 3 stride 2 padding 1 twice; w = 25 channels), flattened into
                 the head (the paper's ConvBase: 25 x 5 = 125 features on a signal of length 40);
- `mnist1d_gru`: a bidirectional GRU of w hidden units (w = 6) over the signal's time steps, its
                 outputs at every step flattened into the head (the paper's GRUBase).

Each is an `encoder` plus a linear `head`, like every model here, so the evaluation stages see
the same features the paper's last Linear layer sees.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from dataworth.models.base import Classifier


def _conv_length(length: int, kernel: int, stride: int, padding: int) -> int:
    return (length + 2 * padding - kernel) // stride + 1


class Linear(Classifier):
    """Logistic regression: the head alone, on the flattened input (`width` is not used)."""

    def __init__(self, sample_shape: tuple[int, ...], num_classes: int):
        super().__init__(nn.Flatten(), math.prod(sample_shape), num_classes)


class _ResidualHidden(nn.Module):
    """ReLU(Linear(x)), then h + ReLU(Linear(h)): the paper's MLP up to its last layer."""

    def __init__(self, in_features: int, width: int):
        super().__init__()
        self.first = nn.Linear(in_features, width)
        self.second = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.first(x.flatten(1)).relu()
        return h + self.second(h).relu()


class Mnist1dMLP(Classifier):
    def __init__(self, sample_shape: tuple[int, ...], width: int, num_classes: int):
        super().__init__(_ResidualHidden(math.prod(sample_shape), width), width, num_classes)


class Mnist1dCNN(Classifier):
    def __init__(self, sample_shape: tuple[int, ...], width: int, num_classes: int):
        channels, length = sample_shape[0], sample_shape[-1]
        layers, out_length = [], length
        for i, (kernel, stride, padding) in enumerate(((5, 2, 1), (3, 2, 1), (3, 2, 1))):
            layers += [nn.Conv1d(channels if i == 0 else width, width, kernel, stride=stride, padding=padding), nn.ReLU()]
            out_length = _conv_length(out_length, kernel, stride, padding)
        if out_length < 1:
            raise ValueError(f"mnist1d_cnn: a signal of length {length} is too short for its three strided convolutions")
        super().__init__(nn.Sequential(*layers, nn.Flatten()), width * out_length, num_classes)


class _BidirectionalGRU(nn.Module):
    """The GRU's outputs at every time step, both directions, flattened: (N, T * 2 * width)."""

    def __init__(self, channels: int, width: int):
        super().__init__()
        self.gru = nn.GRU(input_size=channels, hidden_size=width, batch_first=True, bidirectional=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # (N, C, T) -> (N, T, C): time is the GRU's sequence axis; the initial state is zero, as in the paper.
        output, _ = self.gru(x.transpose(1, 2))
        return output.flatten(1)


class Mnist1dGRU(Classifier):
    def __init__(self, sample_shape: tuple[int, ...], width: int, num_classes: int):
        channels, length = sample_shape[0], sample_shape[-1]
        super().__init__(_BidirectionalGRU(channels, width), 2 * width * length, num_classes)
