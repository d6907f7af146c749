"""`dataworth track` (sync a study into MLflow) and `dataworth ui` (the MLflow UI over its store).

Heavy imports (mlflow, pandas) happen inside the commands so `dataworth --help` stays fast.
"""

from __future__ import annotations

import json
import os
import socket
import sys
from pathlib import Path

from dataworth.jobs import load_study_or_exit

UI_FIRST_PORT = 5000


def register(sub) -> None:
    p = sub.add_parser("track", help="sync the study's finished runs and results into MLflow (idempotent)")
    p.add_argument("study", nargs="?", default="params.yaml", help="params.yaml, or the study.json the workflow writes")
    p.add_argument("--results", default="results", help="results root (default: results)")
    p.add_argument("--tracking-uri", help="default: $MLFLOW_TRACKING_URI, else sqlite:///results/<study>/mlflow.db")
    p.add_argument("--record", help="also write what was synced, as JSON, to this file")
    p.set_defaults(func=cmd_track)

    p = sub.add_parser("ui", help="start the MLflow UI over the study's store on 127.0.0.1 and print its address")
    p.add_argument("study", nargs="?", default="params.yaml")
    p.add_argument("--results", default="results", help="results root (default: results)")
    p.add_argument("--host", default="127.0.0.1", help="interface to listen on (default: 127.0.0.1, this machine only)")
    p.add_argument("--port", type=_port_number, help=f"1..65535; default: the first free port from {UI_FIRST_PORT}")
    p.set_defaults(func=cmd_ui)


def _port_number(text: str) -> int:
    import argparse

    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port; allowed: 1..65535")
    return int(text)


def cmd_track(args) -> None:
    from dataworth.files import write_text_atomic
    from dataworth.tracking import mlflow_fields as fields
    from dataworth.tracking.mlflow_sync import TrackingError, sync_study

    study = load_study_or_exit(args.study)
    # MLflow retries a dead server for about two minutes by default; a few seconds tell as much.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "3")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")  # not a line per run
    try:
        report = sync_study(study, args.results, args.tracking_uri)
    except TrackingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    print(report.line())
    if fields.is_server(report.tracking_uri):
        from dataworth.tracking.ui_links import runs_table_url

        print(f"open {runs_table_url(report.tracking_uri, report.experiment_id)}")
    else:
        print("browse it with `dataworth ui` (or `make ui`)")
    if args.record:
        write_text_atomic(args.record, json.dumps(report.as_dict(), indent=2) + "\n")


def _port_is_free(host: str, port: int) -> bool:
    """Nothing listens on host:port and we may bind it. Both checks: a server bound to another
    address of this machine (0.0.0.0, or with SO_REUSEPORT) can let our bind succeed and still
    answer a browser at http://host:port."""
    with socket.socket() as probe:
        probe.settimeout(1.0)
        if probe.connect_ex((host, port)) == 0:
            return False
    with socket.socket() as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def _free_port(host: str, first: int) -> int:
    for port in range(first, first + 100):
        if _port_is_free(host, port):
            return port
    raise SystemExit(f"error: no free port in {first}..{first + 99} on {host}; pass --port")


def cmd_ui(args) -> None:
    from dataworth.tracking import mlflow_fields as fields

    study = load_study_or_exit(args.study)
    study_dir = study.study_dir(args.results).path
    uri = fields.tracking_uri(study_dir)
    if fields.is_server(uri):
        print(f"study {study.name!r} is tracked on the server {fields.shown_uri(uri)}: open it in a browser "
              f"(experiment {study.name!r}).")
        return
    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).exists():
        print(f"error: study {study.name!r} has no MLflow store yet ({uri}): run `dataworth track` "
              "(or `snakemake track`) first", file=sys.stderr)
        raise SystemExit(2)
    if args.port and not _port_is_free(args.host, args.port):
        # Before printing the address: a browser there would reach whatever holds the port.
        print(f"error: --port {args.port}: {args.host}:{args.port} is in use; pass another port, or leave "
              f"--port out for the first free one from {UI_FIRST_PORT}", file=sys.stderr)
        raise SystemExit(1)
    port = args.port or _free_port(args.host, UI_FIRST_PORT)
    # --- issue 20 items 3 and 6: a moved checkout's artifacts; the link to the study's runs table
    from dataworth.tracking.ui_links import print_ui_links
    from dataworth.tracking.relocate import relocate_artifacts

    if moved_from := relocate_artifacts(uri, study_dir, study.name):
        print(f"artifact locations moved from {moved_from} to this checkout")
    print(f"MLflow UI for study {study.name!r}: http://{args.host}:{port}  (store {uri}; Ctrl-C stops it)", flush=True)
    print_ui_links(f"http://{args.host}:{port}", uri, study.name)
    # ---
    # The UI needs none of the server's background job workers (they run GenAI scorers).
    env = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", **os.environ}
    command = [
        sys.executable, "-m", "mlflow", "server", "--backend-store-uri", uri,
        "--artifacts-destination", str((study_dir / "mlartifacts").resolve()),
        "--host", args.host, "--port", str(port), "--workers", "1",
    ]
    os.execve(sys.executable, command, env)
