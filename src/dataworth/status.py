"""`dataworth status <study>`: the study at a glance, from its results folder alone.

Each run's state comes from its files: ok / diverged (evaluated), trained (waiting for
evaluation), corrupt, and, for runs not trained yet, the progress file the training process
rewrites every history row (train/progress.py): running, stalled (a running run whose file has
not changed for a long time: its job was killed or hangs), failed, stopped (a stop signal; it
resumes from its checkpoint), else pending. Nothing else is asked (no Snakemake, no SLURM, no
MLflow), so it works the same for local runs, SLURM jobs and `dataworth submit`.

The study's ETA is a rough guide: the work left (the running runs' own ETAs, and every pending
run's steps at the mean measured seconds per step) spread over as many workers as runs are
running now (at least one).
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, field

from dataworth.jobs import load_study_or_exit
from dataworth.progress import duration, read_progress

STATES = ("ok", "diverged", "trained", "running", "stalled", "failed", "stopped", "pending", "corrupt")
# A running run whose progress file is older than this many history intervals (and at least
# STALLED_AFTER_SECONDS) is shown as stalled.
STALLED_INTERVALS = 10
STALLED_AFTER_SECONDS = 900


@dataclass
class RunStatus:
    run: dict
    state: str
    progress: dict | None = None
    note: str = ""


@dataclass
class StudyStatus:
    name: str
    runs: list[RunStatus]
    seconds_per_step: float | None  # measured: finished runs' training loops, else running runs' rates
    eta_seconds: float | None
    counts: dict[str, int] = field(default_factory=dict)


def _age_seconds(stamp: str | None, now: float) -> float | None:
    try:
        return now - dt.datetime.fromisoformat(stamp).timestamp()
    except (TypeError, ValueError):
        return None


def run_status(study, run: dict, run_dir, now: float) -> RunStatus:
    from dataworth.plan import run_state

    state, why = run_state(study, run, run_dir)
    if state != "pending":
        return RunStatus(run, state, note=why or "")
    progress = read_progress(run_dir)
    if progress is None or progress.get("state") == "finished":  # finished: training.parquet went missing since
        return RunStatus(run, "pending")
    kind = progress.get("state")
    if kind in ("starting", "running"):
        age = _age_seconds(progress.get("updated_at"), now)
        interval = (progress.get("seconds_per_step") or 0) * run["train"]["log_every"]
        if age is not None and age > max(STALLED_AFTER_SECONDS, STALLED_INTERVALS * interval):
            return RunStatus(run, "stalled", progress, f"no progress for {duration(age)}")
        return RunStatus(run, "running", progress)
    if kind == "failed":
        return RunStatus(run, "failed", progress, progress.get("error", ""))
    if kind == "stopped":
        return RunStatus(run, "stopped", progress, "stopped by a signal: resumes from its checkpoint")
    return RunStatus(run, "pending", progress)


def _measured_seconds_per_step(study, study_dir, statuses: list[RunStatus]) -> float | None:
    from dataworth.tracking.schemas import TRAINING, read_parquet

    seconds = steps = 0.0
    for status in statuses:
        if status.state in ("ok", "diverged", "trained"):
            try:
                record = read_parquet(study_dir.run_dir(status.run["run_id"]).training, TRAINING).iloc[0]
            except Exception:  # noqa: BLE001 - a file being replaced: leave it out of the mean
                continue
            if record["steps_completed"] and record["compute_seconds"] == record["compute_seconds"]:
                seconds += float(record["compute_seconds"])
                steps += int(record["steps_completed"])
    if steps:
        return seconds / steps
    rates = [s.progress["seconds_per_step"] for s in statuses if s.state == "running" and s.progress
             and s.progress.get("seconds_per_step")]
    return sum(rates) / len(rates) if rates else None


def study_status(study, results_root="results", now: float | None = None) -> StudyStatus:
    now = time.time() if now is None else now
    study_dir = study.study_dir(results_root)
    statuses = [run_status(study, run, study_dir.run_dir(run["run_id"]), now) for run in study.runs]
    counts = {state: sum(s.state == state for s in statuses) for state in STATES}
    per_step = _measured_seconds_per_step(study, study_dir, statuses)
    running = [s for s in statuses if s.state == "running"]
    left = 0.0
    for s in running:
        eta = s.progress.get("eta_seconds")
        if eta is None and per_step:
            eta = (s.run["train"]["steps"] - s.progress.get("step", 0)) * per_step
        age = _age_seconds(s.progress.get("updated_at"), now) or 0.0
        left += max(0.0, (eta or 0.0) - age)
    waiting = [s for s in statuses if s.state in ("pending", "stopped", "stalled")]
    eta_seconds = None
    if per_step is not None or not waiting:
        left += sum(s.run["train"]["steps"] - (s.progress or {}).get("step", 0) for s in waiting) * (per_step or 0)
        eta_seconds = left / max(1, len(running))
    return StudyStatus(study.name, statuses, per_step, eta_seconds, counts)


def render(status: StudyStatus):
    """The status as rich renderables: a line of counts, the runs in progress, the failed ones."""
    from rich.console import Group
    from rich.table import Table

    total = len(status.runs)
    counts = ", ".join(f"{n} {state}" for state, n in status.counts.items() if n)
    eta = "unknown (no step measured yet)" if status.eta_seconds is None else duration(status.eta_seconds)
    done = status.counts["ok"] + status.counts["diverged"]
    head = (f"study [bold]{status.name}[/bold]: {total} runs: {counts}. Evaluated {done}/{total}; "
            f"ETA {eta}" + (f" ({status.seconds_per_step * 1000:.1f} ms/step measured)" if status.seconds_per_step else ""))

    table = Table(title="runs in progress", title_justify="left", show_lines=False)
    for column in ("run", "augmentation", "n_train", "seed", "state", "step", "loss", "samples/s", "ETA", "host",
                   "note"):
        table.add_column(column, justify="right" if column in ("n_train", "seed", "step", "loss", "samples/s")
                         else "left")
    shown = [s for s in status.runs if s.state in ("running", "stalled", "failed", "stopped", "corrupt")]
    for s in shown:
        p = s.progress or {}
        rate = p.get("samples_per_second")
        table.add_row(
            s.run["run_id"], s.run["augmentation"]["name"], str(s.run["n_train"]), str(s.run["seed"]), s.state,
            f"{p.get('step', 0)}/{s.run['train']['steps']}" if p else "",
            f"{p['loss']:.4f}" if p.get("loss") is not None else "",
            f"{rate:,.0f}" if rate else "", duration(p.get("eta_seconds")) if s.state == "running" else "",
            p.get("host", ""), s.note[:80],
        )
    return Group(head, table) if shown else Group(head)


def cmd_status(args) -> None:
    from rich.console import Console
    from rich.live import Live

    study = load_study_or_exit(args.study)
    console = Console()
    if args.watch is None:
        console.print(render(study_status(study, args.results)))
        return
    with Live(render(study_status(study, args.results)), console=console, refresh_per_second=1) as live:
        while True:
            time.sleep(args.watch)
            live.update(render(study_status(study, args.results)))


def _seconds(text: str) -> float:
    import argparse

    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds above 0")
    return value


def register(sub) -> None:
    p = sub.add_parser("status", help="the study at a glance from its results folder: runs ok / diverged / failed / "
                       "running / pending, current steps, an ETA (--watch refreshes it)")
    p.add_argument("study", nargs="?", default="params.yaml", help="params.yaml, or the study.json the workflow writes")
    p.add_argument("--results", default="results", help="results root (default: results)")
    p.add_argument("--watch", type=_seconds, nargs="?", const=5.0, default=None, metavar="SECONDS",
                   help="refresh every SECONDS (default 5) until Ctrl-C")
    p.set_defaults(func=cmd_status)
