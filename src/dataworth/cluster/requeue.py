"""SLURM requeueing of a training job that stopped on SLURM's early-warning signal."""

from __future__ import annotations

import os
import subprocess
import sys


def requeue_slurm_job() -> None:
    """Ask SLURM to requeue this job (same job id); the next start resumes from the checkpoint.

    Only while SLURM still has the job RUNNING, which is the case for the early-warning signal
    (`--signal=TERM@...`). After `scancel` or at the time limit the job is already COMPLETING:
    requeueing then would make a cancelled job come back forever, or race Snakemake's retry.
    Outside SLURM it does nothing.
    """
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
