"""Class-stratified, nested training subsets.

For one seed, every size reads a prefix of the same ordering of the training pool, so the
subset of size n is contained in the subset of size m > n: a scaling curve then measures
*more* data, not *other* data. The ordering interleaves classes in proportion to their share
of the pool, so every prefix is stratified (each class within one sample of its share).
"""

from __future__ import annotations

import numpy as np


def stratified_order(labels: np.ndarray, seed: int) -> np.ndarray:
    """A seeded permutation of the pool whose every prefix is class-stratified."""
    labels = np.asarray(labels)
    rng = np.random.default_rng([seed, 0x5EB5E7])
    keys = np.empty(len(labels), dtype=np.float64)
    for cls in np.unique(labels):
        members = np.flatnonzero(labels == cls)
        # The j-th drawn member of a class sits at (j + u) / count on a common [0, 1) clock, with
        # u in [0, 1): each class then fills its share of any prefix, in a random class order.
        offset = rng.random()
        keys[rng.permutation(members)] = (np.arange(len(members)) + offset) / len(members)
    return np.argsort(keys, kind="stable")


def nested_subset(labels: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Indices of the size-n subset of the pool for `seed` (a prefix of `stratified_order`)."""
    if not 0 < n <= len(labels):
        raise ValueError(f"subset size {n} must be in 1..{len(labels)}")
    return stratified_order(labels, seed)[:n]
