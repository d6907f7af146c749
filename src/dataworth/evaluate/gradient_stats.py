"""Gradient statistics of a trained run on its own (augmented) training distribution (Geiping et
al. 2022, section 5.2; definitions as their code, JonasGeiping/dataaugs `dataaug/analysis/`).

`batches` batch gradients g_1..g_m of the mean cross-entropy, each on `batch_size` samples (the
run's training batch size) drawn from the run's training subset and augmented by the run's own
policy with fresh draws, the network in training mode (batch statistics, as in training):

- SNR = ‖mean_i g_i‖ / ‖std_i g_i‖ (std per coordinate, ddof 1): infinite for a constant gradient,
  about 1/√m for pure noise;
- B_simple, the simple gradient noise scale (McCandlish et al. 2018) tr(Σ)/‖G‖², by the paper's
  two-batch-size estimator with B_small = batch size and B_big = m·batch size (the samples drawn):
  S = (E‖g_i‖² − ‖ḡ‖²)/(1/B_small − 1/B_big), ‖G‖² = (B_big‖ḡ‖² − B_small E‖g_i‖²)/(B_big − B_small),
  B_simple = S/‖G‖²; this equals the unbiased estimates tr(Σ) = B·Σ_j var_j, ‖G‖² = ‖ḡ‖² − tr(Σ)/(mB);
- the distribution of ‖g_i‖ (mean, std, 10/50/90% quantiles);
- cosine similarity of gradient pairs: batch level, every pair of the m batch gradients; image
  level, every pair of the per-sample gradients of `image_samples` augmented samples (eval mode,
  as the paper: a single sample has no batch statistics).

The paper's config also scales each gradient tensor to its parameter's norm before the SNR
(`normalize_in_SNR_computations`); `filter_normalize: true` does that, which makes every batch
gradient's norm the weights' norm (so the norm distribution says nothing then).
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

QUANTILES = (0.1, 0.5, 0.9)


def snr(grads: torch.Tensor) -> float:
    """‖mean‖ / ‖std (ddof 1)‖ of (m, P) gradients: inf for identical nonzero gradients."""
    mean_norm = float(grads.double().mean(0).norm())
    std_norm = float(grads.double().std(0, unbiased=True).norm())
    if std_norm == 0:
        return math.inf if mean_norm > 0 else math.nan
    return mean_norm / std_norm


def noise_scale(grads: torch.Tensor, b_small: int, b_big: int) -> float:
    """B_simple from (m, P) batch gradients of `b_small` samples each, `b_big` samples in all."""
    g = grads.double()
    g_small = float(g.pow(2).sum(1).mean())  # E‖g_i‖²
    g_big = float(g.mean(0).pow(2).sum())  # ‖ḡ‖²
    trace = (g_small - g_big) / (1 / b_small - 1 / b_big)
    signal = (b_big * g_big - b_small * g_small) / (b_big - b_small)
    return trace / signal if signal != 0 else math.nan


def pair_cosines(vectors: torch.Tensor) -> tuple[float, float, int]:
    """Mean and std (ddof 0, as np.std) of the cosine similarity of every pair of rows, and the pairs."""
    unit = torch.nn.functional.normalize(vectors.double(), dim=1)
    i, j = torch.triu_indices(len(unit), len(unit), offset=1)
    cos = (unit[i] * unit[j]).sum(1)
    if len(cos) == 0:
        return math.nan, math.nan, 0
    return float(cos.mean()), float(cos.std(unbiased=False)), len(cos)


def norm_distribution(grads: torch.Tensor) -> dict:
    norms = grads.double().norm(dim=1).cpu().numpy()
    out = {"gradient_norm_mean": float(norms.mean()), "gradient_norm_std": float(norms.std(ddof=1)) if len(norms) > 1 else math.nan}
    for q in QUANTILES:
        out[f"gradient_norm_q{int(q * 100)}"] = float(np.quantile(norms, q))
    return out


def _flat(grads, params, filter_normalize: bool) -> torch.Tensor:
    if filter_normalize:  # the paper's normalize_direction(grads, weights, "filter") on the list
        grads = [g * (w.norm() / (g.norm() + 1e-10)) for g, w in zip(grads, params)]
    return torch.cat([g.reshape(-1) for g in grads]).detach()


def batch_gradients(network: nn.Module, x: torch.Tensor, y: torch.Tensor, augment, batches: int, batch_size: int,
                    gen: torch.Generator, filter_normalize: bool) -> torch.Tensor:
    """(batches, P): gradients of the mean cross-entropy of augmented batches, training mode."""
    params = [p for p in network.parameters() if p.requires_grad]
    network.train()
    out = []
    for _ in range(batches):
        idx = torch.randperm(len(x), generator=gen, device=x.device)[:batch_size]
        loss = torch.nn.functional.cross_entropy(network(augment(x[idx], gen)), y[idx])
        out.append(_flat(torch.autograd.grad(loss, params), params, filter_normalize))
    network.eval()
    return torch.stack(out)


def per_sample_gradients(network: nn.Module, inputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """(N, P): the gradient of each sample's cross-entropy (eval mode), by torch.func."""
    from torch.func import functional_call, grad, vmap

    network.eval()
    params = {k: v.detach() for k, v in network.named_parameters() if v.requires_grad}
    buffers = dict(network.named_buffers())

    def loss(p, x, y):
        logits = functional_call(network, (p, buffers), (x.unsqueeze(0),))
        return torch.nn.functional.cross_entropy(logits, y.unsqueeze(0))

    grads = vmap(grad(loss), in_dims=(None, 0, 0))(params, inputs, labels)
    return torch.cat([grads[k].reshape(len(inputs), -1) for k in params], 1)


