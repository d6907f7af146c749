"""Packed training: K runs of the same architecture and recipe trained together in one process.

Small runs are dominated by fixed costs (process start, Python dispatch, scheduling), so K of
them are trained as one *grouped* model instead of K models:

- a convolution becomes a grouped convolution (`groups=K`) whose k-th group is run k's layer;
- a BatchNorm becomes one BatchNorm over K times the channels: statistics are per channel, so
  each run's channels are normalised with exactly its own batch statistics (this is why we do
  not use `torch.func.vmap`, under which BatchNorm's running-statistics updates need special
  care), and each keeps its own running statistics;
- a Linear becomes a `GroupedLinear` (one batched matmul over the K runs).

Input channels are stacked the same way: channel block k holds run k's batch, drawn from run k's
own subset, batch order and augmentation stream, so every run sees exactly the data it would see
alone. The loss is the sum of the K runs' losses; since their parameters are disjoint, each run
gets exactly its own gradient, and SGD and AdamW update every element independently, so one
optimizer over the packed parameters is K independent optimizers. Results equal separate runs
up to floating-point summation order. A run that diverges (NaN) stays NaN inside its own
groups and never touches the others; it is recorded as diverged at the step it was detected.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass

import torch
from torch import nn

from dataworth.train.checkpoint import Checkpointer
from dataworth.train.loop import (
    BatchStream, TrainResult, fast_path, make_optimizer, restore_resume_point, resume_point,
)
from dataworth.train.schedule import warmup_cosine


class GroupedLinear(nn.Module):
    """K independent Linear layers on (N, K * in_features) -> (N, K * out_features)."""

    def __init__(self, linears: list[nn.Linear]):
        super().__init__()
        if linears[0].bias is None:
            raise ValueError("packing a Linear without bias is not supported")
        self.groups = len(linears)
        self.in_features, self.out_features = linears[0].in_features, linears[0].out_features
        self.weight = nn.Parameter(torch.stack([l.weight.detach() for l in linears]))  # (K, out, in)
        self.bias = nn.Parameter(torch.stack([l.bias.detach() for l in linears]))  # (K, out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.view(x.shape[0], self.groups, self.in_features)
        out = torch.einsum("nki,koi->nko", x, self.weight) + self.bias
        return out.reshape(x.shape[0], self.groups * self.out_features)


def _cat(tensors: list[torch.Tensor]) -> torch.Tensor:
    return torch.cat([t.detach() for t in tensors])


def _pack_conv(convs: list[nn.Module]) -> nn.Module:
    c = convs[0]
    k = len(convs)
    if c.groups != 1:
        raise ValueError("packing grouped convolutions is not supported")
    packed = type(c)(
        c.in_channels * k, c.out_channels * k, c.kernel_size, stride=c.stride, padding=c.padding,
        dilation=c.dilation, groups=k, bias=c.bias is not None, padding_mode=c.padding_mode,
    )
    with torch.no_grad():
        packed.weight.copy_(_cat([m.weight for m in convs]))
        if c.bias is not None:
            packed.bias.copy_(_cat([m.bias for m in convs]))
    return packed


def _pack_batchnorm(norms: list[nn.Module]) -> nn.Module:
    n = norms[0]
    if not (n.affine and n.track_running_stats):
        raise ValueError("packing a BatchNorm without affine parameters or running statistics is not supported")
    packed = type(n)(n.num_features * len(norms), eps=n.eps, momentum=n.momentum, affine=n.affine)
    with torch.no_grad():
        for name in ("weight", "bias", "running_mean", "running_var"):
            getattr(packed, name).copy_(_cat([getattr(m, name) for m in norms]))
        packed.num_batches_tracked.copy_(n.num_batches_tracked)
    return packed


_PARAMETER_FREE = (nn.ReLU, nn.Flatten, nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.Identity)


def pack_modules(modules: list[nn.Module]) -> nn.Module:
    """One grouped module equivalent to running `modules` side by side on stacked channels."""
    first = modules[0]
    if isinstance(first, (nn.Conv1d, nn.Conv2d)):
        return _pack_conv(modules)
    if isinstance(first, (nn.BatchNorm1d, nn.BatchNorm2d)):
        return _pack_batchnorm(modules)
    if isinstance(first, nn.Linear):
        return GroupedLinear(modules)
    if isinstance(first, _PARAMETER_FREE):
        return copy.deepcopy(first)
    if list(first.parameters(recurse=False)) or list(first.buffers(recurse=False)):
        raise ValueError(f"cannot pack {type(first).__name__}: it has parameters of its own")
    if not first._modules and not isinstance(first, nn.Sequential):  # (an empty Sequential is the identity)
        # A layer not known to act on each channel alone (a softmax over channels would mix runs).
        raise ValueError(f"cannot pack {type(first).__name__}: not known to keep runs' channels apart")
    # A container (Sequential, a residual block, the classifier): same forward, packed children.
    packed = copy.copy(first)
    packed._parameters, packed._buffers = {}, {}  # (empty, but not shared with the original)
    packed._modules = {name: pack_modules([m._modules[name] for m in modules]) for name in first._modules}
    return packed


def check_packed(packed: nn.Module, models: list[nn.Module], xs: list[torch.Tensor]) -> None:
    """Refuse a packed model that does not compute each run exactly as its own model does.

    The layers are checked one by one when packing, but a container's own forward (a residual
    block, say) could still mix the runs' channels; one eval-mode forward on a few samples of each
    run settles it. The tolerance leaves room for TF32 convolutions on CUDA; a mix is far larger.
    """
    modes = [m.training for m in (packed, *models)]
    with torch.no_grad():
        packed.eval()
        out = packed(torch.cat(xs, dim=1))
        out = out.view(out.shape[0], len(models), -1)
        for index, (model, x) in enumerate(zip(models, xs)):
            alone = model.eval()(x).reshape(out.shape[0], -1)  # run k's block of the packed channels
            packed_run = out[:, index]
            # Equal infinities and NaN against NaN count as the same (a diverged run stays diverged).
            same = (packed_run == alone) | (packed_run.isnan() & alone.isnan())
            error = (packed_run - alone).abs().masked_fill(same, 0).max().item()
            scale = alone.nan_to_num(nan=0.0, posinf=0.0, neginf=0.0).abs().max().item()
            if not error <= 5e-3 * (1 + scale):
                raise ValueError(f"the packed {type(model).__name__} does not compute run {index} as its own model "
                                 f"does (max difference {error:.3g}): its layers mix the runs' channels")
    for module, mode in zip((packed, *models), modes):
        module.train(mode)


def unpack_state(packed: nn.Module, template: nn.Module, k: int, index: int) -> dict[str, torch.Tensor]:
    """Run `index`'s state_dict (in `template`'s layout) out of a model packed from k copies."""
    state = {}
    packed_state = packed.state_dict()
    for name, value in template.state_dict().items():
        whole = packed_state[name]
        if name.endswith("num_batches_tracked"):
            state[name] = whole.clone()
        elif whole.dim() > 0 and whole.shape[0] == k and whole.shape[1:] == value.shape:  # GroupedLinear
            state[name] = whole[index].clone()
        else:  # concatenated along dim 0 (convolutions, batch norms)
            size = value.shape[0]
            state[name] = whole[index * size : (index + 1) * size].clone()
    return state


@dataclass
class PackMember:
    """One run of a pack: its training data (already on the device) and random streams."""

    x: torch.Tensor
    y: torch.Tensor
    policy: object
    batch_gen: torch.Generator
    augment_gen: torch.Generator


def train_packed(models: list[nn.Module], members: list[PackMember], cfg: dict,
                 checkpointer: Checkpointer | None = None) -> list[TrainResult]:
    """Train K same-architecture models together; each ends in its own TrainResult and its own
    model (the `models` are updated in place from the packed weights).

    With a `checkpointer`, the whole pack checkpoints as one (model, optimizer, schedule, every
    member's generators and batch order, the loss accumulators, the histories), resumes from it,
    and on a stop request saves it and raises `Preempted`, as the one-run loop does.
    """
    k = len(models)
    device = members[0].x.device
    steps, log_every = cfg["steps"], cfg["log_every"]
    packed = pack_modules(models).to(device)
    check_packed(packed, models, [m.x[:4].float() for m in members])
    layout = fast_path(packed, members[0].x, cfg)
    optimizer = make_optimizer(packed, cfg, device)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: warmup_cosine(s, cfg["warmup_steps"], steps))
    loss_fn = nn.CrossEntropyLoss(label_smoothing=cfg["label_smoothing"], reduction="none")
    streams = [BatchStream(len(m.y), cfg["batch_size"], m.batch_gen, device) for m in members]
    use_amp = device.type == "cuda"
    state = {
        "step": 0,
        "histories": [[] for _ in range(k)],
        "loss_sum": torch.zeros(k, device=device),
        "correct_sum": torch.zeros(k, device=device),
        "interval_steps": 0,
        "diverged_at": [None] * k,
        "compute_seconds": 0.0,  # training-loop time of earlier starts of this pack
    }

    gens = [m.batch_gen for m in members] + [m.augment_gen for m in members]
    resumable = (packed, optimizer, schedule, gens, streams)

    def snapshot() -> dict:
        return resume_point(state, state["compute_seconds"] + time.perf_counter() - start, *resumable)

    saved = checkpointer.load() if checkpointer else None
    if saved:
        restore_resume_point(saved, state, *resumable)
    resumed_from_step = state["step"]
    histories, diverged_at = state["histories"], state["diverged_at"]

    packed.train()
    start = time.perf_counter()
    for step in range(state["step"] + 1, steps + 1):
        batches, labels = [], []
        for member, stream in zip(members, streams):
            idx = stream.next()
            batches.append(member.policy(member.x[idx], member.augment_gen))
            labels.append(member.y[idx])
        xb = layout(torch.cat(batches, dim=1))  # channel block k = run k's batch
        yb = torch.stack(labels, dim=1)  # (B, K)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
            logits = packed(xb)
        logits = logits.float().view(len(yb), k, -1)
        losses = loss_fn(logits.reshape(-1, logits.shape[-1]), yb.reshape(-1)).view(len(yb), k).mean(0)  # (K,)
        optimizer.zero_grad(set_to_none=True)
        losses.sum().backward()  # disjoint parameters: each run gets exactly its own gradient
        optimizer.step()
        lr = schedule.get_last_lr()[0]
        schedule.step()

        state["step"] = step
        state["loss_sum"] += losses.detach()
        state["correct_sum"] += (logits.detach().argmax(-1) == yb).sum(0)
        state["interval_steps"] += 1
        if step % log_every == 0 or step == steps:
            mean_loss = (state["loss_sum"] / state["interval_steps"]).tolist()  # the only host sync
            accuracy = (state["correct_sum"] / (state["interval_steps"] * len(yb))).tolist()
            elapsed = state["compute_seconds"] + time.perf_counter() - start
            for i in range(k):
                if diverged_at[i] is None:
                    histories[i].append({"step": step, "loss": mean_loss[i], "accuracy": accuracy[i],
                                         "lr": lr, "elapsed_seconds": elapsed})
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
    for i, model in enumerate(models):
        model.load_state_dict(unpack_state(packed, model, k, i))
        history = histories[i]
        status = "ok" if diverged_at[i] is None else "diverged"
        final_loss = history[-1]["loss"] if history else math.nan
        # Each run is charged its share of the pack's compute.
        results.append(TrainResult(status, history[-1]["step"], final_loss, compute_seconds / k, resumed_from_step,
                                   history))
    return results
