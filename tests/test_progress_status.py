"""Progress lines and files (train/progress.py) and `dataworth status` over a hand-made results
folder with a run in every state (no training, no workflow)."""

from __future__ import annotations

import copy
import datetime as dt
import json
import time

import pandas as pd
import pytest

from conftest import TINY_STUDY, complete_file
from dataworth.cli import build_parser, main
from dataworth.progress import duration, read_progress
from dataworth.runs import RunDir
from dataworth.status import study_status
from dataworth.study import load_study
from dataworth.tracking.schemas import SUMMARY, TRAINING, write_parquet
from dataworth.train.checkpoint import Preempted
from dataworth.train.progress import Progress

NOW = float(int(time.time()))  # whole seconds: progress files keep whole seconds


def stamp(seconds_ago: float) -> str:
    return dt.datetime.fromtimestamp(NOW - seconds_ago, dt.timezone.utc).isoformat(timespec="seconds")


def eight_run_study():
    spec = copy.deepcopy(TINY_STUDY)
    spec["grid"]["seed"] = [0, 1]
    return load_study(spec)


def write_trained(rd: RunDir, run: dict, status: str, steps: int, compute: float, evaluated: bool) -> None:
    rd.write_config(run)
    complete_file(rd.history), complete_file(rd.model)
    record = {name: None for name in TRAINING.names}
    record.update(run_id=run["run_id"], status=status, steps_completed=steps, compute_seconds=compute)
    write_parquet(pd.DataFrame([record]), TRAINING, rd.training)
    if evaluated:
        row = pd.DataFrame([{"run_id": run["run_id"], "status": status}]).reindex(columns=SUMMARY.names)
        write_parquet(row, SUMMARY, rd.summary)


def write_progress(rd: RunDir, state: str, step: int, updated_ago: float, **extra) -> None:
    rd.path.mkdir(parents=True, exist_ok=True)
    record = {"state": state, "step": step, "steps": 40, "updated_at": stamp(updated_ago), **extra}
    (rd.path / "progress.json").write_text(json.dumps(record))


@pytest.fixture
def study_in_every_state(tmp_path):
    study = eight_run_study()
    sd = study.study_dir(tmp_path)
    rds = [sd.run_dir(run["run_id"]) for run in study.runs]
    runs = study.runs
    write_trained(rds[0], runs[0], "ok", 40, 4.0, evaluated=True)
    write_trained(rds[1], runs[1], "diverged", 20, 2.0, evaluated=True)
    write_trained(rds[2], runs[2], "ok", 40, 6.0, evaluated=False)  # trained, not evaluated yet
    write_progress(rds[3], "running", 25, 1.0, loss=0.5, eta_seconds=3.0, seconds_per_step=0.2,
                   samples_per_second=160.0, host="node7")
    write_progress(rds[4], "running", 10, 7200.0, seconds_per_step=0.1)  # killed two hours ago
    write_progress(rds[5], "failed", 5, 60.0, error="RuntimeError: CUDA out of memory")
    write_progress(rds[6], "stopped", 20, 60.0)
    # rds[7]: nothing at all: pending
    return study, tmp_path


def test_status_counts_every_state_and_the_eta_from_measured_step_times(study_in_every_state):
    study, root = study_in_every_state
    status = study_status(study, root, now=NOW)
    states = [s.state for s in status.runs]
    assert states == ["ok", "diverged", "trained", "running", "stalled", "failed", "stopped", "pending"]
    assert status.counts["running"] == 1 and status.counts["pending"] == 1 and status.counts["corrupt"] == 0
    assert "no progress for 2h00m" in status.runs[4].note and "out of memory" in status.runs[5].note
    # Measured: (4 + 2 + 6) s over (40 + 20 + 40) steps = 0.12 s/step. Left: the running run's ETA
    # less the second since its file was written (2 s), plus the steps the stalled (30), stopped (20)
    # and pending (40) runs still need, at 0.12 s: 10.8 s; over 1 running worker.
    assert status.seconds_per_step == pytest.approx(0.12)
    assert status.eta_seconds == pytest.approx(2.0 + 90 * 0.12, abs=0.05)


def test_status_command_prints_the_table(study_in_every_state, capsys, monkeypatch):
    study, root = study_in_every_state
    monkeypatch.setenv("COLUMNS", "200")
    spec = root / "study.json"
    spec.write_text(json.dumps(study.spec.model_dump(mode="json")))
    main(["status", str(spec), "--results", str(root)])
    out = capsys.readouterr().out
    assert "8 runs: 1 ok, 1 diverged, 1 trained, 1 running, 1 stalled, 1 failed, 1 stopped, 1 pending" in out
    assert "Evaluated 2/8" in out and "25/40" in out and "node7" in out and "CUDA out of memory" in out
    args = build_parser().parse_args(["status", "--watch"])
    assert args.watch == 5.0
    with pytest.raises(SystemExit):
        build_parser().parse_args(["status", "--watch", "0"])


def test_progress_lines_and_file_while_training_and_after_a_failure(tmp_path):
    study = eight_run_study()
    runs = study.runs[:2]
    rds = [RunDir(tmp_path / run["run_id"]) for run in runs]
    for rd in rds:
        rd.path.mkdir()
    lines = []
    progress = Progress(runs, rds, echo=lambda text, flush=False: lines.append(text))
    assert read_progress(rds[0])["state"] == "starting"
    # Two rows of run 0: steps 10 and 20 at 0.5 s and 1.5 s of training; batches of 32 samples.
    progress.on_log(0, {"step": 10, "loss": 1.25, "lr": 0.05, "elapsed_seconds": 0.5})
    progress.on_log(0, {"step": 20, "loss": 0.75, "lr": 0.04, "elapsed_seconds": 1.5, "test_accuracy": 0.625})
    record = read_progress(rds[0])
    assert record["state"] == "running" and record["step"] == 20 and record["steps"] == 40
    assert record["seconds_per_step"] == pytest.approx(0.1)  # (1.5 - 0.5) s / 10 steps
    assert record["samples_per_second"] == pytest.approx(320.0) and record["eta_seconds"] == pytest.approx(2.0)
    assert record["test_accuracy"] == 0.625
    assert lines[-1] == (f"run {runs[0]['run_id']}: step 20/40 (50%), loss 0.7500, lr 0.04, test accuracy 0.625, "
                         "320 samples/s, ETA 2s")
    with pytest.raises(ValueError), progress.watching():
        raise ValueError("bad batch")
    assert [read_progress(rd)["state"] for rd in rds] == ["failed", "failed"]
    assert read_progress(rds[1])["error"] == "ValueError: bad batch"
    with pytest.raises(Preempted), progress.watching():
        raise Preempted(20, "stop")
    assert read_progress(rds[0])["state"] == "stopped"


def test_duration_is_short():
    assert [duration(s) for s in (None, 5.4, 65, 3600 + 7 * 60 + 2)] == ["?", "5s", "1m05s", "1h07m"]
