"""MLflow tracking against a real `mlflow server` on 127.0.0.1: what a sync shows, idempotency,
reruns, a server that dies during a sync or during training, and many clients at once."""

from __future__ import annotations

import copy
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

import pandas as pd
import pytest
from mlflow import MlflowClient
from mlflow.entities import ViewType

from conftest import BIN, REPO, TINY_STUDY, write_yaml
from dataworth.analysis.report_html import write_report_html
from dataworth.data import prepare_dataset
from dataworth.evaluate import evaluate_run
from dataworth.runs import StudyDir
from dataworth.study import load_study, run_row
from dataworth.tracking import live
from dataworth.tracking.collect import collect_metrics
from dataworth.tracking.mlflow_fields import HISTORY_METRICS, default_tracking_uri
from dataworth.tracking.mlflow_sync import TrackingError, sync_study
from dataworth.tracking.schemas import EXCHANGE_RATES, FITS, HISTORY, SUMMARY, TRAINING, read_parquet, write_parquet
from dataworth.tracking.ui_links import VIEW_TAG
from dataworth.train import train_run

# One worker for the module: its module-scoped fixtures (a server that takes seconds to start, the
# studies built for two_checkouts and synced) are then made once, not once on each worker.
pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("mlflow")]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class MlflowServer:
    """A real tracking server, in its own process group: its workers outlive a killed parent."""

    def __init__(self, root: Path):
        self.root = root
        self.port = free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def up(self) -> bool:
        try:
            urllib.request.urlopen(self.uri + "/health", timeout=2).close()
            return True
        except OSError:
            return False

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
        env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"  # no GenAI job workers: lighter
        command = [
            str(BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1",
            "--backend-store-uri", f"sqlite:///{self.root / 'mlflow.db'}",
            "--artifacts-destination", str(self.root / "artifacts"),
        ]
        with open(self.root / "server.log", "a") as log:
            self.proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        deadline = time.monotonic() + 120
        while not self.up():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"mlflow server did not start:\n{(self.root / 'server.log').read_text()[-3000:]}")
            time.sleep(0.25)

    def kill(self) -> None:
        """Kill the whole process group at once, as a crash would."""
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=30)
        self.proc = None


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory):
    server = MlflowServer(tmp_path_factory.mktemp("mlflow-server"))
    server.start()
    yield server
    server.kill()


@pytest.fixture
def server(mlflow_server):
    """The module's server, started again if an earlier test killed it."""
    if mlflow_server.proc is None:
        mlflow_server.start()
    return mlflow_server


@pytest.fixture(autouse=True)
def no_tracking_uri(monkeypatch):
    # Training in these tests logs live only where a test asks for it.
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


@pytest.fixture(scope="module")
def data_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("data") / "synthetic.pt"
    prepare_dataset(TINY_STUDY["dataset"], path)
    return path


def study_spec(name: str, **sections) -> dict:
    spec = copy.deepcopy(TINY_STUDY)
    spec["study"] = name
    for key, values in sections.items():
        spec[key] = {**spec.get(key, {}), **values}
    return spec


def build(root: Path, spec: dict, data_file: Path):
    """Train and evaluate every run of the study into root/<study>, as the workflow would."""
    study = load_study(spec)
    results = study.study_dir(root).path
    for run in study.runs:
        rd = StudyDir(results).run_dir(run["run_id"])
        train_run(run, data_file, rd)
        evaluate_run(rd, data_file)
    collect_metrics([StudyDir(results).run_dir(r["run_id"]).summary for r in study.runs], results / "metrics.parquet")
    return study


def tracked(client: MlflowClient, study_name: str, view=ViewType.ACTIVE_ONLY):
    """(study runs, training runs by run id) of the study's experiment."""
    experiment = client.get_experiment_by_name(study_name)
    runs = client.search_runs([experiment.experiment_id], run_view_type=view, max_results=1000)
    parents = [r for r in runs if r.data.tags.get("dataworth.role") == "study"]
    children: dict[str, list] = {}
    for r in runs:
        if r.data.tags.get("dataworth.role") == "run":
            children.setdefault(r.data.tags["dataworth.run_id"], []).append(r)
    return parents, children


