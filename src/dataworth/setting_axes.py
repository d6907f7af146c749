"""Grid axes over training and method settings (`grid.settings`): a study varies the learning rate,
SimCLR's temperature, VICReg's loss weights or the projector's width the way it varies sizes.

    grid:
      settings:
        train.lr: [0.001, 0.003]
        ssl.simclr.temperature: [0.1, 0.5]
        ssl.projector.out: [32, 128]

A key is a dotted path to one setting of the `train:` section or the `ssl:` section. Each method's
runs are the product of the axes that *apply* to it: train settings to every method (label
smoothing only to supervised runs, which have labels), the projector to the self-supervised
methods, `ssl.<method>.*` to that method. So a SimCLR run never multiplies by VICReg's weights.

The axis changes a run's resolved config, and a run id hashes that config: a study without
`grid.settings` keeps every id, and a value equal to the section's own gives the same run.
Values are checked at validation time against the section's own rules (lr > 0, temperature > 0,
warmup_steps < steps, ...), each error naming `grid.settings.<key>[i]`.
"""

from __future__ import annotations

import itertools
from typing import Any

from pydantic import BaseModel, ValidationError

from dataworth.methods import METHODS

FIELD = "grid.settings"


# What study.py knows about train settings, given by it (this module sits below study.py):
# settings that are not part of a run's id (where it runs), and those self-supervised runs lack.
IdRules = tuple[tuple[str, ...], tuple[str, ...]]  # (execution-only fields, supervised-only fields)


def allowed_keys(spec, rules: IdRules) -> list[str]:
    keys = [f"train.{f}" for f in type(spec.train).model_fields if f not in rules[0]]
    for section, model in type(spec.ssl).model_fields.items():
        keys += [f"ssl.{section}.{f}" for f in model.annotation.model_fields]
    return keys


def applies(key: str, method: str, rules: IdRules) -> bool:
    """Whether the setting `key` is part of the runs of `method` (enters their id)."""
    m = METHODS[method]
    parts = key.split(".")
    if parts[0] == "train":
        return m.uses_labels or parts[1] not in rules[1]
    if parts[1] == "projector":
        return m.settings is not None
    return m.settings == parts[1]


def combinations(spec, method: str, rules: IdRules) -> list[dict[str, Any]]:
    """The settings of each run of `method`: one {key: value} per point of the product of the axes
    that apply to it ([{}] when none do), in the order written."""
    axes = {key: values for key, values in spec.grid.settings.items() if applies(key, method, rules)}
    return [dict(zip(axes, point)) for point in itertools.product(*axes.values())]


def resolved(spec, combo: dict[str, Any]) -> tuple[dict, dict]:
    """(train, ssl) sections as dicts, with the combination's values in place."""
    train = spec.train.model_dump()
    ssl = spec.ssl.model_dump()
    for key, value in combo.items():
        parts = key.split(".")
        if parts[0] == "train":
            train[parts[1]] = value
        else:
            ssl[parts[1]][parts[2]] = value
    return train, ssl


def _section_model(spec, key: str) -> tuple[type[BaseModel], dict]:
    parts = key.split(".")
    if parts[0] == "train":
        return type(spec.train), spec.train.model_dump()
    section = getattr(spec.ssl, parts[1])
    return type(section), section.model_dump()


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    return err["msg"].removeprefix("Value error, ")


def problems(spec, rules: IdRules) -> list[str]:
    """Every problem of grid.settings, one line each (empty: fine)."""
    out = []
    allowed = allowed_keys(spec, rules)
    for key, values in spec.grid.settings.items():
        where = f"{FIELD}.{key}"
        if key not in allowed:
            out.append(f"{where}: unknown setting; allowed: {', '.join(allowed)}")
            continue
        users = [m for m in spec.grid.method if applies(key, m, rules)]
        if not users:
            out.append(f"{where}: no method of grid.method ({', '.join(spec.grid.method)}) uses this setting")
            continue
        if len({repr(v) for v in values}) != len(values):
            out.append(f"{where}: duplicate values in {values}")
        model, base = _section_model(spec, key)
        name = key.split(".")[-1]
        annotation = model.model_fields[name].annotation
        for i, value in enumerate(values):
            if isinstance(value, str) and annotation in (int, float):
                out.append(f"{where}[{i}]: must be a number, not the text {value!r}; write it without quotes")
                continue
            try:
                model.model_validate({**base, name: value})
            except ValidationError as exc:
                out.append(f"{where}[{i}]: {_first_error(exc)} (got {value!r})")
    if out:
        return out
    # Values fine one by one can clash together (warmup_steps from one axis, steps from another).
    for method in spec.grid.method:
        for combo in combinations(spec, method, rules):
            train, _ = resolved(spec, combo)
            try:
                type(spec.train).model_validate(train)
            except ValidationError as exc:
                shown = ", ".join(f"{k}={v}" for k, v in combo.items())
                return [f"{FIELD}: the combination {shown} gives train: {_first_error(exc)}"]
    return []
