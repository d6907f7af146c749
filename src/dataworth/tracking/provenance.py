"""Which code produced a result: the git commit of the dataworth source and whether it had edits."""

from __future__ import annotations

import subprocess
from pathlib import Path

import dataworth

SOURCE_DIR = Path(dataworth.__file__).resolve().parent


def _git(*args: str) -> str | None:
    try:
        proc = subprocess.run(["git", *args], cwd=SOURCE_DIR, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):  # no git on this node, or a hung file system
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None


def code_version() -> dict:
    """{'git_commit': sha or None, 'git_dirty': bool or None}; None outside a git checkout
    (an installed package) or without git."""
    commit = _git("rev-parse", "HEAD")
    if commit is None:
        return {"git_commit": None, "git_dirty": None}
    status = _git("status", "--porcelain")
    return {"git_commit": commit, "git_dirty": None if status is None else bool(status)}