def curve(client, mlflow_run_id: str, key: str) -> list[tuple[int, float]]:
    return sorted((m.step, m.value) for m in client.get_metric_history(mlflow_run_id, key))


def file_curve(history: pd.DataFrame, column: str) -> list[tuple[int, float]]:
    rows = history.dropna(subset=[column])  # held-out columns: only the steps evaluated
    return sorted(zip(rows["step"].tolist(), rows[column].tolist(), strict=True))


def artifact_names(client, mlflow_run_id: str, path: str | None = None) -> set[str]:
    return {a.path for a in client.list_artifacts(mlflow_run_id, path)}


def test_sync_shows_every_run_under_the_study_run_and_twice_changes_nothing(server, tmp_path, data_file):
    study = build(tmp_path, study_spec("sync-check", tracking={"log_models": True}), data_file)
    results = study.study_dir(tmp_path).path
    # Stand-ins for the analysis outputs: logged on the study's run when they exist.
    pd.DataFrame({"b": [0.9]}).to_parquet(results / "fits.parquet")
    (results / "report").mkdir()
    (results / "report" / "scaling.png").write_bytes(b"\x89PNG stand-in")

    report = sync_study(study, tmp_path, server.uri)
    assert report.counts == {"created": 4} and not report.not_finished

    client = MlflowClient(server.uri)
    parents, children = tracked(client, "sync-check")
    assert len(parents) == 1 and sorted(children) == sorted(r["run_id"] for r in study.runs)
    parent = parents[0]
    assert parent.info.run_id == report.study_run_id and parent.info.status == "FINISHED"
    assert parent.data.metrics["runs"] == 4 and parent.data.metrics["runs_ok"] == 4
    assert {"study.json", "metrics.parquet", "fits.parquet", "report"} <= artifact_names(client, parent.info.run_id)
    assert artifact_names(client, parent.info.run_id, "report") == {"report/scaling.png"}

    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    for run in study.runs:
        [mlrun] = children[run["run_id"]]
        rd = StudyDir(results).run_dir(run["run_id"])
        training = read_parquet(rd.training, TRAINING).iloc[0]
        summary = read_parquet(rd.summary, SUMMARY).iloc[0]
        history = read_parquet(rd.history, HISTORY)
        tags, params, metrics = mlrun.data.tags, mlrun.data.params, mlrun.data.metrics

        assert tags["mlflow.parentRunId"] == parent.info.run_id and mlrun.info.status == "FINISHED"
        for name, value in run_row(run).items():
            if name not in ("run_id", "study"):
                assert params[name] == str(value), name
        assert tags["dataworth.study"] == "sync-check" and tags["dataworth.status"] == "ok"
        assert tags["dataworth.data_sha256"] == training["data_sha256"]
        assert tags["dataworth.host"] == training["host"] and tags["dataworth.device"] == "cpu"
        assert tags["dataworth.git_commit"] == head == tags["mlflow.source.git.commit"]
        assert tags["dataworth.git_dirty"] in ("true", "false")
        assert "dataworth.slurm_job_id" not in tags
        for column, key in HISTORY_METRICS.items():
            assert curve(client, mlrun.info.run_id, key) == file_curve(history, column)
        for key in ("test_accuracy", "ood_accuracy", "train_loss", "wall_seconds"):
            assert metrics[key] == pytest.approx(summary[key])
        assert {"config.json", "history.parquet", "training.parquet", "summary.parquet", "model.pt"} <= artifact_names(
            client, mlrun.info.run_id)

    shift = client.search_runs([report.experiment_id], "params.augmentation = 'shift'")
    expected = {r["run_id"] for r in study.runs if r["augmentation"]["name"] == "shift"}
    assert {r.data.tags["dataworth.run_id"] for r in shift} == expected and len(shift) == 2

    again = sync_study(study, tmp_path, server.uri)
    assert again.counts == {"unchanged": 4}
    parents, children_again = tracked(client, "sync-check", ViewType.ALL)
    assert len(parents) == 1 and all(len(v) == 1 for v in children_again.values()) and len(children_again) == 4
    for run_id, [mlrun] in children_again.items():
        assert mlrun.info.run_id == children[run_id][0].info.run_id
        assert len(client.get_metric_history(mlrun.info.run_id, "batch_loss")) == 4
        assert len(client.get_metric_history(mlrun.info.run_id, "test_accuracy")) == 1
    assert len(client.get_metric_history(parent.info.run_id, "runs")) == 1


