"""Batched augmentation policies: a named list of ops applied in order to a whole batch."""

from __future__ import annotations

from dataworth.augment.ops import OP_SPECS, OpSpec


class Policy:
    """Applies its ops in order; an empty policy (`none`) returns the batch unchanged."""

    def __init__(self, ops: list[OpSpec]):
        self.ops = list(ops)

    def __call__(self, x, gen):
        for op in self.ops:
            x = op(x, gen)
        return x

    def __repr__(self) -> str:
        return f"Policy({', '.join(op.op for op in self.ops) or 'none'})"


def build_policy(op_configs: list[dict]) -> Policy:
    """A policy from its resolved config (a run's `augmentation.ops`)."""
    return Policy([OP_SPECS[c["op"]].model_validate(c) for c in op_configs])


__all__ = ["OP_SPECS", "OpSpec", "Policy", "build_policy"]
