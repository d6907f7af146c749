"""The shape of the code: no import cycles, nothing imports the CLI, and the stage and method
registries are what every part reads (a new stage or method is one entry)."""

from __future__ import annotations

import ast
from dataclasses import replace
from pathlib import Path

import pytest

from conftest import REPO

PACKAGE = REPO / "src" / "dataworth"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, top_level_only: bool) -> set[str]:
    """The dataworth modules `path` imports (at module level only, or anywhere)."""
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found = set()
    for node in nodes:
        if top_level_only and isinstance(node, ast.If):  # `if TYPE_CHECKING:` imports nothing at run time
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("dataworth"):
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("dataworth"))
    return found


def _graph(top_level_only: bool) -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        # `from dataworth.x import y` may name a module y of package x: count the module.
        graph[name] = {m for m in _imports(path, top_level_only) if m in modules}
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for dep in sorted(graph.get(node, ())):
            if dep == node or dep.startswith(node + "."):  # a package importing its own modules
                continue
            if state.get(dep) == 1:
                return stack[stack.index(dep):] + [dep]
            if dep not in state and (found := visit(dep)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_the_cycle_finder_finds_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_no_import_cycles_at_module_level_nor_inside_functions():
    assert _cycle(_graph(top_level_only=True)) is None
    assert _cycle(_graph(top_level_only=False)) is None  # lazy imports too: every dependency points one way


def test_nothing_imports_the_cli():
    importers = [name for name, deps in _graph(top_level_only=False).items() if "dataworth.cli" in deps]
    assert importers == []


def test_study_and_registries_import_no_command_or_tracking_module():
    graph = _graph(top_level_only=False)
    for low in ("dataworth.study", "dataworth.runs", "dataworth.methods"):
        upward = sorted(m for m in graph[low] if m.startswith(("dataworth.tracking", "dataworth.cluster",
                                                               "dataworth.jobs", "dataworth.train")))
        assert upward == [], (low, upward)


@pytest.fixture
def extra_stage(monkeypatch):
    """A new evaluation stage, registered as a user would add one: one entry in runs.STAGES."""
    import dataworth.runs as runs

    stage = replace(runs.STAGES["rankme"], name="flatness", files=("flatness.parquet",),
                    eval_settings=("batch_size",), help="a new metric")
    monkeypatch.setitem(runs.STAGES, "flatness", stage)
    monkeypatch.setitem(runs.EVALUATIONS, "flatness", stage)
    return stage


def test_a_new_stage_reaches_study_markers_commands_and_mtimes(extra_stage, tiny_study, tmp_path):
    from dataworth.cli import build_parser
    from dataworth.mtimes import _stage_files
    from dataworth.packs import Packs
    from dataworth.runs import EVALUATIONS
    from dataworth.study import load_study

    study = load_study(tiny_study)
    assert all(study.stages(run)[-1] == "flatness" for run in study.runs)
    assert study.eval_params("flatness") == '{"batch_size": 256}'
    packs = Packs(study, tmp_path)
    assert any(marker.endswith("/flatness.done") for marker in packs.markers(evaluations_only=True))
    args = build_parser().parse_args(["flatness", "--study", "s.yaml", "--pack", "p", "--runs", "r", "--data", "d"])
    assert args.func is not None
    assert "runs/*/flatness.parquet" in _stage_files(EVALUATIONS.values())


def test_the_method_registry_is_the_one_list_of_methods():
    import typing

    from dataworth.methods import METHODS
    from dataworth.study import GridSpec
    from dataworth.train.objectives import Objective

    allowed = typing.get_args(typing.get_args(GridSpec.model_fields["method"].annotation)[0])
    assert set(allowed) == set(METHODS)
    import torch

    from dataworth.models import build_model

    for method in METHODS.values():
        run = {"method": method.name, "train": {"label_smoothing": 0.0},
               "ssl": {"projector": {"hidden": 8, "out": 4}, "simclr": {"temperature": 0.5},
                       "vicreg": {"invariance": 25.0, "variance": 25.0, "covariance": 1.0},
                       "byol": {"predictor_hidden": 8, "momentum_base": 0.99}}}
        torch.manual_seed(0)
        objective = method.build_objective(run, build_model("mlp", 8, (1, 16), 3))
        assert isinstance(objective, Objective) and objective.uses_labels == method.uses_labels
