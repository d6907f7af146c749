"""The generated parts of docs/: study keys from the pydantic spec, Parquet schemas from
`tracking.schemas`. The code is the one source of truth; the pages are rendered from it.

A page marks a generated block with

    <!-- generated: NAME -->
    ...
    <!-- end generated -->

and `python -m dataworth.docs` rewrites every block's body (`--check`: only says which pages
are stale, exit 1). Text outside the blocks is written by hand and left alone.
"""

from __future__ import annotations

import argparse
import inspect
import re
import sys
import types
import typing
from pathlib import Path
from typing import Any, Callable, Literal, Union

import annotated_types
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from dataworth.files import write_text_atomic

REPO = Path(__file__).resolve().parents[2]
PAGES = ("README.md", "docs")  # files, or folders of *.md, that may hold generated blocks

BLOCK = re.compile(r"(<!-- generated: (?P<name>[\w.-]+) -->\n)(?P<body>.*?)(<!-- end generated -->)", re.DOTALL)


# ---------------------------------------------------------------------------------------------
# Types, defaults and constraints of a pydantic field, as a reader writes them in YAML


def _constraint(metadata: list) -> str:
    bounds = {kind: getattr(m, kind.lower()) for m in metadata for kind in ("Gt", "Ge", "Lt", "Le")
              if isinstance(m, getattr(annotated_types, kind))}
    low = (f"[{bounds['Ge']}" if "Ge" in bounds else f"({bounds['Gt']}" if "Gt" in bounds else None)
    high = (f"{bounds['Le']}]" if "Le" in bounds else f"{bounds['Lt']})" if "Lt" in bounds else None)
    patterns = [m.pattern for m in metadata if getattr(m, "pattern", None)]
    if patterns:
        return f" matching `{patterns[0]}`"
    if low and high:
        return f" in {low}, {high}"
    if low:
        return f" {'>=' if low[0] == '[' else '>'} {low[1:]}"
    if high:
        return f" {'<=' if high[-1] == ']' else '<'} {high[:-1]}"
    return ""


def _full_or_size(metadata: list) -> bool:
    """Whether `metadata` holds the validator of study.FullOrSize (`full` or a size: one check of its own)."""
    from dataworth.study import FullOrSize

    validator = typing.get_args(FullOrSize)[1]
    return any(m is validator for m in metadata)


def _type_name(tp: Any) -> str:
    metadata: list = []
    while typing.get_origin(tp) is typing.Annotated:
        tp, *extra = typing.get_args(tp)
        metadata += extra
        for item in extra:
            if isinstance(item, FieldInfo):
                metadata += item.metadata
    if _full_or_size(metadata):
        return "`full` \\| int > 0"
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is Literal:
        return " \\| ".join(f"`{a}`" for a in args)
    if origin in (Union, types.UnionType):
        shown = [_type_name(a) for a in args if a is not type(None)]
        return " or ".join(shown) + (" or null" if type(None) in args else "")
    if origin is list:
        return f"list of {_type_name(args[0])}"
    if origin is dict:
        return f"mapping of {_type_name(args[0])} to {_type_name(args[1])}"
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return "{" + ", ".join(tp.model_fields) + "}"
    names = {int: "int", float: "float", str: "string", bool: "bool"}
    return names.get(tp, getattr(tp, "__name__", str(tp))) + _constraint(metadata)


def _yaml_value(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if value is None:
        return "null"
    if isinstance(value, str):
        return value or '""'
    if isinstance(value, list):
        return "[" + ", ".join(_yaml_value(v) for v in value) + "]"
    return repr(value)


def _default(field: FieldInfo) -> str:
    if field.default_factory is not None:
        return f"`{_yaml_value(field.default_factory())}`"
    if field.default is PydanticUndefined:
        return "required"
    return f"`{_yaml_value(field.default)}`"


def _field_type(field: FieldInfo) -> str:
    if _full_or_size(field.metadata):
        return "`full` \\| int > 0"
    return _type_name(field.annotation) + _constraint(field.metadata)


def _listed_model(field: FieldInfo) -> type[BaseModel] | None:
    """The model of a list-of-models setting (grid.model), whose keys get rows of their own."""
    args = typing.get_args(field.annotation)
    if typing.get_origin(field.annotation) is list and isinstance(args[0], type) and issubclass(args[0], BaseModel):
        return args[0]
    return None


def _is_section(field: FieldInfo) -> bool:
    """A nested settings block (train, eval.probe, ...): documented key by key, not as one row."""
    return isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel)