def test_rerun_updates_its_mlflow_run_and_the_store_mirrors_the_grid(tmp_path, data_file, monkeypatch):
    spec = study_spec("rerun")
    study = build(tmp_path, spec, data_file)
    results = study.study_dir(tmp_path).path
    assert sync_study(study, tmp_path).counts == {"created": 4}  # the study's own SQLite store
    client = MlflowClient(default_tracking_uri(results))
    assert (results / "mlflow.db").exists()
    ids = {run_id: runs[0].info.run_id for run_id, runs in tracked(client, "rerun")[1].items()}

    # Retrained by another job (same config, so the same curve on CPU): the same MLflow run, updated.
    run = study.runs[0]
    rd = StudyDir(results).run_dir(run["run_id"])
    monkeypatch.setenv("SLURM_JOB_ID", "4242")
    train_run(run, data_file, rd)
    evaluate_run(rd, data_file)
    assert sync_study(study, tmp_path).counts == {"updated": 1, "unchanged": 3}
    [mlrun] = tracked(client, "rerun")[1][run["run_id"]]
    assert mlrun.info.run_id == ids[run["run_id"]] and mlrun.data.tags["dataworth.slurm_job_id"] == "4242"
    assert len(client.get_metric_history(mlrun.info.run_id, "batch_loss")) == 4

    # Retrained with another curve (say on a GPU): MLflow cannot drop points, so a fresh MLflow run.
    history = read_parquet(rd.history, HISTORY)
    history["loss"] += 0.5
    write_parquet(history, HISTORY, rd.history)
    assert sync_study(study, tmp_path).counts == {"replaced": 1, "unchanged": 3}
    children = tracked(client, "rerun")[1]
    assert len(children) == 4 and all(len(v) == 1 for v in children.values())
    [replaced] = children[run["run_id"]]
    assert replaced.info.run_id != ids[run["run_id"]]
    assert curve(client, replaced.info.run_id, "batch_loss") == file_curve(history, "loss")

    # Runs that leave the grid leave MLflow (deleted, restorable), and come back with it.
    smaller = load_study(dict(spec, grid=dict(spec["grid"], augmentation=["none"])))
    assert sync_study(smaller, tmp_path).counts == {"deleted (left the study)": 2, "unchanged": 2}
    assert sorted(tracked(client, "rerun")[1]) == sorted(r["run_id"] for r in smaller.runs)
    said = []
    assert sync_study(study, tmp_path, echo=said.append).counts == {"unchanged": 4}
    # The study's identity (its augmentations) changed twice: a new study run each time (issue 20).
    assert len(said) == 3 and all("restored" in line for line in said[1:])
    assert said[0].startswith("the study's identity changed (augmentations, runs)")
    children = tracked(client, "rerun")[1]
    assert {k: v[0].info.run_id for k, v in children.items()} == {**ids, run["run_id"]: replaced.info.run_id}


