"""The mechanisms next to the exchange rates (issue 19 part B): does what the paper offers as the
*why* (invariance, flatness, gradient noise, local complexity) rank the augmentations as their
worth in real samples does?

One point per (setting, augmented policy, n): the exchange ratio (n + v(n))/n of test accuracy
(else the probe's test accuracy, else the first metric with ratios; grid `study`) and the mean over
seeds of each mechanism column of that policy's runs at n. Per mechanism, Spearman's rank
correlation (scipy.stats.spearmanr) over the points whose ratio has status ok (points whose fits
leave the ratio undetermined are shown, marked, and left out); a table of the points, a table of the
correlations and one figure per mechanism for the report.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from dataworth.analysis import figures, tables
from dataworth.analysis.exchange import FLAGGED_EXCHANGE_STATUSES

# metrics.parquet column -> what it is, in the report's words.
MECHANISMS = {
    "invariance_agreement": "invariance: prediction agreement with augmented views",
    "invariance_cosine": "invariance: feature cosine with augmented views",
    "flatness_distance": "empirical flatness: distance to a loss rise of the threshold",
    "hessian_trace": "Hessian trace (Hutchinson)",
    "gradient_snr": "gradient SNR",
    "gradient_noise_scale": "gradient noise scale B_simple",
    "local_complexity_test": "local complexity around test points",
}
SETTING = ["dataset", "model", "width", "method"]
# The exchange ratio the mechanisms are put against: in-distribution accuracy of the head, else of the probe.
PREFERRED_METRICS = ("test_accuracy", "probe_test_accuracy")
MIN_POINTS = 3
TABLE_POINTS = "mechanisms"
TABLE_CORRELATIONS = "mechanisms_vs_exchange"


def figure_name(column: str) -> str:
    return f"mechanism_{column}.png"


def measured(metrics: pd.DataFrame) -> list[str]:
    """The mechanism columns with at least one number (the stages a study switched on)."""
    return [c for c in MECHANISMS if c in metrics.columns
            and np.isfinite(pd.to_numeric(metrics[c], errors="coerce")).any()]


def points(metrics: pd.DataFrame, rates: pd.DataFrame, reference: str) -> pd.DataFrame:
    """One row per (setting, policy, n) with an exchange ratio: the ratio and each mechanism's mean over seeds."""
    columns = measured(metrics)
    shown = ("ok", *FLAGGED_EXCHANGE_STATUSES)  # numbers kept; only ok ones enter the correlations
    ok = rates[(rates["grid"] == "study") & rates["status"].isin(shown) & (rates["augmentation"] != reference)
               & rates["ratio"].notna()]
    if ok.empty or not columns:
        return pd.DataFrame(columns=[*SETTING, "augmentation", "n", "metric", "status", "ratio", *columns])
    metric = next((m for m in PREFERRED_METRICS if m in set(ok["metric"])), ok["metric"].iloc[0])
    ok = ok[ok["metric"] == metric]
    runs = metrics[metrics["status"] == "ok"].copy()
    runs[columns] = runs[columns].apply(pd.to_numeric, errors="coerce").replace([np.inf, -np.inf], np.nan)
    means = runs.groupby([*SETTING, "augmentation", "n_train"], dropna=False)[columns].mean().reset_index()
    means = means.rename(columns={"n_train": "n"}).astype({"n": "float64"})
    table = ok[[*SETTING, "augmentation", "n", "metric", "status", "ratio"]].merge(means, on=[*SETTING, "augmentation", "n"], how="left")
    return table.sort_values([*SETTING, "augmentation", "n"]).reset_index(drop=True)


def correlations(table: pd.DataFrame) -> pd.DataFrame:
    """Per mechanism: status-ok points with both numbers, Spearman's rho against the ratio and its p-value."""
    from scipy.stats import spearmanr

    rows = []
    for column in [c for c in MECHANISMS if c in table.columns]:
        both = table[table["status"] == "ok"][["ratio", column]].dropna()
        rho = p_value = np.nan
        if len(both) >= MIN_POINTS:
            with warnings.catch_warnings():  # a constant column gives NaN, which the table shows as –
                warnings.simplefilter("ignore")
                result = spearmanr(both[column], both["ratio"])
            rho, p_value = float(result.statistic), float(result.pvalue)
        rows.append({"mechanism": column, "points": len(both), "spearman": rho, "p_value": p_value})
    return pd.DataFrame(rows, columns=["mechanism", "points", "spearman", "p_value"])


