"""Exchange rates across model widths and model types (the paper's fig. 3a/3b), for a study whose
grid varies the model: per dataset and method with more than one (model, width), and per metric,

- a table: one row per (model, width), one column per augmentation policy: the ratio (n + v(n)) / n
  at one size n, the largest size every setting of the comparison trained (same n for all, so the
  rows compare), with its 95% bootstrap interval; and
- a figure: the same numbers, one panel per metric; x is the width on a log axis when one model
  varies only its width, else one tick per (model, width); one line per policy with its interval.

Numbers come from exchange_rates.parquet's rows at the study's sizes (grid == "study").
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from dataworth.analysis import tables
from dataworth.analysis.curves import REFERENCE_POLICY

FILE_PREFIX = "across_settings"
COMPARED_WITHIN = ("dataset", "method")  # settings of one comparison differ in model and width only


def comparisons(rates: pd.DataFrame) -> dict[tuple, pd.DataFrame]:
    """(dataset, method) -> its rows at the study's sizes, for those with more than one (model, width)."""
    at_sizes = rates[rates["grid"] == "study"]
    found = {}
    for key, rows in at_sizes.groupby(list(COMPARED_WITHIN), sort=True):
        if rows[["model", "width"]].drop_duplicates().shape[0] > 1:
            found[key] = rows
    return found


def common_size(rows: pd.DataFrame) -> float | None:
    """The largest n every (model, width) of the comparison has exchange rates at."""
    sizes = [set(g["n"]) for _, g in rows.groupby(["model", "width"])]
    shared = set.intersection(*sizes) if sizes else set()
    return max(shared) if shared else None


def _settings(rows: pd.DataFrame) -> list[tuple[str, int]]:
    return sorted({(m, int(w)) for m, w in zip(rows["model"], rows["width"])})


def table(rows: pd.DataFrame, metric: str, n: float, reference: str = REFERENCE_POLICY) -> tables.Table:
    """(model, width) by policy: the ratio at n for one metric."""
    at_n = rows[(rows["metric"] == metric) & (rows["n"] == n)]
    policies = [p for p in tables.policy_order(at_n["augmentation"].unique(), reference) if p != reference]
    body = []
    for model, width in _settings(rows):
        cells = at_n[(at_n["model"] == model) & (at_n["width"] == width)]
        by_policy = {r["augmentation"]: r for _, r in cells.iterrows()}
        body.append([model, str(width)] + [tables._exchange_cell(by_policy.get(p), "ratio", ".2f") for p in policies])
    return tables.Table(
        header=["model", "width", *policies], rows=body, align="lr" + "r" * len(policies),
        notes=[f"(n + v(n)) / n at n = {n:g} real samples ({tables.metric_title(metric)}), against `{reference}` of "
               "the same model and width; [95% bootstrap interval].",
               f"{tables.BEYOND}: f_aug(n) is at or beyond the reference's asymptote b_ref."],
    )


def figure(rows: pd.DataFrame, metrics: list[str], n: float, path: Path, reference: str = REFERENCE_POLICY) -> Path:
    from matplotlib.ticker import LogLocator, NullFormatter

    from dataworth.analysis import figures

    settings = _settings(rows)
    one_model = len({m for m, _ in settings}) == 1
    position = {s: (s[1] if one_model else i) for i, s in enumerate(settings)}
    colors = figures.policy_colors([*rows["augmentation"].unique(), reference], reference)
    fig, axes = figures._figure(len(metrics))
    for ax, metric in zip(axes, metrics):
        at_n = rows[(rows["metric"] == metric) & (rows["n"] == n) & (rows["augmentation"] != reference)]
        for policy, cells in at_n.groupby("augmentation", sort=True):
            cells = cells.assign(x=[position[(m, int(w))] for m, w in zip(cells["model"], cells["width"])]).sort_values("x")
            ok = cells["status"] == "ok"
            low = (cells["ratio"] - cells["ratio_low"]).where(ok).fillna(0).clip(lower=0)
            high = (cells["ratio_high"] - cells["ratio"]).where(ok).fillna(0).clip(lower=0)
            # A line joins widths of one model; model types are separate points (no order between them).
            ax.errorbar(cells["x"], cells["ratio"].where(ok), yerr=[low, high], color=colors[policy], marker="o",
                        lw=1.6, ls="-" if one_model else "none", capsize=3, label=policy)
            beyond = cells[cells["status"] == "beyond_reference_asymptote"]
            if len(beyond):
                ax.scatter(beyond["x"], np.full(len(beyond), 0.95), marker="^", s=50, color=colors[policy],
                           transform=ax.get_xaxis_transform(), label=f"{policy}: beyond b_ref")
        ax.axhline(1.0, color="black", lw=0.8, ls=":")
        ax.set_yscale("log")
        ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(lambda value, _: f"{value:g}")
        ax.yaxis.set_minor_formatter(NullFormatter())
        if one_model:
            ax.set_xscale("log", base=2)
            ax.set_xticks([w for _, w in settings], [str(w) for _, w in settings])
            ax.set_xlabel(f"{settings[0][0]} width")
        else:
            ax.set_xticks(range(len(settings)), [f"{m}\nw{w}" for m, w in settings])
            ax.set_xlabel("model and width")
        ax.set_ylabel(f"(n + v(n)) / n at n = {n:g}")
        ax.set_title(f"exchange rate: {metric}")
        ax.grid(True, which="both", alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize="small")
    return figures._save(fig, path)


def write(folder: Path, rates: pd.DataFrame, metrics: list[str], reference: str, save_table) -> tuple[list[str], list[str]]:
    """Tables and figures of every comparison into the report folder: (report section, files)."""
    section, files = [], []
    for key, rows in comparisons(rates).items():
        n = common_size(rows)
        # A metric with no exchange rate at n (no reference fitted, say) has nothing to compare.
        at_n = rows[(rows["n"] == n) & rows["status"].isin(["ok", "beyond_reference_asymptote"])]
        present = [m for m in metrics if (at_n["metric"] == m).any()]
        if n is None or not present:
            continue
        slug = "_".join(str(k) for k in key)
        if not section:
            section = ["## Exchange rates across models and widths", "",
                       "As the paper's fig. 3: the exchange rate of each policy for every model and width the study "
                       "trained, at the largest size n they all share.", ""]
        section += [f"### {', '.join(str(k) for k in key)}", ""]
        for metric in present:
            name = f"{FILE_PREFIX}_{slug}_{metric}"
            section += [f"Ratio (n + v) / n, {tables.metric_title(metric)} (`{metric}`):", "",
                        save_table(name, table(rows, metric, n, reference))]
        png = f"{FILE_PREFIX}_{slug}.png"
        figure(rows, present, n, folder / png, reference)
        files.append(png)
        section += [f"![exchange rates across models and widths, {' '.join(str(k) for k in key)}]({png})", ""]
    return section, files
