"""Packed training: K runs of the same architecture and recipe trained together as one model.

This is a model transform: `PackedSupervised` is the objective of K supervised runs packed into
one grouped model, returning one loss per run; the one training loop (loop.py) trains it like
any objective.

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

import torch
from torch import nn

from dataworth.train.checkpoint import Checkpointer
from dataworth.train.loop import Member, TrainResult, train
from dataworth.train.objectives import Objective


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


class PackedSupervised(Objective):
    """The cross-entropy of K supervised runs packed into one grouped model: one loss per run."""

    uses_labels = True

    def __init__(self, models: list[nn.Module], label_smoothing: float, samples: list[torch.Tensor]):
        super().__init__()
        self.k = len(models)
        self.network = pack_modules(models).to(samples[0].device)
        check_packed(self.network, models, [x[:4].float() for x in samples])
        self.cross_entropy = nn.CrossEntropyLoss(label_smoothing=label_smoothing, reduction="none")

    def losses(self, batches, layout, amp):
        xb = layout(torch.cat([policy(x, gen) for x, _, policy, gen in batches], dim=1))  # channel block k = run k
        yb = torch.stack([y for _, y, _, _ in batches], dim=1)  # (B, K)
        with torch.autocast(xb.device.type, dtype=torch.bfloat16, enabled=amp):
            logits = self.network(xb)
        logits = logits.float().view(len(yb), self.k, -1)
        losses = self.cross_entropy(logits.reshape(-1, logits.shape[-1]), yb.reshape(-1)).view(len(yb), self.k)
        return losses.mean(0), (logits.detach().argmax(-1) == yb).sum(0)

    def unpack_into(self, models: list[nn.Module]) -> None:
        """Each run's trained weights into its own model (in that model's layout)."""
        for index, model in enumerate(models):
            model.load_state_dict(unpack_state(self.network, model, self.k, index))


def train_packed(models: list[nn.Module], members: list[Member], cfg: dict,
                 checkpointer: Checkpointer | None = None, on_log=None, evaluate=None) -> list[TrainResult]:
    """Train K same-architecture classifiers together (the loop's `train` on `PackedSupervised`);
    each ends in its own TrainResult, and the `models` are updated in place from the packed weights.

    With a `checkpointer`, the whole pack checkpoints as one and resumes from it. `on_log` and
    `evaluate` are the loop's (per-run rows; held-out curves of every run in one forward).
    """
    objective = PackedSupervised(models, cfg["label_smoothing"], [m.x for m in members])
    results = train(objective, members, cfg, checkpointer, on_log=on_log, evaluate=evaluate)
    objective.unpack_into(models)
    return results