def test_server_down_during_a_sync_then_back_loses_and_duplicates_nothing(server, tmp_path, data_file, monkeypatch):
    study = build(tmp_path, study_spec("outage"), data_file)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # fail in seconds, not minutes

    # The server dies in the middle of the second run's artifacts.
    real_log_artifact = MlflowClient.log_artifact
    calls = []

    def dies_on_the_sixth_upload(self, *args, **kwargs):
        calls.append(args)
        if len(calls) == 6:
            server.kill()
        return real_log_artifact(self, *args, **kwargs)

    monkeypatch.setattr(MlflowClient, "log_artifact", dies_on_the_sixth_upload)
    with pytest.raises(TrackingError) as error:
        sync_study(study, tmp_path, server.uri)
    message = str(error.value)
    assert "stopped after 1 of 4 runs" in message and server.uri in message
    assert "Nothing is lost" in message and "Run `dataworth track` again" in message

    with pytest.raises(TrackingError, match="does not answer"):  # still down: says so at once
        sync_study(study, tmp_path, server.uri)

    monkeypatch.setattr(MlflowClient, "log_artifact", real_log_artifact)
    server.start()
    report = sync_study(study, tmp_path, server.uri)
    assert report.counts == {"unchanged": 1, "updated": 1, "created": 2}
    client = MlflowClient(server.uri)
    parents, children = tracked(client, "outage", ViewType.ALL)
    assert len(parents) == 1 and len(children) == 4 and all(len(v) == 1 for v in children.values())
    results = study.study_dir(tmp_path).path
    for run_id, [mlrun] in children.items():
        history = read_parquet(StudyDir(results).run_dir(run_id).history, HISTORY)
        for column, key in HISTORY_METRICS.items():
            assert curve(client, mlrun.info.run_id, key) == file_curve(history, column)  # each step once
        assert {"config.json", "history.parquet", "training.parquet", "summary.parquet"} <= artifact_names(
            client, mlrun.info.run_id)
        assert "model.pt" not in artifact_names(client, mlrun.info.run_id)  # log_models is off by default


def dataworth_env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    return {**env, **extra}


