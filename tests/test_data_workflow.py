"""A small image study through real Snakemake on dataset fixtures in their publishers' formats:
CINIC-10 training, CIFAR-10 test as the shifted (ood) set."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from fixtures_data import write_cifar10, write_cinic10
from test_workflow import jobs_run

from dataworth.tracking.schemas import METRICS, read_parquet

pytestmark = pytest.mark.integration


def image_study(root) -> dict:
    return {
        "study": "cinic-tiny",
        "dataset": {"name": "cinic10", "root": str(root), "ood": "cifar10:test"},
        "augmentations": {"none": [], "flip": [{"op": "flip"}]},
        "grid": {"n_train": [20, 40], "augmentation": ["none", "flip"], "model": [{"name": "cnn2d", "width": 4}],
                 "seed": [0]},
        "train": {"steps": 6, "batch_size": 8, "log_every": 3},
        "eval": {"batch_size": 16},
        "resources": {"runs_per_job": 4},
    }


def test_image_study_runs_on_dataset_files_and_a_new_root_reruns_nothing(project, tmp_path, monkeypatch):
    monkeypatch.delenv("DATAWORTH_DATA", raising=False)
    monkeypatch.delenv("DATAWORTH_CACHE", raising=False)
    root = tmp_path / "data"
    write_cinic10(root, per_class={"train": 3, "valid": 2, "test": 2})
    write_cifar10(root)
    project.write_study(image_study(root))
    target = "results/cinic-tiny/metrics.parquet"  # the report is tested elsewhere
    first = project.snakemake(target)
    assert jobs_run(first.stdout + first.stderr)["train"] == 1
    metrics = read_parquet(project.results("cinic-tiny") / "metrics.parquet", METRICS)
    assert len(metrics) == 4 and (metrics["status"] == "ok").all() and (metrics["dataset"] == "cinic10").all()
    assert metrics["test_accuracy"].between(0, 1).all() and metrics["ood_accuracy"].between(0, 1).all()
    # 10 CIFAR-10 test images: the ood accuracy is a whole number of tenths.
    assert np.allclose(metrics["ood_accuracy"] * 10, np.round(metrics["ood_accuracy"] * 10))

    # The same data under another root (a cluster's file system): same run ids, nothing reruns.
    moved = tmp_path / "shared"
    shutil.copytree(root, moved, ignore=shutil.ignore_patterns(".dataworth-cache"))
    shutil.rmtree(root)
    again = project.snakemake(target, env={"DATAWORTH_DATA": str(moved)})
    assert "Nothing to be done" in again.stdout + again.stderr

    # A missing file: one message before any job starts.
    shutil.rmtree(moved / "cifar-10-batches-py")
    failed = project.snakemake(target, "-n", check=False, env={"DATAWORTH_DATA": str(moved)})
    output = failed.stdout + failed.stderr
    assert failed.returncode != 0 and "dataset: CIFAR-10 (python version): " in output, output
    assert "dataworth data verify" in output and "Traceback" not in output
