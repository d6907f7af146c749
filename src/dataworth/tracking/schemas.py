"""Every Parquet file dataworth writes, its schema, and the one way to write and read it.

Writers call `write_parquet(df, SCHEMA, path)`: columns are checked, ordered and cast to the
schema, and the file is written atomically. Readers call `read_parquet(path, SCHEMA)`.
The column documentation here is what the README's output-schema section shows.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from dataworth.files import atomic_path


def _schema(*fields: tuple[str, pa.DataType, str]) -> pa.Schema:
    return pa.schema([pa.field(name, dtype, nullable=True, metadata={"doc": doc}) for name, dtype, doc in fields])


_GRID = (
    ("run_id", pa.string(), "short hash of the run's resolved config"),
    ("study", pa.string(), "study name"),
    ("dataset", pa.string(), "dataset name"),
    ("method", pa.string(), "training method: supervised, or self-supervised pretraining simclr, vicreg or byol"),
    ("n_train", pa.int64(), "real training samples (nested, class-stratified subset)"),
    ("augmentation", pa.string(), "augmentation policy name (none = no augmentation)"),
    ("model", pa.string(), "model name"),
    ("width", pa.int64(), "model width"),
    ("seed", pa.int64(), "seed of subset, init, batch order and augmentation draws"),
)
_RECIPE = (
    ("steps", pa.int64(), "optimizer steps asked for"),
    ("batch_size", pa.int64(), "training batch size"),
    ("optimizer", pa.string(), "sgd (Nesterov) or adamw"),
    ("lr", pa.float64(), "peak learning rate"),
    ("weight_decay", pa.float64(), "weight decay"),
    ("label_smoothing", pa.float64(), "label smoothing of the training loss"),
)

RUN_TABLE = _schema(*_GRID, *_RECIPE)

HISTORY = _schema(
    ("run_id", pa.string(), "run id"),
    ("step", pa.int64(), "optimizer steps done"),
    ("loss", pa.float64(), "mean training loss over the steps since the previous row"),
    ("accuracy", pa.float64(),
     "mean training-batch accuracy (augmented batches) since the previous row; null for self-supervised methods"),
    ("lr", pa.float64(), "learning rate at this step"),
    ("elapsed_seconds", pa.float64(), "training-loop seconds since the first step"),
)

TRAINING = _schema(
    ("run_id", pa.string(), "run id"),
    ("status", pa.string(), "ok, or diverged (training loss became NaN or inf)"),
    ("steps_completed", pa.int64(), "steps run (the step of the last history row if diverged)"),
    ("final_loss", pa.float64(), "training loss of the last history row"),
    ("wall_seconds", pa.float64(), "training job: process start to outputs written"),
    ("compute_seconds", pa.float64(), "training loop alone (first step to last)"),
    ("startup_seconds", pa.float64(), "process start to first step (imports, data, model)"),
    ("device", pa.string(), "device trained on"),
    ("num_threads", pa.int64(), "torch intra-op threads"),
    ("torch_version", pa.string(), "torch version"),
    ("data_sha256", pa.string(), "content hash of the prepared dataset"),
    ("host", pa.string(), "host name"),
    ("resumed_from_step", pa.int64(), "step of the checkpoint this start resumed from (0: a fresh start)"),
    ("slurm_job_id", pa.string(), "SLURM job id of the job that finished the run (null outside SLURM)"),
    ("git_commit", pa.string(), "git commit of the dataworth source that trained the run (null outside a checkout)"),
    ("git_dirty", pa.bool_(), "whether that source had uncommitted changes or untracked files"),
)

SUMMARY = _schema(
    *_GRID,
    *_RECIPE,
    ("status", pa.string(), "ok, or diverged (metrics are then null)"),
    ("steps_completed", pa.int64(), "steps run"),
    # The trained head's metrics: null for self-supervised runs, which train no head (see PROBE).
    ("train_loss", pa.float64(), "cross-entropy on the run's training subset, no augmentation"),
    ("train_accuracy", pa.float64(), "accuracy on the run's training subset, no augmentation"),
    ("test_loss", pa.float64(), "cross-entropy on the fixed test set"),
    ("test_accuracy", pa.float64(), "accuracy on the fixed test set"),
    ("ood_loss", pa.float64(), "cross-entropy on the out-of-distribution test set"),
    ("ood_accuracy", pa.float64(), "accuracy on the out-of-distribution test set"),
    ("wall_seconds", pa.float64(), "training job wall time"),
    ("compute_seconds", pa.float64(), "training-loop time"),
    ("eval_seconds", pa.float64(), "evaluation time"),
    ("device", pa.string(), "device trained on"),
    ("data_sha256", pa.string(), "content hash of the prepared dataset"),
)

# Evaluations of a run's representation (evaluate/representation.py), each its own rule and file
# in the run dir: RankMe for every run, probe and k-NN for self-supervised runs (supervised ones
# with eval.probe_supervised). collect joins them to the run's summary by run_id.
PROBE = _schema(
    ("run_id", pa.string(), "run id"),
    ("probe_labeled", pa.int64(), "labeled samples the linear probe was trained on (eval.labeled)"),
    ("probe_train_loss", pa.float64(), "the probe's cross-entropy on its labeled set after training"),
    ("probe_test_accuracy", pa.float64(), "linear probe on frozen encoder features: accuracy on the test set"),
    ("probe_ood_accuracy", pa.float64(), "linear probe on frozen encoder features: accuracy on the OOD set"),
    ("probe_seconds", pa.float64(), "probe job: features, probe training and evaluation"),
)
KNN = _schema(
    ("run_id", pa.string(), "run id"),
    ("knn_k", pa.int64(), "neighbours that vote (eval.knn.k)"),
    ("knn_labeled", pa.int64(), "labeled samples in the k-NN bank (eval.labeled)"),
    ("knn_test_accuracy", pa.float64(), "k-NN (cosine, majority vote) on frozen encoder features: test accuracy"),
    ("knn_ood_accuracy", pa.float64(), "k-NN (cosine, majority vote) on frozen encoder features: OOD accuracy"),
    ("knn_seconds", pa.float64(), "k-NN job time"),
)
RANKME = _schema(
    ("run_id", pa.string(), "run id"),
    ("rankme_samples", pa.int64(), "training-pool samples embedded (eval.rankme.samples)"),
    ("rankme_encoder", pa.float64(), "RankMe (effective rank, Garrido et al. 2023) of the encoder features"),
    ("rankme_projector", pa.float64(), "RankMe of the projector outputs (null for supervised runs: no projector)"),
    ("rankme_seconds", pa.float64(), "RankMe job time"),
)

# metrics.parquet: one row per run of the study: its SUMMARY row joined with its evaluations.
METRICS = pa.schema([*SUMMARY, *(field for schema in (PROBE, KNN, RANKME) for field in schema if field.name != "run_id")])

# results/bench/bench.parquet: `dataworth bench`, one row per measurement.
BENCH = _schema(
    ("host", pa.string(), "machine the benchmark ran on"),
    ("torch", pa.string(), "torch version"),
    ("section", pa.string(), "trainer, augment, packing or study"),
    ("case", pa.string(), "what was measured (dataset, model, batch, policy, K)"),
    ("variant", pa.string(), "the baseline or dataworth's way"),
    ("device", pa.string(), "device the variant ran on"),
    ("seconds", pa.float64(), "wall seconds of the measured part"),
    ("samples_per_second", pa.float64(), "training or augmented samples per second"),
    ("steps_per_second", pa.float64(), "optimizer steps per second"),
    ("speedup", pa.float64(), "baseline seconds / these seconds, both measured in the same run (null for baselines)"),
    ("peak_memory_mb", pa.float64(), "peak CUDA memory, or the process's peak RSS on CPU (a high-water mark)"),
    ("note", pa.string(), "context: run counts, overhead share"),
)

# results/gpu-check/gpu-check.parquet: `make gpu-check` (scripts/gpu-check), one row per check of
# the CUDA path (or of its reduced CPU form). Documented in docs/gpu-check.md.
GPU_CHECK = _schema(
    ("host", pa.string(), "machine the check ran on"),
    ("gpu", pa.string(), "GPU model (torch.cuda.get_device_name), or none: the reduced CPU form"),
    ("torch", pa.string(), "torch version"),
    ("cuda", pa.string(), "CUDA version torch was built with (null on a CPU-only build)"),
    ("date", pa.string(), "UTC time the check started (ISO 8601)"),
    ("reduced", pa.bool_(), "true: no GPU was used; the parts ran on the CPU at reduced sizes"),
    ("part", pa.int64(), "1 reference case, 2 packing, 3 augmentation, 4 study end to end, 5 determinism"),
    ("part_name", pa.string(), "reference, packing, augment, study or determinism"),
    ("case", pa.string(), "what was run (model, width, input, batch, K, policy, study)"),
    ("variant", pa.string(), "1: eager or torch.compile; 2: one after another or together (K=k); 3: batched; "
     "4: train.device cpu or cuda (auto in the reduced form); 5: second run vs. first"),
    ("device", pa.string(), "device the variant ran on"),
    ("seconds", pa.float64(), "wall seconds of the measured part"),
    ("steps_per_second", pa.float64(), "optimizer steps per second after warm-up (and compile)"),
    ("samples_per_second", pa.float64(), "training samples, or augmented images, per second"),
    ("flops_per_sample", pa.float64(), "forward + backward FLOPs of one training sample, measured (FlopCounterMode)"),
    ("tflops", pa.float64(), "achieved TFLOP/s: flops_per_sample * samples_per_second / 1e12"),
    ("peak_memory_mb", pa.float64(), "peak CUDA memory allocated, or the process's peak RSS on CPU"),
    ("projected_run_seconds", pa.float64(), "one 60,000-step run at steps_per_second (training loop only)"),
    ("runs_per_hour", pa.float64(), "runs finished per hour, set-up and file writes included"),
    ("difference", pa.float64(), "largest difference against the comparison (separate run, CPU study, first run)"),
    ("tolerance", pa.float64(), "largest difference allowed for that value (the note states the rule)"),
    ("passed", pa.bool_(), "whether this check passed"),
    ("note", pa.string(), "the criterion, context, or the error that failed the check"),
)

SCHEMAS = {"runs": RUN_TABLE, "history": HISTORY, "training": TRAINING, "summary": SUMMARY, "bench": BENCH}


class SchemaError(ValueError):
    pass


def conform(df: pd.DataFrame, schema: pa.Schema) -> pd.DataFrame:
    """`df` with exactly the schema's columns, in its order; a missing or extra column is an error."""
    missing = [n for n in schema.names if n not in df.columns]
    extra = [c for c in df.columns if c not in schema.names]
    if missing or extra:
        raise SchemaError(f"columns do not match the schema: missing {missing}, unexpected {extra}")
    return df[schema.names]


