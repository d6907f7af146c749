"""The training loop: all training, single runs and packs of runs, goes through `train` below.

Fixed steps, data already on the device, batched augmentation. A reader should take this in at
one sitting. The loop trains K *members* (runs) at once: K = 1 for a run on its own, K > 1 for a
pack trained as one grouped model (train/packed.py). Each member has its own data, batch order
and augmentation stream. What a step's losses are comes from an `Objective` (objectives.py:
supervised cross-entropy, SimCLR, VICReg, BYOL; packed.py: K supervised runs as one grouped
model), which returns one loss per member; their sum is minimised (members share no parameter,
so each gets exactly its own gradient). Losses are accumulated on the device and read back only
every `log_every` steps, so the step itself never waits for the host. Everything the loop
carries from step to step is in `state`, which a checkpoint saves and restores.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn

from dataworth.train.checkpoint import Checkpointer
from dataworth.train.objectives import Objective, Supervised
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


def resume_point(state: dict, seconds: float, model: nn.Module, optimizer, schedule,
                 gens: list[torch.Generator], streams: list[BatchStream]) -> dict:
    """Everything a checkpoint holds: the loop's `state`, `seconds` of training so far, weights,
    optimizer and schedule, and where every random stream stands (generators and the current pass
    of each batch stream), so that a resumed run draws exactly the batches and augmentations it
    would have drawn."""
    return {
        "loop": state,
        "compute_seconds": seconds,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "schedule": schedule.state_dict(),
        "gens": [gen.get_state() for gen in gens],
        "batches": [{"perm": stream.perm, "pos": stream.pos} for stream in streams],
    }


def restore_resume_point(saved: dict, state: dict, model: nn.Module, optimizer, schedule,
                         gens: list[torch.Generator], streams: list[BatchStream]) -> None:
    """Put everything `resume_point` saved back, the loop's counters into `state`."""
    model.load_state_dict(saved["model"])
    optimizer.load_state_dict(saved["optimizer"])
    schedule.load_state_dict(saved["schedule"])
    for gen, gen_state in zip(gens, saved["gens"], strict=True):
        gen.set_state(gen_state)
    for stream, order in zip(streams, saved["batches"], strict=True):
        stream.perm, stream.pos = order["perm"].to(stream.device), order["pos"]
    loop = dict(saved["loop"])
    if "history" in loop:  # a single run's checkpoint written before the one loop: one member
        loop["histories"], loop["diverged_at"] = [loop.pop("history")], [None]
        loop["loss_sum"], loop["correct_sum"] = loop["loss_sum"].view(1), loop["correct_sum"].view(1)
    state.update(loop, compute_seconds=saved["compute_seconds"])
    device = streams[0].device
    state["loss_sum"], state["correct_sum"] = state["loss_sum"].to(device), state["correct_sum"].to(device)


def make_optimizer(model: nn.Module, cfg: dict, device: torch.device) -> torch.optim.Optimizer:
    # Fused kernels are a large win on CUDA and unavailable on every CPU build, so only there.
    fused = {"fused": True} if device.type == "cuda" else {}
    # Parameters without gradient (BYOL's EMA target) are state, not something to optimise.
    params = [p for p in model.parameters() if p.requires_grad]
    if cfg["optimizer"] == "sgd":
        return torch.optim.SGD(
            params, lr=cfg["lr"], momentum=cfg["momentum"], nesterov=cfg["momentum"] > 0,
            weight_decay=cfg["weight_decay"], **fused,
        )
    if cfg["optimizer"] == "adamw":
        return torch.optim.AdamW(params, lr=cfg["lr"], weight_decay=cfg["weight_decay"], **fused)
    raise ValueError(f"unknown optimizer {cfg['optimizer']!r}; allowed: sgd, adamw")


@dataclass
class TrainResult:
    status: str  # "ok" or "diverged"
    steps_completed: int
    final_loss: float
    compute_seconds: float
    resumed_from_step: int = 0
    history: list[dict] = field(default_factory=list)


@dataclass
class Member:
    """One run being trained: its training data (already on the device) and its random streams."""

    x: torch.Tensor
    y: torch.Tensor | None  # None for self-supervised runs: they never see labels
    policy: Callable
    batch_gen: torch.Generator
    augment_gen: torch.Generator


def fast_path(network: nn.Module, x: torch.Tensor, cfg: dict) -> Callable[[torch.Tensor], torch.Tensor]:
    """Set up the GPU path for `network` trained on batches like `x`; returns the batch layout.

    On CUDA, image batches (N, C, H, W) and convolution weights go channels_last, the layout
    cuDNN's bf16 convolutions are fastest in (the returned function converts each batch). With
    train.compile, the network's forward is compiled with torch.compile, in place, so its
    state_dict keys stay those of the plain model and model.pt does not change.
    """
    if cfg.get("compile"):
        network.compile()
    if x.device.type != "cuda" or x.dim() != 4:
        return lambda batch: batch
    network.to(memory_format=torch.channels_last)
    return lambda batch: batch.contiguous(memory_format=torch.channels_last)


