"""Fixed repetitions (issue 17 item 2): r augmented copies of each training image, drawn once.

The paper compares fresh augmentations every step with a fixed set of copies drawn before
training ("rounds"). Its code (JonasGeiping/dataaugs, dataaug/data/lmdb_datasets.py,
`_create_database`) passes the training set `cfg_db.rounds` times through the sample transforms,
writing every augmented image as uint8 into one LMDB database of n x rounds entries (the first
pass without the augmentations when `first_round_clean`), and trains by shuffling over that
database, with only the non-random transforms (to tensor, normalise) applied live. We do the
same on the device: the copies are drawn once, round after round, from a generator of their own
derived from the run's seed (so they depend neither on the batch order nor on the training
augmentation stream), kept as uint8 for pixel datasets (as the paper stores them; the pixel ops
already produce whole values, Pillow's output) and float otherwise, and the loop samples batches
from the n x rounds copies with no fresh augmentation. The run still reports n_train = n.
"""

from __future__ import annotations

import numpy as np
import torch

# Images augmented at once while drawing the copies: bounds the policy's intermediates; the draws
# depend on it (each chunk draws in turn), so it is a constant, not a setting.
CHUNK = 4096


def repetition_seed(seed: int) -> int:
    """The seed of the copies' generator: a child of the run's seed sequence, independent of the
    init, batch and augmentation streams (train/run.py seed_streams), which it leaves unchanged."""
    return int(np.random.SeedSequence(seed).spawn(1)[0].generate_state(1)[0])


def fixed_copies(x: torch.Tensor, policy, rounds: int, first_round_clean: bool, gen: torch.Generator,
                 stores_pixels: bool, max_bytes: int) -> torch.Tensor:
    """The (n * rounds, ...) copies of `x`, round-major: row r * n + i is image i's copy in round r.

    `policy` is the raw policy (0..255 floats for pixel datasets, before normalisation). Raises a
    one-line ValueError when the copies would take more than `max_bytes`."""
    n = len(x)
    dtype = torch.uint8 if stores_pixels else x.dtype
    needed = n * rounds * x[0].numel() * torch.empty((), dtype=dtype).element_size()
    if needed > max_bytes:
        raise ValueError(f"augmentation.rounds: {n} images x {rounds} rounds take {needed / 2**30:.1f} GiB; allowed: "
                         f"at most {max_bytes / 2**30:.0f} GiB for the fixed set (lower rounds or n_train)")
    copies = torch.empty((n * rounds, *x.shape[1:]), dtype=dtype, device=x.device)
    for r in range(rounds):
        for start in range(0, n, CHUNK):
            chunk = x[start:start + CHUNK]
            if not (r == 0 and first_round_clean):
                chunk = policy(chunk.float() if stores_pixels else chunk, gen)
            if stores_pixels:
                chunk = chunk.round().clamp(0, 255)  # the paper stores uint8 images
            copies[r * n + start: r * n + start + len(chunk)] = chunk.to(dtype)
    return copies
