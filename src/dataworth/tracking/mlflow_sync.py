"""The serial `track` step: a study's runs and results into MLflow, from the Parquet the runs wrote.

One experiment per study (named like the study); in it one parent run for the study (the run
table's counts, metrics.parquet and the analysis outputs: fits, exchange rates, report figures)
and one child run per finished training run (params, tags, final and step-wise metrics,
artifacts). The MLflow store mirrors the run table, and syncing is idempotent:

- a run is found by its `dataworth.run_id` tag, never created twice, and skipped when its files
  have not changed since the last sync (a fingerprint tag);
- metric points already in MLflow are not sent again, so a sync cut off half-way (or a run the
  live logger already sent) is completed, not duplicated;
- a rerun run updates its MLflow run; only if its curve now differs at a step MLflow already
  holds (MLflow cannot delete metric points) is the MLflow run replaced by a fresh one;
- MLflow runs whose run id left the study are deleted (restorable), and restored if it returns.

Syncs of one study take a lock in its study dir (results/<study>), so they run one at a time.
Syncs into one local store (a sqlite file, say MLFLOW_TRACKING_URI shared by two checkouts) also
take a lock beside it: two processes creating a new sqlite store at once crash MLflow's schema
set-up, and both would create the same runs. A tracking server cannot be locked: there a run is
found by its run-id tag, and a final pass deletes the duplicates two syncs racing created (both
keep the same one: the oldest, ties broken by id), leaving alone runs another sync is still writing.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import math
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from dataworth.runs import EVALUATIONS, SUMMARY_STAGE, RunDir
from dataworth.study import Study
from dataworth.tracking import mlflow_fields as fields
from dataworth.tracking import study_run, ui_links
from dataworth.tracking.relocate import artifacts_uri, relocate_artifacts
from dataworth.tracking.provenance import code_version
from dataworth.tracking.collect import run_metrics
from dataworth.tracking.schemas import HISTORY, TRAINING, read_parquet

# Bump when what a run looks like in MLflow changes: every run is then sent again.
SYNC_FORMAT = 1
# The study's analysis outputs (dataworth.analysis), logged on the study's run when present.
ANALYSIS_FILES = ("metrics.parquet", "fits.parquet", "exchange_rates.parquet", "reference.parquet")
REPORT_DIR = "report"


class TrackingError(RuntimeError):
    """A sync that could not finish; the message says why and what to do."""


@dataclass
class SyncReport:
    study: str
    tracking_uri: str
    experiment_id: str = ""
    study_run_id: str = ""
    runs_in_study: int = 0
    runs_synced: int = 0
    counts: dict[str, int] = field(default_factory=dict)  # created, updated, replaced, unchanged, ...
    not_finished: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def count(self, outcome: str) -> None:
        self.counts[outcome] = self.counts.get(outcome, 0) + 1

    def line(self) -> str:
        counts = ", ".join(f"{v} {k}" for k, v in sorted(self.counts.items())) or "nothing to do"
        text = (f"study {self.study!r} -> {self.tracking_uri} (experiment {self.experiment_id}): "
                f"{self.runs_in_study} runs: {counts} in {self.seconds:.1f}s")
        if self.not_finished:
            text += f"; {len(self.not_finished)} not finished yet (no summary.parquet), skipped"
        return text

    def as_dict(self) -> dict:
        return asdict(self)


def sync_study(
    study: Study,
    results_root: str | Path = "results",
    uri: str | None = None,
    echo: Callable[[str], None] = print,
) -> SyncReport:
    """Sync the study's finished runs and results into MLflow at `uri` (default: see tracking_uri)."""
    from mlflow.exceptions import MlflowException
    from requests import RequestException

    start = time.perf_counter()
    study_dir = study.study_dir(results_root).path
    if not study_dir.is_dir():
        raise TrackingError(f"{study_dir} does not exist: run the study first (snakemake), then track it")
    uri = fields.tracking_uri(study_dir, uri)
    report = SyncReport(study.name, fields.shown_uri(uri), runs_in_study=len(study.runs))
    with _one_sync_at_a_time(study_dir, echo), _one_sync_per_store(uri, echo):
        _check_server(uri)
        if moved_from := relocate_artifacts(uri, study_dir, study.name):  # issue 20 item 6: a moved checkout
            echo(f"artifact locations of the store moved from {moved_from} to this checkout")
        try:
            _sync(study, study_dir, uri, report, echo)
        except (MlflowException, RequestException, OSError) as exc:
            raise TrackingError(
                f"sync of study {study.name!r} to {report.tracking_uri} stopped after {report.runs_synced} of "
                f"{len(study.runs)} runs: {type(exc).__name__}: {_first_line(exc)}\n"
                "Nothing is lost: the runs' Parquet files are the record. Run `dataworth track` again "
                "once the cause is gone (a tracking server: once it is back); it completes the sync "
                "without duplicates."
            ) from exc
    report.seconds = time.perf_counter() - start
    return report


