"""RankMe against probe accuracy: does the label-free score rank runs as the probe does?

The check users make to pick hyperparameters without labels (Garrido et al. 2023). Per method,
over every run that finished ok and has both numbers (all sizes, policies, widths and seeds
together), Spearman's rank correlation (scipy.stats.spearmanr) between each RankMe column and
the linear probe's test accuracy; a table and a scatter figure for the report.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from dataworth.analysis import figures, tables

ACCURACY = "probe_test_accuracy"
RANKME_COLUMNS = {"rankme_encoder": "encoder features", "rankme_projector": "projector outputs"}
MIN_RUNS = 3  # fewer points give no meaningful rank correlation
FIGURE = "rankme_vs_probe.png"
TABLE = "rankme_vs_probe"


def _usable(metrics: pd.DataFrame, rankme_column: str) -> pd.DataFrame:
    finished = metrics[metrics["status"] == "ok"]
    values = finished[[rankme_column, ACCURACY]].apply(pd.to_numeric, errors="coerce")
    return finished[np.isfinite(values).all(axis=1)]


def has_data(metrics: pd.DataFrame) -> bool:
    """Whether any run has both a RankMe and a probe accuracy (older metrics files have neither)."""
    return any(len(_usable(metrics, column)) for column in RANKME_COLUMNS if column in metrics.columns)


def correlations(metrics: pd.DataFrame) -> pd.DataFrame:
    """One row per method and RankMe column: runs, Spearman's rho and its two-sided p-value
    (null with fewer than MIN_RUNS runs or a constant column)."""
    from scipy.stats import spearmanr

    rows = []
    for method in sorted(metrics["method"].unique()):
        for column in RANKME_COLUMNS:
            runs = _usable(metrics[metrics["method"] == method], column)
            rho = p_value = np.nan
            if len(runs) >= MIN_RUNS:
                with warnings.catch_warnings():  # a constant column: rho is NaN, which says it
                    warnings.simplefilter("ignore")
                    result = spearmanr(runs[column], runs[ACCURACY])
                rho, p_value = float(result.statistic), float(result.pvalue)
            rows.append({"method": method, "rankme": column, "runs": len(runs), "spearman": rho, "p_value": p_value})
    return pd.DataFrame(rows, columns=["method", "rankme", "runs", "spearman", "p_value"])


def table(correlations: pd.DataFrame) -> tables.Table:
    rows = []
    for method, by_method in correlations.groupby("method", sort=True):
        if not by_method["runs"].any():  # e.g. supervised runs, which are probed only on request
            continue
        row = [method]
        for column in RANKME_COLUMNS:
            c = by_method[by_method["rankme"] == column].iloc[0]
            row += [str(c["runs"]), tables._number(c["spearman"], ".2f"), tables._number(c["p_value"], ".2g")]
        rows.append(row)
    header = ["method"]
    for what in RANKME_COLUMNS.values():
        header += [f"runs ({what})", f"Spearman ρ ({what})", "p"]
    return tables.Table(
        header=header, rows=rows, align="l" + "rrr" * len(RANKME_COLUMNS),
        latex_header=["method"] + [h.replace("ρ", "$\\rho$") for h in header[1:]],
        notes=[f"Spearman rank correlation over runs between RankMe and {ACCURACY}; runs that finished ok and have both.",
               f"–: fewer than {MIN_RUNS} such runs, a constant column, or no projector (supervised runs).",
               "Methods without probe accuracies are not listed (supervised runs are probed with eval.probe_supervised)."],
    )


def figure(metrics: pd.DataFrame, correlations: pd.DataFrame, path: Path) -> Path:
    """Probe test accuracy against RankMe, one point per run, a colour per method; a panel per RankMe column."""
    from matplotlib import colormaps

    methods = sorted(metrics["method"].unique())
    palette = colormaps["tab10"].colors
    colors = {m: palette[i % len(palette)] for i, m in enumerate(methods)}
    fig, axes = figures._figure(len(RANKME_COLUMNS))
    for ax, (column, what) in zip(axes, RANKME_COLUMNS.items()):
        for method in methods:
            runs = _usable(metrics[metrics["method"] == method], column)
            if runs.empty:
                continue
            c = correlations[(correlations["method"] == method) & (correlations["rankme"] == column)].iloc[0]
            label = f"{method} (ρ = {tables._number(c['spearman'], '.2f')}, {len(runs)} runs)"
            ax.scatter(runs[column], runs[ACCURACY], s=16, alpha=0.75, color=colors[method], label=label)
        ax.set_xlabel(f"RankMe of the {what}")
        ax.set_ylabel(ACCURACY)
        ax.set_title(f"RankMe ({what}) vs linear-probe accuracy")
        ax.grid(True, alpha=0.3)
        figures.legend_or_note(ax, "no runs with both numbers")
    return figures._save(fig, path)


def section(table_markdown: str) -> list[str]:
    """The report's section: what it shows, the table, the figure."""
    return [
        "## RankMe against probe accuracy",
        "",
        "RankMe (Garrido et al. 2023) is the effective rank of a run's embeddings of a fixed sample of the "
        "training pool, exp(−Σ p_k log p_k) with p_k = σ_k / ‖σ‖₁ + 1e-7; it needs no labels. If it ranks the "
        "runs of a method as the linear probe does (Spearman ρ near 1), it can pick hyperparameters without "
        f"labels. Numbers in `metrics.parquet` (`rankme_encoder`, `rankme_projector`, `{ACCURACY}`).",
        "",
        table_markdown,
        f"![RankMe against probe accuracy]({FIGURE})",
        "",
    ]
