"""Checkpoints: a stopped or killed run resumes and ends exactly like an uninterrupted one (CPU)."""

from __future__ import annotations

import copy
import json
import signal
import subprocess
import time

import pytest
import torch

from conftest import BIN, TINY_STUDY
from dataworth.data import prepare_dataset
from dataworth.evaluate import evaluate_run
from dataworth.runs import RunDir
from dataworth.study import load_study
from dataworth.tracking.schemas import HISTORY, TRAINING, read_parquet
from dataworth.train import train_run
from dataworth.train.checkpoint import Checkpointer, Preempted


class StopAfterPolls:
    """Stands in for StopRequest: says 'stop' at the n-th step boundary."""

    def __init__(self, polls: int):
        self.polls = polls

    @property
    def requested(self) -> bool:
        self.polls -= 1
        return self.polls < 0


@pytest.fixture
def setup(tmp_path, tiny_study):
    tiny_study["train"].update(steps=60, log_every=10)
    data = tmp_path / "data.pt"
    prepare_dataset(tiny_study["dataset"], data)
    run = next(r for r in load_study(tiny_study).runs if r["augmentation"]["name"] == "shift" and r["n_train"] == 64)
    return run, data


def outcome(out: RunDir, data) -> dict:
    history = read_parquet(out.history, HISTORY).drop(columns="elapsed_seconds")
    weights = torch.load(out.model)
    summary = evaluate_run(out, data)
    return {"history": history, "weights": weights, "test_loss": summary["test_loss"], "ood_loss": summary["ood_loss"]}


def assert_same(a: dict, b: dict) -> None:
    assert a["history"].equals(b["history"])
    assert all(torch.equal(a["weights"][k], b["weights"][k]) for k in a["weights"])
    assert a["test_loss"] == b["test_loss"] and a["ood_loss"] == b["ood_loss"]


@pytest.mark.parametrize("stop_at", [17, 30])  # mid-interval (accumulators in flight) and on a log row
def test_stopped_run_resumes_to_identical_results(tmp_path, setup, monkeypatch, stop_at):
    run, data = setup
    reference = RunDir(tmp_path / "reference")
    train_run(run, data, reference)

    interrupted = RunDir(tmp_path / "interrupted")
    original_init = Checkpointer.__init__

    def stopping_init(self, path, run_id, every_seconds, stop=None):
        original_init(self, path, run_id, every_seconds, StopAfterPolls(stop_at - 1))

    monkeypatch.setattr(Checkpointer, "__init__", stopping_init)
    with pytest.raises(Preempted) as info:
        train_run(run, data, interrupted)
    assert info.value.step == stop_at
    assert interrupted.checkpoint.exists() and not interrupted.training.exists()
    monkeypatch.undo()

    record = train_run(run, data, interrupted)
    assert record["resumed_from_step"] == stop_at
    assert not interrupted.checkpoint.exists(), "the checkpoint is removed once the run is finished"
    assert_same(outcome(interrupted, data), outcome(reference, data))


def test_checkpoint_of_another_run_is_ignored(tmp_path, setup):
    run, data = setup
    out = RunDir(tmp_path / "run")
    out.path.mkdir()
    torch.save({"run_id": "somethingelse"}, out.checkpoint)
    record = train_run(run, data, out)
    assert record["resumed_from_step"] == 0 and record["steps_completed"] == 60


def start_training(study: dict, run_id: str | list[str], data, out: RunDir) -> subprocess.Popen:
    """`dataworth train` of one run (or of a pack of runs) into out's parent folder."""
    out.path.parent.mkdir(parents=True, exist_ok=True)
    study_file = out.path.parent / "study.json"
    study_file.write_text(json.dumps(study))
    run_ids = [run_id] if isinstance(run_id, str) else run_id
    return subprocess.Popen(
        [str(BIN / "dataworth"), "train", "--study", str(study_file), *(a for r in run_ids for a in ("--run-id", r)),
         "--data", str(data), "--runs", str(out.path.parent)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )


def wait_for(path, proc, timeout=60.0):
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, f"training ended before {path.name} appeared:\n{proc.stdout.read()}"
        assert time.monotonic() < deadline, f"no {path.name} after {timeout}s"
        time.sleep(0.02)


# Long enough that a signal sent once the first periodic checkpoint exists (0.3 s into training)
# lands well before the end, even on a fast machine; short enough not to dominate the suite.
LONG_STEPS = 1000


@pytest.fixture(scope="module")
def long_run(tmp_path_factory):
    """A study whose runs train long enough to be signalled mid-run, its prepared data, one of
    its runs and that run's outcome trained without interruption: the reference every
    interrupted training below is compared with, trained once for all of them."""
    root = tmp_path_factory.mktemp("long-run")
    study = copy.deepcopy(TINY_STUDY)
    study["train"].update(steps=LONG_STEPS, log_every=100, checkpoint_every_seconds=0.3)
    data = root / "data.pt"
    prepare_dataset(study["dataset"], data)
    run = load_study(study).runs[-1]
    reference = RunDir(root / "reference")
    train_run(run, data, reference)
    return study, run, data, outcome(reference, data)


@pytest.mark.parametrize("how", ["SIGUSR1", "SIGTERM", "SIGKILL"])
def test_signalled_or_killed_process_resumes_to_identical_results(tmp_path, long_run, how):
    study, run, data, reference = long_run
    out = RunDir(tmp_path / "runs" / run["run_id"])
    proc = start_training(study, run["run_id"], data, out)
    wait_for(out.checkpoint, proc)  # a periodic checkpoint: training is under way
    proc.send_signal(getattr(signal, how))
    output = proc.communicate(timeout=60)[0]
    if how == "SIGKILL":
        assert proc.returncode == -signal.SIGKILL
    else:
        assert proc.returncode == 75, output
        assert "checkpoint written" in output
    assert not out.training.exists()

    rerun = start_training(study, run["run_id"], data, out)
    output = rerun.communicate(timeout=120)[0]
    assert rerun.returncode == 0, output
    assert "resuming from its checkpoint" in output
    record = read_parquet(out.training, TRAINING).iloc[0]
    assert 0 < record["resumed_from_step"] < LONG_STEPS
    assert_same(outcome(out, data), reference)


def test_a_stopped_pack_job_keeps_its_trained_runs_and_resumes_the_one_in_progress(tmp_path, long_run):
    """A job training two runs one after another is signalled during the second: the first stays
    trained, the second checkpoints, the job exits 75; started again, it skips the first and
    resumes the second to the numbers of an uninterrupted run."""
    study, second, data, reference = long_run
    first = load_study(study).runs[0]
    assert first["run_id"] != second["run_id"]

    runs = tmp_path / "runs"
    out_first, out_second = RunDir(runs / first["run_id"]), RunDir(runs / second["run_id"])
    pack = [first["run_id"], second["run_id"]]
    proc = start_training(study, pack, data, out_second)
    wait_for(out_second.checkpoint, proc)
    proc.send_signal(signal.SIGTERM)
    output = proc.communicate(timeout=60)[0]
    assert proc.returncode == 75, output
    assert out_first.training.exists() and not out_second.training.exists()

    rerun = start_training(study, pack, data, out_second)
    output = rerun.communicate(timeout=120)[0]
    assert rerun.returncode == 0, output
    assert f"[1/2] run {first['run_id']}: already done, skipped" in output
    assert 0 < read_parquet(out_second.training, TRAINING).iloc[0]["resumed_from_step"] < LONG_STEPS
    assert_same(outcome(out_second, data), reference)
