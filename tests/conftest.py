from __future__ import annotations

import copy
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

# A study small enough for a test: 4 runs of a tiny 1D CNN on synthetic data.
TINY_STUDY = {
    "study": "tiny",
    "dataset": {"name": "synthetic", "train_pool": 128, "test_size": 64, "num_classes": 4, "length": 32},
    "augmentations": {"none": [], "shift": [{"op": "shift", "max_shift": 3}]},
    "grid": {
        "n_train": [32, 64],
        "augmentation": ["none", "shift"],
        "model": [{"name": "cnn1d", "width": 8}],
        "seed": [0],
    },
    "train": {"steps": 40, "batch_size": 32, "lr": 0.05, "warmup_steps": 5, "log_every": 10},
    "eval": {"batch_size": 256},
}


def complete_file(path: Path) -> Path:
    """A stand-in for a run's output that passes the cheap validity check of its format (the
    start and end markers of Parquet and of torch's zip archives), without being a real result."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".parquet":
        path.write_bytes(b"PAR1" + bytes(8) + b"PAR1")
    elif path.suffix == ".pt":
        import zipfile

        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("stand-in/data.pkl", b"")
    else:
        path.write_text("{}")
    return path


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    """`dataworth <argv>` in this process, from the current directory: (exit status, stdout,
    stderr). For commands whose behaviour is under test, not their process (each new process
    imports torch); an error the CLI does not turn into its one line propagates as that exception."""
    from dataworth.cli import main

    capsys.readouterr()
    try:
        main(list(argv))
        code = 0
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def tiny_study() -> dict:
    return copy.deepcopy(TINY_STUDY)


def write_yaml(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


class Project:
    """A copy of the workflow (Snakefile, rules, profiles) in a temp dir, run with real Snakemake."""

    def __init__(self, root: Path):
        self.root = root
        shutil.copy(REPO / "Snakefile", root / "Snakefile")
        shutil.copytree(REPO / "workflow", root / "workflow")
        (root / "profiles").symlink_to("workflow/profiles")  # as in the repository: the default profile

    def write_study(self, study: dict) -> None:
        write_yaml(self.root / "params.yaml", study)

    def env(self, extra: dict | None = None) -> dict:
        env = dict(os.environ)
        env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
        env.update(extra or {})
        return env

    def snakemake(self, *args: str, check: bool = True, env: dict | None = None) -> subprocess.CompletedProcess:
        proc = subprocess.run(
            [str(BIN / "snakemake"), "--cores", "2", *args],
            cwd=self.root, env=self.env(env), capture_output=True, text=True, timeout=600,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"snakemake {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        return proc

    def results(self, study: str = "tiny") -> Path:
        return self.root / "results" / study


@pytest.fixture
def project(tmp_path) -> Project:
    return Project(tmp_path)


# One finished tiny study (runs_per_job: 2, so two packs) per test worker, built the first time a
# test asks for it; each test gets its own copy (mtimes and Snakemake's records kept), so tests that
# start from finished results do not each pay for training and evaluating it again.
@pytest.fixture(scope="session")
def _finished_tiny_packed(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("finished-tiny-packed")
    project = Project(root)
    study = copy.deepcopy(TINY_STUDY)
    study["resources"] = {"runs_per_job": 2}
    project.write_study(study)
    project.snakemake()
    return root


@pytest.fixture
def finished_packed(_finished_tiny_packed, tmp_path) -> Project:
    """A copy of the finished tiny study with runs_per_job: 2; `project.study` is its study dict."""
    root = tmp_path / "finished"
    shutil.copytree(_finished_tiny_packed, root, symlinks=True)
    project = Project.__new__(Project)
    project.root = root
    project.study = copy.deepcopy(TINY_STUDY)
    project.study["resources"] = {"runs_per_job": 2}
    return project


# pytest-xdist 3.8's `--dist loadgroup` marks a grouped test by appending "@<group>" to
# `item._nodeid`, which pytest 9 no longer reads (node ids live in `item._id`), and its workers
# see `--dist` as "no": the groups were silently ignored and the SLURM tests ran on both workers at
# once. Until xdist follows, each worker puts the suffix where pytest 9 keeps it (the controller's
# LoadGroupScheduling reads it from the collected ids; other --dist modes ignore it).
@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items):
    if not hasattr(config, "workerinput"):  # not an xdist worker
        return
    from _pytest.nodeid import NodeId

    for item in items:
        groups = sorted({str(m.args[0] if m.args else m.kwargs.get("name", "default"))
                         for m in item.iter_markers("xdist_group")})
        if groups and "@" not in item.nodeid:
            item._id = NodeId.parse(f"{item.nodeid}@{'_'.join(groups)}")
