"""The supervised training loop: fixed steps, data already on the device, batched augmentation.

A reader should take this in at one sitting. Losses are accumulated on the device and read
back only every `log_every` steps, so the step itself never waits for the host.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import torch
from torch import nn

from dataworth.train.schedule import warmup_cosine


class BatchStream:
    """Batch indices from reshuffled passes over n samples (a small set is simply repeated more)."""

    def __init__(self, n: int, batch_size: int, gen: torch.Generator, device):
        self.n, self.batch_size, self.gen, self.device = n, batch_size, gen, device
        self.perm = torch.randperm(n, generator=gen, device=device)
        self.pos = 0

    def next(self) -> torch.Tensor:
        if self.pos + self.batch_size <= self.n:
            idx = self.perm[self.pos : self.pos + self.batch_size]
            self.pos += self.batch_size
            return idx
        parts, need = [self.perm[self.pos :]], self.batch_size - (self.n - self.pos)
        while True:
            self.perm = torch.randperm(self.n, generator=self.gen, device=self.device)
            take = min(need, self.n)
            parts.append(self.perm[:take])
            need -= take
            if need == 0:
                self.pos = take
                return torch.cat(parts)


def make_optimizer(model: nn.Module, cfg: dict, device: torch.device) -> torch.optim.Optimizer:
    # Fused kernels are a large win on CUDA and unavailable on every CPU build, so only there.
    fused = {"fused": True} if device.type == "cuda" else {}
    if cfg["optimizer"] == "sgd":
        return torch.optim.SGD(
            model.parameters(), lr=cfg["lr"], momentum=cfg["momentum"], nesterov=cfg["momentum"] > 0,
            weight_decay=cfg["weight_decay"], **fused,
        )
    if cfg["optimizer"] == "adamw":
        return torch.optim.AdamW(model.parameters(), lr=cfg["lr"], weight_decay=cfg["weight_decay"], **fused)
    raise ValueError(f"unknown optimizer {cfg['optimizer']!r}; allowed: sgd, adamw")


@dataclass
class TrainResult:
    status: str  # "ok" or "diverged"
    steps_completed: int
    final_loss: float
    compute_seconds: float
    history: list[dict] = field(default_factory=list)


def train_model(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    policy,
    cfg: dict,
    batch_gen: torch.Generator,
    augment_gen: torch.Generator,
) -> TrainResult:
    """Train `model` in place on (x, y) for cfg['steps'] steps; stops early if the loss diverges."""
    device = x.device
    steps, log_every = cfg["steps"], cfg["log_every"]
    optimizer = make_optimizer(model, cfg, device)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: warmup_cosine(s, cfg["warmup_steps"], steps)
    )
    loss_fn = nn.CrossEntropyLoss(label_smoothing=cfg["label_smoothing"])
    batches = BatchStream(len(y), cfg["batch_size"], batch_gen, device)
    use_amp = device.type == "cuda"

    model.train()
    history: list[dict] = []
    loss_sum = torch.zeros((), device=device)
    correct_sum = torch.zeros((), device=device)
    interval_steps = 0
    status, final_loss = "ok", math.nan
    start = time.perf_counter()
    for step in range(1, steps + 1):
        idx = batches.next()
        xb, yb = policy(x[idx], augment_gen), y[idx]
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
            logits = model(xb)
        loss = loss_fn(logits.float(), yb)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        lr = schedule.get_last_lr()[0]
        schedule.step()

        loss_sum += loss.detach()
        correct_sum += (logits.detach().argmax(1) == yb).sum()
        interval_steps += 1
        if step % log_every == 0 or step == steps:
            final_loss = loss_sum.item() / interval_steps  # the only host sync: once per log_every
            history.append({
                "step": step, "loss": final_loss, "accuracy": correct_sum.item() / (interval_steps * len(yb)),
                "lr": lr, "elapsed_seconds": time.perf_counter() - start,
            })
            loss_sum.zero_(), correct_sum.zero_()
            interval_steps = 0
            if not math.isfinite(final_loss):
                status = "diverged"
                break
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return TrainResult(status, history[-1]["step"], final_loss, time.perf_counter() - start, history)
