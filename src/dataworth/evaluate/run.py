"""Evaluate one trained run and write its summary.parquet (the file that marks a run complete).

The loss and accuracy columns are those of the run's trained classifier head; self-supervised
runs train none, so theirs are null (their probes are in representation.py).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from dataworth.data import load_dataset, nested_subset
from dataworth.evaluate.classification import evaluate_split
from dataworth.files import load_torch
from dataworth.methods import method_of
from dataworth.models import build_run_model
from dataworth.runs import RunDir
from dataworth.study import run_row
from dataworth.tracking.schemas import SUMMARY, TRAINING, read_parquet, write_parquet
from dataworth.train.run import resolve_device

METRIC_COLUMNS = ("train_loss", "train_accuracy", "test_loss", "test_accuracy", "ood_loss", "ood_accuracy")


def evaluate_run(run_dir: RunDir, data_path: str | Path, eval_cfg: dict | None = None, threads: int = 1) -> dict:
    """Evaluate the trained run in `run_dir` with the study's current `eval` settings.

    `eval_cfg` defaults to the settings recorded in the run's config.json.
    """
    start = time.perf_counter()
    torch.set_num_threads(threads)
    run = run_dir.read_config()
    eval_cfg = eval_cfg or run["eval"]
    training = read_parquet(run_dir.training, TRAINING).iloc[0].to_dict()

    metrics = dict.fromkeys(METRIC_COLUMNS, np.nan)
    if training["status"] == "ok" and method_of(run).uses_labels:  # a trained classifier head
        device = resolve_device(run["train"]["device"])
        data = load_dataset(data_path, device)
        model = build_run_model(run["model"], data.sample_shape, data.num_classes)
        model.load_state_dict(load_torch(run_dir.model, map_location=device))
        model = data.for_evaluation(model.to(device))  # pixel datasets: normalised per batch (issue 16)
        subset = torch.as_tensor(nested_subset(data.y["train"].cpu().numpy(), run["n_train"], run["seed"]), device=device)
        splits = {
            "train": (data.x["train"][subset], data.y["train"][subset]),
            "test": (data.x["test"], data.y["test"]),
            "ood": (data.x["ood"], data.y["ood"]),
        }
        batch_size = eval_cfg["batch_size"]
        for split, (x, y) in splits.items():
            metrics[f"{split}_loss"], metrics[f"{split}_accuracy"] = evaluate_split(model, x, y, batch_size)

    row = {
        **run_row(run),
        "status": training["status"],
        "steps_completed": training["steps_completed"],
        **metrics,
        "wall_seconds": training["wall_seconds"],
        "compute_seconds": training["compute_seconds"],
        "eval_seconds": time.perf_counter() - start,
        "device": training["device"],
        "data_sha256": training["data_sha256"],
    }
    write_parquet(pd.DataFrame([row]), SUMMARY, run_dir.summary)
    return row
