"""The `dataworth` command: it parses arguments and calls the package. Snakemake rules call these
subcommands; users call them too.

Heavy imports (torch, pandas) happen inside the subcommands so `dataworth --help` and
validation stay fast.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

# A job's start-up (training.parquet's startup_seconds) counts from here: before the package loads.
PROCESS_START = time.perf_counter()

from dataworth.jobs import add_run_arguments, fail, job_runs, load_study_or_exit, study_dir_of  # noqa: E402


def cmd_validate(args) -> None:
    study = load_study_or_exit(args.study)
    print(f"{args.study}: study {study.name!r} is valid: {len(study.runs)} runs on {study.spec.dataset.name}")


def cmd_plan(args) -> None:
    from dataworth.plan import print_plan

    print_plan(load_study_or_exit(args.study), args.results, args.out, timing=not args.no_timing)


def cmd_prepare(args) -> None:
    from dataworth.data import prepare_dataset

    meta = prepare_dataset(json.loads(args.config), args.out)
    print(f"prepared {meta['config']['name']}: sizes {meta['sizes']}, sample shape {meta['sample_shape']}, "
          f"{meta['num_classes']} classes, sha256 {meta['sha256'][:12]} -> {args.out}")
    print(f"ood set: {meta['ood']}")


def cmd_train(args) -> None:
    from dataworth.train.jobs import train_job

    study = load_study_or_exit(args.study)
    train_job(job_runs(study, args), args.data, study_dir_of(args), study.spec.resources.pack_training,
              threads=args.threads, process_start=PROCESS_START)


def cmd_collect(args) -> None:
    from dataworth.tracking.collect import collect_study

    from dataworth.files import CorruptFile

    try:
        metrics = collect_study(load_study_or_exit(args.study), args.results, args.out)
    except (FileNotFoundError, CorruptFile) as missing:  # metrics.parquet stays as it was (atomic write)
        fail(str(missing), code=1)
    status = metrics["status"].value_counts().to_dict()
    print(f"collected {len(metrics)} runs into {args.out} ({status})")


def cmd_restore_mtimes(args) -> None:
    from dataworth.mtimes import restore_mtimes

    study_dir = load_study_or_exit(args.study).study_dir(args.results)
    count = restore_mtimes(study_dir.path)
    print(f"restored pipeline order of {count} modification times under {study_dir.path}")


def cmd_bench(args) -> None:
    from dataworth.bench import format_table, run_benchmarks

    study = None if args.skip_study else args.study
    table = run_benchmarks(Path(args.out), device=args.device, quick=args.quick, study=study, workers=args.workers,
                           cores=args.cores)
    print(format_table(table))
    print(f"\nwritten to {args.out}")


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
    p.add_argument("--no-timing", action="store_true",
                   help="skip the step timing of each model: no GPU-/CPU-hours estimate (issue 18)")
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
    from dataworth.data.commands import register as register_data_commands

    register_data_commands(sub)
    from dataworth.augment.preview import register as register_augment_preview

    register_augment_preview(sub)
    from dataworth.status import register as register_status  # issue 20 item 8

    register_status(sub)
    return parser


def _os_error_line(exc: OSError) -> str:
    """'<path>: <what the system said>', or the error's own words when it names no path."""
    if exc.filename is None:
        return str(exc)
    paths = f"{exc.filename} -> {exc.filename2}" if exc.filename2 is not None else str(exc.filename)
    return f"{paths}: {exc.strerror or exc}"


def main(argv: list[str] | None = None) -> None:
    """Run one command. Whatever the command, an error the system names ends it with one line and
    exit status 2, not a traceback; a closed output pipe (`dataworth plan | head`) ends it quietly."""
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except BrokenPipeError:
        # The reader has gone (head read its lines): stop like any Unix filter, exit 0. Point stdout
        # at /dev/null so that the interpreter's final flush does not raise a second time.
        import os
        import sys

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise SystemExit(0) from None
    except KeyboardInterrupt:
        fail("interrupted", code=130)  # Ctrl-C: the shell's status for SIGINT, not a traceback
    except UnicodeDecodeError as exc:
        fail(f"a file is not UTF-8 text ({exc.reason} at byte {exc.start}); save it as UTF-8")
    except OSError as exc:
        fail(_os_error_line(exc))


if __name__ == "__main__":
    main()
