"""The `local_complexity` stage: evaluate/boundaries.py's measurement on a finished run, written
to local_complexity_layers.parquet (per layer and split) and local_complexity.parquet (totals,
the run's row of metrics.parquet)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd

from dataworth.evaluate.boundaries import measure, split_inputs


def local_complexity_run(run_dir, data_path: str | Path, eval_cfg: dict | None = None, threads: int = 1) -> dict:
    """Local complexity around the study's fixed test points and the run's training points; writes
    local_complexity_layers.parquet (per layer) and local_complexity.parquet (totals)."""
    from dataworth.evaluate.mechanism_common import load_finished
    from dataworth.tracking.schemas import LOCAL_COMPLEXITY, LOCAL_COMPLEXITY_LAYERS, write_parquet

    start = time.perf_counter()
    run, finished = load_finished(run_dir, data_path, threads)
    cfg = (eval_cfg or run["eval"])["local_complexity"]
    row = {"run_id": run["run_id"], "local_complexity_radius": cfg["radius"],
           "local_complexity_directions": cfg["directions"], "local_complexity_points": None,
           "local_complexity_neurons": None, "local_complexity_test": np.nan, "local_complexity_train": np.nan}
    layers = []
    if finished:
        inputs = split_inputs(finished.data, *finished.training_subset(), cfg["points"])
        measured = measure(finished.network, inputs, cfg, finished.device)
        for split, (names, units, means) in measured.items():
            row[f"local_complexity_{split}"] = float(np.sum(means))
            layers += [{"run_id": run["run_id"], "split": split, "layer": i, "module": name, "neurons": unit,
                        "crossings": float(mean)} for i, (name, unit, mean) in enumerate(zip(names, units, means))]
        row["local_complexity_points"] = len(inputs["test"])
        row["local_complexity_neurons"] = int(sum(measured["test"][1]))
    write_parquet(pd.DataFrame(layers, columns=LOCAL_COMPLEXITY_LAYERS.names), LOCAL_COMPLEXITY_LAYERS,
                  run_dir.file("local_complexity_layers.parquet"))
    row["local_complexity_seconds"] = time.perf_counter() - start
    write_parquet(pd.DataFrame([row]), LOCAL_COMPLEXITY, run_dir.output("local_complexity"))
    return row
