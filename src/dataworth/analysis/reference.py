"""Published against reproduced: a study's `reference:` block, row by row.

Each row names one setting of the grid (its seeds are averaged), a metrics.parquet column, the
published value and a tolerance. Our side of a row is the runs of that setting that finished ok
with the metric: their mean, and a 95% Student-t interval over seeds,
mean ± t(0.975, k − 1) · s / √k with s the sample standard deviation of the k seeds (no interval
for one seed). The verdict:

- `within`:  |mean − published| ≤ tolerance (the interval is shown, but the verdict is the mean's);
- `outside`: |mean − published| > tolerance;
- `not run`: no run of the setting finished ok with the metric (yet).

The table is `reference.parquet` (schema REFERENCE) beside fits.parquet, a section of report.md,
and metrics plus tags of the study's MLflow run.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

CONFIDENCE = 0.95
WITHIN, OUTSIDE, NOT_RUN = "within", "outside", "not run"
VERDICTS = {
    WITHIN: "|our mean over seeds − published| ≤ tolerance",
    OUTSIDE: "|our mean over seeds − published| > tolerance",
    NOT_RUN: "no run of the setting finished ok with the metric",
}


# ---------------------------------------------------------------------------------------------
# Validation (called by study._cross_check, so `dataworth validate` reports it before any job)


def known_metrics(spec) -> list[str]:
    """The numeric metrics.parquet columns a run of this study can have."""
    import pyarrow as pa

    from dataworth.tracking.schemas import METRICS

    fixed = [f.name for f in METRICS if pa.types.is_floating(f.type)]
    dynamic = [f"{name}_{kind}" for name in spec.eval.test_sets for kind in ("accuracy", "loss")]
    return fixed + dynamic


def reference_problems(spec, rows: list[dict], setting_keys: tuple[str, ...]) -> list[str]:
    """One line per problem of the reference block: unknown metric, a setting that picks no run
    of the grid, or runs of more than one setting (their mean would mix settings). `rows`: the
    grid's runs as run-table rows; `setting_keys`: the grid columns a setting may name."""
    problems = []
    metrics = known_metrics(spec)
    for i, ref in enumerate(spec.reference.rows):
        where = f"reference.rows[{i}]"
        if ref.metric not in metrics:
            problems.append(f"{where}.metric: {ref.metric!r} is not a metrics.parquet column of this study; "
                            f"allowed: {', '.join(metrics)}")
        picked = [r for r in rows if all(r[k] == v for k, v in ref.setting.items())]
        if not picked:
            values = {k: sorted({r[k] for r in rows}, key=str) for k in ref.setting}
            problems.append(f"{where}.setting: {_setting_text(ref.setting)} picks no run of the grid; allowed values: "
                            + "; ".join(f"{k} in {v}" for k, v in values.items()))
            continue
        settings = {tuple(r[k] for k in setting_keys) for r in picked}
        if len(settings) > 1:
            differ = [k for j, k in enumerate(setting_keys) if len({s[j] for s in settings}) > 1]
            problems.append(f"{where}.setting: {_setting_text(ref.setting)} picks runs of {len(settings)} settings "
                            f"(they differ in {', '.join(differ)}); allowed: add {', '.join(differ)} to pick one")
    return problems


def _setting_text(setting: dict) -> str:
    return " ".join(f"{k}={v}" for k, v in setting.items()) or "(empty)"


# ---------------------------------------------------------------------------------------------
# The table


