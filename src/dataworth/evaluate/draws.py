"""The fixed random draws of the mechanism stages (augmented views, directions, batches, points):
the same for every run of a study, whatever its seed, so runs differ only by their networks.
Imports nothing of dataworth: training imports it too (local complexity logged while training)."""

from __future__ import annotations

import numpy as np
import torch

MECHANISM_SEED = 0


def generator(device, offset: int = 0) -> torch.Generator:
    return torch.Generator(device=device).manual_seed(MECHANISM_SEED + offset)


def fixed_points(count: int, pool: int) -> np.ndarray:
    """The study's fixed sample of `count` indices of a set of `pool` (all of it if smaller), sorted."""
    return np.sort(np.random.default_rng(MECHANISM_SEED).permutation(pool)[:count])
