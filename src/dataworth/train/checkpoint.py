"""Checkpoints and preemption: a run survives SLURM requeues, time limits and retries.

The trainer writes `<run_dir>/checkpoint.pt` atomically every `checkpoint_every_seconds` and
when a stop is requested (SIGUSR1 or SIGTERM, which SLURM sends before preemption or the time
limit). A new start of the same run resumes from it, whatever the job id, and ends with
exactly the metrics of an uninterrupted run on CPU: the checkpoint holds the model, optimizer,
schedule, every generator state, the batch order, the loss accumulators and the history.
The checkpoint is deleted once the run's outputs are written.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from pathlib import Path

import torch

from dataworth.files import CorruptFile, atomic_path, load_torch

STOP_SIGNALS = (signal.SIGUSR1, signal.SIGTERM)


class Preempted(BaseException):
    """Training stopped on request after writing a checkpoint; the run resumes on its next start.

    A BaseException, like KeyboardInterrupt: it ends the job, it is not a failure of the run
    (a pack's job goes on after a run that failed, never after a stop request)."""

    def __init__(self, step: int, message: str | None = None):
        super().__init__(message or f"preempted at step {step}: checkpoint written")
        self.step = step


class StopRequest:
    """Set by SIGUSR1/SIGTERM; the loop polls it at each step boundary (a flag, not work in the handler)."""

    def __init__(self):
        self.requested = False
        self.signal_name = ""

    def install(self) -> "StopRequest":
        """Handle the stop signals (only possible in the main thread; elsewhere this is a no-op)."""
        if threading.current_thread() is threading.main_thread():
            for sig in STOP_SIGNALS:
                signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        self.requested = True
        self.signal_name = signal.Signals(signum).name
        print(f"received {self.signal_name}: checkpointing at the next step", file=sys.stderr, flush=True)


class Checkpointer:
    """Where and how often a run checkpoints; `state` is whatever the loop hands it."""

    def __init__(self, path: str | Path, run_id: str, every_seconds: float, stop: StopRequest | None = None):
        self.path = Path(path)
        self.run_id = run_id
        self.every_seconds = every_seconds
        self.stop = stop or StopRequest()
        self._last = time.monotonic()

    def due(self) -> bool:
        return self.every_seconds > 0 and time.monotonic() - self._last >= self.every_seconds

    def save(self, state: dict) -> None:
        with atomic_path(self.path) as tmp:
            torch.save({"run_id": self.run_id, **state}, tmp)
        self._last = time.monotonic()

    def load(self) -> dict | None:
        """The saved state of this run, or None to start fresh (no checkpoint, or an unusable one)."""
        if not self.path.exists():
            return None
        try:
            state = load_torch(self.path)
        except CorruptFile as exc:  # truncated, or from an incompatible version: train from scratch
            print(f"warning: ignoring unreadable checkpoint ({exc})", file=sys.stderr)
            return None
        if state.get("run_id") != self.run_id:
            print(f"warning: ignoring checkpoint of another run ({state.get('run_id')}) in {self.path}", file=sys.stderr)
            return None
        return state

    def at_step_boundary(self, step: int, steps: int, snapshot) -> None:
        """Between steps: on a stop request save `snapshot()` and raise `Preempted`; else save it
        when one is due. Nothing after the last step (the run's outputs follow)."""
        if step >= steps:
            return
        if self.stop.requested:
            self.save(snapshot())
            raise Preempted(step)
        if self.due():
            self.save(snapshot())

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)