def _sync(study: Study, study_dir: Path, uri: str, report: SyncReport, echo) -> None:
    from mlflow import MlflowClient

    client = MlflowClient(uri)
    experiment_id = _experiment(client, study, study_dir, uri, echo)
    report.experiment_id = experiment_id
    runs, study_runs = _existing_runs(client, experiment_id)

    parent = _keep_one(client, study_runs, echo)
    # --- issue 20 item 2: the study run holds the study's identity as params, which MLflow never changes
    if parent is not None and (changed := study_run.identity_changed(study, parent.data.params)):
        client.delete_run(parent.info.run_id)
        echo(f"the study's identity changed ({', '.join(changed)}): its MLflow study run was replaced by a new one")
        parent = None
    # ---
    parent_id = parent.info.run_id if parent else _create_study_run(client, experiment_id, study)
    report.study_run_id = parent_id

    log_models = study.spec.tracking.log_models
    statuses = {}
    for run in study.runs:
        rd = RunDir(study_dir / "runs" / run["run_id"])
        mlruns = runs.pop(run["run_id"], [])
        if not rd.summary.exists():  # training, or not started: the live logger may be sending it
            report.not_finished.append(run["run_id"])
            continue
        mlrun = _keep_one(client, mlruns, echo)
        outcome, statuses[run["run_id"]] = _sync_run(client, experiment_id, parent_id, run, rd, mlrun, log_models)
        report.count(outcome)
        report.runs_synced += 1
        if outcome == "replaced":
            echo(f"run {run['run_id']}: retrained with a different curve; its MLflow run was replaced by a new one")

    for left in runs.values():  # MLflow runs of run ids no longer in the study's grid
        for mlrun in left:
            if mlrun.info.lifecycle_stage == "active":
                client.delete_run(mlrun.info.run_id)
                report.count("deleted (left the study)")
    _sync_study_run(client, parent_id, study, study_dir, statuses)
    if fields.is_server(uri):
        # Until a pass changes nothing: a pass that read the store just before the other sync
        # finished may have pointed runs at a study run that the other's pass then deleted.
        for _ in range(10):
            kept_parent, changed = _remove_duplicates(client, experiment_id, {r["run_id"] for r in study.runs}, echo)
            report.study_run_id = kept_parent or report.study_run_id
            if not changed:
                break
    # issue 20 item 3: the saved view the UI link opens (the runs table, useful columns, every run)
    test_sets = tuple(f"{name}_accuracy" for name in (getattr(study.spec.eval, "test_sets", None) or {}))
    ui_links.save_view(client, experiment_id, test_sets)


def _remove_duplicates(client, experiment_id: str, run_ids: set[str], echo) -> tuple[str, bool]:
    """After a sync to a server: where another sync created the same MLflow run at the same moment,
    keep one. Only runs whose sync finished (their fingerprint tag is set) are compared; a run
    another process is still writing is left to that process's own final pass. Every racing sync
    keeps the same run (the oldest; ties by id). Returns the study's run that is kept, and whether
    anything changed."""
    changed = False
    by_run_id, study_runs = _existing_runs(client, experiment_id)
    groups = [study_runs, *(by_run_id.get(run_id, []) for run_id in run_ids)]
    kept_parent = None
    for group in groups:
        finished = [r for r in group if r.info.lifecycle_stage == "active" and fields.SYNCED_TAG in r.data.tags]
        if not finished:
            continue
        keep = _oldest(finished)
        for extra in finished:
            if extra is not keep:
                client.delete_run(extra.info.run_id)
                echo(f"{extra.info.run_name}: a second MLflow run another sync made at the same time, deleted")
                changed = True
        if group is study_runs:
            kept_parent = keep.info.run_id
        elif kept_parent and keep.data.tags.get(fields.PARENT_TAG) != kept_parent:
            # Its parent was the other sync's study run: point it at the one kept.
            client.set_tag(keep.info.run_id, fields.PARENT_TAG, kept_parent)
            changed = True
    return kept_parent or "", changed


