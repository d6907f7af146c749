"""Self-supervised heads: the projector (and BYOL's predictor) on top of a model's encoder.

An `SSLNetwork` is what a self-supervised run trains and saves as model.pt: the encoder of one
of the foundation's models (its `features`) followed by a projector. Probes and k-NN read the
encoder's features; RankMe reads both the features and the projector's output.
"""

from __future__ import annotations

import torch
from torch import nn


def mlp_head(in_dim: int, hidden: int, out: int) -> nn.Sequential:
    """Linear-BatchNorm-ReLU-Linear: the projector of SimCLR and BYOL, and BYOL's predictor."""
    return nn.Sequential(nn.Linear(in_dim, hidden), nn.BatchNorm1d(hidden), nn.ReLU(), nn.Linear(hidden, out))


class SSLNetwork(nn.Module):
    """encoder -> features (N, D); projector -> embeddings (N, out) that the loss sees."""

    def __init__(self, encoder: nn.Module, feature_dim: int, hidden: int, out: int):
        super().__init__()
        self.encoder = encoder
        self.feature_dim = feature_dim
        self.projector = mlp_head(feature_dim, hidden, out)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.projector(self.encoder(x))


def build_ssl_network(model: nn.Module, ssl: dict) -> SSLNetwork:
    """The network of a self-supervised run: `model`'s encoder (its head is dropped) and the
    projector of the run's `ssl` config."""
    projector = ssl["projector"]
    return SSLNetwork(model.encoder, model.feature_dim, projector["hidden"], projector["out"])
