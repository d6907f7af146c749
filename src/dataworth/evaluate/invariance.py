"""Invariance of a trained run to augmentations (Geiping et al. 2022, section 5.1): how much do its
predictions and features change between a test image and its augmented views?

For each non-empty policy of the study, and for each op of it alone, `views` augmented draws of
a fixed sample of test images (the same draws for every run: a fixed seed per transformation):

- agreement: the share of (image, view) pairs whose predicted class equals the clean image's
  (runs with a classifier head; null for self-supervised runs);
- cosine: the mean cosine similarity of the encoder features of the view and of the clean image.

Ops are applied as the policy configures them (their probability p included). The run's own
policy is the row of metrics.parquet (`invariance_agreement`, `invariance_cosine`; null for
runs without augmentation); every (policy, transformation) is in invariance_ops.parquet, so an
unaugmented run's invariance to each policy is there to compare with.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

WHOLE = "all"  # the transformation name of a whole policy in invariance_ops.parquet


def agreement(clean_logits: torch.Tensor, view_logits: torch.Tensor) -> float:
    """Share of views whose argmax equals the clean input's: (N, C) and (V, N, C)."""
    return float((view_logits.argmax(-1) == clean_logits.argmax(-1)).float().mean())


def mean_cosine(clean_features: torch.Tensor, view_features: torch.Tensor) -> float:
    """Mean cosine similarity between each view's features and its clean input's: (N, D), (V, N, D).
    A zero feature vector has cosine 0 with anything (torch's eps convention)."""
    return float(torch.nn.functional.cosine_similarity(view_features, clean_features.unsqueeze(0), dim=-1).mean())


def transformations(policies: dict[str, list[dict]]) -> list[tuple[str, str, list[dict]]]:
    """(policy, transformation, ops): each non-empty policy whole, then each of its ops alone."""
    out = []
    for name, ops in policies.items():
        if not ops:
            continue
        out.append((name, WHOLE, ops))
        if len(ops) > 1:
            out += [(name, f"{i}:{op['op']}", [op]) for i, op in enumerate(ops)]
    return out


@torch.no_grad()
def invariance_of(network, features_only: bool, x_stored: torch.Tensor, to_input, augment, views: int,
                  gen: torch.Generator, batch_size: int) -> tuple[float, float]:
    """(agreement, cosine) of `network` between stored samples and `views` augmented draws each."""
    # A classifier's logits are its head on its features (models.base.Classifier): one forward pass gives both.
    head = None if features_only else network.head
    logits_clean, features_clean, logits_views, features_views = [], [], [], []
    for start in range(0, len(x_stored), batch_size):
        part = x_stored[start:start + batch_size]
        features = network.features(to_input(part))
        features_clean.append(features.float())
        if head is not None:
            logits_clean.append(head(features).float())
        fv, lv = [], []
        for _ in range(views):
            features = network.features(augment(part, gen))
            fv.append(features.float())
            if head is not None:
                lv.append(head(features).float())
        features_views.append(torch.stack(fv))
        if not features_only:
            logits_views.append(torch.stack(lv))
    cosine = mean_cosine(torch.cat(features_clean), torch.cat(features_views, 1))
    agree = np.nan if features_only else agreement(torch.cat(logits_clean), torch.cat(logits_views, 1))
    return agree, cosine


def invariance_run(run_dir, data_path: str | Path, eval_cfg: dict | None = None, threads: int = 1) -> dict:
    """Invariance of the run to every policy of its study; writes invariance_ops.parquet and
    invariance.parquet (the run's own policy)."""
    from dataworth.evaluate.mechanism_common import fixed_points, generator, load_finished, study_policies
    from dataworth.methods import method_of
    from dataworth.tracking.schemas import INVARIANCE, INVARIANCE_OPS, write_parquet

    start = time.perf_counter()
    run, finished = load_finished(run_dir, data_path, threads)
    eval_cfg = eval_cfg or run["eval"]
    cfg = eval_cfg["invariance"]
    own = run["augmentation"]["name"] if run["augmentation"]["ops"] else None
    row = {"run_id": run["run_id"], "invariance_policy": own, "invariance_samples": None,
           "invariance_views": cfg["views"], "invariance_agreement": np.nan, "invariance_cosine": np.nan}
    rows = []
    if finished:
        test = finished.data.x["test"]
        x = test[torch.as_tensor(fixed_points(cfg["samples"], len(test)), device=test.device)]
        features_only = not method_of(run).uses_labels
        row["invariance_samples"] = len(x)
        for i, (policy, name, ops) in enumerate(transformations(study_policies(run_dir))):
            agree, cosine = invariance_of(finished.network, features_only, x, finished.network_input,
                                          finished.augmenter(ops), cfg["views"], generator(finished.device, i),
                                          eval_cfg["batch_size"])
            rows.append({"run_id": run["run_id"], "policy": policy, "transformation": name, "agreement": agree,
                         "cosine": cosine})
            if policy == own and name == WHOLE:
                row.update(invariance_agreement=agree, invariance_cosine=cosine)
    write_parquet(pd.DataFrame(rows, columns=INVARIANCE_OPS.names), INVARIANCE_OPS, run_dir.file("invariance_ops.parquet"))
    row["invariance_seconds"] = time.perf_counter() - start
    write_parquet(pd.DataFrame([row]), INVARIANCE, run_dir.output("invariance"))
    return row
