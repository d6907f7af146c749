"""Evaluate a trained run's representation; each function writes its own Parquet in the run dir.

    probe_run   -> probe.parquet   linear probe on frozen encoder features     (schema PROBE)
    knn_run     -> knn.parquet     k-NN accuracy on frozen encoder features     (schema KNN)
    rankme_run  -> rankme.parquet  RankMe of encoder features and projector outputs (schema RANKME)

Each reads only model.pt (and training.parquet for the status), so a new probe or metric never
retrains an encoder, and each is its own Snakemake rule with its own settings as params.
The labeled set of the probe and the k-NN bank is `eval.labeled`: the whole training pool
(`full`) or the run's nested, class-stratified subset of that size (the first samples of the
pool order its seed fixes, so with n_train >= labeled they are among the pretraining samples).
Runs that did not finish ok get null metrics (and null sample counts).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from dataworth.data import Dataset, load_dataset, nested_subset
from dataworth.evaluate.features import embed, has_projector, load_network
from dataworth.evaluate.knn import knn_accuracy
from dataworth.evaluate.probe import probe_loss_and_accuracy, train_linear_probe
from dataworth.evaluate.rankme import rankme
from dataworth.runs import RunDir
from dataworth.tracking.schemas import KNN, PROBE, RANKME, TRAINING, read_parquet, write_parquet
from dataworth.train.run import resolve_device

# Fixes the RankMe sample of a study: the same inputs for every run, whatever its seed.
RANKME_SAMPLE_SEED = 0


@dataclass
class Trained:
    """What every evaluation of a finished run starts from."""

    data: Dataset
    network: torch.nn.Module


def _trained(run_dir: RunDir, data_path, threads: int) -> tuple[dict, Trained | None]:
    """The run's config, and its data and network if it finished ok (else None: null metrics)."""
    torch.set_num_threads(threads)
    run = run_dir.read_config()
    status = read_parquet(run_dir.training, TRAINING)["status"].iloc[0]
    if status != "ok":
        return run, None
    device = resolve_device(run["train"]["device"])
    data = load_dataset(data_path, device)
    network = load_network(run, data.sample_shape, data.num_classes, run_dir.model, device)
    network = data.for_evaluation(network)  # pixel datasets: normalised per batch (issue 16)
    return run, Trained(data, network)


def labeled_indices(labels: torch.Tensor, labeled, seed: int) -> torch.Tensor:
    """Indices into the training pool of the labeled set `eval.labeled` (full or a size)."""
    if labeled == "full":
        return torch.arange(len(labels), device=labels.device)
    return torch.as_tensor(nested_subset(labels.cpu().numpy(), labeled, seed), device=labels.device)


def rankme_indices(pool_size: int, samples) -> np.ndarray:
    """The study's fixed RankMe sample of the training pool (label-free: a seeded permutation)."""
    if samples == "full":
        return np.arange(pool_size)
    return np.random.default_rng(RANKME_SAMPLE_SEED).permutation(pool_size)[:samples]


def probe_run(run_dir: RunDir, data_path: str | Path, eval_cfg: dict | None = None, threads: int = 1) -> dict:
    start = time.perf_counter()
    run, trained = _trained(run_dir, data_path, threads)
    cfg = eval_cfg or run["eval"]
    row = {"run_id": run["run_id"], "probe_labeled": None, "probe_train_loss": np.nan,
           "probe_test_accuracy": np.nan, "probe_ood_accuracy": np.nan}
    if trained:
        data, features = trained.data, trained.network.features
        labeled = labeled_indices(data.y["train"], cfg["labeled"], run["seed"])
        train_features = embed(features, data.x["train"][labeled], cfg["batch_size"])
        train_labels = data.y["train"][labeled]
        gen = torch.Generator(device=train_features.device).manual_seed(run["seed"])
        probe = train_linear_probe(train_features, train_labels, data.num_classes, cfg["probe"], gen)
        row["probe_labeled"] = len(labeled)
        row["probe_train_loss"] = probe_loss_and_accuracy(probe, train_features, train_labels)[0]
        for split in ("test", "ood"):
            split_features = embed(features, data.x[split], cfg["batch_size"])
            row[f"probe_{split}_accuracy"] = probe_loss_and_accuracy(probe, split_features, data.y[split])[1]
    row["probe_seconds"] = time.perf_counter() - start
    write_parquet(pd.DataFrame([row]), PROBE, run_dir.output("probe"))
    return row


def knn_run(run_dir: RunDir, data_path: str | Path, eval_cfg: dict | None = None, threads: int = 1) -> dict:
    start = time.perf_counter()
    run, trained = _trained(run_dir, data_path, threads)
    cfg = eval_cfg or run["eval"]
    k = cfg["knn"]["k"]
    row = {"run_id": run["run_id"], "knn_k": k, "knn_labeled": None,
           "knn_test_accuracy": np.nan, "knn_ood_accuracy": np.nan}
    if trained:
        data, features = trained.data, trained.network.features
        labeled = labeled_indices(data.y["train"], cfg["labeled"], run["seed"])
        bank = embed(features, data.x["train"][labeled], cfg["batch_size"])
        row["knn_labeled"] = len(labeled)
        for split in ("test", "ood"):
            queries = embed(features, data.x[split], cfg["batch_size"])
            row[f"knn_{split}_accuracy"] = knn_accuracy(bank, data.y["train"][labeled], queries, data.y[split], k,
                                                        data.num_classes, cfg["batch_size"])
    row["knn_seconds"] = time.perf_counter() - start
    write_parquet(pd.DataFrame([row]), KNN, run_dir.output("knn"))
    return row


def rankme_run(run_dir: RunDir, data_path: str | Path, eval_cfg: dict | None = None, threads: int = 1) -> dict:
    start = time.perf_counter()
    run, trained = _trained(run_dir, data_path, threads)
    cfg = eval_cfg or run["eval"]
    row = {"run_id": run["run_id"], "rankme_samples": None, "rankme_encoder": np.nan, "rankme_projector": np.nan}
    if trained:
        x = trained.data.x["train"]
        sample = torch.as_tensor(rankme_indices(len(x), cfg["rankme"]["samples"]), device=x.device)
        row["rankme_samples"] = len(sample)
        row["rankme_encoder"] = rankme(embed(trained.network.features, x[sample], cfg["batch_size"]))
        if has_projector(run):  # supervised runs have none: their projector RankMe stays null
            row["rankme_projector"] = rankme(embed(trained.network, x[sample], cfg["batch_size"]))
    row["rankme_seconds"] = time.perf_counter() - start
    write_parquet(pd.DataFrame([row]), RANKME, run_dir.output("rankme"))
    return row
