"""While the workflow's SLURM jobs wait, say why: SLURM's pending reason, in Snakemake's log.

The SLURM executor plugin only reports jobs that finished; a job that pends (Resources,
Priority, QOSMaxJobsPerUserLimit, ...) is silent there. A daemon thread of the Snakemake main
process asks `squeue` every so often about this checkout's pending jobs (their working
directory is the repository root) and prints a line whenever a job's reason changes.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from dataclasses import dataclass

# squeue, one line per pending job of the user: id|comment|reason|working directory. The plugin's
# comment names the rule and its wildcards: rule_train_wildcards_<pack id>.
SQUEUE_FORMAT = "%i|%k|%r|%Z"
CHECK_SECONDS_ENV = "DATAWORTH_PENDING_CHECK_SECONDS"
DEFAULT_CHECK_SECONDS = 60


@dataclass(frozen=True)
class PendingJob:
    job_id: str
    what: str  # "train, pack 0123456789ab"
    reason: str


def _describe(comment: str) -> str:
    if not comment.startswith("rule_"):
        return comment
    rule, _, wildcards = comment.removeprefix("rule_").partition("_wildcards_")
    return f"{rule}, pack {wildcards}" if wildcards else rule


def parse_squeue(text: str, workdir: str) -> list[PendingJob]:
    """`squeue --me -h -t PENDING -o '%i|%k|%r|%Z'` -> the pending jobs started from `workdir`."""
    jobs = []
    for line in text.splitlines():
        parts = line.strip().split("|")
        if len(parts) != 4 or os.path.realpath(parts[3]) != os.path.realpath(workdir):
            continue
        jobs.append(PendingJob(parts[0], _describe(parts[1]), parts[2]))
    return jobs


class PendingReporter:
    """Prints `dataworth: SLURM job <id> (<rule>, pack <id>) is pending: <reason>` on each change."""

    def __init__(self, workdir: str, out=sys.stderr):
        self.workdir = workdir
        self.out = out
        self.seen: dict[str, str] = {}

    def check(self, squeue_text: str) -> list[str]:
        lines = []
        for job in parse_squeue(squeue_text, self.workdir):
            if self.seen.get(job.job_id) != job.reason:
                self.seen[job.job_id] = job.reason
                lines.append(f"dataworth: SLURM job {job.job_id} ({job.what}) is pending: {job.reason}")
        for line in lines:
            print(line, file=self.out, flush=True)
        return lines

    def _loop(self, seconds: float, stop: threading.Event) -> None:
        while not stop.wait(seconds):
            try:
                text = subprocess.run(["squeue", "--me", "-h", "-t", "PENDING", "-o", SQUEUE_FORMAT],
                                      capture_output=True, text=True, timeout=60).stdout
            except (OSError, subprocess.SubprocessError):
                continue  # squeue busy or gone for a moment: ask again next time
            self.check(text)

    def start(self) -> threading.Event:
        """Check in a daemon thread (it dies with Snakemake); set the returned event to stop."""
        stop = threading.Event()
        seconds = float(os.environ.get(CHECK_SECONDS_ENV, DEFAULT_CHECK_SECONDS))
        threading.Thread(target=self._loop, args=(seconds, stop), name="slurm-pending-reasons", daemon=True).start()
        return stop
