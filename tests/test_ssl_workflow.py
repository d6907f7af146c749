"""A tiny SimCLR + VICReg study through real Snakemake: pretrain, evaluate, probe, k-NN, RankMe,
collect, fit and report; then a changed probe setting would rerun only the probes."""

from __future__ import annotations

import copy

import pytest

from conftest import TINY_STUDY
from dataworth.study import load_study
from dataworth.tracking.schemas import FITS, METRICS, read_parquet
from test_workflow import jobs_run

pytestmark = pytest.mark.integration

SSL_STUDY = copy.deepcopy(TINY_STUDY)
SSL_STUDY.update(study="tiny-ssl", ssl={"projector": {"hidden": 32, "out": 16}})
# Four runs, few jobs: SimCLR at three sizes (a law can be fitted, a rank correlation computed),
# VICReg at one (it shows a method that has too few sizes, and grid.exclude on method).
SSL_STUDY["grid"].update(method=["simclr", "vicreg"], n_train=[32, 64, 128], augmentation=["shift"],
                         exclude=[{"method": "vicreg", "n_train": [32, 128]}])
SSL_STUDY["train"].update(steps=30)
# Four runs per job, yet two packs: the three SimCLR runs make one, VICReg its own (a pack shares
# its method). Each job starts a process that imports torch: fewer packs, fewer jobs.
SSL_STUDY["resources"] = {"runs_per_job": 4}
SSL_STUDY["eval"].update(labeled=64, knn={"k": 5}, probe={"steps": 50}, rankme={"samples": 100})


def test_ssl_study_pretrains_probes_collects_and_reports(project):
    study = copy.deepcopy(SSL_STUDY)
    project.write_study(study)
    first = project.snakemake()
    per_pack = {"train": 2, "evaluate": 2, "probe": 2, "knn": 2, "rankme": 2}
    assert jobs_run(first.stdout + first.stderr) == {"prepare_data": 1, **per_pack, "collect": 1, "report": 1, "all": 1}
    results = project.results("tiny-ssl")
    metrics = read_parquet(results / "metrics.parquet", METRICS)
    assert sorted(metrics["run_id"]) == sorted(r["run_id"] for r in load_study(study).runs)
    assert (metrics["status"] == "ok").all() and set(metrics["method"]) == {"simclr", "vicreg"}
    assert metrics["test_accuracy"].isna().all()  # no trained head
    for column in ("probe_test_accuracy", "probe_ood_accuracy", "knn_test_accuracy", "knn_ood_accuracy"):
        assert metrics[column].between(0, 1).all(), column
    assert (metrics["probe_labeled"] == 64).all() and (metrics["rankme_samples"] == 100).all()
    assert (metrics["rankme_encoder"] >= 1).all() and (metrics["rankme_projector"] >= 1).all()

    fits = read_parquet(results / "fits.parquet", FITS)
    assert set(fits["metric"]) == {"probe_test_accuracy", "probe_ood_accuracy", "knn_test_accuracy", "knn_ood_accuracy"}
    runs = fits.groupby("method")["n_runs"].unique().map(list).to_dict()
    assert runs == {"simclr": [3], "vicreg": [1]} and len(fits) == 8
    assert (fits.loc[fits["method"] == "vicreg", "status"] == "too_few_sizes").all()
    report = (results / "report" / "report.md").read_text()
    assert "## RankMe against probe accuracy" in report
    table = (results / "report" / "rankme_vs_probe.md").read_text()
    assert "| simclr | 3 |" in table and "| vicreg | 1 | – |" in table
    assert "resumed" not in (results / "runs" / metrics["run_id"][0] / "logs" / "train.log").read_text()

    # A new probe setting: only the probes are due, never pretraining or the other evaluations
    # (a dry run says so; test_workflow runs such a re-evaluation for real).
    study["eval"]["probe"]["steps"] = 20
    project.write_study(study)
    again = project.snakemake("-n")
    assert jobs_run(again.stdout + again.stderr) == {"probe": 2, "collect": 1, "report": 1, "all": 1}