# ---------------------------------------------------------------------------------------------
# Finding things


def _experiment(client, study: Study, study_dir: Path, uri: str, echo) -> str:
    from mlflow.exceptions import MlflowException

    tags = {fields.STUDY_TAG: study.name, **fields.EXPERIMENT_TAGS}
    experiment = client.get_experiment_by_name(study.name)
    if experiment is None:
        # The study's own store keeps artifacts beside it; a server decides for itself.
        location = None if fields.is_server(uri) else artifacts_uri(study_dir)
        try:
            return client.create_experiment(study.name, artifact_location=location, tags=tags)
        except MlflowException as exc:  # a live logger created it a moment ago
            if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
            experiment = client.get_experiment_by_name(study.name)
    if experiment.lifecycle_stage == "deleted":
        client.restore_experiment(experiment.experiment_id)
        echo(f"experiment {study.name!r} had been deleted in MLflow: restored")
    for key, value in tags.items():
        if experiment.tags.get(key) != value:
            client.set_experiment_tag(experiment.experiment_id, key, value)
    return experiment.experiment_id


def _existing_runs(client, experiment_id: str):
    """Every run dataworth made in the experiment, deleted ones included: training runs by run id,
    and the study's run(s)."""
    from mlflow.entities import ViewType

    by_run_id: dict[str, list] = {}
    study_runs: list = []
    token = None
    while True:
        page = client.search_runs([experiment_id], run_view_type=ViewType.ALL, max_results=1000, page_token=token)
        for mlrun in page:
            tags = mlrun.data.tags
            if tags.get(fields.ROLE_TAG) == "study":
                study_runs.append(mlrun)
            elif fields.RUN_ID_TAG in tags:
                by_run_id.setdefault(tags[fields.RUN_ID_TAG], []).append(mlrun)
        token = page.token
        if not token:
            return by_run_id, study_runs


def _oldest(mlruns: list):
    return min(mlruns, key=lambda r: (r.info.start_time or 0, r.info.run_id))


def _keep_one(client, mlruns: list, echo):
    """The one MLflow run to keep for a dataworth run (or the study): the oldest active one; extra
    ones (two processes that created one at the same moment) are deleted; a deleted one comes back."""
    active = [r for r in mlruns if r.info.lifecycle_stage == "active"]
    if not active:
        if not mlruns:
            return None
        keep = _oldest(mlruns)
        client.restore_run(keep.info.run_id)
        echo(f"{keep.info.run_name}: in the study again, its deleted MLflow run restored")
        return client.get_run(keep.info.run_id)
    keep = _oldest(active)
    for extra in active:
        if extra is not keep:
            client.delete_run(extra.info.run_id)
    return keep


# ---------------------------------------------------------------------------------------------
# One training run


