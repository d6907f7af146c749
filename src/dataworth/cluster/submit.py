"""`dataworth submit`: send a study's selected runs to SLURM as one submitit job array.

For users who work from Python or a notebook rather than Snakemake (`submit_runs` is the Python
entry). Each array task is a `RunJob` (cluster/job.py): the same functions as the Snakemake
rules (train, evaluate, probe, knn, rankme), the same files in the run's directory; a task
that finds every run of its pack (packs.py) finished writes the pack's done-markers. A later
`snakemake` finds those runs done: outputs that Snakemake did not make have no metadata record,
so of its rerun triggers only modification times apply, and a run's files are written in
pipeline order (data, then training, then the evaluations, then the markers).

submitit is imported only when submitting, so `dataworth --help` stays fast.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from dataworth.jobs import fail, load_study_or_exit
from dataworth.runs import RunDir, StudyDir

# The run states (see run_state) each --status selects.
SELECTIONS = {
    "unfinished": ("pending", "failed", "trained"),
    "pending": ("pending",),
    "failed": ("failed",),
    "trained": ("trained",),
    "all": ("pending", "failed", "trained", "ok", "diverged"),
}

MAX_TIME_LIMIT_REQUEUES = 20


def run_state(run_dir: RunDir, stages: list[str]) -> str:
    """pending (never started), failed (started, not trained: its job crashed, was killed or is
    still running), trained (not every one of its `stages` done), or the evaluated status (ok,
    diverged)."""
    if all(run_dir.done(stage) for stage in stages):
        from dataworth.tracking.schemas import SUMMARY, read_parquet

        return str(read_parquet(run_dir.summary, SUMMARY)["status"].iloc[0])
    if run_dir.trained:
        return "trained"
    if run_dir.path.exists():
        return "failed"
    return "pending"


def select_runs(study, results_root: str | Path, status: str, run_ids: list[str] | None) -> list[dict]:
    if run_ids:
        unknown = [r for r in run_ids if r not in study.runs_by_id]
        if unknown:
            raise ValueError(f"--runs: not runs of study {study.name!r}: {', '.join(unknown)}")
    wanted = SELECTIONS[status]
    study_dir = study.study_dir(results_root)
    return [
        run for run in study.runs
        if (not run_ids or run["run_id"] in run_ids)
        and run_state(study_dir.run_dir(run["run_id"]), study.stages(run)) in wanted
    ]


def submit_runs(study, runs: list[dict], results_root: str | Path, executor: str = "slurm", parallel: int = 256,
                environ=os.environ) -> list:
    """Submit `runs` as one job array; returns the submitit jobs (one per run, in order)."""
    import submitit

    from dataworth.cluster.job import RunJob
    from dataworth.cluster.resources import submitit_parameters
    from dataworth.data import prepare_dataset
    from dataworth.packs import Packs

    study_dir = StudyDir(study.study_dir(results_root).path.resolve())
    data = study_dir.data(study.dataset_id())  # where the Snakefile has it: both share one file
    if not data.exists():  # what Snakemake's (local) prepare_data rule would do first
        prepare_dataset(study.dataset_config(), data)
    folder = study_dir.logs / "submitit" / "%j"
    # Each time limit reached costs one of submitit's requeues (default 3); runs checkpoint, so a
    # long run may need many time slots.
    pool = submitit.AutoExecutor(folder=folder, cluster=executor, slurm_max_num_timeout=MAX_TIME_LIMIT_REQUEUES)
    pool.update_parameters(
        name=f"dataworth-{study.name}", slurm_array_parallelism=parallel,
        **submitit_parameters(study.spec.resources.slurm, environ),
    )
    eval_cfg = study.spec.eval.model_dump()
    study.write_json(study_dir.study_json)  # what each task reads to mark its pack done, as the workflow has it
    Packs(study, study_dir).write()
    jobs_to_run = [
        RunJob(run, study.stages(run), eval_cfg, str(data), str(study_dir.run_dir(run["run_id"]).path),
               str(study_dir.study_json))
        for run in runs
    ]
    return pool.submit_array(jobs_to_run)


def wait_for(jobs: list, runs: list[dict]) -> int:
    """Block until every job ends; print one line per run; return the number that failed."""
    failed = 0
    for job, run in zip(jobs, runs):
        try:
            row = job.result()
            print(f"run {run['run_id']} (job {job.job_id}): {row['status']}, test accuracy {row['test_accuracy']:.4f}")
        except Exception as exc:  # the job's traceback is in its submitit log
            failed += 1
            print(f"run {run['run_id']} (job {job.job_id}) failed: {str(exc).strip().splitlines()[-1]}; "
                  f"log: {job.paths.stderr}", file=sys.stderr)
    return failed


def cmd_submit(args) -> None:
    study = load_study_or_exit(args.study)
    try:
        runs = select_runs(study, args.results, args.status, args.runs.split(",") if args.runs else None)
    except ValueError as exc:
        fail(str(exc))
    if not runs:
        print(f"study {study.name!r}: no {args.status} runs to submit")
        return
    print(f"study {study.name!r}: {len(runs)} {args.status} runs: {', '.join(r['run_id'] for r in runs)}")
    if args.dry_run:
        return
    if args.executor == "slurm" and not (shutil.which("sbatch") and shutil.which("srun")):
        fail("--executor slurm: no SLURM here (sbatch and srun not found); on this machine use --executor local")
    try:
        jobs = submit_runs(study, runs, args.results, args.executor, args.parallel)
    except ValueError as exc:  # a bad DATAWORTH_SLURM_* variable or resources.slurm.extra
        fail(str(exc))
    array_id = jobs[0].job_id.split("_")[0]
    print(f"submitted as {args.executor} job array {array_id} ({len(jobs)} tasks); "
          f"logs in {Path(jobs[0].paths.folder).parent}/")
    if args.executor == "slurm" and not args.wait:
        print(f"follow it with: squeue -j {array_id}   (afterwards: sacct -j {array_id})")
        return
    failed = wait_for(jobs, runs)  # local jobs are this process's children: always wait for them
    if failed:
        raise SystemExit(f"{failed} of {len(jobs)} runs failed")


def register(sub) -> None:
    p = sub.add_parser(
        "submit",
        help="send a study's unfinished runs to SLURM as one submitit job array (no Snakemake needed)",
        description="Each array task trains one run (resuming from its checkpoint) and evaluates it, writing "
        "the same files as the Snakemake rules; `snakemake` then finds those runs done. Job resources "
        "come from the study's resources.slurm and the DATAWORTH_SLURM_* environment variables.",
    )
    p.add_argument("study", nargs="?", default="params.yaml")
    p.add_argument("--status", choices=list(SELECTIONS), default="unfinished",
                   help="which runs, by the state of their run directory: unfinished (default: pending, "
                   "failed and trained), pending (never started), failed (started but not trained: crashed, "
                   "killed, or still running elsewhere), trained (not fully evaluated), all (every run: a finished "
                   "run's job finds its files and does nothing; delete a run's directory to redo it)")
    p.add_argument("--runs", help="only these run ids (comma-separated), within --status")
    p.add_argument("--executor", choices=["slurm", "local"], default="slurm",
                   help="slurm (default), or local: the same path on this machine with submitit's local executor")
    p.add_argument("--wait", action="store_true", help="wait for the array and report each run (always with local)")
    p.add_argument("--parallel", type=int, default=256, help="at most this many tasks of the array run at once")
    p.add_argument("--results", default="results", help="results root (default: results)")
    p.add_argument("--dry-run", action="store_true", help="only list the runs that would be submitted")
    p.set_defaults(func=cmd_submit)