def gradient_stats_run(run_dir, data_path: str | Path, eval_cfg: dict | None = None, threads: int = 1) -> dict:
    from dataworth.evaluate.mechanism_common import generator, load_finished
    from dataworth.tracking.schemas import GRADIENT_STATS, write_parquet

    start = time.perf_counter()
    run, finished = load_finished(run_dir, data_path, threads)
    cfg = (eval_cfg or run["eval"])["gradient_stats"]
    names = [n for n in GRADIENT_STATS.names if n not in ("run_id", "gradient_stats_seconds")]
    row = {"run_id": run["run_id"], **dict.fromkeys(names, np.nan)}
    row.update(gradient_batches=None, gradient_batch_size=None, gradient_cosine_image_pairs=None,
               gradient_cosine_batch_pairs=None)
    if finished:
        x, y = finished.training_subset()
        augment = finished.augmenter(run["augmentation"]["ops"])
        batch_size = min(run["train"]["batch_size"], len(x))
        network = finished.network
        gen = generator(finished.device)
        # Image level first: the batch gradients below run in training mode, which moves BatchNorm's
        # running statistics that eval mode uses.
        idx = torch.randperm(len(x), generator=gen, device=x.device)[:cfg["image_samples"]]
        samples = per_sample_gradients(network, augment(x[idx], gen), y[idx])
        row["gradient_cosine_image_mean"], row["gradient_cosine_image_std"], row["gradient_cosine_image_pairs"] = \
            pair_cosines(samples)
        del samples
        grads = batch_gradients(network, x, y, augment, cfg["batches"], batch_size, gen, cfg["filter_normalize"])
        row.update(gradient_batches=len(grads), gradient_batch_size=batch_size, gradient_snr=snr(grads),
                   gradient_noise_scale=noise_scale(grads, batch_size, len(grads) * batch_size),
                   **norm_distribution(grads))
        row["gradient_cosine_batch_mean"], row["gradient_cosine_batch_std"], row["gradient_cosine_batch_pairs"] = \
            pair_cosines(grads)
    row["gradient_stats_seconds"] = time.perf_counter() - start
    write_parquet(pd.DataFrame([row]), GRADIENT_STATS, run_dir.output("gradient_stats"))
    return row
