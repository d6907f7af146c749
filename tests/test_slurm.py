"""A study on a real one-node SLURM cluster: the slurm profile, requeues, time limits, submitit.

The cluster is scripts/slurm/start.sh (Debian 12, root). In CI (CI=true) it is always started and a
failure to start it fails these tests; elsewhere they skip with a message saying how to run them.
Training is made slow only where a test interrupts it (a sleep per step, see SLOW_HOOK), and runs
on CPU with one thread everywhere, so every result must equal the same study run locally.
"""

from __future__ import annotations

import copy
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest
from conftest import BIN, REPO, TINY_STUDY, Project
from test_workflow import jobs_run

from dataworth.study import load_study, short_hash
from dataworth.tracking.schemas import HISTORY, SUMMARY, TRAINING, read_parquet

# One xdist worker runs all of these: they share the one-node cluster and its two CPUs.
pytestmark = [pytest.mark.integration, pytest.mark.slurm, pytest.mark.xdist_group("slurm")]

START, STOP = REPO / "scripts/slurm/start.sh", REPO / "scripts/slurm/stop.sh"
HOW_TO_RUN = (
    "the SLURM tests need the one-node test cluster: as root on Debian 12 run `make slurm-up` "
    "(scripts/slurm/start.sh installs and starts it), then `python -m pytest tests/test_slurm.py`"
)

# 3 runs of 200 steps, checkpointing every second; each job asks for a (fake) GPU and one CPU.
STUDY = copy.deepcopy(TINY_STUDY)
STUDY["grid"].update(n_train=[32, 64, 96], augmentation=["shift"])
STUDY["train"].update(steps=200, log_every=20, checkpoint_every_seconds=1)
# SLURM's warning comes 50 s before the 2-minute limit, give or take its 60 s resolution: 10 to 70 s
# after a job starts.
STUDY["resources"] = {"slurm": {"gpus": 1, "cpus": 1, "mem_mb": 500, "runtime_min": 2, "signal_seconds": 50}}
RUN_IDS = [run["run_id"] for run in load_study(STUDY).runs]
# The study's metrics, not the default target: the report is not what these tests are about.
METRICS_TARGET = "results/tiny/metrics.parquet"

# Test-only overrides of the profile: status checks every 2 s instead of every minute.
FAST_CHECKS = ["--slurm-init-seconds-before-status-checks", "2", "--seconds-between-status-checks", "2",
               "--max-status-checks-per-second", "10", "--latency-wait", "5"]

SLOW_HOOK = '''
# Test-only: training of the runs in DATAWORTH_TEST_SLOW_RUNS sleeps before each step while it has
# not resumed from a checkpoint, so a test can interrupt it; a resumed run trains at full speed.
# Sleeping changes no number. Loaded by `dataworth train` and by submitit's job processes.
import os, sys, time
_slow = set(filter(None, os.environ.get("DATAWORTH_TEST_SLOW_RUNS", "").split(",")))
if _slow and (sys.argv[1:2] == ["train"] or os.environ.get("SUBMITIT_EXECUTOR")):
    from dataworth.train.checkpoint import Checkpointer
    _init, _due, _pause = Checkpointer.__init__, Checkpointer.due, float(os.environ["DATAWORTH_TEST_STEP_SECONDS"])
    def _slow_init(self, path, run_id, *args, **kwargs):
        _init(self, path, run_id, *args, **kwargs)
        self.test_slow = run_id in _slow and not self.path.exists()
    def _slow_due(self):
        if self.test_slow:
            time.sleep(_pause)
        return _due(self)
    Checkpointer.__init__, Checkpointer.due = _slow_init, _slow_due
'''

COMPARED = ["status", "steps_completed", "train_loss", "train_accuracy", "test_loss", "test_accuracy",
            "ood_loss", "ood_accuracy"]


def cluster_answers() -> bool:
    if not (shutil.which("sinfo") and shutil.which("sacct")):
        return False
    nodes = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True)
    accounting = subprocess.run(["sacct", "-n", "-X", "-S", "now"], capture_output=True, text=True)
    return bool(re.search(r"^(idle|mixed|allocated)", nodes.stdout, re.M)) and accounting.returncode == 0


