"""Evaluating on stored pixels: a trained network wrapped to take uint8 batches as stored."""

from __future__ import annotations

from torch import nn


class StoredInput(nn.Module):
    """`network` behind the dataset's normalisation: forward and `features` take stored uint8
    batches (evaluation normalises per batch, never a float copy of a whole split)."""

    def __init__(self, network: nn.Module, dataset):
        super().__init__()
        self.network = network
        self.dataset = dataset

    def forward(self, x):
        return self.network(self.dataset.eval_input(x))

    def features(self, x):
        return self.network.features(self.dataset.eval_input(x))
