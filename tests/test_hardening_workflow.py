"""Hostile cases through real Snakemake (issue 15): a study file Snakemake reads with a key given
twice, a prepare_data whose log cannot be written (a full disk)."""

from __future__ import annotations

import contextlib
import os
import subprocess
from pathlib import Path

import pytest
import pandas as pd
import yaml

from dataworth.study import load_study

def test_a_key_given_twice_stops_snakemake_before_any_job(project, tiny_study):
    text = yaml.safe_dump(tiny_study, sort_keys=False)
    # A second `none:` would silently redefine the reference policy as `shift` (Snakemake keeps the last).
    text = text.replace("  none: []\n", "  none: []\n  none:\n  - op: shift\n    max_shift: 1\n")
    (project.root / "params.yaml").write_text(text)
    proc = project.snakemake(check=False)
    assert proc.returncode != 0
    line = next(n for n, l in enumerate(text.splitlines(), 1) if l == "  none: []")
    assert f"duplicate key 'none' at line {line + 1} (first at line {line})" in proc.stdout + proc.stderr
    assert not project.results().exists()


def _full_tmpfs(path: Path) -> None:
    """A real full file system at `path` (a 1 MiB tmpfs filled up); needs root, as CI's SLURM does."""
    path.mkdir(parents=True)
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (CI runs as root)")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(path)], check=True)
    with contextlib.suppress(OSError), open(path / "filler", "wb") as filler:
        while True:
            filler.write(b"\0" * 4096)
            filler.flush()


def test_prepare_data_failing_on_a_full_disk_says_why_on_the_console(project, tiny_study):
    project.write_study(tiny_study)
    study = load_study(tiny_study)
    study_dir = study.study_dir(project.root / "results")
    # The dataset and the logs on a full disk (study.json and packs.json, written first, are not).
    full = project.root / "full"
    _full_tmpfs(full)
    try:
        for folder in (study_dir.logs, study_dir.data("x").parent):
            (full / folder.name).mkdir()
            folder.parent.mkdir(parents=True, exist_ok=True)
            folder.symlink_to(full / folder.name)
        target = str(study_dir.data(study.dataset_id()).relative_to(project.root))
        proc = project.snakemake(target, check=False)
    finally:
        subprocess.run(["umount", str(full)], check=True)
    console = proc.stdout + proc.stderr
    assert proc.returncode != 0
    # prepare's own line reaches the console although its log could not take it
    before_snakemakes_summary = console.split("Error in rule prepare_data")[0]
    assert f"error: {study_dir.data(study.dataset_id()).relative_to(project.root)}: No space left on device" \
        in before_snakemakes_summary
    assert "Traceback" not in before_snakemakes_summary  # torch's RuntimeError is named as the full disk it is


def test_a_diverged_run_goes_through_the_whole_pipeline(project, tiny_study):
    """Snakemake -> collect -> report -> MLflow with one run whose loss becomes NaN: a status row
    with null metrics, counted as left out by the fits, tagged in MLflow, and no NaN metric logged."""
    import math

    from mlflow import MlflowClient

    from dataworth.tracking.schemas import METRICS, read_parquet

    # Noise of std 3e38 overflows float32 in the first layer: the loss is NaN at the first check.
    tiny_study["augmentations"]["blowup"] = [{"op": "noise", "std": 3e38}]
    tiny_study["grid"].update(augmentation=["none", "blowup"], n_train=[32, 64])
    tiny_study["grid"]["exclude"] = [{"augmentation": "blowup", "n_train": 32}]  # one diverged run
    tiny_study["resources"] = {"runs_per_job": 3}  # one job per stage: the test pays few process starts
    project.write_study(tiny_study)
    study = load_study(tiny_study)
    [diverged] = [r["run_id"] for r in study.runs if r["augmentation"]["name"] == "blowup"]
    env = {"MLFLOW_TRACKING_URI": ""}
    proc = project.snakemake("all", "track", env=env)
    assert "Traceback" not in proc.stdout + proc.stderr

    metrics = read_parquet(project.results() / "metrics.parquet", METRICS).set_index("run_id")
    assert len(metrics) == 3
    row = metrics.loc[diverged]
    assert row["status"] == "diverged" and row["steps_completed"] < 40
    assert all(math.isnan(row[k]) for k in ("test_accuracy", "test_loss", "ood_accuracy", "train_loss"))
    assert (metrics.drop(diverged)["status"] == "ok").all()

    fits = pd.read_parquet(project.results() / "fits.parquet")
    blowup = fits[fits["augmentation"] == "blowup"]
    assert len(blowup) and (blowup["n_excluded"] == 1).all() and (blowup["n_runs"] == 0).all()
    assert (fits[fits["augmentation"] != "blowup"]["n_excluded"] == 0).all()

    client = MlflowClient(f"sqlite:///{project.results() / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("tiny")
    [mlrun] = client.search_runs([experiment.experiment_id], f"tags.`dataworth.run_id` = '{diverged}'")
    assert mlrun.data.tags["dataworth.status"] == "diverged"
    assert "test_accuracy" not in mlrun.data.metrics
    for key in mlrun.data.metrics:
        assert all(math.isfinite(m.value) for m in client.get_metric_history(mlrun.info.run_id, key)), key