def train(
    objective: Objective,
    members: list[Member],
    cfg: dict,
    checkpointer: Checkpointer | None = None,
    on_log: Callable[[int, dict], None] | None = None,
    evaluate: Callable[..., list[dict]] | None = None,
) -> list[TrainResult]:
    """Train `objective` (in place) on its members for cfg['steps'] steps; one TrainResult each.

    A member whose loss diverges (NaN or inf) is recorded as diverged at the step it was
    detected; training stops when every member has. With a `checkpointer`, resumes from its
    checkpoint, saves one periodically, and on a stop request saves one and raises `Preempted`.
    `on_log(member_index, row)` sees each history row as it is made. `evaluate(network, k, step,
    steps, layout)` (train/heldout.py) adds held-out columns to the rows of the steps it evaluates.
    """
    k = len(members)
    device = members[0].x.device
    steps, log_every = cfg["steps"], cfg["log_every"]
    layout = fast_path(objective.network, members[0].x, cfg)
    optimizer = make_optimizer(objective, cfg, device)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: warmup_cosine(s, cfg["warmup_steps"], steps))
    streams = [BatchStream(len(m.x), cfg["batch_size"], m.batch_gen, device) for m in members]
    use_amp = device.type == "cuda"
    state = {
        "step": 0,
        "histories": [[] for _ in range(k)],
        "loss_sum": torch.zeros(k, device=device),
        "correct_sum": torch.zeros(k, device=device),
        "interval_steps": 0,
        "diverged_at": [None] * k,
        "compute_seconds": 0.0,  # training-loop time of earlier starts of this run or pack
    }

    gens = [m.batch_gen for m in members] + [m.augment_gen for m in members]
    resumable = (objective, optimizer, schedule, gens, streams)

    def snapshot() -> dict:
        return resume_point(state, state["compute_seconds"] + time.perf_counter() - start, *resumable)

    saved = checkpointer.load() if checkpointer else None
    if saved:
        restore_resume_point(saved, state, *resumable)
    resumed_from_step = state["step"]
    histories, diverged_at = state["histories"], state["diverged_at"]

    objective.train()
    start = time.perf_counter()
    for step in range(state["step"] + 1, steps + 1):
        batches = []
        for member, stream in zip(members, streams):
            idx = stream.next()
            batches.append((member.x[idx], None if member.y is None else member.y[idx], member.policy,
                            member.augment_gen))
        losses, correct = objective.losses(batches, layout, use_amp)  # (K,) each
        optimizer.zero_grad(set_to_none=True)
        losses.sum().backward()
        optimizer.step()
        objective.after_step(step, steps)
        lr = schedule.get_last_lr()[0]
        schedule.step()

        state["step"] = step
        state["loss_sum"] += losses.detach()
        if correct is not None:
            state["correct_sum"] += correct
        state["interval_steps"] += 1
        if step % log_every == 0 or step == steps:
            interval = state["interval_steps"]
            mean_loss = [total / interval for total in state["loss_sum"].tolist()]  # the only host sync
            correct_counts = state["correct_sum"].tolist()
            extras = evaluate(objective.network, k, step, steps, layout) if evaluate else [{}] * k
            elapsed = state["compute_seconds"] + time.perf_counter() - start
            for i in range(k):
                if diverged_at[i] is not None:
                    continue
                row = {
                    "step": step,
                    "loss": mean_loss[i],
                    "accuracy": correct_counts[i] / (interval * len(batches[i][0])) if objective.uses_labels else None,
                    "lr": lr,
                    "elapsed_seconds": elapsed,
                    **extras[i],
                }
                histories[i].append(row)
                if on_log:
                    on_log(i, row)
                if not math.isfinite(mean_loss[i]):
                    diverged_at[i] = step
            state["loss_sum"].zero_(), state["correct_sum"].zero_()
            state["interval_steps"] = 0
            if all(d is not None for d in diverged_at):
                break
        if checkpointer:
            checkpointer.at_step_boundary(step, steps, snapshot)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    compute_seconds = state["compute_seconds"] + time.perf_counter() - start

    results = []
    for history, diverged in zip(histories, diverged_at):
        # Each member is charged its share of the compute.
        results.append(TrainResult(
            "ok" if diverged is None else "diverged", history[-1]["step"] if history else state["step"],
            history[-1]["loss"] if history else math.nan, compute_seconds / k, resumed_from_step, history,
        ))
    return results


def train_model(model: nn.Module, x: torch.Tensor, y: torch.Tensor | None, policy, cfg: dict,
                batch_gen: torch.Generator, augment_gen: torch.Generator,
                checkpointer: Checkpointer | None = None, on_log: Callable[[dict], None] | None = None) -> TrainResult:
    """`train` for one run: `model` is a classifier (trained with cross-entropy) or an `Objective`."""
    objective = model if isinstance(model, Objective) else Supervised(model, cfg["label_smoothing"])
    log = (lambda i, row: on_log(row)) if on_log else None
    return train(objective, [Member(x, y, policy, batch_gen, augment_gen)], cfg, checkpointer, log)[0]