def test_live_logging_survives_a_server_killed_mid_run_and_track_completes_that_run(server, tmp_path, data_file):
    spec = study_spec("live-outage", train={"steps": 1500, "log_every": 10})
    spec["grid"] = dict(spec["grid"], n_train=[64], augmentation=["shift"])
    study = load_study(spec)
    run = study.runs[0]
    reference = StudyDir(tmp_path / "reference").run_dir(run["run_id"])
    train_run(run, data_file, reference)

    rd = StudyDir(study.study_dir(tmp_path).path).run_dir(run["run_id"])
    study_file = write_yaml(tmp_path / "live-outage.yaml", spec)
    training = subprocess.Popen(
        [str(BIN / "dataworth"), "train", "--study", str(study_file), "--run-id", run["run_id"],
         "--data", str(data_file), "--runs", str(rd.path.parent)],
        env=dataworth_env(MLFLOW_TRACKING_URI=server.uri), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    client = MlflowClient(server.uri)
    deadline = time.monotonic() + 120
    while True:  # wait until the curve is arriving, then kill the server
        assert training.poll() is None, "training ended before the server could be killed"
        assert time.monotonic() < deadline, "no live curve within 120 s"
        experiment = client.get_experiment_by_name("live-outage")
        runs = client.search_runs([experiment.experiment_id]) if experiment else []
        if runs and client.get_metric_history(runs[0].info.run_id, "batch_loss"):
            break
        time.sleep(0.1)
    live_run_id = runs[0].info.run_id
    server.kill()
    stdout, stderr = training.communicate(timeout=300)

    assert training.returncode == 0, stderr
    assert "status ok after 1500 steps" in stdout
    assert stderr.count("warning: live logging") == 1 and "dataworth track" in stderr
    ours, theirs = read_parquet(rd.history, HISTORY), read_parquet(reference.history, HISTORY)
    pd.testing.assert_frame_equal(ours.drop(columns="elapsed_seconds"), theirs.drop(columns="elapsed_seconds"))
    assert evaluate_run(rd, data_file)["test_accuracy"] == evaluate_run(reference, data_file)["test_accuracy"]

    server.start()
    assert sync_study(study, tmp_path, server.uri).counts == {"updated": 1}
    children = tracked(client, "live-outage", ViewType.ALL)[1]
    assert [r.info.run_id for r in children[run["run_id"]]] == [live_run_id]  # the same run, not a second
    assert curve(client, live_run_id, "batch_loss") == file_curve(ours, "loss")  # 150 steps, each once
    assert client.get_run(live_run_id).data.tags["dataworth.status"] == "ok"


def test_a_server_that_never_answers_does_not_hang_training(tmp_path, data_file, monkeypatch, capsys):
    # The behaviour, not a wall time (a busy CI stretches any time): the run finishes, the logger
    # gives up with one warning, and its thread ends.
    run = load_study(study_spec("hung")).runs[0]
    with socket.socket() as hung:  # accepts connections (the backlog), never answers
        hung.bind(("127.0.0.1", 0))
        hung.listen(64)
        monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{hung.getsockname()[1]}")
        record = train_run(run, data_file, StudyDir(tmp_path / "hung").run_dir(run["run_id"]))
    assert record["status"] == "ok" and record["steps_completed"] == run["train"]["steps"]
    loggers = [t for t in threading.enumerate() if t.name == "mlflow-live-logging"]
    for thread in loggers:  # the logger gives up once the socket is gone
        thread.join(timeout=120)
        assert not thread.is_alive()
    assert capsys.readouterr().err.count("warning: live logging") == 1


@pytest.fixture(scope="module")
def two_checkouts(tmp_path_factory, data_file) -> tuple[Path, Path]:
    """A study built in one checkout and copied to a second (as after a git clone + dvc pull):
    its study file and the two results roots."""
    root = tmp_path_factory.mktemp("checkouts")
    spec = study_spec("shared")
    build(root / "one", spec, data_file)
    shutil.copytree(root / "one", root / "two")  # copy2: same sizes and times, same fingerprints
    return write_yaml(root / "shared.yaml", spec), root


def _two_checkouts_sync_at_once(two_checkouts, uri: str) -> list[tuple[int, str]]:
    """Both checkouts run `dataworth track` at the same moment into one store; (exit status,
    stderr) of each."""
    study_file, root = two_checkouts
    env = dataworth_env(MLFLOW_TRACKING_URI=uri)
    procs = [subprocess.Popen([str(BIN / "dataworth"), "track", str(study_file), "--results", str(root / checkout)],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for checkout in ("one", "two")]
    return [(p.wait(timeout=300), p.communicate()[1]) for p in procs]


def _one_mlflow_run_each(client, name: str, history_of) -> None:
    parents, children = tracked(client, name)
    assert len(parents) == 1 and len(children) == 4 and all(len(v) == 1 for v in children.values())
    for run_id, [mlrun] in children.items():
        assert mlrun.data.tags["mlflow.parentRunId"] == parents[0].info.run_id
        assert curve(client, mlrun.info.run_id, "batch_loss") == file_curve(history_of(run_id), "loss")  # each point once


def _history(two_checkouts, run_id: str) -> pd.DataFrame:
    return read_parquet(two_checkouts[1] / "one" / "shared" / "runs" / run_id / "history.parquet", HISTORY)


def test_two_checkouts_syncing_one_new_sqlite_store_at_once(two_checkouts, tmp_path):
    store = tmp_path / "shared" / "mlflow.db"
    for code, stderr in _two_checkouts_sync_at_once(two_checkouts, f"sqlite:///{store}"):
        assert code == 0, stderr
        assert "Traceback" not in stderr and "already exists" not in stderr, stderr
    _one_mlflow_run_each(MlflowClient(f"sqlite:///{store}"), "shared", lambda run_id: _history(two_checkouts, run_id))


def test_two_checkouts_syncing_one_server_at_once(server, two_checkouts):
    for code, stderr in _two_checkouts_sync_at_once(two_checkouts, server.uri):
        assert code == 0, stderr
        assert "Traceback" not in stderr, stderr
    _one_mlflow_run_each(MlflowClient(server.uri), "shared", lambda run_id: _history(two_checkouts, run_id))


def test_many_syncs_and_live_runs_at_once_lose_nothing(server, tmp_path, data_file):
    specs = [study_spec("crowd-a"), study_spec("crowd-b")]
    for spec in specs:
        build(tmp_path, spec, data_file)
        write_yaml(tmp_path / f"{spec['study']}.yaml", spec)
    live_spec = study_spec("crowd-live", train={"steps": 300})
    live_spec["grid"] = dict(live_spec["grid"], augmentation=["none"])
    live_runs = load_study(live_spec).runs
    live_file = write_yaml(tmp_path / "crowd-live.yaml", live_spec)

    env = dataworth_env(MLFLOW_TRACKING_URI=server.uri)
    track = [str(BIN / "dataworth"), "track", "--results", str(tmp_path)]
    commands = [
        track + [str(tmp_path / "crowd-a.yaml")],
        track + [str(tmp_path / "crowd-a.yaml")],  # the same study twice at once
        track + [str(tmp_path / "crowd-b.yaml")],
    ] + [
        [str(BIN / "dataworth"), "train", "--study", str(live_file), "--run-id", run["run_id"],
         "--data", str(data_file), "--runs", str(tmp_path / "crowd-live" / "runs")]
        for run in live_runs
    ]
    procs = [subprocess.Popen(c, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for c in commands]
    outputs = [p.communicate(timeout=300) for p in procs]
    for proc, (_, stderr) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, stderr
        assert "Traceback" not in stderr and "error" not in stderr and "live logging" not in stderr, stderr

    client = MlflowClient(server.uri)
    for spec in specs:
        parents, children = tracked(client, spec["study"], ViewType.ALL)
        assert len(parents) == 1 and len(children) == 4 and all(len(v) == 1 for v in children.values())
    parents, children = tracked(client, "crowd-live", ViewType.ALL)
    assert sorted(children) == sorted(r["run_id"] for r in live_runs)
    for run in live_runs:
        [mlrun] = children[run["run_id"]]
        assert mlrun.info.status == "FINISHED"
        assert [step for step, _ in curve(client, mlrun.info.run_id, "batch_loss")] == list(range(10, 301, 10))


# ---------------------------------------------------------------------------------------------
# Issue 20: held-out curves, real run times, the study run's params, metrics and description, two
# studies compared through the client API, report.html, the saved view the UI link opens (a moved
# checkout: test_mlflow_workflow.py). One tiny pair of studies (2 runs each), built
# and synced once for these tests.

# Study a: held-out curves every 20 of 40 steps; study b: the same at twice the width.
RATIOS = {"cmp-a": {32: 1.5, 64: 2.5}, "cmp-b": {32: 0.8, 64: 1.2}}


def two_run_spec(name: str, width: int, **train) -> dict:
    return study_spec(name, grid={"n_train": [32], "augmentation": ["none", "shift"],
                                  "model": [{"name": "cnn1d", "width": width}], "seed": [0]},
                      train=train)


def frame(rows: list[dict], schema) -> pd.DataFrame:
    """Rows in the schema's columns, the others null."""
    return pd.DataFrame([{name: row.get(name) for name in schema.names} for row in rows])


def write_analysis(results, name: str) -> None:
    """fits.parquet and exchange_rates.parquet as the analysis writes them (values made up here:
    the study run only reads them), and a report with one figure."""
    curve_key = {"dataset": "synthetic", "model": "cnn1d", "width": 8, "method": "supervised", "metric": "test_accuracy"}
    fits = frame([{**curve_key, "augmentation": policy, "status": "ok", "b": b, "c": c}
                  for policy, b, c in (("none", 0.9, 0.5), ("shift", 0.93, 0.4))], FITS)
    write_parquet(fits, FITS, results / "fits.parquet")
    rates = frame([{**curve_key, "augmentation": "shift", "reference": "none", "grid": "study", "n": float(n),
                    "status": "ok", "ratio": ratio, "beyond_asymptote": False}
                   for n, ratio in RATIOS[name].items()], EXCHANGE_RATES)
    write_parquet(rates, EXCHANGE_RATES, results / "exchange_rates.parquet")
    report = results / "report"
    report.mkdir()
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(64))
    (report / "scaling.png").write_bytes(png)
    text = "# report\n\n![scaling](scaling.png)\n\n| a | b |\n|---|---|\n| 1 | 2 |\n"
    (report / "report.md").write_text(text)
    write_report_html(report, text)


@pytest.fixture(scope="module")
def synced(mlflow_server, tmp_path_factory, data_file):
    if mlflow_server.proc is None:  # an earlier test killed it
        mlflow_server.start()
    root = tmp_path_factory.mktemp("studies")
    with pytest.MonkeyPatch.context() as env:
        env.delenv("MLFLOW_TRACKING_URI", raising=False)  # no live logging: the sync sends everything
        studies = {
            "cmp-a": build(root, two_run_spec("cmp-a", 8, eval_every=20), data_file),
            "cmp-b": build(root, two_run_spec("cmp-b", 16), data_file),
        }
    for name, study in studies.items():
        write_analysis(study.study_dir(root).path, name)
        sync_study(study, root, mlflow_server.uri)
    return root, studies, MlflowClient(mlflow_server.uri)


def study_runs(client, names):
    experiments = [client.get_experiment_by_name(n).experiment_id for n in names]
    return experiments, client.search_runs(experiments, "tags.`dataworth.role` = 'study'")


def test_heldout_curves_and_real_times_per_run(synced):
    root, studies, client = synced
    for name, study in studies.items():
        experiment = client.get_experiment_by_name(name)
        children = client.search_runs([experiment.experiment_id], "tags.`dataworth.role` = 'run'")
        assert len(children) == 2
        for mlrun in children:
            rd = StudyDir(study.study_dir(root).path).run_dir(mlrun.data.tags["dataworth.run_id"])
            history = read_parquet(rd.history, HISTORY)
            points = curve(client, mlrun.info.run_id, "heldout_test_accuracy")
            if name == "cmp-a":  # eval_every 20 of 40 steps: two points, the file's
                assert [step for step, _ in points] == [20, 40]
                expected = history.dropna(subset=["test_accuracy"])
                assert points == list(zip(expected["step"], expected["test_accuracy"], strict=True))
                assert [s for s, _ in curve(client, mlrun.info.run_id, "heldout_ood_loss")] == [20, 40]
            else:
                assert points == [] and history["test_accuracy"].isna().all()
            training = read_parquet(rd.training, TRAINING).iloc[0]
            assert abs(mlrun.info.start_time / 1000 - training["started_at"].timestamp()) < 1
            assert abs(mlrun.info.end_time / 1000 - training["ended_at"].timestamp()) < 1
            assert 0 < (mlrun.info.end_time - mlrun.info.start_time) / 1000 <= training["wall_seconds"] + 1


def test_study_runs_carry_identity_results_and_are_filterable(synced):
    _, studies, client = synced
    experiments, runs = study_runs(client, studies)
    by_study = {r.data.tags["dataworth.study"]: r for r in runs}
    assert sorted(by_study) == ["cmp-a", "cmp-b"]
    a, b = by_study["cmp-a"], by_study["cmp-b"]
    assert a.data.params["dataset"] == "synthetic" and a.data.params["augmentations"] == "none,shift"
    assert a.data.params["models"] == "cnn1d-8" and b.data.params["models"] == "cnn1d-16"
    assert a.data.params["sizes"] == "32" and a.data.params["train.steps"] == "40" and a.data.params["runs"] == "2"
    assert "train.eval_every" not in a.data.params  # execution-only, like in run ids
    assert a.data.metrics["fit_b_test_shift"] == 0.93 and a.data.metrics["fit_c_test_none"] == 0.5
    assert a.data.metrics["exchange_ratio_test_shift_n64"] == 2.5 and b.data.metrics["exchange_ratio_test_shift_n32"] == 0.8
    # The names filter as the docs say, over both studies at once.
    def found(query):
        return sorted(r.data.tags["dataworth.study"] for r in client.search_runs(experiments, query))

    assert found('metrics."exchange_ratio_test_shift_n64" > 1') == ["cmp-a", "cmp-b"]
    assert found("metrics.exchange_ratio_test_shift_n64 > 2") == ["cmp-a"]
    assert found("params.models = 'cnn1d-16'") == ["cmp-b"]
    note = a.data.tags["mlflow.note.content"]
    assert "2 runs" in note and "`shift` is worth 2.50x" in note


def test_report_html_and_the_saved_view_are_on_the_study(synced, tmp_path):
    _, studies, client = synced
    experiments, runs = study_runs(client, ["cmp-a"])
    [study_run] = runs
    assert {"report/report.html", "report/report.md", "report/scaling.png"} <= {
        a.path for a in client.list_artifacts(study_run.info.run_id, "report")}
    page = open(client.download_artifacts(study_run.info.run_id, "report/report.html", str(tmp_path))).read()
    assert "data:image/png;base64," in page and 'src="scaling.png"' not in page and "<table>" in page
    view = json.loads(client.get_experiment(experiments[0]).tags[VIEW_TAG])
    state = json.loads(view["state"])
    assert state["orderByKey"] == "params.`n_train`" and "params.`augmentation`" in state["selectedColumns"]
