"""The progress file of a run in training (`runs/<run_id>/progress.json`): its name, how it is read,
and how durations are shown. Light (no torch): `dataworth status` reads it; train/progress.py
writes it."""

from __future__ import annotations

import datetime as dt
import json
import math

from dataworth.runs import RunDir

PROGRESS_FILE = "progress.json"


def progress_path(run_dir: RunDir):
    return run_dir.file(PROGRESS_FILE)


def utc_now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def read_progress(run_dir: RunDir) -> dict | None:
    """The run's progress file, or None when it has none (or an unreadable one)."""
    try:
        return json.loads(progress_path(run_dir).read_text())
    except (OSError, ValueError):
        return None


def duration(seconds: float | None) -> str:
    """12s, 3m05s, 2h07m: short enough for a log line and a table cell."""
    if seconds is None or not math.isfinite(seconds):
        return "?"
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
