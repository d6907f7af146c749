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

from dataworth.runs import EVALUATIONS, STAGES


def _stage_files(stages) -> tuple[str, ...]:
    """What a stage's jobs leave, as patterns under the study dir: each run's files and log, and each
    pack's marker and job logs. A job's benchmark file goes with its outputs: Snakemake counts it
    as an output when it decides whether a job's inputs are newer."""
    return tuple(pattern for stage in stages for pattern in (
        *(f"runs/*/{name}" for name in stage.files), f"runs/*/logs/{stage.name}.log",
        f"packs/*/{stage.name}.done", f"packs/*/logs/{stage.name}.*"))


# Stage by stage, in the order the workflow produces them (the stage registry, between the rules
# that are not per-run stages: prepare_data first, collect and report last).
STAGES_IN_ORDER: tuple[tuple[str, ...], ...] = (
    ("data/*.pt", "logs/prepare_data.*"),  # prepare_data
    ("runs/*/config.json", *_stage_files([STAGES["train"]])),  # train
    _stage_files(EVALUATIONS.values()),  # evaluations
    ("metrics.parquet", "logs/collect.*"),  # collect
    ("fits.parquet", "exchange_rates.parquet", "reference.parquet", "report", "report/**/*", "logs/report.*"),  # report
)


def restore_mtimes(study_dir: str | Path, now: float | None = None) -> int:
    """Set the mtimes under `study_dir` (results/<study>) in stage order; returns how many paths were set."""
    study_dir = Path(study_dir)
    newest = time.time() if now is None else now
    count = 0
    for rank, patterns in enumerate(STAGES_IN_ORDER):
        stamp = newest - (len(STAGES_IN_ORDER) - 1 - rank)  # the last stage gets `newest`, earlier ones 1 s apart
        for pattern in patterns:
            for path in study_dir.glob(pattern):
                os.utime(path, (stamp, stamp), follow_symlinks=False)
                count += 1
    return count