def _sync_run(client, experiment_id: str, parent_id: str, run: dict, rd: RunDir, mlrun, log_models: bool):
    """Bring the run's MLflow run up to date with its files; returns (outcome, status)."""
    summary = run_metrics(rd.summary).iloc[0].to_dict()  # with the probe, k-NN and RankMe columns
    fingerprint = _fingerprint(rd, parent_id, log_models)
    if mlrun is not None and mlrun.data.tags.get(fields.SYNCED_TAG) == fingerprint:
        return "unchanged", summary["status"]
    # --- issue 20: only the study run is new (the study's identity changed): point the run at it, send nothing again
    earlier_parent = mlrun.data.tags.get(fields.PARENT_TAG) if mlrun is not None else None
    if earlier_parent and mlrun.data.tags.get(fields.SYNCED_TAG) == _fingerprint(rd, earlier_parent, log_models):
        client.set_tag(mlrun.info.run_id, fields.PARENT_TAG, parent_id)
        client.set_tag(mlrun.info.run_id, fields.SYNCED_TAG, fingerprint)
        return "unchanged", summary["status"]
    # ---
    training = read_parquet(rd.training, TRAINING).iloc[0].to_dict()
    history = read_parquet(rd.history, HISTORY)
    params = fields.run_params(run)

    outcome, on_server, latest = "updated", {}, {}
    if mlrun is None:
        outcome = "created"
    else:
        on_server = {key: _history_on_server(client, mlrun.info.run_id, key) for key in fields.HISTORY_METRICS.values()}
        latest, logged_params = mlrun.data.metrics, mlrun.data.params
        changed_params = any(logged_params.get(k, v) != v for k, v in params.items())
        if changed_params or _curve_differs(history, on_server):
            # MLflow can neither delete metric points nor change a param: start a fresh MLflow run.
            client.delete_run(mlrun.info.run_id)
            outcome, mlrun, on_server, latest = "replaced", None, {}, {}
        else:
            params = {k: v for k, v in params.items() if k not in logged_params}
    mlrun_id = mlrun.info.run_id if mlrun else _create_run(client, experiment_id, run, rd, training)

    from mlflow.entities import Metric, Param, RunTag

    metrics = [Metric(key, value, ts, step) for key, value, ts, step in _history_points(history, rd, on_server, training)]
    step = int(summary["steps_completed"])
    summary_time = _mtime_ms(rd.summary)
    final = {**{k: summary[k] for k in (*fields.SUMMARY_METRICS, *fields.EVALUATION_METRICS)},
             **{k: training[k] for k in fields.TRAINING_METRICS},
             **fields.test_set_metrics(summary)}
    for key, value in final.items():
        value = fields.metric_value(value)
        if value is not None and latest.get(key) != value:
            metrics.append(Metric(key, value, summary_time, step))
    tags = {**fields.run_tags(run), **fields.record_tags(training, summary["status"]), fields.PARENT_TAG: parent_id}
    # One call; the client splits it into requests within MLflow's limits (1000 metrics, 100 params,
    # 100 tags each).
    client.log_batch(
        mlrun_id,
        metrics=metrics,
        params=[Param(k, v) for k, v in params.items()],
        tags=[RunTag(k, v) for k, v in tags.items()],
    )
    for path in _run_files(rd, log_models):
        client.log_artifact(mlrun_id, str(path))
    _log_folder(client, mlrun_id, rd.path / "logs")
    client.set_terminated(mlrun_id, "FINISHED", end_time=_record_time_ms(training, "ended_at") or summary_time)
    # Last: a sync cut off before this line sends the run again next time.
    client.set_tag(mlrun_id, fields.SYNCED_TAG, fingerprint)
    return outcome, summary["status"]


def _create_run(client, experiment_id: str, run: dict, rd: RunDir, training: dict) -> str:
    started = _record_time_ms(training, "started_at")
    if started is None:  # a run trained before training.parquet recorded its times
        started = _mtime_ms(rd.training) - int(1000 * (training["wall_seconds"] or 0))
    tags = {k: v for k, v in fields.run_tags(run).items() if k != fields.RUN_NAME_TAG}
    return client.create_run(experiment_id, start_time=started, tags=tags, run_name=fields.run_name(run)).info.run_id


def _record_time_ms(training: dict, column: str) -> int | None:
    """training.parquet's started_at / ended_at in ms since the epoch (issue 20 item 4), or None."""
    import pandas as pd

    value = training.get(column)
    return None if value is None or pd.isna(value) else int(pd.Timestamp(value).timestamp() * 1000)


def _history_on_server(client, mlrun_id: str, key: str) -> dict[int, float]:
    return {m.step: m.value for m in client.get_metric_history(mlrun_id, key)}


def _curve_differs(history, on_server: dict[str, dict[int, float]]) -> bool:
    """True if MLflow holds, at a step of this history, another value than the file's."""
    for column, key in fields.HISTORY_METRICS.items():
        held = on_server.get(key, {})
        for step, value in zip(history["step"], history[column], strict=True):
            value = fields.metric_value(value)
            if value is not None and step in held and not math.isclose(held[step], value, rel_tol=1e-9, abs_tol=0.0):
                return True
    return False


