"""What a dataworth run looks like in MLflow: where the store is, run names, params, tags, metric names.

Shared by the serial sync (`mlflow_sync`, which uses the mlflow client) and the live logger
(`live`, which runs inside training and so must not import mlflow): both must name things the
same way, or the sync would not recognise the runs the live logger made.
"""

from __future__ import annotations

import json
import math
import os
import socket
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import numpy as np

from dataworth.study import run_row

# A run is found by this tag, never by its MLflow id: the run id is the one stable name.
RUN_ID_TAG = "dataworth.run_id"
STUDY_TAG = "dataworth.study"
ROLE_TAG = "dataworth.role"  # "study" on the parent run, "run" on each training run
STATUS_TAG = "dataworth.status"
# A fingerprint of the files a sync sent: unchanged files, nothing to send.
SYNCED_TAG = "dataworth.synced"
PARENT_TAG = "mlflow.parentRunId"  # MLflow's own: the UI nests the run under its parent
RUN_NAME_TAG = "mlflow.runName"
GIT_COMMIT_TAG = "mlflow.source.git.commit"  # shown by the UI in the run's source column
# On the experiment: the UI opens it as model training (runs, charts), not as a GenAI app (traces).
EXPERIMENT_TAGS = {"mlflow.experimentKind": "custom_model_development"}

# history.parquet column -> metric name. The summary's train_loss is the loss on the whole
# training subset after training; these are means over the augmented batches while training.
HISTORY_METRICS = {"loss": "batch_loss", "accuracy": "batch_accuracy", "lr": "learning_rate",
                   # issue 20 item 1: held-out curves (train.eval_every), on the steps evaluated only
                   "test_loss": "heldout_test_loss", "test_accuracy": "heldout_test_accuracy",
                   "ood_loss": "heldout_ood_loss", "ood_accuracy": "heldout_ood_accuracy"}

# summary.parquet / training.parquet columns logged as the run's final metrics.
SUMMARY_METRICS = (
    "train_loss", "train_accuracy", "test_loss", "test_accuracy", "ood_loss", "ood_accuracy",
    "steps_completed", "wall_seconds", "compute_seconds", "eval_seconds",
)
TRAINING_METRICS = ("final_loss", "startup_seconds")
# probe.parquet, knn.parquet, rankme.parquet columns logged as final metrics too.
EVALUATION_METRICS = (
    "probe_test_accuracy", "probe_ood_accuracy", "probe_train_loss", "knn_test_accuracy", "knn_ood_accuracy",
    "rankme_encoder", "rankme_projector",
    # issue 19 part B: the mechanism stages (null, so not logged, where a study leaves them off)
    "invariance_agreement", "invariance_cosine", "gradient_snr", "gradient_noise_scale", "gradient_norm_mean",
    "gradient_cosine_image_mean", "gradient_cosine_batch_mean", "flatness_distance", "hessian_trace",
    "local_complexity_test", "local_complexity_train",
)


def test_set_metrics(row: dict) -> dict:
    """The `<set>_accuracy` / `<set>_loss` values of eval.test_sets in a run's metrics row (the
    dynamic columns of metrics.parquet), logged as final metrics under the same names."""
    from dataworth.tracking.schemas import METRICS, METRICS_DYNAMIC

    return {k: v for k, v in row.items() if k not in METRICS.names and METRICS_DYNAMIC.match(k)}


# MLflow's limits on one param value and on the metrics of one log-batch request (the mlflow
# client splits its own batches; the live logger, which has no client, must stay within them).
MAX_PARAM_LENGTH = 6000
MAX_METRICS_PER_BATCH = 1000


def default_tracking_uri(results_dir: str | Path) -> str:
    """The study's own SQLite store, written only by the serial sync."""
    return f"sqlite:///{(Path(results_dir) / 'mlflow.db').resolve()}"


def tracking_uri(results_dir: str | Path, given: str | None = None) -> str:
    """`given`, else MLFLOW_TRACKING_URI (a cluster's tracking server), else the study's own store."""
    return given or os.environ.get("MLFLOW_TRACKING_URI") or default_tracking_uri(results_dir)


def is_server(uri: str) -> bool:
    return uri.startswith(("http://", "https://"))


def shown_uri(uri: str) -> str:
    """The URI without any user:password, for messages and records."""
    parts = urlsplit(uri)
    if "@" not in parts.netloc:
        return uri
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


def run_name(run: dict) -> str:
    """What the UI lists: the grid values a reader compares, then the id."""
    model = run["model"]
    return (f"{run['augmentation']['name']} n={run['n_train']} {model['name']}-{model['width']} "
            f"seed={run['seed']} ({run['run_id']})")


def run_params(run: dict) -> dict[str, str]:
    """Every value that defines the run, under plain names the UI can group and filter by."""
    row = run_row(run)
    params = {k: v for k, v in row.items() if k not in ("run_id", "study")}
    train = run["train"]
    for key in ("momentum", "warmup_steps", "log_every"):
        if key in train:
            params[key] = train[key]
    params["eval_batch_size"] = run["eval"]["batch_size"]
    if "views" in run["augmentation"]:  # issue 17: a policy per view of a self-supervised method
        for i, ops in enumerate(run["augmentation"]["views"], start=1):
            params[f"augmentation_view{i}_ops"] = json.dumps(ops, sort_keys=True)
    else:
        params["augmentation_ops"] = json.dumps(run["augmentation"]["ops"], sort_keys=True)
    for key in ("rounds", "first_round_clean"):  # issue 17: only policies with fixed repetitions have them
        if key in run["augmentation"]:
            params[f"augmentation_{key}"] = run["augmentation"][key]
    for section, settings in run.get("ssl", {}).items():  # self-supervised runs: projector and method
        for key, value in settings.items():
            params[f"ssl.{section}.{key}"] = value
    for key, value in run["dataset"].items():
        if key != "name":
            params[f"dataset.{key}"] = value
    # The full config is an artifact; a param only has to be recognisable.
    return {k: as_text(v)[:MAX_PARAM_LENGTH] for k, v in params.items()}


def run_tags(run: dict) -> dict[str, str]:
    """The tags a run carries from its first moment (the sync adds the training record's)."""
    return {
        RUN_ID_TAG: run["run_id"],
        STUDY_TAG: run["study"],
        ROLE_TAG: "run",
        RUN_NAME_TAG: run_name(run),
    }


def record_tags(training: dict, status: str) -> dict[str, str]:
    """Tags from the training record: provenance of the result."""
    tags = {
        STATUS_TAG: status,
        "dataworth.host": training.get("host"),
        "dataworth.device": training.get("device"),
        "dataworth.data_sha256": training.get("data_sha256"),
        "dataworth.torch_version": training.get("torch_version"),
        "dataworth.slurm_job_id": training.get("slurm_job_id"),
        "dataworth.git_commit": training.get("git_commit"),
        "dataworth.git_dirty": training.get("git_dirty"),
        GIT_COMMIT_TAG: training.get("git_commit"),
    }
    return {k: as_text(v) for k, v in tags.items() if not _missing(v)}


def live_tags() -> dict[str, str]:
    """Tags the live logger knows before training ends."""
    tags = {STATUS_TAG: "running", "dataworth.host": socket.gethostname()}
    if os.environ.get("SLURM_JOB_ID"):
        tags["dataworth.slurm_job_id"] = os.environ["SLURM_JOB_ID"]
    return tags


def metric_value(value) -> float | None:
    """A float MLflow can store and chart, or None (missing, NaN or inf: nothing to log)."""
    if _missing(value):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def as_text(value) -> str:
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    return str(value)
