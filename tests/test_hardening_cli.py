"""Hostile use of the `dataworth` command (issue 15 items 6, 7): one line and a clear exit status,
never a traceback; `ui` never prints an address another process answers."""

from __future__ import annotations

import socket
import subprocess

import pytest
from conftest import BIN, write_yaml

from dataworth import cli


def run_main(argv, capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        cli.main(argv)
    out, err = capsys.readouterr()
    return info.value.code, out, err


def test_validate_a_folder_is_one_line(tmp_path, capsys):
    code, out, err = run_main(["validate", str(tmp_path)], capsys)
    assert code == 2
    assert err == f"error: {tmp_path}: 1 problem(s):\n  - {tmp_path} is a folder; give a study file (.yaml)\n"


def test_validate_a_file_that_is_not_utf8(tmp_path, capsys):
    path = tmp_path / "study.yaml"
    path.write_bytes(b"study: \xff\xfe\n")
    code, _, err = run_main(["validate", str(path)], capsys)
    assert code == 2
    assert "not UTF-8 text (byte 7: b'\\xff'); save the file as UTF-8" in err
    assert "Traceback" not in err


def test_writing_into_a_folder_it_cannot_create_names_the_path(tmp_path, tiny_study, capsys):
    # As root a read-only folder is writable; a file where a folder should be fails for everyone.
    study = write_yaml(tmp_path / "tiny.yaml", tiny_study)
    blocker = tmp_path / "results"
    blocker.write_text("a file, not a folder")
    code, _, err = run_main(["plan", str(study), "--results", str(blocker), "--out", str(blocker / "runs.parquet")], capsys)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("error: ")
    assert err == f"error: {blocker}: File exists\n"


def test_permission_denied_is_one_line_with_the_path(tmp_path, tiny_study, capsys, monkeypatch):
    # What a read-only results folder gives a non-root user: the rename into it is refused.
    import os

    study = write_yaml(tmp_path / "tiny.yaml", tiny_study)
    out = tmp_path / "ro" / "runs.parquet"

    def refuse(src, dst):
        raise PermissionError(13, "Permission denied", str(src), None, str(dst))

    monkeypatch.setattr(os, "replace", refuse)
    code, _, err = run_main(["plan", str(study), "--results", str(tmp_path), "--out", str(out)], capsys)
    assert code == 2
    assert err.startswith("error: ") and err.endswith(f" -> {out}: Permission denied\n")


def test_plan_into_a_closed_pipe_ends_quietly(tmp_path, tiny_study):
    study = write_yaml(tmp_path / "tiny.yaml", tiny_study)
    # The reader is gone before the first line is written (what `| head` does, without the race).
    proc = subprocess.Popen([str(BIN / "dataworth"), "plan", str(study), "--results", str(tmp_path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path)
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 0
    assert err == ""


def test_ui_refuses_a_port_in_use_before_printing_an_address(tmp_path, tiny_study):
    study = write_yaml(tmp_path / "tiny.yaml", tiny_study)
    store = tmp_path / "results" / "tiny" / "mlflow.db"
    store.parent.mkdir(parents=True)
    store.touch()
    with socket.socket() as other:  # another program's server on the port
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        env = {k: v for k, v in __import__("os").environ.items() if k != "MLFLOW_TRACKING_URI"}
        proc = subprocess.run([str(BIN / "dataworth"), "ui", str(study), "--port", str(port)], cwd=tmp_path,
                              capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert proc.stderr == (f"error: --port {port}: 127.0.0.1:{port} is in use; pass another port, or leave --port "
                           "out for the first free one from 5000\n")


def test_free_port_skips_a_port_held_on_all_interfaces():
    from dataworth.tracking.commands import _free_port, _port_is_free

    with socket.socket() as other:
        other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        other.bind(("0.0.0.0", 0))
        other.listen()
        port = other.getsockname()[1]
        assert not _port_is_free("127.0.0.1", port)
        assert _free_port("127.0.0.1", port) != port


def test_a_pack_whose_every_run_failed_does_not_say_the_others_finished(tmp_path):
    from dataworth.jobs import RunsFailed, for_each_run
    from dataworth.runs import StudyDir

    def work(run, run_dir):
        raise RuntimeError("broken")

    runs = [{"run_id": "a"}, {"run_id": "b"}]
    with pytest.raises(RunsFailed) as info:
        for_each_run(runs, StudyDir(tmp_path), "train", work)
    assert str(info.value) == ("train failed for 2 of 2 runs: a, b (each run's logs/train.log has its traceback); "
                               "none finished")
    with pytest.raises(RunsFailed, match="; the others finished$"):
        for_each_run(runs, StudyDir(tmp_path), "train", lambda run, d: work(run, d) if run["run_id"] == "a" else None)


@pytest.mark.parametrize("port", ["70000", "0", "-1", "http"])
def test_ui_port_out_of_range_is_a_usage_error(port, capsys):
    code, _, err = run_main(["ui", "--port", port], capsys)
    assert code == 2
    assert err.endswith(f"dataworth ui: error: argument --port: {port!r} is not a port; allowed: 1..65535\n")


@pytest.mark.parametrize("threads", ["0", "-2", "two"])
def test_threads_below_one_is_a_usage_error_not_a_failed_run(tmp_path, threads, capsys):
    code, _, err = run_main(["train", "--study", "x.yaml", "--run-id", "r", "--runs", str(tmp_path), "--data", "d.pt",
                             "--threads", threads], capsys)
    assert code == 2
    assert f"argument --threads: {threads!r} is not a whole number of 1 or more" in err


def test_ctrl_c_is_one_line_and_status_130(monkeypatch, capsys):
    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "cmd_validate", interrupted)
    code, _, err = run_main(["validate"], capsys)
    assert (code, err) == (130, "error: interrupted\n")
