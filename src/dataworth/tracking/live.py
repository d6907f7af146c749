"""Live logging: a run's training curve on an MLflow tracking server while it trains.

Only when MLFLOW_TRACKING_URI is an http(s) server (DATAWORTH_LIVE_LOGGING=0 turns it off);
the study's own SQLite store is never written by training jobs. Training code must not import
mlflow, so this speaks MLflow's REST API with urllib, from a background thread: `log(row)`
only queues the row. A server that is down, slow or failing never fails or slows training:
the first problem prints one warning and turns the logger off. The run's Parquet stays the
record, and the serial `dataworth track` later fills in whatever did not arrive, into the
same MLflow run (both find it by its `dataworth.run_id` tag).
"""

from __future__ import annotations

import base64
import contextlib
import json
import math
import os
import queue
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Callable

from dataworth.tracking import mlflow_fields as fields

REQUEST_TIMEOUT_SECONDS = 5.0
# At the end of training, wait at most this long for rows still queued; the sync sends the rest.
CLOSE_WAIT_SECONDS = 2.0
ROWS_PER_REQUEST = fields.MAX_METRICS_PER_BATCH // len(fields.HISTORY_METRICS)


class MlflowRest:
    """The few MLflow REST calls live logging needs (https://mlflow.org/docs/latest/rest-api.html)."""

    def __init__(self, uri: str, timeout: float = REQUEST_TIMEOUT_SECONDS):
        self.base = uri.rstrip("/") + "/api/2.0/mlflow/"
        self.timeout = timeout
        self.headers = {"Content-Type": "application/json"}
        # The same credentials the mlflow client reads, for servers behind authentication.
        if os.environ.get("MLFLOW_TRACKING_TOKEN"):
            self.headers["Authorization"] = f"Bearer {os.environ['MLFLOW_TRACKING_TOKEN']}"
        elif os.environ.get("MLFLOW_TRACKING_USERNAME"):
            user = f"{os.environ['MLFLOW_TRACKING_USERNAME']}:{os.environ.get('MLFLOW_TRACKING_PASSWORD', '')}"
            self.headers["Authorization"] = "Basic " + base64.b64encode(user.encode()).decode()

    def call(self, endpoint: str, body: dict | None = None, query: dict | None = None) -> dict:
        url = self.base + endpoint + (f"?{urllib.parse.urlencode(query)}" if query else "")
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(url, data=data, headers=self.headers, method="GET" if body is None else "POST")
        with urllib.request.urlopen(request, timeout=self.timeout) as response:
            return json.loads(response.read() or b"{}")

    def error_code(self, exc: urllib.error.HTTPError) -> str:
        try:
            return json.loads(exc.read()).get("error_code", "")
        except ValueError:
            return ""

    def experiment_id(self, name: str) -> str:
        """The experiment named `name`, created if missing (names are unique: a race is harmless)."""
        for attempt in range(2):
            try:
                found = self.call("experiments/get-by-name", query={"experiment_name": name})
                return found["experiment"]["experiment_id"]
            except urllib.error.HTTPError as exc:
                if self.error_code(exc) != "RESOURCE_DOES_NOT_EXIST" or attempt:
                    raise
            try:
                created = self.call("experiments/create", {"name": name, "tags": _pairs(fields.EXPERIMENT_TAGS)})
                return created["experiment_id"]
            except urllib.error.HTTPError as exc:
                if self.error_code(exc) != "RESOURCE_ALREADY_EXISTS":
                    raise
        raise RuntimeError(f"experiment {name!r} neither found nor created")

    def search(self, experiment_id: str, tag: str, value: str) -> list[dict]:
        body = {"experiment_ids": [experiment_id], "filter": f"tags.`{tag}` = '{value}'",
                "run_view_type": "ACTIVE_ONLY", "max_results": 100}
        return self.call("runs/search", body).get("runs", [])

    def log_batch(self, run_id: str, metrics=(), params=(), tags=()) -> None:
        body = {"run_id": run_id, "metrics": list(metrics), "params": list(params), "tags": list(tags)}
        self.call("runs/log-batch", body)


def oldest(runs: list[dict]) -> dict:
    """The run every process agrees to keep when several were made for one run id."""
    return min(runs, key=lambda r: (int(r["info"].get("start_time", 0)), r["info"]["run_id"]))


def _pairs(mapping: dict) -> list[dict]:
    return [{"key": k, "value": v} for k, v in mapping.items()]