def points_table(table: pd.DataFrame) -> tables.Table:
    columns = [c for c in MECHANISMS if c in table.columns]
    rows = [[r["augmentation"], str(int(r["n"])), tables._number(r["ratio"], ".2f") + ("" if r["status"] == "ok" else " *"),
             *[tables._number(r[c], ".4g") for c in columns]] for _, r in table.iterrows()]
    header = ["policy", "n", "exchange ratio", *columns]
    return tables.Table(header=header, rows=rows, align="lrr" + "r" * len(columns),
                        latex_header=[h.replace("_", "\\_") for h in header],
                        notes=["Mechanisms: the mean over the seeds of the policy's runs at n (metrics.parquet).",
                               "Exchange ratio: (n + v(n)) / n of " + (f"`{table['metric'].iloc[0]}`" if len(table) else "–")
                               + "; * its status is reference_undetermined, augmented_undetermined or "
                               "both_undetermined (a number, not measured): shown, left out of the correlations."])


def correlations_table(corr: pd.DataFrame) -> tables.Table:
    rows = [[r["mechanism"], MECHANISMS[r["mechanism"]], str(r["points"]), tables._number(r["spearman"], ".2f"),
             tables._number(r["p_value"], ".2g")] for _, r in corr.iterrows()]
    return tables.Table(header=["column", "mechanism", "points", "Spearman ρ vs ratio", "p"], rows=rows, align="llrrr",
                        latex_header=["column", "mechanism", "points", "Spearman $\\rho$ vs ratio", "p"],
                        notes=[f"Over the (policy, n) points below whose ratio has status ok; –: fewer than {MIN_POINTS} such "
                               "points or a constant column."])


def figure(table: pd.DataFrame, column: str, corr: pd.DataFrame, path: Path, reference: str) -> Path:
    """Exchange ratio against one mechanism, a colour per policy, sizes labelled."""
    colors = figures.policy_colors(table["augmentation"].unique(), reference)
    fig, (ax,) = figures._figure(1)
    for policy, part in table.groupby("augmentation", sort=True):
        part = part.dropna(subset=[column, "ratio"])
        if part.empty:
            continue
        determined = part["status"] == "ok"
        ax.scatter(part[column][determined], part["ratio"][determined], color=colors[policy], label=policy, s=24)
        ax.scatter(part[column][~determined], part["ratio"][~determined], facecolors="none", edgecolors=colors[policy],
                   s=24, label=f"{policy} (undetermined)" if (~determined).any() else None)
        for _, r in part.iterrows():
            ax.annotate(str(int(r["n"])), (r[column], r["ratio"]), fontsize="x-small", xytext=(3, 3),
                        textcoords="offset points")
    c = corr[corr["mechanism"] == column]
    rho = tables._number(c["spearman"].iloc[0], ".2f") if len(c) else "–"
    ax.set_xlabel(f"{MECHANISMS[column]} ({column})")
    ax.set_ylabel("exchange ratio (n + v(n)) / n")
    ax.set_title(f"{column} vs exchange ratio (Spearman ρ = {rho}, filled points); labels: n")
    ax.grid(True, alpha=0.3)
    figures.legend_or_note(ax, "no points with both numbers")
    return figures._save(fig, path)


def write_section(metrics: pd.DataFrame, rates: pd.DataFrame, folder: Path, reference: str, save_table,
                  files: list[str]) -> list[str]:
    """Tables and figures into the report folder; returns the report's section (none when no
    mechanism stage ran)."""
    if not measured(metrics):
        return []
    table = points(metrics, rates, reference)
    corr = correlations(table)
    out = ["## Why augmentations are worth data: the mechanisms", "",
           "Geiping et al. (2022) explain the worth of augmentations by invariance, gradient noise and flatness; "
           "Humayun et al. (2024) track the local complexity of the network. Each point below is one augmented policy "
           "at one size n: its exchange ratio next to the mechanisms measured on its runs (the evaluation stages "
           "`invariance`, `gradient_stats`, `flatness`, `local_complexity`; docs/analysis.md says how). A rank "
           "correlation near ±1 says the mechanism orders the augmentations as their worth does; with few points "
           "it says little (see p).", "",
           ]
    if table.empty:
        return out + ["No exchange ratio of an augmented policy has a number here (see the exchange rates and their "
                      "statuses), so there is nothing to put the mechanisms against; their values per run are in "
                      "metrics.parquet.", ""]
    out += [save_table(TABLE_CORRELATIONS, correlations_table(corr)), save_table(TABLE_POINTS, points_table(table))]
    # Hollow points in the figures: ratios whose fit does not determine them (statuses of exchange.py).
    for column in [c for c in MECHANISMS if c in table.columns]:
        name = figure_name(column)
        figure(table, column, corr, folder / name, reference)
        files.append(name)
        out += [f"![{column} vs exchange ratio]({name})", ""]
    return out
