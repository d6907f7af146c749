"""Real Snakemake on a tiny synthetic study in a temp dir."""

from __future__ import annotations

import json
import os
import re
import shutil

import pytest

from conftest import run_cli

from dataworth.study import load_study
from dataworth.tracking.schemas import FITS, METRICS, read_parquet

pytestmark = pytest.mark.integration


def jobs_run(output: str) -> dict[str, int]:
    """Snakemake's job-stats table ('train 4', ...) as a dict; empty when nothing ran."""
    counts = {}
    table = output.split("Job stats:", 1)
    if len(table) == 2:
        for line in table[1].splitlines():
            m = re.match(r"^(\w+)\s+(\d+)$", line.strip())
            if m and m.group(1) != "total":
                counts[m.group(1)] = int(m.group(2))
            if line.strip().startswith("total"):
                break
    return counts


def test_study_runs_end_to_end_then_only_what_is_new(project, tiny_study):
    project.write_study(tiny_study)
    dry = project.snakemake("-n")
    assert jobs_run(dry.stdout + dry.stderr) == {
        "prepare_data": 1, "train": 4, "evaluate": 4, "rankme": 4, "collect": 1, "report": 1, "all": 1,
    }
    assert not project.results().exists()

    # The default layout above is one job per run and stage; running it packs the four runs into
    # one job per stage (6 jobs, not 15): what happens per run is the same, in fewer processes.
    # Per-run jobs run for real in test_keep_going_finishes_the_other_runs_and_the_log_says_why.
    tiny_study["resources"] = {"runs_per_job": 4}
    project.write_study(tiny_study)
    first = project.snakemake()
    assert jobs_run(first.stdout + first.stderr) == {
        "prepare_data": 1, "train": 1, "evaluate": 1, "rankme": 1, "collect": 1, "report": 1, "all": 1,
    }
    metrics = read_parquet(project.results() / "metrics.parquet", METRICS)
    study = load_study(tiny_study)
    assert sorted(metrics["run_id"]) == sorted(r["run_id"] for r in study.runs)
    assert (metrics["status"] == "ok").all()
    assert metrics["test_accuracy"].between(0, 1).all() and metrics["ood_accuracy"].between(0, 1).all()
    for run in study.runs:
        log = project.results() / "runs" / run["run_id"] / "logs" / "train.log"
        assert "status ok after 40 steps" in log.read_text()
    # The report is part of `all`; two sizes are too few for a law, and it says so.
    fits = read_parquet(project.results() / "fits.parquet", FITS)
    assert len(fits) == 4 and (fits["status"] == "too_few_sizes").all()
    assert (project.results() / "report" / "report.md").exists()

    # Nothing left to do for `all`, and so none for the report it holds (one Snakemake start for both).
    again = project.snakemake()
    assert "Nothing to be done" in again.stdout + again.stderr

    finished = {p: p.stat().st_mtime_ns for p in (project.results() / "runs").rglob("*.parquet")}
    tiny_study["grid"]["seed"].append(1)
    project.write_study(tiny_study)
    third = project.snakemake()
    assert jobs_run(third.stdout + third.stderr) == {  # the four new runs: one new pack
        "train": 1, "evaluate": 1, "rankme": 1, "collect": 1, "report": 1, "all": 1,
    }
    assert all(p.stat().st_mtime_ns == t for p, t in finished.items()), "a finished run was redone"
    metrics = read_parquet(project.results() / "metrics.parquet", METRICS)
    assert len(metrics) == 8 and sorted(metrics["seed"].unique()) == [0, 1]


INJECT_DISK_FULL = '''
# Test-only: make saving the weights of one run fail as if the disk were full.
import os, torch
_save = torch.save
def _failing_save(obj, f, *args, **kwargs):
    if os.environ["FAIL_RUN_ID"] in str(f):
        raise OSError(28, "No space left on device")
    return _save(obj, f, *args, **kwargs)
torch.save = _failing_save
'''