def to_arrow(df: pd.DataFrame, schema: pa.Schema) -> pa.Table:
    return pa.Table.from_pandas(conform(df, schema), schema=schema, preserve_index=False)


def write_parquet(df: pd.DataFrame, schema: pa.Schema, path: str | Path) -> None:
    table = to_arrow(df, schema)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


def read_parquet(path: str | Path, schema: pa.Schema) -> pd.DataFrame:
    """Read `path` as `schema`. A column the schema gained after the file was written reads as
    null (writers always write every column, so only older files lack one); an unknown column
    is an error."""
    table = pq.read_table(path)
    unknown = [n for n in table.schema.names if n not in schema.names]
    if unknown:
        raise SchemaError(f"{path}: columns {unknown} are not in the expected schema {schema.names}")
    for name in schema.names:
        if name not in table.schema.names:
            table = table.append_column(schema.field(name), pa.nulls(len(table), schema.field(name).type))
    return table.select(schema.names).cast(schema).to_pandas()


def describe(schema: pa.Schema) -> str:
    """A Markdown table of the schema (for the README)."""
    lines = ["| column | type | meaning |", "|---|---|---|"]
    for field in schema:
        lines.append(f"| `{field.name}` | {field.type} | {field.metadata[b'doc'].decode()} |")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# The analysis (dataworth.analysis): scaling-law fits and exchange rates of a study, built from
