"""One run as a submitit job: train (resuming from the run directory's checkpoint), then evaluate it.

The job is a `submitit.helpers.Checkpointable`: on submitit's signal before the time limit or a
preemption, training stops at the next step boundary with a checkpoint, and submitit requeues
the same job, which resumes from it. All state lives in the run directory, so `checkpoint()`
(inherited) simply resubmits this same object.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import submitit


class RunJob(submitit.helpers.Checkpointable):
    """One run's cluster job; pickled by submitit, so it holds only the run and where its files are."""

    def __init__(self, run: dict, stages: list[str], eval_cfg: dict, data: str, run_dir: str, study_json: str):
        self.run, self.stages, self.eval_cfg, self.data, self.run_dir = run, stages, eval_cfg, data, run_dir
        self.study_json = study_json

    def __call__(self) -> dict:
        from dataworth.runs import STAGES, RunDir
        from dataworth.tracking.schemas import SUMMARY, read_parquet

        run_dir = RunDir(Path(self.run_dir))
        # The CPUs SLURM gave the job, as the Snakemake rules do; 1 elsewhere.
        threads = int(os.environ.get("SLURM_CPUS_PER_TASK", "1"))
        if not run_dir.trained:
            self._train(run_dir, threads)
        # What the workflow's evaluation stages do for this run (runs.STAGES), each skipped when
        # its file exists (a requeued job goes on where it stopped).
        for name in self.stages:
            if STAGES[name].evaluation and not run_dir.done(name):
                STAGES[name].compute(run_dir, self.data, self.eval_cfg, threads=threads)
        self._mark_pack_finished()
        row = read_parquet(run_dir.summary, SUMMARY).iloc[0]
        return {key: row[key] for key in ("run_id", "status", "test_accuracy", "ood_accuracy")}

    def _mark_pack_finished(self) -> None:
        """If this run's pack-mates are finished too, mark the pack done, as its Snakemake jobs would."""
        from dataworth.packs import Packs
        from dataworth.study import load_study

        study = load_study(self.study_json)
        packs = Packs(study, Path(self.study_json).parent)
        pack_id = packs.pack_of[self.run["run_id"]]
        marked = packs.mark_finished(pack_id)
        if marked:
            print(f"pack {pack_id}: every run finished {', '.join(marked)}: marked done", flush=True)

    def _train(self, run_dir, threads: int) -> None:
        from dataworth.train import train_run
        from dataworth.train.checkpoint import Preempted

        # submitit checkpoints and requeues from inside its signal handler, i.e. in the middle of
        # a training step, where the trainer's state cannot be saved. So its signal only becomes
        # the trainer's stop request (the trainer's SIGUSR1 handler); once training has stopped
        # with a checkpoint, submitit's handler runs: it pickles this job and requeues it.
        preempt_signal = submitit.JobEnvironment._usr_sig()  # USR2 unless SUBMITIT_PREEMPT_SIGNAL says otherwise
        submitit_handler = signal.getsignal(preempt_signal)
        saved = {sig: signal.getsignal(sig) for sig in (signal.SIGUSR1, signal.SIGTERM)}
        received = []

        def stop_training(signum, frame):
            trainer_stop = signal.getsignal(signal.SIGUSR1)
            if callable(trainer_stop) and trainer_stop is not saved[signal.SIGUSR1]:
                received.append(signum)
                trainer_stop(signal.SIGUSR1, frame)
            elif callable(submitit_handler):  # training has not started: nothing new to save
                submitit_handler(signum, frame)

        signal.signal(preempt_signal, stop_training)
        try:
            train_run(self.run, self.data, run_dir, threads=threads)
        except Preempted as stop:
            print(stop, flush=True)
            if received and callable(submitit_handler):
                submitit_handler(received[0], None)  # requeues this job and exits
            # Stopped by SIGTERM (scancel, the time limit, preemption): SLURM decides what follows;
            # the checkpoint stays for the next start (`dataworth submit --status failed`).
            raise
        finally:
            signal.signal(preempt_signal, submitit_handler)
            for sig, handler in saved.items():
                signal.signal(sig, handler)