def test_keep_going_finishes_the_other_runs_and_the_log_says_why(project, tiny_study, tmp_path):
    """One job per run (the default layout, run for real here): a failed train job stops no other
    job under --keep-going. Two runs suffice: one fails, the other goes on through evaluation."""
    tiny_study["grid"]["augmentation"] = ["none"]
    project.write_study(tiny_study)
    failing = load_study(tiny_study).runs[1]["run_id"]
    inject = tmp_path / "inject"
    inject.mkdir()
    (inject / "sitecustomize.py").write_text(INJECT_DISK_FULL)
    env = {"PYTHONPATH": os.pathsep.join([str(inject), os.environ.get("PYTHONPATH", "")]), "FAIL_RUN_ID": failing}

    proc = project.snakemake("--keep-going", check=False, env=env)
    assert proc.returncode != 0
    assert jobs_run(proc.stdout + proc.stderr)["train"] == 2  # a job per run
    runs = project.results() / "runs"
    done = sorted(p.parent.name for p in runs.glob("*/summary.parquet"))
    assert len(done) == 1 and failing not in done
    log = (runs / failing / "logs" / "train.log").read_text()
    assert "No space left on device" in log
    assert not (runs / failing / "training.parquet").exists()  # a failed run never looks finished
    assert not (project.results() / "metrics.parquet").exists()

    # Once the cause is gone, only the failed run is trained (up to the metrics: the report has its own tests).
    retry = project.snakemake("results/tiny/metrics.parquet")
    assert jobs_run(retry.stdout + retry.stderr) == {"train": 1, "evaluate": 1, "rankme": 1, "collect": 1}
    assert len(read_parquet(project.results() / "metrics.parquet", METRICS)) == 2


@pytest.mark.xdist_group("finished_tiny_packed")
def test_changed_eval_settings_reevaluate_without_retraining(finished_packed):
    project, tiny_study = finished_packed, finished_packed.study
    trained = {p: p.stat().st_mtime_ns for p in (project.results() / "runs").rglob("training.parquet")}
    tiny_study["eval"]["batch_size"] = 7
    project.write_study(tiny_study)
    proc = project.snakemake()
    # eval.batch_size is read by every evaluation (evaluate, rankme), so both rerun (one job a pack).
    assert jobs_run(proc.stdout + proc.stderr) == {"evaluate": 2, "rankme": 2, "collect": 1, "report": 1, "all": 1}
    assert all(p.stat().st_mtime_ns == t for p, t in trained.items())
    # Without Snakemake's records (as in a fresh clone after `dvc pull`), the markers tell. A dry
    # run plans from the same markers (the Snakefile drops stale ones before planning): the jobs
    # it lists are the re-evaluations and no train job; running such jobs is shown just above.
    shutil.rmtree(project.root / ".snakemake" / "metadata")
    tiny_study["eval"]["batch_size"] = 9
    project.write_study(tiny_study)
    proc = project.snakemake("-n")
    assert jobs_run(proc.stdout + proc.stderr) == {"evaluate": 2, "rankme": 2, "collect": 1, "report": 1, "all": 1}
    assert 'job runs again: it ran with other eval settings ({"batch_size": 7})' in proc.stderr


def test_a_bad_study_fails_before_any_job_with_the_field_named(project, tiny_study):
    tiny_study["grid"]["n_train"].append(5000)
    tiny_study["train"]["optimiser"] = "sgd"
    project.write_study(tiny_study)
    proc = project.snakemake(check=False)
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "train.optimiser: unknown key" in output
    assert not project.results().exists()


def test_configfile_selects_another_study_without_mixing_in_params_yaml(project, tiny_study):
    project.write_study(tiny_study)  # params.yaml: the 'tiny' study
    other = dict(tiny_study, study="other")
    other["grid"] = dict(tiny_study["grid"], n_train=[32], augmentation=["none"])
    other["augmentations"] = {"none": []}
    from conftest import write_yaml

    write_yaml(project.root / "other.yaml", other)
    # Up to its metrics (the report has its own tests): enough to see whose results are made. The
    # target comes first: --configfile takes every argument that follows it.
    proc = project.snakemake("results/other/metrics.parquet", "--configfile", "other.yaml")
    assert jobs_run(proc.stdout + proc.stderr)["train"] == 1
    assert (project.results("other") / "metrics.parquet").exists()
    assert not project.results("tiny").exists()


