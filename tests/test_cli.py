from __future__ import annotations

import subprocess

import pandas as pd
import pytest
import torch

from conftest import BIN, run_cli, write_yaml
from dataworth.tracking.schemas import RUN_TABLE, read_parquet


def dataworth(*args, cwd=None):
    return subprocess.run([str(BIN / "dataworth"), *args], capture_output=True, text=True, cwd=cwd, timeout=120)


def test_validate_reports_problems_and_exits_2(tmp_path, tiny_study):
    tiny_study["train"]["steps"] = 0
    tiny_study["dataset"]["name"] = "cifar"
    path = write_yaml(tmp_path / "s.yaml", tiny_study)
    proc = dataworth("validate", str(path))
    assert proc.returncode == 2
    assert "train.steps" in proc.stderr and "dataset: unknown name 'cifar'" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_plan_prints_and_writes_the_run_table(tmp_path, tiny_study):
    path = write_yaml(tmp_path / "s.yaml", tiny_study)
    proc = dataworth("plan", str(path), "--out", str(tmp_path / "runs.parquet"), "--results", str(tmp_path / "results"))
    assert proc.returncode == 0, proc.stderr
    assert "4 runs" in proc.stdout and "4 pending" in proc.stdout
    table = read_parquet(tmp_path / "runs.parquet", RUN_TABLE)
    assert len(table) == 4 and table["run_id"].str.len().eq(12).all()
    for run_id in table["run_id"]:
        assert run_id in proc.stdout


def test_an_unknown_run_id_is_a_clear_error(tmp_path, tiny_study, capsys):
    path = write_yaml(tmp_path / "s.yaml", tiny_study)
    for command in ("train", "evaluate", "rankme"):
        code, _, err = run_cli(capsys, command, "--study", str(path), "--run-id", "nope", "--data", "x", "--runs", str(tmp_path))
        assert code == 2, (command, err)
        assert "run 'nope' is not in study 'tiny'" in err and "Traceback" not in err
        code, _, err = run_cli(capsys, command, "--study", str(path), "--pack", "0123456789ab", "--data", "x", "--runs",
                               str(tmp_path / "runs"))
        assert code == 2 and "Traceback" not in err, (command, err)
        assert f"--pack 0123456789ab: no such pack of this study's runs in {tmp_path / 'packs.json'}" in err
    # One of them end to end, as a user meets it: the installed command's exit status and stderr.
    proc = dataworth("evaluate", "--study", str(path), "--run-id", "nope", "--data", "x", "--runs", str(tmp_path))
    assert proc.returncode == 2 and "run 'nope' is not in study 'tiny'" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_device_this_machine_lacks_is_one_clear_error_before_any_run(tiny_study, monkeypatch, capsys, tmp_path):
    from dataworth.runs import StudyDir
    from dataworth.study import load_study
    from dataworth.train.jobs import train_job

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    tiny_study["train"]["device"] = "cuda"
    with pytest.raises(SystemExit) as stopped:
        train_job(load_study(tiny_study).runs, "never-read.pt", StudyDir(tmp_path), "auto")
    assert stopped.value.code == 1
    assert "train.device is 'cuda' but CUDA is not available" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()  # before any run started
    tiny_study["train"]["device"] = "auto"
    with pytest.raises(SystemExit) as stopped:  # auto falls back to the CPU: the runs start (and fail: no data)
        train_job(load_study(tiny_study).runs, str(tmp_path / "no-data.pt"), StudyDir(tmp_path), "auto")
    assert stopped.value.code == 1 and "CUDA is not available" not in capsys.readouterr().err
    assert (tmp_path / "runs").exists()