def _doc(cls: type) -> str:
    own = cls.__dict__.get("__doc__")
    return " ".join(inspect.cleandoc(own).split()) if own else ""


def _sentence(text: str) -> str:
    return f"{text[0].upper()}{text[1:]}{'' if text.endswith('.') else '.'}" if text else ""


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _row(key: str, field: FieldInfo, shown_type: str | None = None) -> str:
    return f"| `{key}` | {shown_type or _field_type(field)} | {_default(field)} | {_cell(field.description or '')} |"


def key_rows(model: type[BaseModel], prefix: str) -> list[tuple[str, FieldInfo]]:
    """Every setting under `model` as (dotted key, field), nested sections flattened."""
    rows = []
    for name, field in model.model_fields.items():
        key = f"{prefix}.{name}" if prefix else name
        if _is_section(field):
            rows += key_rows(field.annotation, key)
            continue
        rows.append((key, field))
        if listed := _listed_model(field):
            rows += key_rows(listed, f"{key}[]")
    return rows


def key_table(model: type[BaseModel], prefix: str, skip: tuple[str, ...] = ()) -> str:
    lines = ["| key | type | default | meaning |", "|---|---|---|---|"]
    for key, field in key_rows(model, prefix):
        if key.rsplit(".", 1)[-1] in skip:
            continue
        lines.append(_row(key, field))
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# The generated blocks


# Keys whose type is a union of models or a mapping of them: their members get tables of their own.
TOP_LEVEL_TYPES = {"dataset": "one dataset's settings (below)", "augmentations": "mapping of policy name to a list of ops, or to {ops, rounds, first_round_clean}, or to {views} (below)"}


def study_sections() -> str:
    """One table per top-level section of a study (dataset and ops have blocks of their own)."""
    from dataworth.study import StudySpec

    top = [(name, f) for name, f in StudySpec.model_fields.items() if not _is_section(f)]
    lines = ["| key | type | default | meaning |", "|---|---|---|---|"]
    for name, field in top:
        lines.append(_row(name, field, shown_type=TOP_LEVEL_TYPES.get(name)))
    parts = ["\n".join(lines)]
    for name, field in StudySpec.model_fields.items():
        if _is_section(field):
            intro = _sentence(field.description or _doc(field.annotation))
            parts.append(f"### `{name}`\n\n" + (f"{intro}\n\n" if intro else "") + key_table(field.annotation, name))
    return "\n\n".join(parts)


def datasets() -> str:
    from dataworth.data.datasets import DATASET_SPECS

    parts = []
    for name, spec in DATASET_SPECS.items():
        head = f"#### `dataset.name: {name}`\n\n"
        about = " ".join(s for s in (_doc(spec), f"Data: {spec.modality}.", f"OOD set: {spec.ood_description}.") if s)
        parts.append(head + about + "\n\n" + key_table(spec, "dataset", skip=("name",)))
    return "\n\n".join(parts)


