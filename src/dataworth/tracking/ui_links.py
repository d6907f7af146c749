"""Links into the MLflow UI that open on the study's runs (issue 20 item 3).

`#/experiments/<id>` can land on MLflow's GenAI traces page. The runs table is the experiment's
`runs` tab; the columns a researcher compares (augmentation, n_train, seed, test and OOD
accuracy), with every run on its own row, are a *saved view*: MLflow 3 keeps saved views as
experiment tags `mlflow.sharedViewState.<key>` (an envelope {name, createdAt, updatedAt, state},
state being the runs page's state as JSON) and opens one with `?viewStateShareKey=<key>`. The sync
writes the view `dataworth` on the study's experiment; `dataworth ui` and `dataworth track`
print the link. (Read from MLflow 3.17's UI bundle, the version requirements.lock pins;
scripts/ui-screenshot checks in a headless browser that the link shows the study's runs.)
"""

from __future__ import annotations

import json
import sqlite3
import time
import urllib.parse
from pathlib import Path

VIEW_KEY = "dataworth"
VIEW_TAG = f"mlflow.sharedViewState.{VIEW_KEY}"
PARAM_COLUMNS = ("augmentation", "n_train", "seed", "model", "width")
METRIC_COLUMNS = ("test_accuracy", "ood_accuracy")


def _column(kind: str, key: str) -> str:
    return f"{kind}.`{key}`"  # the UI's canonical column key


def view_state(extra_metrics: tuple[str, ...] = ()) -> dict:
    """The runs page's state: the table with the useful columns, every run on a row of its own.

    MLflow keeps which runs are expanded out of saved views, so the children cannot be opened
    through one; ordering by a param instead of the start time lists runs flat (MLflow nests child
    runs only in time order): the study run and every training run, smallest n_train first."""
    columns = [_column("params", k) for k in PARAM_COLUMNS]
    columns += [_column("metrics", k) for k in (*METRIC_COLUMNS, *extra_metrics)]
    return {
        "searchFilter": "", "orderByKey": _column("params", "n_train"), "orderByAsc": True, "startTime": "ALL",
        "lifecycleFilter": "Active", "datasetsFilter": [], "modelVersionFilter": "All Runs",
        "selectedColumns": columns, "runListHidden": False, "viewMaximized": False, "compareRunsMode": "TABLE",
    }


def view_tag_value(extra_metrics: tuple[str, ...] = (), now_ms: int | None = None) -> str:
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    state = json.dumps(view_state(extra_metrics), sort_keys=True)
    return json.dumps({"name": "dataworth: the study's runs", "createdAt": now_ms, "updatedAt": now_ms,
                       "state": state})


def save_view(client, experiment_id: str, extra_metrics: tuple[str, ...] = ()) -> None:
    """Write (or refresh) the saved view on the experiment, unless it holds this one already."""
    experiment = client.get_experiment(experiment_id)
    held = experiment.tags.get(VIEW_TAG)
    if held:
        try:
            if json.loads(json.loads(held)["state"]) == view_state(extra_metrics):
                return
        except (ValueError, KeyError, TypeError):
            pass
    client.set_experiment_tag(experiment_id, VIEW_TAG, view_tag_value(extra_metrics))


def runs_table_url(base: str, experiment_id: str) -> str:
    """The study's runs table in model-training mode, with the saved view."""
    return f"{base.rstrip('/')}/#/experiments/{experiment_id}/runs?viewStateShareKey={VIEW_KEY}"


def compare_runs_url(base: str, run_ids: list[str], experiment_ids: list[str]) -> str:
    """MLflow's compare view of the given runs (e.g. the study runs of two studies)."""
    query = urllib.parse.urlencode({"runs": json.dumps(run_ids), "experiments": json.dumps(sorted(set(experiment_ids)))})
    return f"{base.rstrip('/')}/#/compare-runs?{query}"


def _local_experiment_id(store_uri: str, name: str) -> str | None:
    """The experiment's id read straight from a study's sqlite store (no mlflow import: fast)."""
    if not store_uri.startswith("sqlite:///"):
        return None
    db = Path(store_uri.removeprefix("sqlite:///"))
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as connection:
            row = connection.execute("SELECT experiment_id FROM experiments WHERE name = ?", (name,)).fetchone()
    except sqlite3.Error:
        return None
    return None if row is None else str(row[0])


def print_ui_links(base: str, store_uri: str, study_name: str, echo=print) -> None:
    experiment_id = _local_experiment_id(store_uri, study_name)
    if experiment_id is not None:
        echo(f"the study's runs: {runs_table_url(base, experiment_id)}", flush=True)
