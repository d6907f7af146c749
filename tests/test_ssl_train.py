"""Self-supervised pretraining through the shared loop: the run's files, no labels, exact resume."""

from __future__ import annotations

import math

import pandas as pd
import pytest
import torch

from dataworth.data import load_dataset, prepare_dataset
from dataworth.evaluate import evaluate_run
from dataworth.evaluate.features import load_network
from dataworth.evaluate.representation import knn_run, probe_run, rankme_run
from dataworth.models.ssl import SSLNetwork
from dataworth.runs import RunDir, StudyDir
from dataworth.study import load_study
from dataworth.tracking.collect import collect_metrics, collect_study
from dataworth.tracking.schemas import HISTORY, KNN, METRICS, PROBE, RANKME, read_parquet
from dataworth.train import train_run
from dataworth.train.checkpoint import Checkpointer, Preempted
from test_checkpoint import StopAfterPolls

SSL = {"projector": {"hidden": 32, "out": 16}, "byol": {"predictor_hidden": 32}}


@pytest.fixture
def ssl_study(tiny_study):
    tiny_study["grid"].update(method=["simclr", "vicreg", "byol"], n_train=[64], augmentation=["shift"])
    tiny_study["train"].update(steps=30, log_every=10)
    tiny_study["ssl"] = SSL
    tiny_study["eval"].update(labeled=64, knn={"k": 5}, probe={"steps": 50})
    return tiny_study


@pytest.fixture
def prepared(tmp_path, tiny_study):
    data = tmp_path / "data.pt"
    prepare_dataset(tiny_study["dataset"], data)
    return data


def the_run(study: dict, method: str) -> dict:
    return next(r for r in load_study(study).runs if r["method"] == method)


@pytest.mark.parametrize("method", ["simclr", "vicreg", "byol"])
def test_ssl_run_writes_an_encoder_and_projector_and_every_evaluation(tmp_path, ssl_study, prepared, method):
    run = the_run(ssl_study, method)
    out = RunDir(tmp_path / "run")
    record = train_run(run, prepared, out)
    assert record["status"] == "ok" and record["steps_completed"] == 30 and math.isfinite(record["final_loss"])
    history = read_parquet(out.history, HISTORY)
    assert history["accuracy"].isna().all() and history["loss"].notna().all()  # no labels, no accuracy
    data = load_dataset(prepared)
    network = load_network(run, data.sample_shape, data.num_classes, out.model, "cpu")
    assert isinstance(network, SSLNetwork) and network(data.x["test"][:5]).shape == (5, 16)
    assert not any(k.startswith(("target.", "predictor.")) for k in torch.load(out.model))  # online network only

    summary = evaluate_run(out, prepared)
    assert summary["status"] == "ok" and math.isnan(summary["test_accuracy"])  # no trained head
    probe, knn, rank = probe_run(out, prepared), knn_run(out, prepared), rankme_run(out, prepared)
    assert 0.25 < probe["probe_test_accuracy"] <= 1 and 0 <= probe["probe_ood_accuracy"] <= 1  # chance is 0.25
    assert probe["probe_labeled"] == 64 and knn["knn_labeled"] == 64 and knn["knn_k"] == 5
    assert 0 <= knn["knn_test_accuracy"] <= 1
    assert 1 <= rank["rankme_encoder"] <= 16 and 1 <= rank["rankme_projector"] <= 16  # encoder: 2 x width 8
    assert rank["rankme_samples"] == 128  # the whole pool
    for path, schema in ((out.output("probe"), PROBE), (out.output("knn"), KNN), (out.output("rankme"), RANKME)):
        assert read_parquet(path, schema)["run_id"].tolist() == [run["run_id"]]


def test_supervised_runs_get_an_encoder_rankme_and_can_be_probed(tmp_path, tiny_study, prepared):
    tiny_study["eval"].update(rankme={"samples": 100})
    run = the_run(tiny_study, "supervised")
    out = RunDir(tmp_path / "run")
    train_run(run, prepared, out)
    rank = rankme_run(out, prepared)
    assert rank["rankme_samples"] == 100 and rank["rankme_encoder"] >= 1
    assert math.isnan(rank["rankme_projector"])  # no projector
    probe = probe_run(out, prepared)  # what eval.probe_supervised asks for
    assert probe["probe_labeled"] == 128 and 0 <= probe["probe_test_accuracy"] <= 1