def _history_points(history, rd: RunDir, on_server: dict, training: dict):
    """(key, value, timestamp, step) of each history value MLflow does not hold yet.

    Timestamps come from the training record's end (the file's time for older runs), less the
    training time still to come at that row, so the same files always give the same points."""
    end = _record_time_ms(training, "ended_at") or _mtime_ms(rd.history)
    last_elapsed = float(history["elapsed_seconds"].iloc[-1]) if len(history) else 0.0
    for row in history.itertuples(index=False):
        timestamp = end - int(1000 * (last_elapsed - row.elapsed_seconds))
        for column, key in fields.HISTORY_METRICS.items():
            value = fields.metric_value(getattr(row, column))
            if value is not None and row.step not in on_server.get(key, {}):
                yield key, value, timestamp, int(row.step)


def _run_files(rd: RunDir, log_models: bool) -> list[Path]:
    """The run's files MLflow shows (its evaluations' files where they exist)."""
    evaluations = [rd.output(name) for name in EVALUATIONS if name != SUMMARY_STAGE and rd.output(name).exists()]
    return [rd.config, rd.history, rd.training, rd.summary, *evaluations, *([rd.model] if log_models else [])]


def _fingerprint(rd: RunDir, parent_id: str, log_models: bool) -> str:
    return _files_hash(_run_files(rd, log_models), [SYNC_FORMAT, parent_id, log_models])


# ---------------------------------------------------------------------------------------------
# The study's run


def _create_study_run(client, experiment_id: str, study: Study) -> str:
    tags = {fields.STUDY_TAG: study.name, fields.ROLE_TAG: "study"}
    return client.create_run(experiment_id, tags=tags, run_name=f"{study.name} (study)").info.run_id


def _sync_study_run(client, parent_id: str, study: Study, study_dir: Path, statuses: dict[str, str]) -> None:
    """Counts, provenance and the study's results (when the analysis has made them) on its run."""
    from mlflow.entities import Metric, RunTag

    parent = client.get_run(parent_id)
    files = [study_dir / name for name in ANALYSIS_FILES if (study_dir / name).exists()]
    report_files = _visible_files(study_dir / REPORT_DIR)
    spec = json.dumps(study.spec.model_dump(mode="json"), indent=2, sort_keys=True)
    fingerprint = _files_hash(files + report_files,
                              [SYNC_FORMAT, study_run.STUDY_RUN_FORMAT, spec, sorted(statuses.items())])
    if parent.data.tags.get(fields.SYNCED_TAG) == fingerprint:
        return

    counts = {
        "runs": len(study.runs),
        "runs_finished": len(statuses),
        "runs_ok": sum(s == "ok" for s in statuses.values()),
        "runs_diverged": sum(s == "diverged" for s in statuses.values()),
    }
    now = int(time.time() * 1000)
    metrics = [Metric(k, v, now, 0) for k, v in counts.items() if parent.data.metrics.get(k) != v]
    version = code_version()
    tags = {
        fields.RUN_NAME_TAG: f"{study.name} (study)",
        "dataworth.dataset": study.spec.dataset.name,
        "dataworth.git_commit": version["git_commit"],
        "dataworth.git_dirty": version["git_dirty"],
        fields.GIT_COMMIT_TAG: version["git_commit"],
    }
    # --- issue 20 item 2: identity as params, results as metrics, a description
    from mlflow.entities import Param

    results = study_run.study_metrics(study_dir)
    metrics += [Metric(k, v, now, 0) for k, v in results.items() if parent.data.metrics.get(k) != v]
    params = [Param(k, v) for k, v in study_run.study_params(study).items() if k not in parent.data.params]
    tags[study_run.DESCRIPTION_TAG] = study_run.description(study, results)
    # --- issue 18 item 4: the published-vs-reproduced rows (analysis/reference.py)
    reference_metrics, reference_tags = _reference_fields(study_dir)
    metrics += [Metric(k, v, now, 0) for k, v in reference_metrics.items() if parent.data.metrics.get(k) != v]
    tags.update(reference_tags)
    # ---
    tags = [RunTag(k, fields.as_text(v)) for k, v in tags.items() if v is not None]
    client.log_batch(parent_id, metrics=metrics, tags=tags)
    _log_missing_params(client, parent_id, params)
    with tempfile.TemporaryDirectory() as tmp:
        spec_path = Path(tmp) / "study.json"
        spec_path.write_text(spec + "\n")
        client.log_artifact(parent_id, str(spec_path))
    for path in files:
        client.log_artifact(parent_id, str(path))
    _log_folder(client, parent_id, study_dir / REPORT_DIR)
    client.set_terminated(parent_id, "FINISHED")
    client.set_tag(parent_id, fields.SYNCED_TAG, fingerprint)


