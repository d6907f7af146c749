"""A train job: the runs of one pack (or those named on the command line), in one process.

The runs train together as one grouped model when their method and `resources.pack_training`
allow it (run.can_train_together), else one after another; a run trained already (by an earlier
job of this pack, or `dataworth submit`) is kept. A run that fails takes no other down. On a stop
request (SLURM's warning signal) the run in progress checkpoints, the job asks SLURM to requeue
it, and it exits with EXIT_PREEMPTED; its next start resumes.
"""

from __future__ import annotations

import sys
import time

from dataworth.jobs import for_each_run_or_exit, run_log
from dataworth.runs import RunDir, StudyDir

# EX_TEMPFAIL: the run was stopped on request and resumes from its checkpoint when started again.
EXIT_PREEMPTED = 75


def train_job(runs: list[dict], data_path: str, study_dir: StudyDir, pack_training: str, threads: int = 1,
              process_start: float | None = None) -> None:
    """Train `runs`, each into its own run directory; exits 1 if runs failed, 75 if stopped."""
    from dataworth.cluster.requeue import requeue_slurm_job
    from dataworth.train.checkpoint import Preempted, StopRequest
    from dataworth.train.run import resolve_device, train_run

    process_start = time.perf_counter() if process_start is None else process_start
    for name in sorted({run["train"]["device"] for run in runs}):
        try:
            resolve_device(name)
        except RuntimeError as error:  # a device this machine lacks: one line, before any run starts
            print(f"error: {error}; allowed here: auto or cpu", file=sys.stderr)
            raise SystemExit(1) from None
    # One stop request for the whole job: a signal between two runs stops it before the next.
    stop = StopRequest().install()
    starts = iter([process_start])  # the first run pays the process start; later ones their own set-up

    def train_one(run: dict, run_dir: RunDir) -> None:
        if stop.requested:
            raise Preempted(0, f"stopped by {stop.signal_name} before run {run['run_id']} started")
        resuming = " (resuming from its checkpoint)" if run_dir.checkpoint.exists() else ""
        print(f"run {run['run_id']}: {run['method']} {run['model']['name']}(width={run['model']['width']}) "
              f"n_train={run['n_train']} augmentation={run['augmentation']['name']} seed={run['seed']} "
              f"steps={run['train']['steps']}{resuming}", flush=True)
        report_training(train_run(run, data_path, run_dir, threads=threads, process_start=next(starts, None),
                                  stop=stop))

    try:
        if train_together(runs, data_path, study_dir, pack_training, threads, process_start, stop):
            starts = iter([])
        # After training together, only runs left untrained (if that failed) are trained here.
        for_each_run_or_exit(runs, study_dir, "train", train_one, done=lambda run_dir: run_dir.trained)
    except Preempted as stopped:
        print(stopped, flush=True)
        requeue_slurm_job()
        raise SystemExit(EXIT_PREEMPTED) from None


def train_together(runs: list[dict], data_path: str, study_dir: StudyDir, mode: str, threads: int,
                   process_start: float, stop) -> bool:
    """Train the job's untrained runs concurrently as one grouped model, when `mode` and the runs
    allow it (run.can_train_together); True if it tried. If that fails (out of memory, say), the
    runs are trained one by one afterwards, so a pack never fails for being a pack."""
    from dataworth.train.run import can_train_together, train_runs_together

    run_dirs = [study_dir.run_dir(run["run_id"]) for run in runs]
    pending = [(run, run_dir) for run, run_dir in zip(runs, run_dirs) if not run_dir.trained]
    if not can_train_together([run for run, _ in pending], mode):
        return False
    ids = [run["run_id"] for run, _ in pending]
    print(f"training {len(pending)} runs together as one grouped model: {', '.join(ids)}", flush=True)
    try:
        records = train_runs_together([r for r, _ in pending], data_path, [d for _, d in pending],
                                      threads=threads, process_start=process_start, stop=stop)
    except Exception as exc:
        print(f"warning: training the runs together failed ({type(exc).__name__}: {exc}); training them "
              "one by one", file=sys.stderr, flush=True)
        pending[0][1].pack_checkpoint.unlink(missing_ok=True)  # no use one by one; runs keep their own
        return True
    for (run, run_dir), record in zip(pending, records):
        with run_log(run_dir.log("train")):
            print(f"run {run['run_id']}: trained together with {len(pending) - 1} other runs in one process")
            report_training(record)
    return True


def report_training(record: dict) -> None:
    if record["resumed_from_step"]:
        print(f"resumed from step {record['resumed_from_step']}")
    print(f"status {record['status']} after {record['steps_completed']} steps, final loss "
          f"{record['final_loss']:.4f}, compute {record['compute_seconds']:.1f}s, start-up "
          f"{record['startup_seconds']:.1f}s on {record['device']}", flush=True)
    if record["status"] == "diverged":
        print("the training loss became NaN or inf: the run is recorded as diverged and the study goes on")
