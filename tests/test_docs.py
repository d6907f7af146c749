"""The README and docs/ stay true: generated parts current, commands that parse, links that resolve."""

from __future__ import annotations

import contextlib
import io
import re
import shlex
from pathlib import Path
from typing import Literal

import pytest
from pydantic import BaseModel, Field

from conftest import REPO
from dataworth import docs
from dataworth.study import FullOrSize, StudySpec, load_study
from dataworth.tracking import schemas

PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
RUN_THE_GENERATOR = "run `make docs` (python -m dataworth.docs) and commit the result"


def _code_lines(page: Path) -> list[str]:
    """The shell lines of a page's fenced bash (sh, shell, console) blocks, continuations joined."""
    lines, fence = [], None
    for line in page.read_text().splitlines():
        if line.startswith("```"):
            fence = None if fence is not None else line[3:].strip()
            continue
        if fence in ("bash", "sh", "shell", "console"):
            if lines and lines[-1].endswith("\\"):
                lines[-1] = lines[-1][:-1] + " " + line.strip()
            else:
                lines.append(line.strip())
    return lines


def _commands(page: Path) -> list[list[str]]:
    """Each command of the page's code blocks as argv (comments dropped; split at &&, ||, ; and |)."""
    found = []
    for line in _code_lines(page):
        argv: list[str] = []
        for token in shlex.split(line, comments=True) + [";"]:
            if token in ("&&", "||", ";", "|"):
                found += [argv] if argv else []
                argv = []
            else:
                argv.append(token)
    return found


def _make_targets() -> set[str]:
    return set(re.findall(r"^([A-Za-z][\w-]*):", (REPO / "Makefile").read_text(), re.MULTILINE))


# --- the generated blocks -----------------------------------------------------------------


def test_generated_blocks_are_current():
    stale = [str(path.relative_to(REPO)) for path in docs.stale_pages()]
    assert not stale, f"generated parts of {', '.join(stale)} are stale: {RUN_THE_GENERATOR}"


def test_every_schema_and_the_study_keys_have_a_generated_block():
    names = {m["name"] for page in PAGES for m in docs.BLOCK.finditer(page.read_text())}
    assert {f"schema.{name}" for name in schemas.SCHEMAS} <= names
    assert {"study-keys", "study-datasets", "study-ops"} <= names


def test_render_fills_a_stale_block_leaves_the_rest_and_names_an_unknown_block():
    text = "intro\n<!-- generated: schema.rankme -->\nold body\n<!-- end generated -->\noutro\n"
    rendered = docs.render(text)
    assert rendered.startswith("intro\n<!-- generated: schema.rankme -->\n| column | type | meaning |\n|---|---|---|\n")
    assert "| `rankme_encoder` | double | RankMe (effective rank, Garrido et al. 2023) of the encoder features |" in rendered
    assert "old body" not in rendered and rendered.endswith("<!-- end generated -->\noutro\n")
    assert docs.render(rendered) == rendered
    with pytest.raises(SystemExit, match="unknown generated block 'schema.nope'"):
        docs.render("<!-- generated: schema.nope -->\n<!-- end generated -->\n", "page.md")


def test_key_table_spells_types_defaults_and_bounds_as_written_by_hand():
    class Inner(BaseModel):
        k: int = Field(default=20, gt=0, description="neighbours")

    class Spec(BaseModel):
        """A spec."""

        steps: int = Field(gt=0, description="optimizer steps")
        momentum: float = Field(default=0.9, ge=0, lt=1, description="SGD only")
        p: float = Field(default=1.0, ge=0, le=1, description="probability")
        optimizer: Literal["sgd", "adamw"] = Field(default="sgd", description="which")
        samples: FullOrSize = Field(default="full", description="how many")
        seeds: list[int] = Field(default_factory=lambda: [0, 1], description="seeds")
        partition: str | None = Field(default=None, description="where")
        inner: Inner = Inner()

    assert docs.key_table(Spec, "x").splitlines() == [
        "| key | type | default | meaning |",
        "|---|---|---|---|",
        "| `x.steps` | int > 0 | required | optimizer steps |",
        "| `x.momentum` | float in [0, 1) | `0.9` | SGD only |",
        "| `x.p` | float in [0, 1] | `1.0` | probability |",
        "| `x.optimizer` | `sgd` \\| `adamw` | `sgd` | which |",
        "| `x.samples` | `full` \\| int > 0 | `full` | how many |",
        "| `x.seeds` | list of int | `[0, 1]` | seeds |",
        "| `x.partition` | string or null | `null` | where |",
        "| `x.inner.k` | int > 0 | `20` | neighbours |",
    ]


