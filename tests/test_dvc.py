"""Real DVC and git: repro, push, a fresh clone + pull rebuilds the tables without training."""

from __future__ import annotations

import copy
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from conftest import BIN, REPO, TINY_STUDY, Project
from test_workflow import jobs_run

# One worker for the module: its tests start from one reproduced repository (module-scoped), built
# once rather than once per worker.
pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("dvc")]

GIT = ["git", "-c", "user.name=dataworth-test", "-c", "user.email=test@example.invalid", "-c", "init.defaultBranch=main"]


def run(cmd: list[str], cwd: Path, env: dict) -> str:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout + proc.stderr


def dvc(*args: str, cwd: Path, env: dict) -> str:
    return run([str(BIN / "dvc"), *args], cwd, env)


def tables(results: Path) -> dict[str, bytes]:
    report = results / "report"
    return {p.name: p.read_bytes() for p in sorted(report.iterdir()) if p.suffix in (".md", ".tex")}


@pytest.fixture(scope="module")
def _reproduced(tmp_path_factory) -> tuple[Path, dict, str]:
    """The workflow as a git + DVC repository after its first `dvc repro` of the tiny study, built
    once for this module: (its root, its study, what that repro printed)."""
    project = Project(tmp_path_factory.mktemp("dvc-project"))
    tiny_study = copy.deepcopy(TINY_STUDY)
    for name in ("dvc.yaml", ".dvcignore", ".gitignore"):
        shutil.copy(REPO / name, project.root / name)
    shutil.copytree(REPO / ".dvc", project.root / ".dvc", ignore=shutil.ignore_patterns("tmp", "cache", "config.local"))
    shutil.copytree(REPO / "src", project.root / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    # One job per stage: DVC and the pipeline order are what these tests check, not packing, and
    # every job start costs seconds of imports.
    tiny_study["resources"] = {"runs_per_job": 4}
    project.write_study(tiny_study)
    # --- issue 18 item 7: studies/dvc.yaml, every other shipped study; here with one small study
    # in place of the shipped list (same stages, a real run of each).
    (project.root / "studies").mkdir()
    # Two runs, one policy: what matters is that its own stages run, and its report has fewer figures to draw.
    second = {**tiny_study, "study": "tiny2", "train": {**tiny_study["train"], "steps": 10},
              "grid": {**tiny_study["grid"], "augmentation": ["none"]}}
    (project.root / "studies" / "tiny2.yaml").write_text(yaml.safe_dump(second, sort_keys=False))
    stages = yaml.safe_load((REPO / "studies" / "dvc.yaml").read_text())
    stages["vars"] = [{"studies": {"tiny2": {"file": "studies/tiny2.yaml"}}}]
    (project.root / "studies" / "dvc.yaml").write_text(yaml.safe_dump(stages, sort_keys=False))
    # ---
    env = project.env()
    run([*GIT, "init", "-q"], project.root, env)
    run([*GIT, "add", "-A"], project.root, env)
    run([*GIT, "commit", "-qm", "study"], project.root, env)
    first = dvc("repro", cwd=project.root, env=env)
    return project.root, tiny_study, first


@pytest.fixture
def dvc_project(_reproduced, tmp_path) -> Project:
    """A copy of the reproduced repository (mtimes kept, as DVC and Snakemake read them) whose
    default remote is a local folder of this test; `project.first_repro` is what its first
    `dvc repro` printed."""
    source, _, first = _reproduced
    project = Project.__new__(Project)
    project.root = tmp_path / "project"
    shutil.copytree(source, project.root, symlinks=True)
    project.first_repro = first
    dvc("remote", "modify", "local", "url", str(tmp_path / "remote"), cwd=project.root, env=project.env())
    return project


@pytest.fixture
def tiny_study(_reproduced) -> dict:
    return copy.deepcopy(_reproduced[1])


def test_repro_push_then_fresh_clone_pull_rebuilds_tables_without_training(dvc_project, tiny_study, tmp_path):
    root, env = dvc_project.root, dvc_project.env()
    results = dvc_project.results()

    first = dvc_project.first_repro
    assert jobs_run(first)["train"] == 1  # one pack of the 4 runs
    # A plain `dvc repro` leaves the other studies alone; named, a study's stages run (issue 18 item 7).
    assert not (root / "results" / "tiny2").exists()
    other = dvc("repro", "studies/dvc.yaml:report@tiny2", cwd=root, env=env)
    assert jobs_run(other)["train"] == 1  # its 2 runs in one pack
    other_tables = tables(root / "results" / "tiny2")
    assert "report.md" in other_tables
    assert "up to date" in dvc("status", cwd=root, env=env)
    second = dvc("repro", cwd=root, env=env)
    assert "didn't change, skipping" in second and "Job stats" not in second  # no Snakemake job ran
    original = tables(results)
    assert "report.md" in original and any(name.endswith(".tex") for name in original)

    run([*GIT, "add", "-A"], root, env)
    run([*GIT, "commit", "-qm", "results"], root, env)
    dvc("push", cwd=root, env=env)

    clone = tmp_path / "clone"
    run([*GIT, "clone", "-q", str(root), str(clone)], tmp_path, env)
    assert not (clone / "results").exists()
    dvc("pull", cwd=clone, env=env)
    pulled = clone / "results" / "tiny"
    assert (pulled / "metrics.parquet").exists() and len(list((pulled / "runs").glob("*/model.pt"))) == 4
    assert "up to date" in dvc("status", cwd=clone, env=env)
    # The pull wrote files in no order; once their mtimes are back in pipeline order, Snakemake
    # sees the pulled study as finished.
    run([str(BIN / "dataworth"), "restore-mtimes"], clone, env)
    dry = run([str(BIN / "snakemake"), "-n"], clone, env)
    assert "Nothing to be done" in dry, dry

    # The report target rebuilds the tables from the pulled Parquet, byte for byte, training nothing.
    shutil.rmtree(pulled / "report")
    (pulled / "fits.parquet").unlink()
    (pulled / "exchange_rates.parquet").unlink()
    train_logs = {p: p.stat().st_mtime_ns for p in (pulled / "runs").glob("*/logs/train.log")}
    rebuilt = run([str(BIN / "snakemake"), "--cores", "1", "report"], clone, env)
    assert jobs_run(rebuilt) == {"report": 1}
    assert tables(pulled) == original
    assert all(p.stat().st_mtime_ns == t for p, t in train_logs.items())

    # The other study's report, too, comes back from the remote and is rebuilt from its Parquet alone.
    pulled_other = clone / "results" / "tiny2"
    assert len(list((pulled_other / "runs").glob("*/model.pt"))) == 2
    shutil.rmtree(pulled_other / "report")
    rebuilt_other = dvc("repro", "studies/dvc.yaml:report@tiny2", cwd=clone, env=env)
    assert "train" not in jobs_run(rebuilt_other) and tables(pulled_other) == other_tables


def test_changing_one_grid_value_reruns_only_the_affected_runs(dvc_project, tiny_study):
    root, env = dvc_project.root, dvc_project.env()  # after its first `dvc repro`
    # Contents, not mtimes: each stage first puts mtimes back in pipeline order.
    finished = {p: p.read_bytes() for p in (dvc_project.results() / "runs").rglob("*.parquet")}

    tiny_study["grid"]["n_train"].append(96)
    dvc_project.write_study(tiny_study)
    assert "modified" in dvc("status", cwd=root, env=env)
    # The study stage, where runs are trained (the report stage trains nothing: the clone in the
    # test above rebuilds it with only the report job), without drawing the report again.
    again = dvc("repro", "study", cwd=root, env=env)
    assert jobs_run(again)["train"] == 1  # one new pack: the new size, for both policies
    assert all(p.read_bytes() == b for p, b in finished.items()), "dvc repro redid or deleted a finished run"
    assert len(list((dvc_project.results() / "runs").glob("*/summary.parquet"))) == 6