def test_collect_joins_the_evaluations_the_study_asks_for(tmp_path, ssl_study, prepared):
    ssl_study["grid"]["method"] = ["supervised", "simclr"]
    study = load_study(ssl_study)
    results = study.study_dir(tmp_path).path
    for run in study.runs:
        rd = StudyDir(results).run_dir(run["run_id"])
        train_run(run, prepared, rd)
        evaluate_run(rd, prepared)
        for evaluate in (probe_run, knn_run, rankme_run):  # the supervised run's probe is not asked for
            evaluate(rd, prepared)
    metrics = collect_study(study, tmp_path, results / "metrics.parquet").set_index("method")
    assert metrics.loc["supervised", "test_accuracy"] > 0 and math.isnan(metrics.loc["simclr", "test_accuracy"])
    assert metrics.loc["simclr", "probe_test_accuracy"] > 0 and metrics.loc["simclr", "rankme_projector"] >= 1
    assert pd.isna(metrics.loc["supervised", "probe_test_accuracy"]) and metrics.loc["supervised", "rankme_encoder"] >= 1
    assert read_parquet(results / "metrics.parquet", METRICS).equals(metrics.reset_index()[METRICS.names])
    stray = tmp_path / "elsewhere" / "knn.parquet"
    stray.parent.mkdir()
    (results / "runs" / study.runs[0]["run_id"] / "knn.parquet").rename(stray)
    with pytest.raises(ValueError, match="knn files of runs without a summary"):
        collect_metrics([results / "runs" / study.runs[1]["run_id"] / "summary.parquet"], tmp_path / "m.parquet", [stray])


@pytest.mark.parametrize("method", ["vicreg", "byol"])
def test_pretraining_never_sees_labels(tmp_path, ssl_study, prepared, monkeypatch, method):
    """train_run hands the objective y=None at every step: labels cannot leak into pretraining."""
    from dataworth.train import objectives

    seen = []
    cls = objectives.BYOL if method == "byol" else objectives.ViewPair
    original_loss = cls.loss

    def recording_loss(self, x, y, policy, gen, amp):
        seen.append(y)
        return original_loss(self, x, y, policy, gen, amp)

    monkeypatch.setattr(cls, "loss", recording_loss)
    train_run(the_run(ssl_study, method), prepared, RunDir(tmp_path / "run"))
    assert len(seen) == 30 and all(y is None for y in seen)


@pytest.mark.parametrize("method", ["byol", "simclr"])
def test_stopped_ssl_run_resumes_to_identical_results(tmp_path, ssl_study, prepared, monkeypatch, method):
    run = the_run(ssl_study, method)
    reference = RunDir(tmp_path / "reference")
    train_run(run, prepared, reference)

    out = RunDir(tmp_path / "interrupted")
    original_init = Checkpointer.__init__

    def stopping_init(self, path, run_id, every_seconds, stop=None):
        original_init(self, path, run_id, every_seconds, StopAfterPolls(16))

    monkeypatch.setattr(Checkpointer, "__init__", stopping_init)
    with pytest.raises(Preempted):
        train_run(run, prepared, out)
    checkpoint = torch.load(out.checkpoint, weights_only=True)
    if method == "byol":  # the EMA target and the predictor are part of the state
        assert any(k.startswith("target.") for k in checkpoint["model"])
        assert any(k.startswith("predictor.") for k in checkpoint["model"])
    monkeypatch.undo()

    record = train_run(run, prepared, out)
    assert record["resumed_from_step"] == 17
    a, b = torch.load(reference.model), torch.load(out.model)
    assert all(torch.equal(a[k], b[k]) for k in a)
    history_a = read_parquet(reference.history, HISTORY).drop(columns="elapsed_seconds")
    history_b = read_parquet(out.history, HISTORY).drop(columns="elapsed_seconds")
    assert history_a.equals(history_b)
    assert rankme_run(reference, prepared)["rankme_projector"] == rankme_run(out, prepared)["rankme_projector"]