def test_every_study_setting_has_a_description():
    from dataworth.augment.ops import OP_SPECS
    from dataworth.data.datasets import DATASET_SPECS

    rows = docs.key_rows(StudySpec, "")
    rows += [(f"dataset.{key}", f) for spec in DATASET_SPECS.values() for key, f in spec.model_fields.items() if key != "name"]
    rows += [(f"{name}.{key}", f) for name, spec in OP_SPECS.items() for key, f in spec.model_fields.items() if key != "op"]
    blank = [key for key, field in rows if not field.description]
    assert not blank, f"study settings without a description (the docs' key tables would be blank): {blank}"


# --- commands, targets and links ----------------------------------------------------------


def test_every_dataworth_command_in_the_docs_parses_and_every_make_target_exists():
    from dataworth.cli import build_parser

    parser, targets, checked, problems = build_parser(), _make_targets(), 0, []
    for page in PAGES:
        for argv in _commands(page):
            shown = f"{page.relative_to(REPO)}: {shlex.join(argv)}"
            if argv[0] == "dataworth":
                checked += 1
                stderr = io.StringIO()
                try:
                    with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
                        parser.parse_args(argv[1:])
                except SystemExit as exit:
                    if exit.code:
                        problems.append(f"{shown}\n    {stderr.getvalue().strip().splitlines()[-1]}")
            elif argv[0] == "make":
                unknown = [a for a in argv[1:] if "=" not in a and not a.startswith("-") and a not in targets]
                if unknown:
                    problems.append(f"{shown}\n    no Makefile target {unknown}")
            if argv[0] in ("dataworth", "snakemake", "make"):
                missing = [a for a in argv if re.fullmatch(r"(studies/[\w.-]+|params)\.yaml", a) and not (REPO / a).exists()]
                if missing:
                    problems.append(f"{shown}\n    no study file {missing}")
    assert checked >= 20, f"found only {checked} dataworth commands in the docs: is the extraction broken?"
    assert not problems, "commands in the docs that would fail:\n" + "\n".join(problems)


def _anchors(page: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation but - and _ dropped, spaces to -."""
    headings = re.findall(r"^#+ (.+)$", page.read_text(), re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


def test_links_between_pages_resolve():
    broken = []
    for page in PAGES:
        for target in re.findall(r"\]\(([^)#\s]*)(#[^)\s]*)?\)", page.read_text()):
            path, anchor = target
            if path.startswith(("http://", "https://")):
                continue
            linked = (page.parent / path).resolve() if path else page
            if not linked.exists():
                broken.append(f"{page.relative_to(REPO)} -> {path}")
            elif anchor and anchor[1:] not in _anchors(linked):
                broken.append(f"{page.relative_to(REPO)} -> {path}{anchor} (no such heading)")
    assert not broken, f"broken links: {broken}"


def test_the_extraction_sees_continuations_comments_and_chains(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("```bash\ndataworth plan \\\n  params.yaml  # a comment\nmake setup && dvc pull\n```\n"
                    "```python\ndataworth nonsense\n```\n")
    assert _commands(page) == [["dataworth", "plan", "params.yaml"], ["make", "setup"], ["dvc", "pull"]]


# --- the README ----------------------------------------------------------------------------


def test_readme_stays_short_and_links_every_docs_page():
    readme = (REPO / "README.md").read_text()
    assert len(readme.splitlines()) <= 200, "README.md is the five-minute story: move reference text to docs/"
    for page in (REPO / "docs").glob("*.md"):
        assert f"(docs/{page.name})" in readme, f"README.md does not link docs/{page.name}"


def test_readme_names_the_two_commands_and_ci_runs_the_test_command():
    readme = (REPO / "README.md").read_text()
    assert "make demo" in readme and "make test" in readme
    assert "make test" in (REPO / ".ci" / "run").read_text()


@pytest.mark.parametrize("path", sorted(p for p in (REPO / "studies").glob("*.yaml") if p.name != "dvc.yaml"),
                         ids=lambda p: p.name)  # studies/dvc.yaml: their DVC stages (issue 18)
def test_shipped_studies_are_valid(path: Path):
    # --- issue 17: a study on dataset files (CIFAR-10, ...) validates only beside the files: a test
    # of its own writes the fixtures and plans it (tests/test_ssl_cifar10_study.py for ssl-cifar10).
    import yaml

    from dataworth.data.datasets import DATASET_SPECS

    if DATASET_SPECS[yaml.safe_load(path.read_text())["dataset"]["name"]].stores_pixels:
        assert any(path.name in test.read_text() for test in (REPO / "tests").glob("test_*.py")
                   if test.name != "test_docs.py"), f"no test plans {path.name} on its dataset's fixtures"
        return
    # ---
    assert load_study(path).runs
