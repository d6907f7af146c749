"""The scanner: build the study's shared metrics table from the runs' own summary files."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from dataworth.tracking.schemas import METRICS, SUMMARY, read_parquet, write_parquet

SORT_COLUMNS = ["dataset", "method", "model", "width", "augmentation", "n_train", "seed"]


def collect_metrics(summary_paths: list[str | Path], out: str | Path) -> pd.DataFrame:
    """Concatenate per-run summaries into `out` (one row per run, METRICS schema, sorted by grid values)."""
    frames = [read_parquet(p, SUMMARY) for p in summary_paths]
    if not frames:
        raise ValueError("no run summaries to collect")
    metrics = pd.concat(frames, ignore_index=True)
    duplicated = metrics["run_id"][metrics["run_id"].duplicated()].tolist()
    if duplicated:
        raise ValueError(f"run ids collected twice: {duplicated}")
    metrics = metrics.sort_values(SORT_COLUMNS, kind="stable").reset_index(drop=True)
    write_parquet(metrics, METRICS, out)
    return metrics
