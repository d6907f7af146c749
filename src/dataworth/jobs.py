"""What every command that works on a study's runs shares: loading the study or exiting with one
line, the runs of a job (`--run-id` or `--pack`), and the per-run loop of a pack's job, each run
with its own log, where one failing run takes no other down.

Commands (cli.py, evaluate/commands.py, cluster/submit.py, ...) import from here; nothing here
imports a command module, so there is no import loop.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from dataworth.runs import RunDir, StudyDir

if TYPE_CHECKING:  # study.py loads pydantic and every registry: not needed for `dataworth --help`
    from dataworth.study import Study


def fail(message: str, code: int = 2):
    """End a command with one line on stderr (no traceback) and exit status `code`."""
    print(f"error: {message}", file=sys.stderr, flush=True)
    raise SystemExit(code)


def load_study_or_exit(source: str | Path) -> "Study":
    """The validated study, or its problems on stderr and exit status 2."""
    from dataworth.study import StudyError, load_study

    try:
        return load_study(source)
    except StudyError as exc:
        fail(str(exc))


def run_or_exit(study: "Study", run_id: str) -> dict:
    """The run's resolved config, or a one-line error and exit status 2."""
    try:
        return study.run(run_id)
    except KeyError as exc:
        fail(f"{exc.args[0]}; `dataworth plan` lists the run ids")


def add_run_arguments(p: argparse.ArgumentParser, study_help: str) -> None:
    """The arguments of the commands that work on runs: which runs, where their directories are."""
    p.add_argument("--study", required=True, help=study_help)
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--run-id", action="append", help="a run of the study; repeat for several")
    which.add_argument("--pack", help="the runs of this pack, as results/<study>/packs.json records them "
                       "(the workflow's jobs: a run leaving the study never changes their command)")
    p.add_argument("--runs", required=True, help="the folder holding the run directories (results/<study>/runs)")
    p.add_argument("--data", required=True, help="prepared dataset file")
    p.add_argument("--threads", type=int, default=1)


def study_dir_of(args) -> StudyDir:
    """The study dir of a job's `--runs` folder (results/<study>/runs)."""
    return StudyDir(Path(args.runs).parent)


def job_runs(study: "Study", args) -> list[dict]:
    """The runs named by --run-id, or the study's runs in --pack (as packs.json records it), every
    one checked before any work starts."""
    if args.pack is None:
        return [run_or_exit(study, run_id) for run_id in args.run_id]
    from dataworth.packs import Packs

    study_dir = study_dir_of(args)
    try:
        members = Packs(study, study_dir).members
    except ValueError as error:
        fail(str(error))
    if args.pack not in members:
        fail(f"--pack {args.pack}: no such pack of this study's runs in {study_dir.packs_json} "
             f"({len(members)} packs; `dataworth plan` lists them)")
    return [run_or_exit(study, run_id) for run_id in members[args.pack]]


# ---------------------------------------------------------------------------------------------
# A pack's job: the same work for each of its runs, each run with its own log.


class _Tee:
    """A stream that writes to several streams (the job's log and the run's own log)."""

    def __init__(self, *streams):
        self.streams = streams

    def write(self, text: str) -> int:
        for stream in self.streams:
            stream.write(text)
        return len(text)

    def flush(self) -> None:
        for stream in self.streams:
            stream.flush()

    def __getattr__(self, name: str):  # isatty, fileno, encoding, ...: those of the job's stream
        return getattr(self.streams[0], name)


@contextlib.contextmanager
def run_log(path: Path):
    """Everything printed inside also goes to the run's own log file at `path` (overwritten)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as log, contextlib.redirect_stdout(_Tee(sys.stdout, log)), \
            contextlib.redirect_stderr(_Tee(sys.stderr, log)):
        yield


class RunsFailed(Exception):
    """Some runs of a pack failed (each already reported in its log); the others finished."""


def for_each_run(runs: list[dict], study_dir: StudyDir, task: str, work: Callable[[dict, RunDir], None],
                 done: Callable[[RunDir], bool] = lambda run_dir: False) -> None:
    """Call `work(run, run_dir)` for each run, logging to `<run dir>/logs/<task>.log` too.

    A run for which `done(run_dir)` holds is skipped. A failing run is reported and the others
    go on; `RunsFailed` at the end names the failed ones. BaseExceptions (a stop request, Ctrl-C)
    end the job at once.
    """
    failed = []
    for i, run in enumerate(runs, 1):
        run_dir = study_dir.run_dir(run["run_id"])
        prefix = f"[{i}/{len(runs)}]" if len(runs) > 1 else ""
        if done(run_dir):
            print(f"{prefix} run {run['run_id']}: already done, skipped".lstrip(), flush=True)
            continue
        if prefix:
            print(prefix, end=" ", flush=True)
        with run_log(run_dir.log(task)):
            try:
                work(run, run_dir)
            except Exception:
                traceback.print_exc()
                print(f"run {run['run_id']}: {task} failed (traceback above)", file=sys.stderr, flush=True)
                failed.append(run["run_id"])
    if failed:
        others = "the others finished" if len(failed) < len(runs) else "none finished"
        raise RunsFailed(f"{task} failed for {len(failed)} of {len(runs)} runs: {', '.join(failed)} "
                         f"(each run's logs/{task}.log has its traceback); {others}")


def for_each_run_or_exit(runs: list[dict], study_dir: StudyDir, task: str, work,
                         done=lambda run_dir: False) -> None:
    """`for_each_run`, ending the process with exit 1 when runs failed."""
    try:
        for_each_run(runs, study_dir, task, work, done)
    except RunsFailed as failed:
        fail(str(failed), code=1)
