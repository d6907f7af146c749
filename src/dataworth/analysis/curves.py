"""Curves: the runs of one setting and augmentation policy, for one metric, as (n, value) points.

A scaling law is fitted per curve. Curves of the same group (dataset, model, width, method) are
compared with each other: the policy `none` of a group is the reference of its exchange rates.
Runs that did not finish well (status other than ok, e.g. diverged) or lack the metric are left
out of their curve and counted, so the tables can say how many. A metric that no finished run of
a method has (test_accuracy of self-supervised runs, which train no head) makes no curves for
that method at all.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

GROUP_KEY = ("dataset", "model", "width", "method")
CURVE_KEY = (*GROUP_KEY, "augmentation", "metric")
REFERENCE_POLICY = "none"

# The training-set accuracy measures memorisation, not generalisation: it falls with n and has
# no saturating law, so it is not fitted unless asked for by name.
NOT_FITTED_BY_DEFAULT = ("train_accuracy",)


class AnalysisInputError(ValueError):
    """Input the analysis cannot use; the message names the field."""


@dataclass(frozen=True)
class MetricKind:
    """How a metric improves with data, which fixes the signs and bounds of its law."""

    improves_upward: bool  # accuracy rises to its asymptote; error and loss fall to theirs
    asymptote_bounds: tuple[float, float]


METRIC_KINDS = {
    "_accuracy": MetricKind(improves_upward=True, asymptote_bounds=(0.0, 1.0)),
    "_error": MetricKind(improves_upward=False, asymptote_bounds=(0.0, 1.0)),
    "_loss": MetricKind(improves_upward=False, asymptote_bounds=(0.0, np.inf)),
}


def metric_kind(metric: str) -> MetricKind:
    for suffix, kind in METRIC_KINDS.items():
        if metric.endswith(suffix):
            return kind
    raise AnalysisInputError(
        f"metric {metric!r}: no scaling law for it; fitted metrics end in {', '.join(METRIC_KINDS)}"
    )


def default_metrics(columns) -> list[str]:
    """Every accuracy column but the training-set one (test_accuracy, ood_accuracy, ...)."""
    return [c for c in columns if c.endswith("_accuracy") and c not in NOT_FITTED_BY_DEFAULT]


@dataclass
class Curve:
    key: dict  # CURVE_KEY -> value
    n: np.ndarray  # training samples of each run used (float)
    y: np.ndarray  # the metric of each run used
    sizes: tuple[int, ...]  # every size the study ran for this curve, used or not
    n_excluded: int  # runs left out (status not ok, or the metric missing)
    n_not_ok: int  # ... of which because of their status (diverged)

    @property
    def group(self) -> tuple:
        return tuple(self.key[k] for k in GROUP_KEY)

    @property
    def label(self) -> str:
        return " ".join(f"{k}={self.key[k]}" for k in CURVE_KEY)


def check_metrics_columns(metrics: pd.DataFrame, metric_names: list[str]) -> None:
    required = ["n_train", "status", *GROUP_KEY, "augmentation"]
    missing = [c for c in required if c not in metrics.columns]
    if missing:
        raise AnalysisInputError(f"metrics table lacks the columns {missing}")
    for name in metric_names:
        if name not in metrics.columns:
            known = default_metrics(metrics.columns)
            raise AnalysisInputError(f"metric {name!r}: not a column of the metrics table (accuracy columns: {known})")
        metric_kind(name)


def metrics_by_method(metrics: pd.DataFrame, metric_names: list[str]) -> dict:
    """For each method, the metrics it has: all but those no run of it that finished ok has.

    A method without any finished run keeps every metric, so its curves still say why.
    """
    applies = {}
    for method, runs in metrics.groupby("method", sort=False, dropna=False):
        finished = runs[runs["status"] == "ok"]
        applies[method] = [m for m in metric_names
                           if finished.empty or pd.to_numeric(finished[m], errors="coerce").notna().any()]
    return applies


def curves_from_metrics(metrics: pd.DataFrame, metric_names: list[str] | None = None) -> list[Curve]:
    """One Curve per (dataset, model, width, method, augmentation) and metric, in a stable order."""
    if metrics.empty:
        raise AnalysisInputError("metrics table has no runs")
    metric_names = list(metric_names) if metric_names else default_metrics(metrics.columns)
    if not metric_names:
        raise AnalysisInputError("metrics table has no accuracy column to fit (e.g. test_accuracy)")
    check_metrics_columns(metrics, metric_names)
    curves = []
    setting = [*GROUP_KEY, "augmentation"]
    applies = metrics_by_method(metrics, metric_names)
    for values, runs in metrics.groupby(setting, sort=True, dropna=False):
        ok = runs["status"].eq("ok").to_numpy()
        sizes = tuple(sorted(int(n) for n in runs["n_train"].unique()))
        method = dict(zip(setting, values))["method"]
        for metric in metric_names:
            if metric not in applies[method]:
                continue
            y = pd.to_numeric(runs[metric], errors="coerce").to_numpy(dtype=float)
            used = ok & np.isfinite(y)
            curves.append(Curve(
                key={**dict(zip(setting, values)), "metric": metric},
                n=runs["n_train"].to_numpy(dtype=float)[used],
                y=y[used],
                sizes=sizes,
                n_excluded=int((~used).sum()),
                n_not_ok=int((~ok).sum()),
            ))
    return curves
