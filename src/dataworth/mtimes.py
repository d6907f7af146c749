"""Put the modification times of a study's results back in pipeline order.

Snakemake reruns a job whose input is newer than its output, and `dvc pull` / `dvc checkout`
write files in no particular order, so a freshly pulled study would look stale everywhere and
retrain. Our files are named by hashes of what they hold (run ids, dataset ids), so after a
pull "newer" carries no information: this sets every existing file's mtime by its stage, each
stage one second after the one it reads from. Missing files are skipped, and nothing else is
faked: a job with a missing output or changed params still runs (unlike `snakemake --touch`).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from dataworth.runs import STAGE_FILES

# Stage by stage, in the order the workflow produces them (keep in step with workflow/rules).
# A job's logs and benchmark file go with its outputs: Snakemake counts the benchmark file as an
# output when it decides whether a job's inputs are newer.
EVALUATIONS = tuple(STAGE_FILES)  # evaluate, probe, knn, rankme
STAGES: tuple[tuple[str, ...], ...] = (
    ("data/*.pt", "logs/prepare_data.*"),  # prepare_data
    ("runs/*/config.json", "runs/*/history.parquet", "runs/*/model.pt", "runs/*/training.parquet",
     "runs/*/logs/train.log", "packs/*/train.done", "packs/*/logs/train.*"),  # train
    ("runs/*/summary.parquet", "runs/*/probe.parquet", "runs/*/knn.parquet", "runs/*/rankme.parquet",
     *(f"runs/*/logs/{name}.log" for name in EVALUATIONS), *(f"packs/*/{name}.done" for name in EVALUATIONS),
     *(f"packs/*/logs/{name}.*" for name in EVALUATIONS)),  # evaluations
    ("metrics.parquet", "logs/collect.*"),  # collect
    ("fits.parquet", "exchange_rates.parquet", "report", "report/**/*", "logs/report.*"),  # report
)


def restore_mtimes(results_dir: str | Path, now: float | None = None) -> int:
    """Set the mtimes under `results_dir` in stage order; returns how many paths were set."""
    results_dir = Path(results_dir)
    newest = time.time() if now is None else now
    count = 0
    for rank, patterns in enumerate(STAGES):
        stamp = newest - (len(STAGES) - 1 - rank)  # the last stage gets `newest`, earlier ones 1 s apart
        for pattern in patterns:
            for path in results_dir.glob(pattern):
                os.utime(path, (stamp, stamp), follow_symlinks=False)
                count += 1
    return count
