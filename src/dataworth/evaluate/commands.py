"""`dataworth evaluate`, `probe`, `knn`, `rankme`, ...: one subcommand per evaluation stage of the
stage registry (runs.EVALUATIONS), each called by its rule once per pack of runs; each writes its
stage's Parquet file in every run directory of the job. torch is imported inside the commands.
"""

from __future__ import annotations

import math

from dataworth.jobs import add_run_arguments, for_each_run_or_exit, job_runs, load_study_or_exit, study_dir_of
from dataworth.runs import EVALUATIONS, Stage


def _number(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "null"
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def describe(stage: Stage, row: dict) -> str:
    """One line of a job's log for one run: the stage's own columns (the run's grid values left out)."""
    from dataworth.tracking.schemas import RUN_TABLE, stage_schema

    schema = stage_schema(stage)
    status = f" ({row['status']})" if "status" in row else ""
    shown = [f"{name} {_number(row[name])}" for name in schema.names
             if name not in RUN_TABLE.names and name in row and name != "status" and not name.endswith("_seconds")
             and name not in ("steps_completed", "device", "data_sha256")]
    # Its own time (summary: eval_seconds; the others: <stage>_seconds), not the training job's.
    seconds = [row[name] for name in schema.names
               if name.endswith("_seconds") and name not in ("wall_seconds", "compute_seconds")]
    took = f" ({seconds[0]:.1f}s)" if seconds else ""
    return f"run {row['run_id']}{status}: {', '.join(shown)}{took}"


def run_evaluation(stage: Stage, args) -> None:
    """Compute `stage` for each run of the job (`--pack` or `--run-id`) with the study's eval settings."""
    study = load_study_or_exit(args.study)
    eval_cfg = study.spec.eval.model_dump()

    def one(run: dict, run_dir) -> None:
        print(describe(stage, stage.compute(run_dir, args.data, eval_cfg, threads=args.threads)), flush=True)

    for_each_run_or_exit(job_runs(study, args), study_dir_of(args), stage.name, one)


def register(subparsers) -> None:
    for stage in EVALUATIONS.values():
        p = subparsers.add_parser(stage.name, help=f"{stage.help} (called by the {stage.name} rule, once per pack)")
        add_run_arguments(p, "the study; its eval section is used")
        p.set_defaults(func=lambda args, stage=stage: run_evaluation(stage, args))
