"""What the study's own MLflow run says (issue 20 item 2): the study's identity as params, its
results as metrics, and a short description, so two studies (a width sweep, a recipe change)
sit side by side in MLflow's compare view and a filter finds them.

Params (fixed for a study run: MLflow never changes a param; a study whose identity changes gets a
fresh study run, see `identity_changed`): dataset (and its settings), methods, models, recipe,
grid axes (sizes, augmentations, seeds), runs.

Metrics (step 0, renewed at each sync), from fits.parquet and exchange_rates.parquet once the
analysis has made them; `<set>` is the fitted metrics.parquet column less `_accuracy` (test, ood,
probe_test, ...), `<policy>` the augmentation policy:

- `fit_b_<set>_<policy>`, `fit_c_<set>_<policy>`: the law's asymptote b and exponent c (fits ok);
- `exchange_ratio_<set>_<policy>_n<n>`: (n + v(n)) / n at each size n of the study's grid (null,
  hence absent, where the augmented curve passes the reference's asymptote; then
  `beyond_asymptote_<set>_<policy>_n<n>` is 1).

In a study with several models, widths or methods, each name ends in `_<model>_w<width>` and
`_<method>` where these vary. docs/tracking.md lists them with filter examples.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd

from dataworth.tracking import mlflow_fields as fields

# Part of the study run's sync fingerprint: bump when what the study run shows changes.
STUDY_RUN_FORMAT = 1
DESCRIPTION_TAG = "mlflow.note.content"  # MLflow's own: the run's (and experiment's) description
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def _joined(values) -> str:
    return ",".join(str(v) for v in values)


def study_params(study) -> dict[str, str]:
    """The study's identity: what a reader compares two studies by."""
    spec = study.spec
    grid = spec.grid
    params = {
        "dataset": spec.dataset.name,
        "methods": _joined(grid.method),
        "models": _joined(f"{m.name}-{m.width}" for m in grid.model),
        "sizes": _joined(grid.n_train),  # not n_train: a filter on runs' n_train must not match the study
        "augmentations": _joined(grid.augmentation),
        "seeds": _joined(grid.seed),
        "runs": len(study.runs),
    }
    for key, value in spec.dataset.model_dump(mode="json").items():
        if key not in ("name", "root"):  # the data root is where this machine keeps files, not identity
            params[f"dataset.{key}"] = json.dumps(value) if isinstance(value, (dict, list)) else value
    recipe = spec.train.model_dump(mode="json")
    from dataworth.study import EXECUTION_ONLY_TRAIN_FIELDS

    for key, value in recipe.items():
        if key not in EXECUTION_ONLY_TRAIN_FIELDS:
            params[f"train.{key}"] = value
    return {k: fields.as_text(v)[:fields.MAX_PARAM_LENGTH] for k, v in params.items()}


def identity_changed(study, logged: dict[str, str]) -> list[str]:
    """The params the study run holds with another value than the study now has."""
    return sorted(k for k, v in study_params(study).items() if k in logged and logged[k] != v)


def _set_name(metric: str) -> str:
    return metric.removesuffix("_accuracy")


def _qualifiers(frame: pd.DataFrame):
    """A function giving the suffix that tells a row's curve apart where the study has several
    models, widths or methods ('' when it has one of each)."""
    several_models = frame[["model", "width"]].drop_duplicates().shape[0] > 1 if len(frame) else False
    several_methods = frame["method"].nunique() > 1 if len(frame) else False

    def suffix(row) -> str:
        out = f"_{row['model']}_w{int(row['width'])}" if several_models else ""
        return out + (f"_{row['method']}" if several_methods else "")

    return suffix


def _name(*parts) -> str:
    return _UNSAFE.sub("-", "_".join(str(p) for p in parts))


def study_metrics(study_dir: Path) -> dict[str, float]:
    """The study's results as flat metric names (see the module doc); {} before the analysis ran."""
    from dataworth.tracking.schemas import EXCHANGE_RATES, FITS, read_parquet

    metrics: dict[str, float] = {}
    fits_path, rates_path = study_dir / "fits.parquet", study_dir / "exchange_rates.parquet"
    if fits_path.exists():
        fits = read_parquet(fits_path, FITS)
        suffix = _qualifiers(fits)
        for _, row in fits[fits["status"] == "ok"].iterrows():
            for param in ("b", "c"):
                value = fields.metric_value(row[param])
                if value is not None:
                    metrics[_name("fit", param, _set_name(row["metric"]), row["augmentation"]) + suffix(row)] = value
    if rates_path.exists():
        rates = read_parquet(rates_path, EXCHANGE_RATES)
        rates = rates[rates["grid"] == "study"]
        suffix = _qualifiers(rates)
        for _, row in rates.iterrows():
            tail = _name(_set_name(row["metric"]), row["augmentation"], f"n{int(round(row['n']))}") + suffix(row)
            ratio = fields.metric_value(row["ratio"])
            if ratio is not None:
                metrics[f"exchange_ratio_{tail}"] = ratio
            if bool(row["beyond_asymptote"]):
                metrics[f"beyond_asymptote_{tail}"] = 1.0
    return metrics


def description(study, metrics: dict[str, float]) -> str:
    """A few lines of Markdown: what the study is, and its top-line result."""
    spec = study.spec
    grid = spec.grid
    models = ", ".join(f"{m.name} (width {m.width})" for m in grid.model)
    lines = [
        f"**{study.name}**: {', '.join(grid.method)} on {spec.dataset.name} with {models}; "
        f"{len(study.runs)} runs: sizes {_joined(grid.n_train)} x policies {', '.join(grid.augmentation)} "
        f"x seeds {_joined(grid.seed)}; {spec.train.steps} steps of {spec.train.optimizer}, batch {spec.train.batch_size}.",
    ]
    for set_name in ("test", "ood"):
        ratios = {}  # n -> {metric name: ratio}
        for key, value in metrics.items():
            if key.startswith(f"exchange_ratio_{set_name}_") and (n := re.search(r"_n(\d+)(?:_|$)", key)):
                ratios.setdefault(int(n.group(1)), {})[key] = value
        if ratios:
            largest = max(ratios)
            best = max(ratios[largest], key=ratios[largest].get)
            policy = best.removeprefix(f"exchange_ratio_{set_name}_").split(f"_n{largest}")[0]
            lines.append(f"At n = {largest}, `{policy}` is worth {ratios[largest][best]:.2f}x the real data on the "
                         f"{set_name} set (the study's best exchange ratio at its largest size: `{best}`).")
    if len(lines) == 1:
        lines.append("No exchange ratio yet: the analysis has not run, or no law could be fitted (fits.parquet).")
    lines.append("Metrics: `fit_b_<set>_<policy>`, `fit_c_<set>_<policy>`, `exchange_ratio_<set>_<policy>_n<n>` "
                 "(docs/tracking.md).")
    return "\n\n".join(lines)