def t_interval(values: np.ndarray, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Student-t interval of the mean of `values` (NaN, NaN for fewer than two)."""
    from scipy import stats

    k = len(values)
    if k < 2:
        return math.nan, math.nan
    mean, sem = float(np.mean(values)), float(np.std(values, ddof=1)) / math.sqrt(k)
    half = float(stats.t.ppf(0.5 + confidence / 2, k - 1)) * sem
    return mean - half, mean + half


def reference_table(metrics: pd.DataFrame, reference) -> pd.DataFrame:
    """One REFERENCE row per row of the study's reference block (a ReferenceSpec)."""
    from dataworth.tracking.schemas import REFERENCE

    out = []
    for i, ref in enumerate(reference.rows):
        picked = pd.Series(True, index=metrics.index)
        for key, value in ref.setting.items():
            picked &= metrics[key] == value
        runs = metrics[picked]
        if ref.metric in runs.columns:
            values = pd.to_numeric(runs[ref.metric], errors="coerce")
        else:
            values = pd.Series(np.nan, index=runs.index)
        used = values[(runs["status"] == "ok") & np.isfinite(values)].to_numpy(dtype=float)
        mean = float(used.mean()) if len(used) else math.nan
        low, high = t_interval(used)
        difference = mean - ref.value
        verdict = NOT_RUN if not len(used) else WITHIN if abs(difference) <= ref.tolerance else OUTSIDE
        out.append({
            "row": i, "label": ref.label or _setting_text(ref.setting), "setting": _setting_text(ref.setting),
            "metric": ref.metric, "published": ref.value, "tolerance": ref.tolerance,
            "runs": len(runs), "seeds_used": len(used), "mean": mean, "ci_low": low, "ci_high": high,
            "difference": difference, "verdict": verdict, "source": reference.source,
        })
    return pd.DataFrame(out, columns=REFERENCE.names)


def empty_table() -> pd.DataFrame:
    from dataworth.tracking.schemas import REFERENCE

    return pd.DataFrame(columns=REFERENCE.names)


# ---------------------------------------------------------------------------------------------
# The report section and the MLflow study run


def _number(value, digits: int = 4) -> str:
    return "–" if value is None or not np.isfinite(value) else f"{value:.{digits}f}"


def section(table: pd.DataFrame) -> list[str]:
    """The report's "Published vs reproduced" section (empty without a reference block)."""
    if table.empty:
        return []
    source = table["source"].iloc[0]
    out = ["## Published vs reproduced", "",
           f"Published values: {source}. Ours: the mean over the seeds of each setting that finished ok, with its "
           f"95% Student-t interval over seeds (mean ± t(0.975, k − 1)·s/√k; none for one seed). The verdict is "
           f"*within* when |mean − published| ≤ the row's tolerance, *outside* otherwise, *not run* when no run of "
           f"the setting has finished ok with the metric. Numbers in `reference.parquet`.", "",
           "| reference | setting | metric | published | ours (mean) | 95% interval | seeds | difference | tolerance | verdict |",
           "|---|---|---|---:|---:|---|---:|---:|---:|---|"]
    for r in table.itertuples():
        interval = f"[{_number(r.ci_low)}, {_number(r.ci_high)}]" if np.isfinite(r.ci_low) else "–"
        difference = f"{r.difference:+.4f}" if np.isfinite(r.difference) else "–"
        out.append(f"| {r.label} | `{r.setting}` | `{r.metric}` | {_number(r.published)} | {_number(r.mean)} | "
                   f"{interval} | {r.seeds_used} | {difference} | ±{_number(r.tolerance)} | **{r.verdict}** |")
    counts = table["verdict"].value_counts()
    out += ["", "Verdicts: " + ", ".join(f"{counts.get(v, 0)} {v}" for v in VERDICTS) + ".", ""]
    return out


def mlflow_fields(table: pd.DataFrame) -> tuple[dict[str, float], dict[str, str]]:
    """Metrics (mean, difference per row; counts of verdicts) and tags (verdict per row) of the
    study's MLflow run: `reference.<row>.<what>`."""
    metrics, tags = {}, {}
    for r in table.itertuples():
        key = f"reference.{r.row}"
        for name in ("mean", "ci_low", "ci_high", "difference", "published"):
            value = getattr(r, name)
            if value is not None and np.isfinite(value):
                metrics[f"{key}.{name}"] = float(value)
        tags[f"{key}.verdict"] = r.verdict
        tags[f"{key}.label"] = r.label
    if not table.empty:
        counts = table["verdict"].value_counts()
        metrics.update({f"reference.{v.replace(' ', '_')}": float(counts.get(v, 0)) for v in VERDICTS})
    return metrics, tags