class LiveLogger:
    def __init__(self, uri: str, run: dict):
        self.rest = MlflowRest(uri)
        self.uri = uri
        self.run = run
        self.mlflow_run_id: str | None = None
        self.off = False
        self.logged: dict[str, dict[int, float]] = {}  # metric -> step -> value already on the server
        self.rows: queue.Queue = queue.Queue()
        self.thread = threading.Thread(target=self._work, name="mlflow-live-logging", daemon=True)
        self.thread.start()

    def log(self, row: dict) -> None:
        """Called by the training loop at each history row: never blocks."""
        if not self.off:
            self.rows.put(row)

    def close(self, status: str) -> None:
        """Mark the MLflow run FINISHED or FAILED once the queued rows are sent; waits a bounded time."""
        self.rows.put(status)
        self.thread.join(CLOSE_WAIT_SECONDS)

    def _work(self) -> None:
        try:
            self._start()
            while True:
                items = [self.rows.get()]  # rows that piled up while the server was busy go together
                with contextlib.suppress(queue.Empty):
                    while len(items) < ROWS_PER_REQUEST:
                        items.append(self.rows.get_nowait())
                rows = [item for item in items if isinstance(item, dict)]
                if rows:
                    self._send(rows)
                if isinstance(items[-1], str):  # close(status) puts the status last
                    self._end(items[-1])
                    return
        except Exception as exc:  # noqa: BLE001 - any failure: warn once, training goes on
            self.off = True
            print(f"warning: live logging to {fields.shown_uri(self.uri)} stopped ({type(exc).__name__}: {exc}); "
                  "training goes on, its Parquet files are the record and `dataworth track` syncs them later",
                  file=sys.stderr, flush=True)

    def _start(self) -> None:
        """Find this run's MLflow run (a rerun continues it) or create it; attach it to the study's run."""
        run = self.run
        experiment_id = self.rest.experiment_id(run["study"])
        found = self.rest.search(experiment_id, fields.RUN_ID_TAG, run["run_id"])
        self.logged = {key: {} for key in fields.HISTORY_METRICS.values()}
        if found:
            self.mlflow_run_id = oldest(found)["info"]["run_id"]
            self.logged = {key: self._history(key) for key in self.logged}
        else:
            mine = self.rest.call("runs/create", {
                "experiment_id": experiment_id, "start_time": int(time.time() * 1000),
                "run_name": fields.run_name(run), "tags": _pairs(fields.run_tags(run)),
            })["run"]
            # Another process may have created one at the same moment: all keep the oldest.
            found = self.rest.search(experiment_id, fields.RUN_ID_TAG, run["run_id"]) or [mine]
            self.mlflow_run_id = oldest(found)["info"]["run_id"]
            if self.mlflow_run_id != mine["info"]["run_id"]:
                self.rest.call("runs/delete", {"run_id": mine["info"]["run_id"]})
        tags = {**fields.run_tags(run), **fields.live_tags()}
        # Nest it under the study's run if the sync has made one; the sync attaches it otherwise.
        parents = self.rest.search(experiment_id, fields.ROLE_TAG, "study")
        if parents:
            tags[fields.PARENT_TAG] = oldest(parents)["info"]["run_id"]
        self.rest.log_batch(self.mlflow_run_id, params=_pairs(fields.run_params(run)), tags=_pairs(tags))
        self.rest.call("runs/update", {"run_id": self.mlflow_run_id, "status": "RUNNING"})

    def _end(self, status: str) -> None:
        # "trained" until the sync, which knows the evaluation, sets ok or diverged.
        tag = {"FINISHED": "trained", "FAILED": "failed"}[status]
        self.rest.log_batch(self.mlflow_run_id, tags=_pairs({fields.STATUS_TAG: tag}))
        end_time = int(time.time() * 1000)
        self.rest.call("runs/update", {"run_id": self.mlflow_run_id, "status": status, "end_time": end_time})

    def _history(self, key: str) -> dict[int, float]:
        """What an earlier start of this run already sent (a resumed or rerun run)."""
        reply = self.rest.call("metrics/get-history", query={"run_id": self.mlflow_run_id, "metric_key": key})
        return {int(m.get("step", 0)): float(m["value"]) for m in reply.get("metrics", [])}

    def _send(self, rows: list[dict]) -> None:
        now = int(time.time() * 1000)
        metrics = []
        for row in rows:
            for column, key in fields.HISTORY_METRICS.items():
                value = fields.metric_value(row.get(column))  # held-out columns: only on evaluated steps
                if value is None:
                    continue
                step = int(row["step"])
                earlier = self.logged[key].get(step)
                if earlier is not None and not math.isclose(earlier, value, rel_tol=1e-9, abs_tol=0.0):
                    # An earlier attempt logged other values: the sync will replace that MLflow run.
                    raise RuntimeError(f"the MLflow run holds other values of {key} at step {step} "
                                       "(an earlier attempt of this run)")
                if earlier is None:
                    metrics.append({"key": key, "value": value, "timestamp": now, "step": step})
                    self.logged[key][step] = value
        if metrics:
            self.rest.log_batch(self.mlflow_run_id, metrics=metrics)


def live_logger(run: dict) -> LiveLogger | None:
    """A LiveLogger when MLFLOW_TRACKING_URI is an http(s) server, else None."""
    uri = os.environ.get("MLFLOW_TRACKING_URI", "")
    if not fields.is_server(uri) or os.environ.get("DATAWORTH_LIVE_LOGGING", "1") == "0":
        return None
    return LiveLogger(uri, run)


@contextlib.contextmanager
def live_logging(run: dict, on_log: Callable[[dict], None] | None = None):
    """Yields the `on_log` callback for the training loop: `on_log` itself, plus live logging
    when a tracking server is set. The MLflow run ends FINISHED, or FAILED if training raised."""
    logger = live_logger(run)
    if logger is None:
        yield on_log
        return

    def log_row(row: dict) -> None:
        logger.log(row)
        if on_log:
            on_log(row)

    try:
        yield log_row
    except BaseException:
        logger.close("FAILED")
        raise
    logger.close("FINISHED")