# metrics.parquet. A curve is one (dataset, model, width, method, augmentation, metric).

_CURVE = (
    ("dataset", pa.string(), "dataset name"),
    ("model", pa.string(), "model name"),
    ("width", pa.int64(), "model width"),
    ("method", pa.string(), "training method"),
    ("augmentation", pa.string(), "augmentation policy of the curve"),
    ("metric", pa.string(), "metrics.parquet column fitted: test_accuracy (in-distribution), ood_accuracy (OOD), ..."),
)

# fits.parquet: the law f(n) = a * n^(-c) + b of every curve.
FITS = _schema(
    *_CURVE,
    ("status", pa.string(), "ok, too_few_sizes, flat or not_converged; parameters are null unless ok"),
    ("message", pa.string(), "why the status, runs left out, parameters at a bound (null when nothing to say)"),
    ("a", pa.float64(), "scale: f(1) - b (negative for accuracy, which rises to b)"),
    ("a_low", pa.float64(), "95% bootstrap interval of a, lower end (null without 2+ seeds)"),
    ("a_high", pa.float64(), "95% bootstrap interval of a, upper end"),
    ("b", pa.float64(), "asymptote: the metric with unlimited real data"),
    ("b_low", pa.float64(), "95% bootstrap interval of b, lower end"),
    ("b_high", pa.float64(), "95% bootstrap interval of b, upper end"),
    ("c", pa.float64(), "exponent: how fast the curve approaches b"),
    ("c_low", pa.float64(), "95% bootstrap interval of c, lower end"),
    ("c_high", pa.float64(), "95% bootstrap interval of c, upper end"),
    ("r2", pa.float64(), "coefficient of determination over the runs fitted"),
    ("rmse", pa.float64(), "root mean squared residual over the runs fitted"),
    ("max_abs_residual", pa.float64(), "largest absolute residual of a run"),
    ("n_sizes", pa.int64(), "distinct sizes n with usable runs"),
    ("n_runs", pa.int64(), "runs fitted"),
    ("n_excluded", pa.int64(), "runs left out: status not ok (diverged) or the metric missing"),
    ("n_min", pa.int64(), "smallest n fitted"),
    ("n_max", pa.int64(), "largest n fitted"),
    ("n_bootstrap", pa.int64(), "bootstrap fits (resampling seeds within each size) that converged"),
)

