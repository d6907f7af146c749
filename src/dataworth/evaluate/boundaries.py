"""Local complexity (Humayun, Balestriero and Baraniuk 2024, "Deep networks always grok"): how
many neuron boundaries cross a small neighbourhood of an input.

A ReLU neuron's boundary is where its pre-activation changes sign. The neighbourhood of a point
x is the cross-polytope of radius r spanned by P random orthonormal directions v_1..v_P: its
vertices x ± r·v_p. A neuron counts as crossing the neighbourhood when its pre-activation is
positive at some of {x, vertices} and not positive at others. For a first-layer neuron (affine
in the input) that is exact: an affine function's extremes over a convex hull lie at its
vertices, so the sign changes iff the hyperplane cuts the hull. Deeper layers are piecewise
affine in the input; the vertex test is the paper's approximation. The local complexity of x is
the number of crossing neurons, per layer (each call of a ReLU module, in forward order) and in
total; the stage reports the mean over a fixed sample of test points and of the run's training
points. A linear network has none. Conv layers count every (channel, position) unit.

`eval.local_complexity`: radius (in network-input units: standardised signals, or normalised
pixels), directions P, points per split. `train.log_local_complexity_every` adds the same
measurement to history.parquet during training (grokking-style curves; `history_logger`).

This module is the measurement; local_complexity.py is the stage. Training imports this one, so
it imports nothing of dataworth but the fixed draws.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from dataworth.evaluate.draws import fixed_points, generator

SPLITS = ("test", "train")


def relu_crossings(fn, modules: nn.Module, x: torch.Tensor, group: int) -> list[tuple[str, int, torch.Tensor]]:
    """`fn(x)` run with a hook on every nn.ReLU of `modules`; `x` holds consecutive groups of
    `group` inputs (a point and its vertices). For each ReLU call, in forward order: its name (the
    module's, plus `#k` for its k-th call when it is called again, as a ResNet block's shared ReLU
    is), its units, and per group the units whose input is positive at some members and not at
    others. Reduced inside the hook, so only one layer's activations are held at a time."""
    found: list[tuple[str, int, torch.Tensor]] = []
    calls: dict[str, int] = {}
    handles = []
    for name, module in modules.named_modules():
        if isinstance(module, nn.ReLU):
            def hook(module, inputs, name=name):
                k = calls.get(name, 0)
                calls[name] = k + 1
                positive = (inputs[0].detach() > 0).reshape(len(inputs[0]) // group, group, -1)
                found.append((name if k == 0 else f"{name}#{k}", positive.shape[2],
                              (positive.any(1) & ~positive.all(1)).sum(1)))
            handles.append(module.register_forward_pre_hook(hook))
    try:
        fn(x)
    finally:
        for handle in handles:
            handle.remove()
    return found


def orthonormal_directions(n: int, dims: int, directions: int, gen: torch.Generator, device) -> torch.Tensor:
    """(n, directions, dims): per point, `directions` random orthonormal vectors (QR of a Gaussian)."""
    if directions > dims:
        raise ValueError(f"{directions} orthonormal directions do not exist in {dims} input dimensions; "
                         f"allowed: 1..{dims}")
    gaussian = torch.randn(n, dims, directions, generator=gen, device=device)
    q, _ = torch.linalg.qr(gaussian)  # (n, dims, directions), orthonormal columns
    return q.transpose(1, 2)


@torch.no_grad()
def crossings(fn, modules: nn.Module, x: torch.Tensor, radius: float, directions: int, gen: torch.Generator,
              inputs_per_pass: int = 512) -> tuple[list[str], list[int], np.ndarray]:
    """Boundary crossings of each point of `x` (network input), per layer.

    Returns the layer names, their units (neurons) and an (N, layers) array of counts. `fn` is
    the network (or its feature extractor) to run, `modules` where its ReLUs are. Points go
    through in chunks of about `inputs_per_pass` network inputs (each point is 2P + 1)."""
    n, sample_shape = len(x), x.shape[1:]
    dims = int(np.prod(sample_shape))
    group = 2 * directions + 1
    names: list[str] = []
    units: list[int] = []
    counts = []
    for start in range(0, n, max(1, inputs_per_pass // group)):
        part = x[start:start + max(1, inputs_per_pass // group)].float()
        m = len(part)
        v = orthonormal_directions(m, dims, directions, gen, x.device).view(m, directions, *sample_shape)
        vertices = torch.cat([part.unsqueeze(1), part.unsqueeze(1) + radius * v, part.unsqueeze(1) - radius * v], 1)
        layers = relu_crossings(fn, modules, vertices.reshape(m * group, *sample_shape), group)
        names, units = [name for name, _, _ in layers], [unit for _, unit, _ in layers]
        counts.append(torch.stack([c for _, _, c in layers], 1) if layers else torch.zeros(m, 0, dtype=torch.long))
    return names, units, torch.cat(counts).cpu().numpy()


def measure(network: nn.Module, inputs: dict[str, torch.Tensor], cfg: dict, device) -> dict:
    """Mean crossings per point of each split's points (network input), with the per-layer means:
    {split: (names, units, mean counts per layer)}. The network is in eval mode for it."""
    was_training = network.training
    network.eval()
    try:
        out = {}
        for i, (split, x) in enumerate(inputs.items()):
            names, units, counts = crossings(network.features, network, x, cfg["radius"], cfg["directions"],
                                             generator(device, offset=i))
            out[split] = (names, units, counts.mean(0) if len(counts) else np.zeros(len(names)))
        return out
    finally:
        network.train(was_training)


def split_inputs(data, x_train: torch.Tensor, y_train, points) -> dict[str, torch.Tensor]:
    """The network inputs of the fixed test points and of the first training points, `points` each."""
    test = data.x["test"]
    return {"test": data.eval_input(test[torch.as_tensor(fixed_points(points, len(test)), device=test.device)]),
            "train": data.eval_input(x_train[torch.as_tensor(fixed_points(points, len(x_train)), device=x_train.device)])}


def history_logger(run: dict, network: nn.Module, data, x_train: torch.Tensor):
    """The per-log callback of training that adds local complexity to history.parquet every
    `train.log_local_complexity_every` steps (None when unset). Every row gets the columns
    (null between measurements). It draws from its own generators and runs the network in eval
    mode without gradients, so training is exactly what it would be without it."""
    every = run["train"].get("log_local_complexity_every") or 0
    if not every:
        return None
    cfg = run["eval"]["local_complexity"]
    inputs = split_inputs(data, x_train, None, cfg["points"])

    def log(row: dict) -> None:
        due = row["step"] % every == 0
        measured = measure(network, inputs, cfg, x_train.device) if due else {}
        for split in SPLITS:
            row[f"local_complexity_{split}"] = float(np.sum(measured[split][2])) if due else None

    return log
