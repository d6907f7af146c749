"""Batched augmentation policies: a named list of ops applied in order to a whole batch."""

from __future__ import annotations

from dataworth.augment.ops import OP_SPECS, OpSpec

# Fixed repetitions (a policy's `rounds`, train/repetitions.py) hold n_train x rounds copies of the
# training images on the device for the whole run: uint8 for pixel datasets, float32 otherwise.
# 8 GiB is 50,000 CIFAR images x 54 rounds, and fits beside a ResNet-18's training on a 16 GiB GPU.
MAX_REPETITION_BYTES = 8 * 2**30


class Policy:
    """Applies its ops in order; an empty policy (`none`) returns the batch unchanged."""

    def __init__(self, ops: list[OpSpec]):
        self.ops = list(ops)

    def __call__(self, x, gen):
        from dataworth.augment.warp import remap_chain

        chain = []  # consecutive ops that only move pixels: applied together, as one gather
        for op in self.ops:
            if op.moves_pixels_only:
                chain.append(op)
                continue
            if chain:
                x, chain = remap_chain(x, chain, gen), []
            x = op(x, gen)
        return remap_chain(x, chain, gen) if chain else x

    def __repr__(self) -> str:
        return f"Policy({', '.join(op.op for op in self.ops) or 'none'})"


def build_policy(op_configs: list[dict]) -> Policy:
    """A policy from its resolved config (a run's `augmentation.ops`)."""
    return Policy([OP_SPECS[c["op"]].model_validate(c) for c in op_configs])


__all__ = ["MAX_REPETITION_BYTES", "OP_SPECS", "OpSpec", "Policy", "build_policy"]
