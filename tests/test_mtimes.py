from __future__ import annotations

import os

from dataworth.mtimes import STAGES_IN_ORDER, restore_mtimes


def test_existing_files_get_stage_ordered_mtimes_and_missing_ones_are_skipped(tmp_path):
    files = ["data/d.pt", "runs/a/model.pt", "runs/a/training.parquet", "runs/a/summary.parquet",
             "runs/b/training.parquet", "metrics.parquet", "report/report.md",
             "packs/p/train.done", "packs/p/logs/train.benchmark.tsv", "packs/p/evaluate.done",
             "packs/p/logs/evaluate.benchmark.tsv", "packs/p/logs/evaluate.log"]
    for name in files:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x")
        os.utime(tmp_path / name, (5e9, 5e9))  # as after a pull: the wrong order, all "new"
    assert restore_mtimes(tmp_path, now=1000.0) == len(files) + 1  # + the report folder
    mtime = lambda name: os.stat(tmp_path / name).st_mtime
    assert mtime("data/d.pt") == 1000.0 - (len(STAGES_IN_ORDER) - 1)
    assert mtime("data/d.pt") < mtime("runs/a/model.pt") == mtime("runs/b/training.parquet")
    assert mtime("runs/a/training.parquet") < mtime("runs/a/summary.parquet") < mtime("metrics.parquet")
    assert mtime("metrics.parquet") < mtime("report/report.md") == 1000.0
    # A job's benchmark file counts as its output for Snakemake: it goes with the job's stage.
    assert mtime("packs/p/train.done") == mtime("packs/p/logs/train.benchmark.tsv") == mtime("runs/a/model.pt")
    assert mtime("packs/p/logs/evaluate.benchmark.tsv") == mtime("packs/p/evaluate.done") == mtime("runs/a/summary.parquet")