def test_packed_jobs_train_several_runs_and_a_failed_run_takes_no_other_down(project, tiny_study, tmp_path):
    """resources.runs_per_job: 2 makes two packs of the four runs. One run's weights cannot be
    saved: its pack-mate still finishes, and the retry trains only the failed run."""
    tiny_study["resources"] = {"runs_per_job": 2}
    project.write_study(tiny_study)
    study = load_study(tiny_study)
    failing, mate = study.runs[1]["run_id"], study.runs[0]["run_id"]
    inject = tmp_path / "inject"
    inject.mkdir()
    (inject / "sitecustomize.py").write_text(INJECT_DISK_FULL)

    proc = project.snakemake("--keep-going", check=False, env={"PYTHONPATH": os.pathsep.join([str(inject), os.environ.get("PYTHONPATH", "")]), "FAIL_RUN_ID": failing})
    assert proc.returncode != 0
    assert jobs_run(proc.stdout + proc.stderr)["train"] == 2
    runs = project.results() / "runs"
    assert sorted(p.parent.name for p in runs.glob("*/training.parquet")) == sorted(
        r["run_id"] for r in study.runs if r["run_id"] != failing)
    assert "No space left on device" in (runs / failing / "logs" / "train.log").read_text()
    mate_log = (runs / mate / "logs" / "train.log").read_text()
    assert "status ok after 40 steps" in mate_log and failing not in mate_log  # each run has its own log
    registry = json.loads((project.results() / "packs.json").read_text())
    assert registry["runs_per_job"] == 2 and sorted(map(len, registry["packs"].values())) == [2, 2]

    retry = project.snakemake("results/tiny/metrics.parquet")  # the report comes with the next step's `all`
    assert jobs_run(retry.stdout + retry.stderr) == {"train": 1, "evaluate": 1, "rankme": 1, "collect": 1}
    pack = next(p for p, members in registry["packs"].items() if failing in members)
    assert f"run {mate}: already done, skipped" in (project.results() / "packs" / pack / "logs" / "train.log").read_text()
    assert len(read_parquet(project.results() / "metrics.parquet", METRICS)) == 4

    # New runs go into a new pack; the finished packs are neither retrained nor re-evaluated.
    # (A new size: two new runs, one pack of two, rather than a seed's four runs in two packs.)
    tiny_study["grid"]["n_train"].append(96)
    project.write_study(tiny_study)
    grown = project.snakemake()
    assert jobs_run(grown.stdout + grown.stderr) == {
        "train": 1, "evaluate": 1, "rankme": 1, "collect": 1, "report": 1, "all": 1,
    }
    new_packs = json.loads((project.results() / "packs.json").read_text())["packs"]
    assert {p: m for p, m in new_packs.items() if p in registry["packs"]} == registry["packs"]
    assert len(new_packs) == 3
    # A new runs_per_job applies to runs not packed yet: every pack here has started, so it makes
    # no job (a repacked run would show as train and evaluation jobs below). A run leaving the
    # grid, and a grid axis in another order, only rewrite the tables. (One Snakemake start for
    # the three changes: the jobs they make together are the tables' alone.)
    tiny_study["resources"] = {"runs_per_job": 8}
    tiny_study["grid"]["exclude"] = [{"n_train": 96, "augmentation": "shift"}]
    tiny_study["grid"]["augmentation"] = ["shift", "none"]
    project.write_study(tiny_study)
    fewer = project.snakemake()
    assert jobs_run(fewer.stdout + fewer.stderr) == {"collect": 1, "report": 1, "all": 1}
    assert len(read_parquet(project.results() / "metrics.parquet", METRICS)) == 5


