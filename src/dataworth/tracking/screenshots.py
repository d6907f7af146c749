"""scripts/ui-screenshot: the MLflow UI in headless Chromium, as a researcher opens it (issue 20 item 3).

For a study (and optionally a second one in the same store) it opens the link `dataworth ui`
prints (the study's runs table, tracking/ui_links.py) and MLflow's compare view of the study
runs, saves a screenshot of each, and checks the runs page: its title is the runs page (not
"Traces", where `#/experiments/<id>` can land), and its DOM names the study run and the study's
training runs. Exit status 1 names what failed.

It serves the first study's own store with `mlflow server` on a free port (as `dataworth ui`
does), or uses a running UI or tracking server given with --url. Two studies are compared only
when both are in that store (a tracking server, or one MLFLOW_TRACKING_URI for both syncs).

Chromium: Debian's `chromium` package (`apt-get install chromium`); Playwright's browsers need a
download that this setup does not allow, so plain `chromium --headless` is used.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
# Enough for the UI's scripts and its first queries on a slow machine (virtual time: it ends early
# once the page is idle).
PAGE_BUDGET_MS = 25_000
WINDOW = "1600,1400"  # tall enough for about 30 rows of the runs table (the table renders visible rows)


def find_chromium() -> str:
    for name in CHROMIUM_NAMES:
        if path := shutil.which(name):
            return path
    raise SystemExit("error: no Chromium found (looked for " + ", ".join(CHROMIUM_NAMES) + "); on Debian or "
                     "Ubuntu: apt-get install chromium")


def chromium(browser: str, url: str, *args: str) -> str:
    command = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
               f"--window-size={WINDOW}", f"--virtual-time-budget={PAGE_BUDGET_MS}", *args, url]
    done = subprocess.run(command, capture_output=True, text=True, timeout=180)
    if done.returncode != 0:
        raise RuntimeError(f"chromium exited {done.returncode}: {done.stderr.strip()[-500:]}")
    return done.stdout


def rest(base: str, endpoint: str, body: dict | None = None, query: dict | None = None) -> dict:
    url = f"{base.rstrip('/')}/api/2.0/mlflow/{endpoint}" + (f"?{urllib.parse.urlencode(query)}" if query else "")
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)


def study_runs(base: str, study_name: str) -> tuple[str, dict, list[str]]:
    """(experiment id, the study run, the training runs' names) of a study in the store at `base`."""
    try:
        experiment = rest(base, "experiments/get-by-name", query={"experiment_name": study_name})["experiment"]
    except urllib.error.HTTPError:
        raise SystemExit(f"error: study {study_name!r} is not in the MLflow store at {base}; sync it there first "
                         "(dataworth track; two studies: the same MLFLOW_TRACKING_URI for both)") from None
    runs, token = [], None
    while True:
        body = {"experiment_ids": [experiment["experiment_id"]], "max_results": 1000,
                **({"page_token": token} if token else {})}
        page = rest(base, "runs/search", body)
        runs += page.get("runs", [])
        if not (token := page.get("next_page_token")):
            break
    tags = [{t["key"]: t["value"] for t in r["data"].get("tags", [])} for r in runs]
    parents = [r for r, t in zip(runs, tags) if t.get("dataworth.role") == "study"]
    if not parents:
        raise SystemExit(f"error: study {study_name!r} has no study run in {base}: run dataworth track")
    names = [t.get("mlflow.runName", "") for t in tags if t.get("dataworth.role") == "run"]
    return experiment["experiment_id"], parents[0], names


def check_runs_page(dom: str, study_name: str, run_names: list[str]) -> list[str]:
    """What is wrong with the runs page's DOM (empty: it shows the study's runs)."""
    problems = []
    title = re.search(r"<title>([^<]*)", dom)
    if not title or not title.group(1).startswith("Runs"):
        problems.append(f"the page is not the runs table (title {title.group(1) if title else None!r})")
    if f"{study_name} (study)" not in dom:
        problems.append(f"the study run '{study_name} (study)' is not on the page")
    shown = [name for name in run_names if name in dom]
    wanted = min(len(run_names), 10)  # the table renders the rows in view: the first ones at least
    if len(shown) < wanted:
        problems.append(f"{len(shown)} of the study's {len(run_names)} training runs on the page, expected {wanted}+")
    return problems


def _serve(study_dir: Path) -> tuple[subprocess.Popen, str]:
    from dataworth.tracking import mlflow_fields as fields
    from dataworth.tracking.commands import UI_FIRST_PORT, _free_port

    uri = fields.tracking_uri(study_dir)
    if fields.is_server(uri):
        return None, uri
    port = _free_port("127.0.0.1", UI_FIRST_PORT + 100)
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    command = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", uri, "--host", "127.0.0.1",
               "--port", str(port), "--workers", "1", "--artifacts-destination", str((study_dir / "mlartifacts").resolve())]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
                              start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while True:
        try:
            urllib.request.urlopen(base + "/health", timeout=2).close()
            return server, base
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"error: mlflow server over {uri} did not start") from None
            time.sleep(0.5)


def main(argv: list[str] | None = None) -> int:
    from dataworth.jobs import load_study_or_exit
    from dataworth.tracking.relocate import relocate_artifacts
    from dataworth.tracking import mlflow_fields as fields
    from dataworth.tracking.ui_links import compare_runs_url, runs_table_url

    parser = argparse.ArgumentParser(prog="scripts/ui-screenshot", description=__doc__.split("\n\n")[0])
    parser.add_argument("studies", nargs="+", metavar="STUDY", help="one or two study files (params.yaml, ...)")
    parser.add_argument("--results", default="results", help="results root (default: results)")
    parser.add_argument("--url", help="a running MLflow UI or tracking server (default: serve the first study's store)")
    parser.add_argument("--out", default="results/ui-screenshots", help="folder for the PNGs")
    args = parser.parse_args(argv)
    if len(args.studies) > 2:
        parser.error("at most two studies")
    browser = find_chromium()
    studies = [load_study_or_exit(s) for s in args.studies]
    study_dir = studies[0].study_dir(args.results).path
    server = None
    if args.url:
        base = args.url.rstrip("/")
    else:
        relocate_artifacts(fields.tracking_uri(study_dir), study_dir, studies[0].name)
        server, base = _serve(study_dir)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    problems = []
    try:
        found = [study_runs(base, study.name) for study in studies]
        for study, (experiment_id, _, names) in zip(studies, found):
            url = runs_table_url(base, experiment_id)
            shot = out / f"runs-{study.name}.png"
            chromium(browser, url, f"--screenshot={shot.resolve()}")
            trouble = check_runs_page(chromium(browser, url, "--dump-dom"), study.name, names)
            problems += [f"{study.name}: {p}" for p in trouble]
            print(f"{shot}: {url} ({'ok' if not trouble else 'FAILED'})")
        parents = [parent["info"]["run_id"] for _, parent, _ in found]
        url = compare_runs_url(base, parents, [e for e, _, _ in found])
        shot = out / ("compare-" + "-vs-".join(s.name for s in studies) + ".png")
        chromium(browser, url, f"--screenshot={shot.resolve()}")
        print(f"{shot}: {url}")
    finally:
        if server is not None:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=30)
    for problem in problems:
        print(f"FAILED: {problem}", file=sys.stderr)
    return 1 if problems else 0