# exchange_rates.parquet: what an augmentation is worth in real samples (Geiping et al. 2022, Eq. 1).
EXCHANGE_RATES = _schema(
    *_CURVE,
    ("reference", pa.string(), "reference policy (none) of the same dataset, model, width, method and metric"),
    ("grid", pa.string(), "study (a size the study trained) or dense (log-spaced points for plotting)"),
    ("n", pa.float64(), "real training samples n of the augmented run"),
    ("status", pa.string(), "ok, beyond_reference_asymptote, no_reference, reference_not_fitted or augmented_not_fitted"),
    ("augmented_value", pa.float64(), "f_aug(n): the augmented curve's law at n"),
    ("reference_asymptote", pa.float64(), "b_ref: the reference's asymptote"),
    ("equivalent_n", pa.float64(), "f_ref^-1(f_aug(n)): real samples the reference needs to match (null if beyond)"),
    ("extra_samples", pa.float64(), "v(n) = equivalent_n - n: extra real samples the augmentation is worth"),
    ("extra_samples_low", pa.float64(), "95% bootstrap interval of v(n), lower end"),
    ("extra_samples_high", pa.float64(), "95% bootstrap interval of v(n), upper end (null if over 2.5% of replicates are beyond)"),
    ("ratio", pa.float64(), "(n + v(n)) / n: the augmentation multiplies the real data by this"),
    ("ratio_low", pa.float64(), "95% bootstrap interval of the ratio, lower end"),
    ("ratio_high", pa.float64(), "95% bootstrap interval of the ratio, upper end (null like extra_samples_high)"),
    ("beyond_asymptote", pa.bool_(), "f_aug(n) at or beyond b_ref: worth more than any amount of real data"),
    ("share_beyond_asymptote", pa.float64(), "share of bootstrap replicates in which f_aug(n) is beyond b_ref"),
    ("extrapolated", pa.bool_(), "equivalent_n lies outside the sizes the reference was fitted on"),
    ("n_bootstrap", pa.int64(), "paired bootstrap replicates (augmented, reference) behind the intervals"),
)

SCHEMAS.update(fits=FITS, exchange_rates=EXCHANGE_RATES)
SCHEMAS.update(probe=PROBE, knn=KNN, rankme=RANKME, metrics=METRICS)
