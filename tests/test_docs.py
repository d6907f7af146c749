"""The README and shipped studies stay true."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import REPO
from dataworth.study import load_study
from dataworth.tracking import schemas


@pytest.mark.parametrize("name", sorted(schemas.SCHEMAS))
def test_readme_documents_every_column(name):
    readme = (REPO / "README.md").read_text()
    for column in schemas.SCHEMAS[name].names:
        assert f"| `{column}` |" in readme, f"README lacks column {column!r} of the {name} schema"


@pytest.mark.parametrize("path", sorted((REPO / "studies").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_studies_are_valid(path: Path):
    assert load_study(path).runs


def test_readme_names_the_two_commands_and_ci_runs_the_test_command():
    readme = (REPO / "README.md").read_text()
    assert "make demo" in readme and "make test" in readme
    assert "make test" in (REPO / ".ci" / "run").read_text()