@pytest.mark.xdist_group("finished_tiny_packed")
def test_a_deleted_run_file_is_made_again_by_its_pack_and_nothing_else_retrains(finished_packed, capsys,
                                                                                  monkeypatch):
    project, tiny_study = finished_packed, finished_packed.study
    study = load_study(tiny_study)
    runs = project.results() / "runs"
    packs = json.loads((project.results() / "packs.json").read_text())["packs"]
    pack_of = {run_id: pack_id for pack_id, members in packs.items() for run_id in members}
    gone, unevaluated = study.runs[0]["run_id"], study.runs[3]["run_id"]
    assert pack_of[gone] != pack_of[unevaluated]
    trained = {p: p.stat().st_mtime_ns for p in runs.glob("*/training.parquet")}
    shutil.rmtree(runs / gone)
    (runs / unevaluated / "summary.parquet").unlink()

    # By hand, collect names the missing file and the marker that stands for it.
    monkeypatch.chdir(project.root)
    code, _, err = run_cli(capsys, "collect", "results/tiny/study.json", "--out", "by-hand.parquet")
    assert code == 1
    assert f"runs/{unevaluated}/summary.parquet" in err
    assert f"packs/{pack_of[unevaluated]}/evaluate.done" in err

    # Snakemake sees the stale markers, says so, and runs only those packs' jobs.
    dry = project.snakemake("-n")
    assert f"pack {pack_of[gone]}'s train job runs again" in dry.stderr
    assert f"pack {pack_of[unevaluated]}'s evaluate job runs again" in dry.stderr
    assert jobs_run(dry.stdout + dry.stderr) == {
        "train": 1, "evaluate": 2, "rankme": 1, "collect": 1, "report": 1, "all": 1,
    }
    project.snakemake()
    metrics = read_parquet(project.results() / "metrics.parquet", METRICS)
    assert sorted(metrics["run_id"]) == sorted(r["run_id"] for r in study.runs)
    # Only the deleted run trained again; its pack-mate was skipped.
    for path, mtime in trained.items():
        assert path.stat().st_mtime_ns == mtime or path.parent.name == gone, path
    assert (runs / gone / "training.parquet").exists() and (runs / unevaluated / "summary.parquet").exists()
    assert "Nothing to be done" in project.snakemake().stderr


@pytest.mark.xdist_group("finished_tiny_packed")
def test_corrupt_run_files_are_found_named_and_redone_and_metrics_survive_a_failed_collect(finished_packed, capsys,
                                                                                           monkeypatch):
    """A truncated summary.parquet or a garbage model.pt: `plan` shows the run as corrupt with the
    file, collect by hand names the file (no traceback), the workflow redoes only those runs'
    stages, and a collect that fails on a file the cheap check misses keeps metrics.parquet."""
    project, tiny_study = finished_packed, finished_packed.study
    study = load_study(tiny_study)
    runs = project.results() / "runs"
    truncated, garbage = study.runs[0]["run_id"], study.runs[3]["run_id"]
    summary = runs / truncated / "summary.parquet"
    summary.write_bytes(summary.read_bytes()[: summary.stat().st_size // 2])
    (runs / garbage / "model.pt").write_bytes(b"not a model")
    trained = {p: p.stat().st_mtime_ns for p in runs.glob("*/training.parquet")}

    # In this process, an exception would fail the test by itself: no traceback reaches a user.
    monkeypatch.chdir(project.root)
    code, out, err = run_cli(capsys, "plan", "params.yaml")
    assert code == 0 and "Traceback" not in err, err
    assert f"corrupt: results/tiny/runs/{truncated}/summary.parquet: not a complete Parquet file" in out
    assert f"corrupt: results/tiny/runs/{garbage}/model.pt: not a complete torch file" in out
    assert "2 corrupt" in out

    code, _, err = run_cli(capsys, "collect", "params.yaml", "--out", "by-hand.parquet")
    assert code == 1 and "Traceback" not in err
    assert f"runs/{truncated}/summary.parquet" in err and not (project.root / "by-hand.parquet").exists()

    dry = project.snakemake("-n")
    assert f"{truncated} (summary.parquet not a complete Parquet file" in dry.stderr
    assert f"{garbage} (model.pt not a complete torch file" in dry.stderr
    project.snakemake()
    for path, mtime in trained.items():  # only the run with the garbage model trained again
        assert path.stat().st_mtime_ns == mtime or path.parent.name == garbage, path
    metrics = read_parquet(project.results() / "metrics.parquet", METRICS)
    assert sorted(metrics["run_id"]) == sorted(r["run_id"] for r in study.runs)
    assert "Nothing to be done" in project.snakemake().stderr

    # A summary that looks complete (both Parquet markers) but is not: collect fails, and the
    # previous metrics.parquet is put back rather than lost.
    before = (project.results() / "metrics.parquet").read_bytes()
    summary.write_bytes(b"PAR1" + b"\0" * 64 + b"PAR1")
    failed = project.snakemake("--forcerun", "collect", check=False)
    assert failed.returncode != 0
    assert f"runs/{truncated}/summary.parquet: not a readable Parquet file" in (
        project.results() / "logs" / "collect.log").read_text()
    assert (project.results() / "metrics.parquet").read_bytes() == before
    assert "is the previous one" in failed.stderr
