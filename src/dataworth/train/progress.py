"""Progress a researcher can watch: a log line and a small progress file per run while it trains.

Every history row (train.log_every steps) the training job prints, per run, the step, loss,
learning rate, samples/s and an ETA, and rewrites the run's `progress.json` atomically. `dataworth
status` reads these files (and nothing but the results folder), so it works the same for local
runs, SLURM jobs and `dataworth submit`. A run that raises leaves its file in state `failed` (with
the error), one stopped by a signal in state `stopped` (it resumes from its checkpoint); a job
killed outright leaves `running`, which `dataworth status` shows as stalled once the file is old.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket

from dataworth.files import write_text_atomic
from dataworth.progress import duration, progress_path, utc_now
from dataworth.runs import RunDir


class Progress:
    """The progress of the runs one training process trains (one run, or a pack trained together).

    `on_log(member, row)` is the training loop's per-row callback (loop.py); `watching()` marks
    the runs failed or stopped when training raises."""

    def __init__(self, runs: list[dict], run_dirs: list[RunDir], echo=print):
        self.runs, self.run_dirs, self.echo = runs, run_dirs, echo
        self.steps = runs[0]["train"]["steps"]
        self.batch_size = runs[0]["train"]["batch_size"]
        self.started_at = utc_now()
        self.last: list[tuple[int, float] | None] = [None] * len(runs)  # (step, elapsed) of the previous row
        self.state: list[dict] = [{} for _ in runs]
        for index in range(len(runs)):
            self._write(index, "starting")

    def on_log(self, member: int, row: dict) -> None:
        step, elapsed = int(row["step"]), float(row["elapsed_seconds"])
        previous = self.last[member] or (0, 0.0)
        self.last[member] = (step, elapsed)
        done, seconds = step - previous[0], elapsed - previous[1]
        per_step = seconds / done if done > 0 and seconds > 0 else None
        samples_per_second = self.batch_size / per_step if per_step else None
        eta = (self.steps - step) * per_step if per_step else None
        self.state[member] = {
            "step": step, "loss": row["loss"], "lr": row["lr"], "seconds_per_step": per_step,
            "samples_per_second": samples_per_second, "eta_seconds": eta,
            **{k: row[k] for k in ("test_accuracy", "ood_accuracy") if row.get(k) is not None},
        }
        self._write(member, "running")
        heldout = "".join(f", {k.replace('_', ' ')} {row[k]:.3f}" for k in ("test_accuracy", "ood_accuracy")
                          if row.get(k) is not None)
        rate = f"{samples_per_second:,.0f} samples/s" if samples_per_second else "? samples/s"
        self.echo(f"run {self.runs[member]['run_id']}: step {step}/{self.steps} ({100 * step / self.steps:.0f}%), "
                  f"loss {row['loss']:.4f}, lr {row['lr']:.3g}{heldout}, {rate}, ETA {duration(eta)}", flush=True)

    @contextlib.contextmanager
    def watching(self):
        from dataworth.train.checkpoint import Preempted

        try:
            yield self
        except Preempted:
            for index in range(len(self.runs)):
                self._write(index, "stopped")
            raise
        except BaseException as exc:
            for index in range(len(self.runs)):
                self._write(index, "failed", error=f"{type(exc).__name__}: {exc}"[:500])
            raise
        for index in range(len(self.runs)):
            self._write(index, "finished")

    def _write(self, index: int, state: str, error: str | None = None) -> None:
        record = {
            "run_id": self.runs[index]["run_id"],
            "state": state,
            "steps": self.steps,
            "step": 0,
            **self.state[index],
            "started_at": self.started_at,
            "updated_at": utc_now(),
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
        }
        if error:
            record["error"] = error
        write_text_atomic(progress_path(self.run_dirs[index]), json.dumps(record, indent=1) + "\n")