def augmentation_ops() -> str:
    from dataworth.augment.ops import OP_SPECS

    lines = ["| op | data | what it does |", "|---|---|---|"]
    for name, spec in OP_SPECS.items():
        data = ", ".join(spec.modalities) + (" (pixels)" if spec.needs_pixels else "")  # issue 17
        lines.append(f"| `{name}` | {data} | {_cell(_doc(spec))} |")
    lines += ["", "| op.parameter | type | default | meaning |", "|---|---|---|---|"]
    for name, spec in OP_SPECS.items():
        for key, field in spec.model_fields.items():
            if key != "op":
                lines.append(_row(f"{name}.{key}", field))
    # --- issue 17 item 2: the mapping form of a policy (fixed repetitions) ---
    from dataworth.study import RepeatedPolicySpec

    lines += ["", "A policy may also be a mapping, for a fixed set of augmented copies (the paper's repetitions):",
              "", "| key | type | default | meaning |", "|---|---|---|---|"]
    for key, field in RepeatedPolicySpec.model_fields.items():
        lines.append(_row(f"augmentations.<policy>.{key}", field,
                          shown_type="list of ops (above)" if key == "ops" else None))
    # --- issue 17: one list of ops per view of a self-supervised method ---
    from dataworth.study import ViewPoliciesSpec

    lines += ["", "Or a mapping with one list of ops per view of a self-supervised method (BYOL's asymmetric views):",
              "", "| key | type | default | meaning |", "|---|---|---|---|"]
    for key, field in ViewPoliciesSpec.model_fields.items():
        lines.append(_row(f"augmentations.<policy>.{key}", field, shown_type="two lists of ops (above)"))
    return "\n".join(lines)


def stages() -> str:
    """The stage registry (runs.STAGES): per run, what each stage writes and which settings it reads."""
    from dataworth.runs import STAGES

    lines = ["| stage | writes, per run | reads from `eval:` | runs for | what it does |", "|---|---|---|---|---|"]
    for stage in STAGES.values():
        reads = ", ".join(f"`{key}`" for key in stage.eval_settings) or "–"
        applies = _cell(" ".join((stage.applies_to.__doc__ or "every run").split()))
        lines.append(f"| `{stage.name}` | {', '.join(f'`{name}`' for name in stage.files)} | {reads} | {applies} | "
                     f"{_cell(stage.help)} |")
    return "\n".join(lines)


def methods() -> str:
    """The method registry (methods.METHODS)."""
    from dataworth.methods import METHODS

    lines = ["| method | trains on labels | its `ssl:` settings | packs train together |", "|---|---|---|---|"]
    for method in METHODS.values():
        lines.append(f"| `{method.name}` | {'yes' if method.uses_labels else 'no'} | "
                     f"{f'`ssl.projector`, `ssl.{method.settings}`' if method.settings else '–'} | "
                     f"{'yes' if method.trains_together else 'no'} |")
    return "\n".join(lines)


def schema_block(name: str) -> Callable[[], str]:
    def render() -> str:
        from dataworth.tracking import schemas

        return schemas.describe(schemas.SCHEMAS[name])

    return render


def blocks() -> dict[str, Callable[[], str]]:
    from dataworth.tracking import schemas

    found: dict[str, Callable[[], str]] = {
        "study-keys": study_sections, "study-datasets": datasets, "study-ops": augmentation_ops,
        "stages": stages, "methods": methods}
    found.update({f"schema.{name}": schema_block(name) for name in schemas.SCHEMAS})
    return found


# ---------------------------------------------------------------------------------------------
# Pages


def pages(root: Path = REPO) -> list[Path]:
    found = []
    for entry in PAGES:
        path = root / entry
        found += sorted(path.glob("*.md")) if path.is_dir() else [path] if path.exists() else []
    return found


def render(text: str, source: str = "page") -> str:
    """`text` with every generated block's body rendered afresh; an unknown block is an error."""
    known = blocks()

    def body(match: re.Match) -> str:
        name = match["name"]
        if name not in known:
            raise SystemExit(f"{source}: unknown generated block {name!r}; known: {', '.join(known)}")
        return f"{match[1]}{known[name]().rstrip()}\n{match[4]}"

    return BLOCK.sub(body, text)


def stale_pages(root: Path = REPO) -> list[Path]:
    return [p for p in pages(root) if render(p.read_text(), str(p)) != p.read_text()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dataworth.docs", description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only list stale pages (exit 1 if any)")
    args = parser.parse_args(argv)
    stale = stale_pages()
    for path in stale:
        if args.check:
            print(f"stale: {path.relative_to(REPO)}")
        else:
            write_text_atomic(path, render(path.read_text(), str(path)))
            print(f"rewrote {path.relative_to(REPO)}")
    if args.check and stale:
        print("run `python -m dataworth.docs` (or `make docs`) to regenerate them", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