@pytest.fixture(scope="session")
def slurm_cluster():
    in_ci = os.environ.get("CI", "").lower() == "true"
    started = False
    if not cluster_answers():
        if not in_ci and os.geteuid() != 0:
            pytest.skip(f"no SLURM cluster answers here; {HOW_TO_RUN}")
        command = [str(START)] if in_ci else [str(START), "--no-install"]  # only CI installs packages
        proc = subprocess.run(command, capture_output=True, text=True, timeout=900)
        if proc.returncode != 0 or not cluster_answers():
            problem = f"{' '.join(command)} exited with {proc.returncode}:\n{proc.stdout}{proc.stderr}"
            if in_ci:
                pytest.fail(f"could not start SLURM in CI: {problem}")
            pytest.skip(f"{HOW_TO_RUN}\n({problem})")
        started = True
    yield
    if started:
        subprocess.run([str(STOP)], capture_output=True, timeout=120)


class SlurmProject(Project):
    """A workflow copy whose root has the `slurm` profile link, as the repository's root has."""

    def __init__(self, root: Path, study: dict = STUDY):
        super().__init__(root)
        (root / "slurm").symlink_to("workflow/profiles/slurm")
        self.write_study(study)

    def slow_env(self, runs: list[str], step_seconds: float) -> dict:
        hook = self.root / "test_hook"
        hook.mkdir(exist_ok=True)
        (hook / "sitecustomize.py").write_text(SLOW_HOOK)
        return {"PYTHONPATH": str(hook), "DATAWORTH_TEST_SLOW_RUNS": ",".join(runs),
                "DATAWORTH_TEST_STEP_SECONDS": str(step_seconds)}

    def start_slurm(self, *args: str, env: dict | None = None) -> subprocess.Popen:
        """`snakemake --profile slurm` (the literal command, plus faster status checks) in the background."""
        return subprocess.Popen(
            [str(BIN / "snakemake"), "--profile", "slurm", *FAST_CHECKS, *args],
            cwd=self.root, env=self.env(env), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )

    def run_slurm(self, *args: str, env: dict | None = None, timeout: float = 400) -> str:
        proc = self.start_slurm(*args, env=env)
        output, _ = proc.communicate(timeout=timeout)
        assert proc.returncode == 0, f"snakemake --profile slurm {' '.join(args)} failed:\n{output}"
        return output

    def dataworth(self, *args: str, env: dict | None = None, timeout: float = 400) -> str:
        proc = subprocess.run([str(BIN / "dataworth"), *args], cwd=self.root, env=self.env(env),
                              capture_output=True, text=True, timeout=timeout)
        assert proc.returncode == 0, f"dataworth {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}"
        return proc.stdout + proc.stderr

    def run_path(self, run_id: str) -> Path:
        return self.results() / "runs" / run_id

    def training(self, run_id: str) -> dict:
        return read_parquet(self.run_path(run_id) / "training.parquet", TRAINING).iloc[0].to_dict()



def sacct(job_id, *fields: str) -> list[dict]:
    """Every accounting record of a job (-D: one per start of a requeued job), oldest first."""
    out = subprocess.run(["sacct", "-D", "-X", "-n", "-P", "-j", str(job_id), "-o", ",".join(fields)],
                         capture_output=True, text=True, check=True).stdout
    return [dict(zip(fields, line.split("|"))) for line in out.splitlines() if line]


def pack_of(run_id: str) -> str:
    """The pack of a run: this study has one run per job, so the pack of just that run."""
    return short_hash([run_id])


