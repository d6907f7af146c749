"""`snakemake track` with real Snakemake into the study's own SQLite store, and `dataworth ui` over it."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.request

import pytest
from mlflow import MlflowClient

from conftest import BIN, write_yaml
from dataworth.tracking.mlflow_fields import default_tracking_uri
from test_workflow import jobs_run

pytestmark = pytest.mark.integration


def dry_run_jobs(project, *args: str, env: dict) -> dict[str, int]:
    proc = project.snakemake(*args, env=env)
    return jobs_run(proc.stdout + proc.stderr)


# On the worker that holds the finished tiny study (conftest): the track rule is what this test
# checks, and it starts from that study's copy instead of training and evaluating it again.
@pytest.mark.xdist_group("finished_tiny_packed")
def test_track_rule_syncs_after_everything_all_builds_and_the_ui_serves_it(finished_packed):
    project = finished_packed
    offline = {"MLFLOW_TRACKING_URI": ""}  # the study's own store, whatever this machine has set
    # What each target asks for from scratch (--forceall: as if nothing were built yet): the
    # default target stays offline; `track` pulls in the whole pipeline, training included.
    dry = dry_run_jobs(project, "-n", "--forceall", env=offline)
    assert "track" not in dry and dry["train"] >= 1 and dry["collect"] == 1
    dry_track = dry_run_jobs(project, "-n", "--forceall", "track", env=offline)
    assert dry_track["track"] == 1 and dry_track["train"] == dry["train"] and dry_track["collect"] == 1
    assert dry_track["report"] == 1  # after everything `all` builds, the analysis too

    first = project.snakemake("track", env=offline)
    assert jobs_run(first.stdout + first.stderr) == {"track": 1}  # the finished study: only the sync is due
    results = project.results()
    record = json.loads((results / "mlflow-sync.json").read_text())
    assert record["counts"] == {"created": 4} and record["tracking_uri"].startswith("sqlite:///")
    assert "4 runs: 4 created" in (results / "logs" / "track.log").read_text()

    client = MlflowClient(default_tracking_uri(results))
    experiment = client.get_experiment_by_name("tiny")
    runs = client.search_runs([experiment.experiment_id])
    [parent] = [r for r in runs if r.data.tags["dataworth.role"] == "study"]
    children = [r for r in runs if r.data.tags["dataworth.role"] == "run"]
    assert len(children) == 4 and {r.data.tags["mlflow.parentRunId"] for r in children} == {parent.info.run_id}
    logs = {a.path for a in client.list_artifacts(children[0].info.run_id, "logs")}
    assert {"logs/train.log", "logs/evaluate.log"} <= logs
    # Whatever the analysis wrote is on the study's run.
    expected = {p for p in ("metrics.parquet", "fits.parquet", "exchange_rates.parquet") if (results / p).exists()}
    assert expected | {"study.json"} <= {a.path for a in client.list_artifacts(parent.info.run_id)}

    again = project.snakemake("track", env=offline)
    assert "Nothing to be done" in again.stdout + again.stderr

    # Issue 20 item 6: the checkout moves (copied elsewhere, the original results gone); the UI of
    # the copy serves the copy's artifacts. Item 3: it prints the link to the study's runs table.
    moved = project.root.parent / f"{project.root.name}-moved"
    shutil.copytree(project.root, moved, symlinks=True)
    shutil.rmtree(results)
    ui = subprocess.Popen(
        [str(BIN / "dataworth"), "ui"], cwd=moved, env=project.env(offline),
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, start_new_session=True,
    )
    try:
        first = [ui.stdout.readline() for _ in range(3)]
        assert first[0].startswith(f"artifact locations moved from {(results / 'mlartifacts').resolve().as_uri()}")
        address = re.search(r"http://127\.0\.0\.1:\d+", first[1]).group(0)
        assert first[2].strip() == (f"the study's runs: {address}/#/experiments/{experiment.experiment_id}/runs"
                                    "?viewStateShareKey=dataworth")
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(address + "/health", timeout=2).close()
                break
            except OSError:
                assert ui.poll() is None and time.monotonic() < deadline, "the UI did not come up"
                time.sleep(0.25)
        with urllib.request.urlopen(f"{address}/api/2.0/mlflow/experiments/get-by-name?experiment_name=tiny") as r:
            assert json.load(r)["experiment"]["experiment_id"] == experiment.experiment_id
        config = f"{address}/get-artifact?path=config.json&run_uuid={children[0].info.run_id}"
        with urllib.request.urlopen(config) as r:  # artifacts are served from the study's folder
            assert json.load(r)["run_id"] == children[0].data.tags["dataworth.run_id"]
    finally:
        os.killpg(ui.pid, signal.SIGKILL)
        ui.wait(timeout=30)


def test_ui_without_a_store_says_what_to_run(tmp_path, tiny_study):
    write_yaml(tmp_path / "params.yaml", tiny_study)
    proc = subprocess.run([str(BIN / "dataworth"), "ui"], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          env={k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"})
    assert proc.returncode == 2
    assert "has no MLflow store yet" in proc.stderr and "dataworth track" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_track_against_a_dead_server_is_a_clear_error(tmp_path, tiny_study):
    write_yaml(tmp_path / "params.yaml", tiny_study)
    (tmp_path / "results" / "tiny").mkdir(parents=True)
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}"
    proc = subprocess.run([str(BIN / "dataworth"), "track", "--tracking-uri", dead], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert "does not answer" in proc.stderr and dead in proc.stderr and "Traceback" not in proc.stderr