def _log_missing_params(client, run_id: str, params: list) -> None:
    """Log the params the run lacks. Two syncs of one study (two checkouts, one server) may log
    the same params at once: the loser's insert fails on the store's unique key although the
    value is there, so read the run again and log only what is still missing."""
    from mlflow.exceptions import MlflowException

    for attempt in range(5):
        logged = client.get_run(run_id).data.params if attempt else {}
        missing = [p for p in params if p.key not in logged]
        if not missing:
            return
        try:
            client.log_batch(run_id, params=missing)
            return
        except MlflowException:
            if attempt == 4:
                raise
            time.sleep(0.2 * (attempt + 1))


def _reference_fields(study_dir: Path) -> tuple[dict, dict]:
    """reference.parquet as the study run's metrics and tags (none before the report is built)."""
    from dataworth.analysis.reference import mlflow_fields
    from dataworth.tracking.schemas import REFERENCE, read_parquet

    path = study_dir / "reference.parquet"
    return mlflow_fields(read_parquet(path, REFERENCE)) if path.exists() else ({}, {})


# ---------------------------------------------------------------------------------------------
# Helpers


def _visible_files(folder: Path) -> list[Path]:
    """The folder's files, without hidden ones (Snakemake's .snakemake_timestamp)."""
    if not folder.is_dir():
        return []
    files = (p for p in folder.rglob("*") if p.is_file())
    return sorted(p for p in files if not any(part.startswith(".") for part in p.relative_to(folder).parts))


def _log_folder(client, mlrun_id: str, folder: Path) -> None:
    """The folder's visible files as artifacts under its name (report/, logs/)."""
    for path in _visible_files(folder):
        client.log_artifact(mlrun_id, str(path), str(Path(folder.name, path.relative_to(folder).parent).as_posix()))


def _mtime_ms(path: Path) -> int:
    return path.stat().st_mtime_ns // 1_000_000


def _files_hash(paths: list[Path], extra: list) -> str:
    """Changes when any file is rewritten (size or time) or `extra` changes; reads no file."""
    stamp = [[str(p.name), p.stat().st_size, p.stat().st_mtime_ns] for p in paths]
    return hashlib.sha256(json.dumps([stamp, extra], default=str).encode()).hexdigest()[:16]


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else ""


def _check_server(uri: str) -> None:
    """Fail at once with a clear message when the tracking server does not answer."""
    if not fields.is_server(uri):
        return
    try:
        urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=10).close()
    except urllib.error.HTTPError:
        return  # it answered (perhaps asking for credentials): the client takes it from here
    except OSError as exc:
        raise TrackingError(
            f"the MLflow tracking server {fields.shown_uri(uri)} does not answer ({exc}); nothing was synced. "
            "Start it (or unset MLFLOW_TRACKING_URI to use the study's own store) and run `dataworth track` again."
        ) from None


def _local_store(uri: str) -> Path | None:
    """The file (sqlite) or folder (file store) of a local tracking URI; None for a server."""
    if fields.is_server(uri):
        return None
    if uri.startswith("sqlite:///"):
        return Path(uri.removeprefix("sqlite:///"))
    if uri.startswith("file://"):
        return Path(uri.removeprefix("file://"))
    if "://" in uri or uri.startswith(("databricks", "postgresql:", "mysql:", "mssql:")):
        return None  # a database server: it serialises its own writes
    return Path(uri)


@contextlib.contextmanager
def _one_sync_per_store(uri: str, echo):
    """A lock beside a local store: syncs from any checkout into it run one at a time."""
    store = _local_store(uri)
    if store is None:
        yield
        return
    store.parent.mkdir(parents=True, exist_ok=True)
    with _flock(store.parent / f".{store.name}.dataworth-sync.lock", f"the MLflow store {store}", echo):
        yield


@contextlib.contextmanager
def _one_sync_at_a_time(study_dir: Path, echo):
    with _flock(study_dir / ".mlflow-sync.lock", str(study_dir), echo):
        yield


@contextlib.contextmanager
def _flock(path: Path, what: str, echo):
    with open(path, "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            echo(f"waiting for another sync of {what} to finish")
            fcntl.flock(lock, fcntl.LOCK_EX)
        yield
