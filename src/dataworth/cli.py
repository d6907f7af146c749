"""The `dataworth` command. Snakemake rules call these subcommands; users call them too.

Heavy imports (torch, pandas) happen inside the subcommands so `dataworth --help` and
validation stay fast.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

PROCESS_START = time.perf_counter()


def _load(path: str):
    from dataworth.study import load_study_or_exit

    return load_study_or_exit(path)


def cmd_validate(args) -> None:
    study = _load(args.study)
    print(f"{args.study}: study {study.name!r} is valid: {len(study.runs)} runs on {study.spec.dataset.name}")


def cmd_plan(args) -> None:
    import pandas as pd

    from dataworth.runs import run_dir
    from dataworth.tracking.schemas import RUN_TABLE, SUMMARY, read_parquet, write_parquet

    from dataworth.packs import Packs

    study = _load(args.study)
    table = study.run_table()
    results = study.results_dir(args.results)
    pack_of = Packs(study, results).pack_of  # as recorded, or as the next `snakemake` would pack them
    states = []
    for run_id in table["run_id"]:
        rd = run_dir(results, run_id)
        if rd.summary.exists():
            states.append(read_parquet(rd.summary, SUMMARY)["status"].iloc[0])
        elif rd.trained:
            states.append("trained")
        else:
            states.append("pending")
    if args.out:
        write_parquet(table, RUN_TABLE, args.out)
    shown = table[["run_id", "method", "n_train", "augmentation", "model", "width", "seed"]].assign(
        state=states, pack=[pack_of[run_id] for run_id in table["run_id"]])
    with pd.option_context("display.max_rows", None, "display.width", 200):
        print(shown.to_string(index=False))
    counts = pd.Series(states).value_counts().to_dict()
    print(f"\nstudy {study.name!r}: {len(table)} runs in {results}/runs ({', '.join(f'{v} {k}' for k, v in counts.items())}), "
          f"{len(set(pack_of.values()))} packs of up to {study.spec.resources.runs_per_job} runs per job")
    if args.out:
        print(f"run table written to {args.out}")


def cmd_prepare(args) -> None:
    from dataworth.data import prepare_dataset

    meta = prepare_dataset(json.loads(args.config), args.out)
    print(f"prepared {meta['config']['name']}: sizes {meta['sizes']}, sample shape {meta['sample_shape']}, "
          f"{meta['num_classes']} classes, sha256 {meta['sha256'][:12]} -> {args.out}")
    print(f"ood set: {meta['ood']}")


# EX_TEMPFAIL: the run was stopped on request and resumes from its checkpoint when started again.
EXIT_PREEMPTED = 75


def _requeue_slurm_job() -> None:
    """Ask SLURM to requeue this job (same job id); the next start resumes from the checkpoint.

    Only while SLURM still has the job RUNNING, which is the case for the early-warning signal
    (`--signal=TERM@...`). After `scancel` or at the time limit the job is already COMPLETING:
    requeueing then would make a cancelled job come back forever, or race Snakemake's retry.
    """
    import os
    import subprocess

    job_id = os.environ.get("SLURM_JOB_ID")
    if not job_id:
        return
    state = subprocess.run(["squeue", "-h", "-j", job_id, "-o", "%T"], capture_output=True, text=True)
    if state.stdout.strip() != "RUNNING":
        print(f"SLURM job {job_id} is {state.stdout.strip() or 'gone'}: not requeued (cancelled or out of time)",
              flush=True)
        return
    proc = subprocess.run(["scontrol", "requeue", job_id], capture_output=True, text=True)
    if proc.returncode == 0:
        print(f"requeued SLURM job {job_id}", flush=True)
    else:
        print(f"warning: scontrol requeue {job_id} failed: {proc.stderr.strip()}", file=sys.stderr, flush=True)


def _runs(study, args) -> list[dict]:
    """The runs named by --run-id, or the study's runs in --pack (as packs.json records it
    beside --runs), every one checked before any work starts."""
    from dataworth.study import run_or_exit

    if args.pack is None:
        return [run_or_exit(study, run_id) for run_id in args.run_id]
    from dataworth.packs import Packs

    results = Path(args.runs).parent
    try:
        members = Packs(study, results).members
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    if args.pack not in members:
        print(f"error: --pack {args.pack}: no such pack of this study's runs in {results / 'packs.json'} "
              f"({len(members)} packs; `dataworth plan` lists them)", file=sys.stderr)
        raise SystemExit(2)
    return [run_or_exit(study, run_id) for run_id in members[args.pack]]


def for_each_run_or_exit(runs: list[dict], runs_dir: str, task: str, work, done=lambda out: False) -> None:
    """`packs.for_each_run`, ending the process with exit 1 when runs failed (the others finished)."""
    from dataworth.packs import RunsFailed, for_each_run

    try:
        for_each_run(runs, runs_dir, task, work, done)
    except RunsFailed as failed:
        print(f"error: {failed}", file=sys.stderr)
        raise SystemExit(1) from None


def _check_devices(runs: list[dict]) -> None:
    """A device this machine lacks (train.device: cuda without a GPU) is one clear error, before any run starts."""
    from dataworth.train.run import resolve_device

    for name in sorted({run["train"]["device"] for run in runs}):
        try:
            resolve_device(name)
        except RuntimeError as error:
            print(f"error: {error}; allowed here: auto or cpu", file=sys.stderr)
            raise SystemExit(1) from None


def cmd_train(args) -> None:
    from dataworth.train import train_run
    from dataworth.train.checkpoint import Preempted, StopRequest

    study = _load(args.study)
    runs = _runs(study, args)
    _check_devices(runs)
    # One stop request for the whole job: a signal between two runs stops it before the next.
    stop = StopRequest().install()
    starts = iter([PROCESS_START])  # the first run pays the process start; later ones their own set-up

    def train_one(run: dict, out) -> None:
        if stop.requested:
            raise Preempted(0, f"stopped by {stop.signal_name} before run {run['run_id']} started")
        resuming = " (resuming from its checkpoint)" if out.checkpoint.exists() else ""
        print(f"run {run['run_id']}: {run['method']} {run['model']['name']}(width={run['model']['width']}) "
              f"n_train={run['n_train']} augmentation={run['augmentation']['name']} seed={run['seed']} "
              f"steps={run['train']['steps']}{resuming}", flush=True)
        record = train_run(run, args.data, out, threads=args.threads, process_start=next(starts, None), stop=stop)
        _report_training(record)

    try:
        if _train_together(runs, args, study.spec.resources.pack_training, PROCESS_START, stop):
            starts = iter([])
        # A run trained earlier (by an earlier job of this pack, or `dataworth submit`) is kept;
        # after training together, only runs left untrained (if that failed) are trained here.
        for_each_run_or_exit(runs, args.runs, "train", train_one, done=lambda out: out.trained)
    except Preempted as stopped:
        print(stopped, flush=True)
        _requeue_slurm_job()
        raise SystemExit(EXIT_PREEMPTED) from None


def _train_together(runs: list[dict], args, mode: str, process_start: float, stop) -> bool:
    """Train the job's untrained runs concurrently as one grouped model, when `mode` and the runs
    allow it (train.run.can_train_together); True if it tried. If that fails (out of memory, say),
    the runs are trained one by one afterwards, so a pack never fails for being a pack."""
    from dataworth.runs import RunDir
    from dataworth.train.run import can_train_together, train_runs_together

    outs = [RunDir(Path(args.runs) / run["run_id"]) for run in runs]
    pending = [(run, out) for run, out in zip(runs, outs) if not out.trained]
    if not can_train_together([run for run, _ in pending], mode):
        return False
    ids = [run["run_id"] for run, _ in pending]
    print(f"training {len(pending)} runs together as one grouped model: {', '.join(ids)}", flush=True)
    try:
        records = train_runs_together([r for r, _ in pending], args.data, [o for _, o in pending],
                                      threads=args.threads, process_start=process_start, stop=stop)
    except Exception as exc:
        print(f"warning: training the runs together failed ({type(exc).__name__}: {exc}); training them "
              "one by one", file=sys.stderr, flush=True)
        pending[0][1].pack_checkpoint.unlink(missing_ok=True)  # no use one by one; runs keep their own
        return True
    for (run, out), record in zip(pending, records):
        with _run_log(out):
            print(f"run {run['run_id']}: trained together with {len(pending) - 1} other runs in one process")
            _report_training(record)
    return True


def _run_log(out):
    from dataworth.packs import run_log

    return run_log(out.path / "logs" / "train.log")


def _report_training(record: dict) -> None:
    if record["resumed_from_step"]:
        print(f"resumed from step {record['resumed_from_step']}")
    print(f"status {record['status']} after {record['steps_completed']} steps, final loss "
          f"{record['final_loss']:.4f}, compute {record['compute_seconds']:.1f}s, start-up "
          f"{record['startup_seconds']:.1f}s on {record['device']}", flush=True)
    if record["status"] == "diverged":
        print("the training loss became NaN or inf: the run is recorded as diverged and the study goes on")


def cmd_evaluate(args) -> None:
    from dataworth.evaluate import evaluate_run

    study = _load(args.study)
    eval_cfg = study.spec.eval.model_dump()

    def evaluate_one(run: dict, out) -> None:
        row = evaluate_run(out, args.data, eval_cfg, threads=args.threads)
        print(f"run {row['run_id']} ({row['status']}): test accuracy {row['test_accuracy']:.4f}, "
              f"ood accuracy {row['ood_accuracy']:.4f}, train accuracy {row['train_accuracy']:.4f}", flush=True)

    for_each_run_or_exit(_runs(study, args), args.runs, "evaluate", evaluate_one)


def cmd_collect(args) -> None:
    from dataworth.tracking.collect import collect_study

    try:
        metrics = collect_study(_load(args.study), args.results, args.out)
    except FileNotFoundError as missing:
        print(f"error: {missing}", file=sys.stderr)
        raise SystemExit(1) from None
    status = metrics["status"].value_counts().to_dict()
    print(f"collected {len(metrics)} runs into {args.out} ({status})")


def cmd_restore_mtimes(args) -> None:
    from dataworth.mtimes import restore_mtimes

    study = _load(args.study)
    results = study.results_dir(args.results)
    count = restore_mtimes(results)
    print(f"restored pipeline order of {count} modification times under {results}")


def cmd_bench(args) -> None:
    from dataworth.bench import format_table, run_benchmarks

    study = None if args.skip_study else args.study
    table = run_benchmarks(Path(args.out), device=args.device, quick=args.quick, study=study, workers=args.workers,
                           cores=args.cores)
    print(format_table(table))
    print(f"\nwritten to {args.out}")


def add_run_arguments(p: argparse.ArgumentParser, study_help: str) -> None:
    """The arguments of the commands that work on runs: which runs, where their directories are."""
    p.add_argument("--study", required=True, help=study_help)
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--run-id", action="append", help="a run of the study; repeat for several")
    which.add_argument("--pack", help="the runs of this pack, as results/<study>/packs.json records them "
                       "(the workflow's jobs: a run leaving the study never changes their command)")
    p.add_argument("--runs", required=True, help="the folder holding the run directories (results/<study>/runs)")
    p.add_argument("--data", required=True, help="prepared dataset file")
    p.add_argument("--threads", type=int, default=1)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dataworth", description="How much is data worth? Scaling-law and exchange-rate studies.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("validate", help="check a study file and report every problem")
    p.add_argument("study", nargs="?", default="params.yaml")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("plan", help="print the run table (and each run's state); --out writes it as Parquet")
    p.add_argument("study", nargs="?", default="params.yaml")
    p.add_argument("--out", help="write the run table to this Parquet file")
    p.add_argument("--results", default="results", help="results root (default: results)")
    p.set_defaults(func=cmd_plan)

    p = sub.add_parser("prepare", help="build a dataset file (called by the prepare_data rule)")
    p.add_argument("--config", required=True, help="the dataset config as JSON")
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_prepare)

    p = sub.add_parser("train", help="train runs of a study, one after another, each into its own run directory "
                       "(called by the train rule, once per pack)",
                       description="Runs already trained are skipped; a run that fails does not stop the others "
                       "(exit 1 at the end). On SIGUSR1/SIGTERM the run in progress checkpoints and the job exits 75.")
    add_run_arguments(p, "the study: params.yaml or the results/<study>/study.json the workflow writes")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="evaluate trained runs and write each one's summary (called by the evaluate rule)")
    add_run_arguments(p, "the study; its eval section is used")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser(
        "restore-mtimes",
        help="after `dvc pull`/`dvc checkout`: put the study's file mtimes back in pipeline order so nothing reruns",
    )
    p.add_argument("study", nargs="?", default="params.yaml")
    p.add_argument("--results", default="results", help="results root (default: results)")
    p.set_defaults(func=cmd_restore_mtimes)

    p = sub.add_parser("bench", help="benchmarks against baselines in the same run: a table and a Parquet file")
    p.add_argument("--out", default="results/bench/bench.parquet")
    p.add_argument("--device", default="auto", help="auto (cuda when available), cpu, cuda")
    p.add_argument("--study", default="params.yaml", help="the study run end to end for the overhead figure")
    p.add_argument("--skip-study", action="store_true", help="leave out the end-to-end study (minutes)")
    p.add_argument("--quick", action="store_true", help="a few steps each: checks that everything runs")
    p.add_argument("--workers", type=int, default=2, help="DataLoader workers of the baseline")
    p.add_argument("--cores", type=int, default=2, help="cores for the end-to-end study")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("collect", help="collect every run's summary and evaluations into metrics.parquet")
    p.add_argument("study", nargs="?", default="params.yaml", help="the study: its runs and the evaluations it asks for")
    p.add_argument("--results", default="results", help="results root (default: results)")
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_collect)

    from dataworth.evaluate.commands import register as register_evaluation_commands

    register_evaluation_commands(sub)
    from dataworth.analysis.commands import register as register_analysis_commands

    register_analysis_commands(sub)
    from dataworth.tracking.commands import register as register_tracking_commands

    register_tracking_commands(sub)
    from dataworth.cluster.submit import register as register_cluster_commands

    register_cluster_commands(sub)
    from dataworth.augment.preview import register as register_augment_preview  # issue 17

    register_augment_preview(sub)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
