"""A trained run's network, loaded for evaluation, and its embeddings of a set of samples."""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from dataworth.files import load_torch
from dataworth.methods import method_of
from dataworth.models import build_run_model
from dataworth.models.ssl import build_ssl_network


def load_network(run: dict, sample_shape: tuple[int, ...], num_classes: int, model_path, device) -> nn.Module:
    """The run's model.pt as its network (in eval mode): the classifier of a supervised run,
    the encoder + projector of a self-supervised one. Both have `features(x)`."""
    model = build_run_model(run["model"], sample_shape, num_classes)
    network = build_ssl_network(model, run["ssl"]) if has_projector(run) else model
    network.load_state_dict(load_torch(model_path, map_location=device))
    return network.to(device).eval()


def has_projector(run: dict) -> bool:
    """Self-supervised runs train an encoder + projector; supervised ones a classifier."""
    return method_of(run).self_supervised


@torch.no_grad()  # not inference_mode: a probe trains on these tensors
def embed(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, batch_size: int) -> torch.Tensor:
    """fn (e.g. network.features) applied to x in batches, as float32 (N, D)."""
    use_amp = x.device.type == "cuda"
    parts = []
    for start in range(0, len(x), batch_size):
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=use_amp):
            parts.append(fn(x[start : start + batch_size]).float())
    return torch.cat(parts)
