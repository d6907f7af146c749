"""Flatness of a trained run's minimum (Geiping et al. 2022, section 5.3).

- Empirical flatness (the paper's `perturb2threshold`, JonasGeiping/dataaugs
  `dataaug/analysis/rollouts.py`; step 0.1 and threshold 1.0 in their `config/analysis/full.yaml`):
  a random direction d in weight space, filter-normalised (Li et al. 2018: each filter, a row
  along the first axis of a weight tensor, scaled to the norm of the trained filter; biases and
  BatchNorm parameters, tensors of one axis, get no perturbation), and the weights moved along it
  in steps of `step_size`·d until the loss has risen by `threshold`; the distance is
  ‖d‖·step_size·k for the first such step k. Larger is flatter. The mean over `directions`
  directions is reported. Deviations from their code, on purpose: the rise is measured from the
  trained loss (theirs compares the loss itself with the threshold: the same for a loss near 0),
  k counts the step where the loss first crosses (theirs one more), and a direction that has not
  crossed after `max_steps` steps counts with max_steps (a lower bound; `flatness_unreached`).
- The Hessian trace by Hutchinson's estimator: tr(H) = E[vᵀHv] over Rademacher v, with
  Hessian-vector products (double backward); its standard error over the `probes` draws.

Both on the cross-entropy (mean over samples) of the run's un-augmented training subset (its first
`samples`), the network in eval mode, as the paper's analysis.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import pandas as pd
import torch
from torch import nn


def filter_normalized_direction(params: list[torch.Tensor], gen: torch.Generator) -> list[torch.Tensor]:
    """A Gaussian direction, each filter scaled to its weight filter's norm; 1-axis tensors zero."""
    direction = []
    for w in params:
        d = torch.randn(w.shape, generator=gen, device=w.device, dtype=w.dtype)
        if w.dim() <= 1:
            d.zero_()
        else:
            rows, w_rows = d.view(len(d), -1), w.detach().view(len(w), -1)
            rows.mul_(w_rows.norm(dim=1, keepdim=True) / (rows.norm(dim=1, keepdim=True) + 1e-10))
        direction.append(d)
    return direction


@torch.no_grad()
def distance_to_threshold(loss: Callable[[], float], params: list[torch.Tensor], direction: list[torch.Tensor],
                          step_size: float, threshold: float, max_steps: int) -> tuple[float, bool]:
    """(‖d‖·step_size·k, reached) for the first k with loss(w + k·step_size·d) ≥ loss(w) + threshold;
    k = max_steps and reached False if none. `params` are restored."""
    saved = [p.detach().clone() for p in params]
    norm = float(torch.sqrt(sum((d.double() ** 2).sum() for d in direction)))
    base = loss()
    reached, k = False, max_steps
    try:
        for step in range(1, max_steps + 1):
            for p, w, d in zip(params, saved, direction):
                p.copy_(w + (step * step_size) * d)
            if loss() - base >= threshold:
                reached, k = True, step
                break
    finally:
        for p, w in zip(params, saved):
            p.copy_(w)
    return norm * step_size * k, reached


def hutchinson_trace(chunk_losses: Callable[[], Iterable[torch.Tensor]], params: list[torch.Tensor], probes: int,
                     gen: torch.Generator) -> tuple[float, float]:
    """(mean, standard error) of vᵀHv over `probes` Rademacher vectors v, H the Hessian of the sum
    of the losses `chunk_losses()` yields (each a part of the loss, e.g. a chunk's share of a mean:
    chunked, so memory holds one chunk's graph)."""
    estimates = []
    for _ in range(probes):
        v = [torch.randint(0, 2, p.shape, generator=gen, device=p.device).to(p.dtype) * 2 - 1 for p in params]
        total = 0.0
        for part in chunk_losses():
            g = torch.autograd.grad(part, params, create_graph=True)
            hv = torch.autograd.grad(sum((gi * vi).sum() for gi, vi in zip(g, v)), params)
            total += float(sum((hvi * vi).sum() for hvi, vi in zip(hv, v)))
        estimates.append(total)
    values = np.array(estimates)
    stderr = float(values.std(ddof=1) / math.sqrt(len(values))) if len(values) > 1 else math.nan
    return float(values.mean()), stderr


def flatness_run(run_dir, data_path: str | Path, eval_cfg: dict | None = None, threads: int = 1) -> dict:
    from dataworth.evaluate.mechanism_common import generator, load_finished
    from dataworth.tracking.schemas import FLATNESS, write_parquet

    start = time.perf_counter()
    run, finished = load_finished(run_dir, data_path, threads)
    eval_cfg = eval_cfg or run["eval"]
    cfg = eval_cfg["flatness"]
    row = {"run_id": run["run_id"], "flatness_samples": None, "flatness_directions": cfg["directions"],
           "flatness_step_size": cfg["step_size"], "flatness_threshold": cfg["threshold"], "flatness_loss": np.nan,
           "flatness_distance": np.nan, "flatness_distance_std": np.nan, "flatness_unreached": None,
           "hessian_trace": np.nan, "hessian_trace_stderr": np.nan, "hessian_probes": cfg["hessian_probes"]}
    if finished:
        network = finished.network.eval()
        x, y = finished.training_subset()
        if cfg["samples"] != "full":
            x, y = x[:cfg["samples"]], y[:cfg["samples"]]
        inputs = finished.network_input(x)
        chunk = eval_cfg["batch_size"]
        params = [p for p in network.parameters() if p.requires_grad]

        def chunk_losses():
            for s in range(0, len(inputs), chunk):
                yield torch.nn.functional.cross_entropy(network(inputs[s:s + chunk]), y[s:s + chunk],
                                                        reduction="sum") / len(inputs)

        def loss() -> float:
            with torch.no_grad():
                return float(sum(chunk_losses()))

        gen = generator(finished.device)
        found = [distance_to_threshold(loss, params, filter_normalized_direction(params, gen), cfg["step_size"],
                                       cfg["threshold"], cfg["max_steps"]) for _ in range(cfg["directions"])]
        distances = np.array([d for d, _ in found])
        row.update(flatness_samples=len(inputs), flatness_loss=loss(), flatness_distance=float(distances.mean()),
                   flatness_distance_std=float(distances.std(ddof=1)) if len(distances) > 1 else np.nan,
                   flatness_unreached=sum(not reached for _, reached in found))
        if cfg["hessian_probes"]:
            row["hessian_trace"], row["hessian_trace_stderr"] = hutchinson_trace(
                chunk_losses, params, cfg["hessian_probes"], generator(finished.device, offset=1))
    row["flatness_seconds"] = time.perf_counter() - start
    write_parquet(pd.DataFrame([row]), FLATNESS, run_dir.output("flatness"))
    return row
