"""A study's own MLflow store after the checkout moved (issue 20 item 6).

MLflow records where each experiment's and run's artifacts are as an absolute `file://` URI
(results/<study>/mlartifacts of the checkout that synced first). Copy or move the checkout, or
`dvc pull` it elsewhere, and the UI's artifact views point at a folder that is not there (or is
another checkout's). MLflow has no call to change an artifact location, so before `dataworth ui`
serves the store and before `dataworth track` writes to it, the study's SQLite store is pointed
at this checkout's results/<study>/mlartifacts: the locations' old prefix is replaced in place,
in one transaction. Only the study's own store is touched, never a tracking server's.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

# MLflow's SQL store: the tables and columns that hold artifact locations (logged_models: MLflow 3).
_LOCATIONS = (("experiments", "artifact_location", "experiment_id"),
              ("runs", "artifact_uri", "experiment_id"),
              ("logged_models", "artifact_location", "experiment_id"))


def artifacts_uri(study_dir: Path) -> str:
    """Where the study's own store keeps artifacts: results/<study>/mlartifacts of this checkout."""
    return (Path(study_dir) / "mlartifacts").resolve().as_uri()


def relocate_artifacts(store_uri: str, study_dir: Path, experiment_name: str) -> str | None:
    """Point the experiment's (and its runs') artifact locations in a sqlite store at this
    checkout's mlartifacts folder; returns the old location when it changed, else None."""
    if not store_uri.startswith("sqlite:///"):
        return None
    db = Path(store_uri.removeprefix("sqlite:///"))
    if not db.exists():
        return None
    new = artifacts_uri(study_dir)
    with sqlite3.connect(db) as connection:
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "experiments" not in tables:
            return None
        found = connection.execute("SELECT experiment_id, artifact_location FROM experiments WHERE name = ?",
                                   (experiment_name,)).fetchone()
        if found is None or found[1] == new or not found[1].startswith("file://"):
            return None
        experiment_id, old = found
        for table, column, key in _LOCATIONS:
            if table in tables:
                # Only values under the old location: prefix match, then swap the prefix.
                connection.execute(
                    f"UPDATE {table} SET {column} = ? || substr({column}, ?) "  # noqa: S608 - names are constants
                    f"WHERE {key} = ? AND substr({column}, 1, ?) = ?",
                    (new, len(old) + 1, experiment_id, len(old), old),
                )
    return old
