"""MLflow shows a self-supervised run's settings and its probe, k-NN and RankMe numbers."""

from __future__ import annotations

import copy

from conftest import TINY_STUDY
from dataworth.data import prepare_dataset
from dataworth.evaluate import evaluate_run
from dataworth.evaluate.representation import knn_run, probe_run, rankme_run
from dataworth.runs import StudyDir
from dataworth.study import load_study
from dataworth.tracking.mlflow_fields import default_tracking_uri, run_params
from dataworth.tracking.mlflow_sync import sync_study
from dataworth.train import train_run


def test_sync_logs_ssl_params_and_every_evaluation(tmp_path, monkeypatch):
    from mlflow import MlflowClient

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    spec = copy.deepcopy(TINY_STUDY)
    spec.update(study="ssl-track", ssl={"projector": {"hidden": 16, "out": 8}})
    spec["grid"].update(method=["simclr"], n_train=[64], augmentation=["shift"])
    spec["train"].update(steps=10)
    spec["eval"].update(knn={"k": 5}, probe={"steps": 10})
    study = load_study(spec)
    [run] = study.runs
    assert run_params(run)["ssl.simclr.temperature"] == "0.5" and run_params(run)["ssl.projector.out"] == "8"

    data = tmp_path / "data.pt"
    prepare_dataset(spec["dataset"], data)
    results = study.study_dir(tmp_path).path
    rd = StudyDir(results).run_dir(run["run_id"])
    train_run(run, data, rd)
    evaluate_run(rd, data)
    rows = {**probe_run(rd, data), **knn_run(rd, data), **rankme_run(rd, data)}
    uri = default_tracking_uri(results)
    assert sync_study(study, tmp_path, uri, echo=lambda _: None).counts == {"created": 1}

    client = MlflowClient(uri)
    [mlrun] = [r for r in client.search_runs([client.get_experiment_by_name("ssl-track").experiment_id])
               if r.data.tags.get("dataworth.role") == "run"]
    metrics = mlrun.data.metrics
    for key in ("probe_test_accuracy", "probe_ood_accuracy", "knn_test_accuracy", "rankme_encoder", "rankme_projector"):
        assert metrics[key] == rows[key], key
    assert "test_accuracy" not in metrics  # null: no trained head, nothing logged
    assert mlrun.data.params["method"] == "simclr" and mlrun.data.params["ssl.simclr.temperature"] == "0.5"
    artifacts = {a.path for a in client.list_artifacts(mlrun.info.run_id)}
    assert {"probe.parquet", "knn.parquet", "rankme.parquet"} <= artifacts

    assert sync_study(study, tmp_path, uri, echo=lambda _: None).counts == {"unchanged": 1}
    knn_run(rd, data, {**run["eval"], "knn": {"k": 3}})  # re-evaluated: the run is sent again
    assert sync_study(study, tmp_path, uri, echo=lambda _: None).counts == {"updated": 1}