def train_job_of(run_id: str, timeout: float = 60) -> str:
    """The SLURM job id of the running train job of a run (the plugin's job comment names its pack)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = subprocess.run(["squeue", "-h", "-t", "RUNNING", "-o", "%i|%k"], capture_output=True, text=True).stdout
        for line in out.splitlines():
            job_id, comment = line.split("|", 1)
            if comment == f"rule_train_wildcards_{pack_of(run_id)}":
                return job_id
        time.sleep(0.5)
    raise AssertionError(f"no running train job for run {run_id} within {timeout}s")


def wait_for_file(path: Path, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} did not appear within {timeout}s"
        time.sleep(0.2)


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict:
    """The same study run locally without SLURM: metrics row and history per run."""
    project = Project(tmp_path_factory.mktemp("local"))
    project.write_study(STUDY)
    runs = project.results() / "runs"
    project.snakemake(METRICS_TARGET)
    return {
        run_id: (read_parquet(runs / run_id / "summary.parquet", SUMMARY).iloc[0][COMPARED],
                 read_parquet(runs / run_id / "history.parquet", HISTORY))
        for run_id in RUN_IDS
    }


def assert_same_as_local(project: SlurmProject, reference: dict, run_ids: list[str], evaluated: bool = True) -> None:
    for run_id in run_ids:
        expected_row, expected_history = reference[run_id]
        if evaluated:
            summary = read_parquet(project.run_path(run_id) / "summary.parquet", SUMMARY).iloc[0]
            assert summary[COMPARED].to_dict() == expected_row.to_dict(), f"run {run_id} differs from the local run"
        history = read_parquet(project.run_path(run_id) / "history.parquet", HISTORY)
        columns = ["step", "loss", "accuracy", "lr"]
        pd.testing.assert_frame_equal(history[columns], expected_history[columns])
        assert not (project.run_path(run_id) / "checkpoint.pt").exists()  # removed once the run finished


def test_the_slurm_profile_runs_the_study_like_a_local_run_and_a_warned_job_resumes(slurm_cluster, reference, tmp_path):
    """The literal `snakemake --profile slurm` runs the study's jobs on SLURM, each with a GPU, with
    the results of a local run. Run B trains for longer than its time limit allows after SLURM's
    warning signal: it checkpoints, requeues its own job and resumes in it."""
    project = SlurmProject(tmp_path)
    b = RUN_IDS[1]
    proc = project.start_slurm(METRICS_TARGET, env=project.slow_env([b], step_seconds=0.5))
    try:
        job_b = train_job_of(b)
        output, _ = proc.communicate(timeout=400)
    finally:
        proc.kill()
    assert proc.returncode == 0, output
    assert re.search(r"Using profiles? slurm", output)
    jobs = jobs_run(output)
    assert jobs["prepare_data"] == 1 and jobs["train"] == 3 and jobs["evaluate"] == 3 and jobs["collect"] == 1
    assert "Trying to restart" not in output  # SLURM restarted B, not Snakemake
    assert_same_as_local(project, reference, RUN_IDS)

    for run_id in RUN_IDS:
        record = project.training(run_id)
        starts = sacct(record["slurm_job_id"], "State", "AllocTRES")
        assert "gres/gpu=1" in starts[-1]["AllocTRES"] and "cpu=1" in starts[-1]["AllocTRES"]
        states = [start["State"] for start in starts]
        if run_id == b:
            assert record["slurm_job_id"] == job_b  # the same job, started again
            assert 0 < record["resumed_from_step"] < 200
            assert states == ["REQUEUED", "COMPLETED"], states
            log = (project.run_path(b) / "logs" / "train.log").read_text()
            assert f"resumed from step {record['resumed_from_step']}" in log
        else:
            assert record["resumed_from_step"] == 0 and states == ["COMPLETED"]

    again = project.run_slurm(METRICS_TARGET)
    assert "Nothing to be done" in again


def test_requeued_and_timed_out_jobs_resume_from_their_checkpoints(slurm_cluster, reference, tmp_path):
    """No warning signal and a 1-minute limit. Run A's job is requeued by hand (`scontrol requeue`):
    the same job starts again and resumes. Run C's job runs into the limit: SLURM kills it
    (TIMEOUT), Snakemake submits a new job (the profile's retries), which resumes from the last
    periodic checkpoint. Only training runs: it is what these interrupt."""
    study = copy.deepcopy(STUDY)
    study["resources"]["slurm"].update(runtime_min=1, signal_seconds=0)  # execution-only: same run ids
    project = SlurmProject(tmp_path, study)
    a, c = RUN_IDS[0], RUN_IDS[2]
    targets = [f"results/tiny/packs/{pack_of(run_id)}/train.done" for run_id in (a, c)]
    proc = project.start_slurm(*targets, env=project.slow_env([a, c], step_seconds=0.6))
    try:
        job_a, job_c = train_job_of(a), train_job_of(c)
        wait_for_file(project.run_path(a) / "checkpoint.pt")
        subprocess.run(["scontrol", "requeue", job_a], check=True)
        output, _ = proc.communicate(timeout=400)
    finally:
        proc.kill()
    assert proc.returncode == 0, output

    requeued = project.training(a)
    assert requeued["slurm_job_id"] == job_a  # the same job, started again
    assert [r["State"] for r in sacct(job_a, "State")] == ["REQUEUED", "COMPLETED"]
    timed_out = project.training(c)
    assert [r["State"] for r in sacct(job_c, "State")] == ["TIMEOUT"]
    assert timed_out["slurm_job_id"] != job_c  # Snakemake's retry: a new job
    for record in (requeued, timed_out):
        assert 0 < record["resumed_from_step"] < 200
    assert_same_as_local(project, reference, [a, c], evaluated=False)


def test_submit_sends_a_job_array_and_snakemake_then_has_nothing_to_train(slurm_cluster, reference, tmp_path):
    """Two runs as one submitit array (run A preempted by submitit's signal and requeued), the
    last with the local executor; then Snakemake has nothing left to do per run."""
    project = SlurmProject(tmp_path)
    a, b, c = RUN_IDS
    out = project.dataworth("submit", "--runs", f"{a},{b}", "--wait", env=project.slow_env([a], step_seconds=0.5))
    assert "2 unfinished runs" in out and "(2 tasks)" in out
    assert out.count(": ok, test accuracy") == 2
    record = project.training(a)
    assert 0 < record["resumed_from_step"] < 200  # submitit requeued it: it resumed from its checkpoint
    task_logs = "\n".join(p.read_text() for p in (project.results() / "logs" / "submitit").rglob("*_log.*"))
    assert "preempted at step" in task_logs and "Requeued job" in task_logs

    local = project.dataworth("submit", "--executor", "local")  # picks the one unfinished run
    assert f"1 unfinished runs: {c}" in local and "local job array" in local
    assert pd.isna(project.training(c)["slurm_job_id"])  # ran outside SLURM

    dry = project.snakemake("-n", METRICS_TARGET)
    assert "pack_id=" not in dry.stdout + dry.stderr  # no pack job (train, evaluate, rankme) left
    assert jobs_run(dry.stdout + dry.stderr) == {"collect": 1}
    assert_same_as_local(project, reference, RUN_IDS)


def test_a_request_no_node_can_meet_is_refused_before_anything_is_submitted(slurm_cluster, tmp_path):
    """The default resources.slurm (4 CPUs) on a partition of 2-CPU nodes would pend forever
    (PartitionConfig): the workflow refuses at its start, naming the setting and what the partition offers."""
    study = copy.deepcopy(TINY_STUDY)  # no resources section: the defaults
    project = SlurmProject(tmp_path, study)
    most_cpus = max(int(c) for c in subprocess.run(["sinfo", "-h", "-N", "-o", "%c"], capture_output=True,
                                                   text=True, check=True).stdout.split())
    assert most_cpus < 4, "the test cluster's node must have fewer CPUs than the default request"
    before = subprocess.run(["sacct", "-n", "-X", "-o", "JobID", "-S", "now-1hour"], capture_output=True, text=True).stdout
    proc = project.start_slurm()
    output, _ = proc.communicate(timeout=300)
    assert proc.returncode != 0
    assert (f"resources.slurm.cpus: train jobs ask for 4 CPUs; the largest node of partition 'main' offers "
            f"{most_cpus}; allowed: 1..{most_cpus}") in output
    assert "nothing was submitted" in output
    after = subprocess.run(["sacct", "-n", "-X", "-o", "JobID", "-S", "now-1hour"], capture_output=True, text=True).stdout
    assert after == before  # no job reached SLURM
    assert not (project.results() / "data").exists()  # nor ran locally


def test_a_waiting_job_shows_its_pending_reason_in_the_log(slurm_cluster, tmp_path):
    """Two train jobs that each take every CPU of the one node: one waits, and Snakemake's log says why."""
    study = copy.deepcopy(TINY_STUDY)
    study["grid"].update(n_train=[32], augmentation=["none", "shift"])
    study["resources"] = {"slurm": {"gpus": 0, "cpus": 2, "mem_mb": 500, "runtime_min": 5}}
    project = SlurmProject(tmp_path, study)
    # Only the two train jobs: the second waits for the first, which is all this test needs.
    targets = [f"results/tiny/packs/{pack_of(run['run_id'])}/train.done" for run in load_study(study).runs]
    assert len(targets) == 2
    output = project.run_slurm(*targets, env={"DATAWORTH_PENDING_CHECK_SECONDS": "1"})
    assert re.search(r"dataworth: SLURM job \d+ \(train, pack [0-9a-f]{12}\) is pending: "
                     r"(Resources|Priority)", output), output
