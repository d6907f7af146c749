"""A policy mixing the new image ops trains through the real workflow (Snakemake) on digits.

digits stores standardised values, so the mix holds the ops that work on any images (flip,
reflect-padded crop, perspective, resized crop, blur); pixel ops are covered per op in
test_augment_image.py and are rejected here by validation. TODO(issue 17): train a pixel policy
(trivial_augment) the same way on the CIFAR fixtures once pixel datasets land.
"""

from __future__ import annotations

import pytest

from dataworth.study import load_study
from dataworth.tracking.schemas import METRICS, read_parquet

pytestmark = pytest.mark.integration

STUDY = {
    "study": "digits-image-ops",
    "dataset": {"name": "digits"},
    "augmentations": {
        "none": [],
        "geometric": [{"op": "hflip"}, {"op": "crop", "padding": 1, "padding_mode": "reflect"},
                      {"op": "perspective", "distortion_scale": 0.3}, {"op": "resized_crop", "scale": [0.5, 1.0]},
                      {"op": "gaussian_blur", "kernel_size": 3, "p": 0.3}],
        # Fixed repetitions (issue 17 item 2): 3 copies per image, the first clean, drawn once.
        "geometric_r3": {"ops": [{"op": "hflip"}, {"op": "crop", "padding": 1}], "rounds": 3, "first_round_clean": True},
    },
    "grid": {"n_train": [64], "augmentation": ["none", "geometric", "geometric_r3"],
             "model": [{"name": "cnn2d", "width": 4}], "seed": [0]},
    "train": {"steps": 12, "batch_size": 32, "log_every": 6},
    "eval": {"batch_size": 512},
    "resources": {"runs_per_job": 3},
}


def test_a_policy_of_new_image_ops_trains_through_the_workflow(project):
    project.write_study(STUDY)
    project.snakemake("results/digits-image-ops/metrics.parquet")  # training and evaluation; not the report
    metrics = read_parquet(project.results("digits-image-ops") / "metrics.parquet", METRICS)
    assert sorted(metrics["run_id"]) == sorted(r["run_id"] for r in load_study(STUDY).runs)
    assert (metrics["status"] == "ok").all() and metrics["test_accuracy"].between(0, 1).all()
    assert (metrics["n_train"] == 64).all()  # a rounds policy still reports its n real images
