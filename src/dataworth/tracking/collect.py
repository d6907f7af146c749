"""The scanner: build the study's shared tables from the runs' own files.

A run's row of metrics.parquet is its summary.parquet joined (by run_id) with the files of the
other evaluation stages (runs.EVALUATIONS) the study asks for (`Study.stages`: rankme.parquet,
and probe.parquet and knn.parquet for self-supervised runs); the columns of an evaluation a run
does not have are null. A stage with one row per test set (test_sets.parquet, `eval.test_sets`)
is pivoted first: its sets become the dynamic `<set>_accuracy` / `<set>_loss` columns, after
the fixed ones.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa

from dataworth.runs import EVALUATIONS, SUMMARY_STAGE, RunDir
from dataworth.tracking.schemas import METRICS, RUN_TABLE, SUMMARY, conform, read_parquet, stage_schema, write_parquet

SORT_COLUMNS = ["dataset", "method", "model", "width", "augmentation", "n_train", "seed"]


def joined_stages() -> dict:
    """The evaluations joined to a run's summary, by the name of their file (<run dir>/probe.parquet, ...)."""
    return {Path(stage.file).stem: stage for name, stage in EVALUATIONS.items() if name != SUMMARY_STAGE}


def run_table(study) -> pd.DataFrame:
    """The study's runs, one row each: grid values and recipe (`dataworth plan`, MLflow params)."""
    from dataworth.study import run_row

    return conform(pd.DataFrame([run_row(run) for run in study.runs]), RUN_TABLE)


def join_evaluations(summaries: pd.DataFrame, evaluation_paths) -> pd.DataFrame:
    """SUMMARY rows joined with the given evaluation files (METRICS columns, null where absent)."""
    joined = joined_stages()
    frames: dict[str, list[pd.DataFrame]] = {name: [] for name in joined}
    for path in map(Path, evaluation_paths):
        if path.stem not in joined:
            raise ValueError(f"{path}: not an evaluation file; allowed names: "
                             f"{', '.join(stage.file for stage in joined.values())}")
        frames[path.stem].append(read_parquet(path, stage_schema(joined[path.stem])))
    metrics = summaries
    dynamic: list[str] = []  # eval.test_sets columns, after the fixed ones
    for name, parts in frames.items():
        if not parts:
            continue
        evaluation = pd.concat(parts, ignore_index=True)
        per_set = joined[name].per_test_set  # one row per (run, set): pivoted to <set>_accuracy/_loss
        key = ["run_id", "set"] if per_set else ["run_id"]
        strays = sorted(set(evaluation["run_id"]) - set(summaries["run_id"]))
        if strays or evaluation.duplicated(key).any():
            raise ValueError(f"{name} files of runs without a summary {strays}, or of one run twice")
        if per_set:
            from dataworth.evaluate.test_sets import pivot

            evaluation = pivot(evaluation)
            dynamic += [c for c in evaluation.columns if c != "run_id"]
        metrics = metrics.merge(evaluation, on="run_id", how="left")
    for field in METRICS:  # stages not run: nulls of the column's type, as read back from Parquet
        if field.name not in metrics.columns:
            metrics[field.name] = pa.nulls(len(metrics), type=field.type).to_pandas().set_axis(metrics.index)
    return metrics[[*METRICS.names, *dynamic]]


def run_metrics(summary_path: str | Path) -> pd.DataFrame:
    """One run's METRICS row from its directory: the summary and whichever evaluation files exist."""
    run = RunDir(Path(summary_path).parent)
    evaluations = [run.file(stage.file) for stage in joined_stages().values() if run.file(stage.file).exists()]
    return join_evaluations(read_parquet(summary_path, SUMMARY), evaluations)


def collect_metrics(summary_paths: list[str | Path], out: str | Path, evaluation_paths=()) -> pd.DataFrame:
    """Concatenate per-run summaries, join their evaluations, write `out` (one row per run,
    METRICS schema, sorted by grid values)."""
    frames = [read_parquet(p, SUMMARY) for p in summary_paths]
    if not frames:
        raise ValueError("no run summaries to collect")
    summaries = pd.concat(frames, ignore_index=True)
    duplicated = summaries["run_id"][summaries["run_id"].duplicated()].tolist()
    if duplicated:
        raise ValueError(f"run ids collected twice: {duplicated}")
    metrics = join_evaluations(summaries, evaluation_paths)
    metrics = metrics.sort_values(SORT_COLUMNS, kind="stable").reset_index(drop=True)
    write_parquet(metrics, METRICS, out)
    return metrics


def collect_study(study, results_root: str | Path, out: str | Path) -> pd.DataFrame:
    """collect_metrics over every run of `study` and the evaluations it asks for. The paths come
    from the study, not the command line, which thousands of runs would overflow."""
    study_dir = study.study_dir(results_root)
    summaries, evaluations, missing = [], [], []
    for run in study.runs:
        run_dir = study_dir.run_dir(run["run_id"])
        wanted = [run_dir.summary] + [run_dir.file(EVALUATIONS[name].file) for name in study.stages(run)
                                      if name in EVALUATIONS and name != SUMMARY_STAGE]
        missing += [path for path in wanted if not path.exists()]
        summaries.append(run_dir.summary)
        evaluations += wanted[1:]
    if missing:
        raise FileNotFoundError(_missing_message(study, study_dir, missing))
    return collect_metrics(summaries, out, evaluations)


def _missing_message(study, study_dir, missing: list[Path]) -> str:
    """Which runs lack which files, and the pack markers that still stand for them."""
    from dataworth.packs import Packs

    packs = Packs(study, study_dir)
    stage_of = {stage.file: name for name, stage in EVALUATIONS.items()}
    markers = sorted({
        str(study_dir.marker(packs.pack_of[path.parent.name], stage_of[path.name]))
        for path in missing if path.parent.name in packs.pack_of
    })
    shown = ", ".join(str(path.relative_to(study_dir.path)) for path in missing[:5])
    more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
    return (f"study {study.name!r}: {len(missing)} result files are missing: {shown}{more}, though "
            f"{', '.join(markers[:5])}{' ...' if len(markers) > 5 else ''} say done. Run snakemake: it drops "
            f"those markers and makes the missing files again (training only runs that lack theirs)")

