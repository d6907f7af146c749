"""The linear probe: a linear classifier on frozen encoder features, trained on labeled samples."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from dataworth.train.loop import BatchStream
from dataworth.train.schedule import warmup_cosine


class LinearProbe(nn.Module):
    """Standardise features with the labeled set's statistics, then one linear layer."""

    def __init__(self, mean: torch.Tensor, std: torch.Tensor, num_classes: int):
        super().__init__()
        self.register_buffer("mean", mean)
        self.register_buffer("std", std)
        self.linear = nn.Linear(len(mean), num_classes)
        # Zero init: the fit is convex, so no random start is needed, and a feature that is
        # constant on the labeled set gets no gradient and keeps weight 0 (it cannot blow up on
        # test samples where it is not constant).
        nn.init.zeros_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.linear((features - self.mean) / (self.std + 1e-6))


def train_linear_probe(features: torch.Tensor, labels: torch.Tensor, num_classes: int, cfg: dict,
                       gen: torch.Generator) -> LinearProbe:
    """AdamW on mini-batches for cfg['steps'] steps, learning rate cfg['lr'] on a cosine to zero."""
    probe = LinearProbe(features.mean(0), features.std(0, correction=0), num_classes).to(features.device)
    optimizer = torch.optim.AdamW(probe.parameters(), lr=cfg["lr"], weight_decay=cfg["weight_decay"])
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: warmup_cosine(s, 0, cfg["steps"]))
    batches = BatchStream(len(labels), cfg["batch_size"], gen, features.device)
    for _ in range(cfg["steps"]):
        idx = batches.next()
        loss = F.cross_entropy(probe(features[idx]), labels[idx])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
    return probe.eval()


@torch.no_grad()
def probe_loss_and_accuracy(probe: LinearProbe, features: torch.Tensor, labels: torch.Tensor) -> tuple[float, float]:
    logits = probe(features)
    return F.cross_entropy(logits, labels).item(), (logits.argmax(1) == labels).double().mean().item()
