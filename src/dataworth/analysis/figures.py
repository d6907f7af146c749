"""Paper figures of one setting (dataset, model, width, method), one panel per metric side by side
(in-distribution beside out-of-distribution):

- scaling:   the metric against n (log axis): every run, the fitted law and its 95% band per policy;
- exchange:  the ratio (n + v(n)) / n against n per augmentation, with its band; where f_aug(n) is
             beyond the reference's asymptote the line stops and a bar at the top marks it;
- residuals: every run's residual from its law, to see where the law misfits.

Figures are drawn with matplotlib's object API on the Agg canvas (no display, no global pyplot
state) and saved atomically.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from dataworth.analysis.curves import REFERENCE_POLICY
from dataworth.analysis.exchange import FLAGGED_EXCHANGE_STATUSES
from dataworth.analysis.fits import CurveFit
from dataworth.analysis.laws import CONFIDENCE
from dataworth.analysis.tables import metric_title
from dataworth.files import atomic_path

PANEL_SIZE = (5.0, 3.8)
DENSE_POINTS = 120
RATIO_AXIS_MAX = 1000.0  # top of the exchange-rate axis


def _figure(n_panels: int):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(PANEL_SIZE[0] * n_panels, PANEL_SIZE[1]), layout="tight")  # tight: one draw; constrained costs two
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, n_panels, squeeze=False)[0]
    return fig, axes


def _log_n_axis(ax, sizes) -> None:
    """Log x axis labelled with the study's sizes as plain numbers (no overlapping 10^k minors)."""
    from matplotlib.ticker import FixedLocator, NullFormatter

    sizes = sorted(set(float(s) for s in sizes))
    ax.set_xscale("log")
    if sizes:
        ax.set_xlim(sizes[0] / 1.25, sizes[-1] * 1.25)
    ax.xaxis.set_major_locator(FixedLocator(sizes))
    ax.xaxis.set_major_formatter(lambda value, _: f"{value:g}")
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("real training samples n")


def _save(fig, path: Path) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=130)
    return path


def legend_or_note(ax, note: str) -> None:
    """A legend when the panel drew anything labelled, otherwise `note` in its middle (an empty
    panel says why it is empty)."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize="small")
    else:
        ax.text(0.5, 0.5, note, ha="center", va="center", transform=ax.transAxes)


def policy_colors(policies, reference: str = REFERENCE_POLICY) -> dict[str, str]:
    """A fixed colour per policy, the reference first (black), so every figure agrees."""
    from matplotlib import colormaps

    others = sorted(p for p in set(policies) if p != reference)
    palette = colormaps["tab10"].colors
    return {reference: "black", **{p: palette[i % len(palette)] for i, p in enumerate(others)}}


def _legend_label(fit: CurveFit) -> str:
    policy = fit.key["augmentation"]
    return policy if fit.law.ok else f"{policy} ({fit.law.status})"


def _by_metric(fits: list[CurveFit]) -> dict[str, list[CurveFit]]:
    panels: dict[str, list[CurveFit]] = {}
    for fit in fits:
        panels.setdefault(fit.key["metric"], []).append(fit)
    return panels


def scaling_figure(fits: list[CurveFit], path: Path, reference: str = REFERENCE_POLICY) -> Path:
    """The metric against n per policy, for the curves of one setting."""
    panels = _by_metric(fits)
    colors = policy_colors([f.key["augmentation"] for f in fits], reference)
    fig, axes = _figure(len(panels))
    tail = (1 - CONFIDENCE) / 2
    for ax, (metric, curves) in zip(axes, panels.items()):
        for fit in sorted(curves, key=lambda f: (f.key["augmentation"] != reference, f.key["augmentation"])):
            color = colors[fit.key["augmentation"]]
            ax.scatter(fit.curve.n, fit.curve.y, s=12, color=color, alpha=0.55, linewidths=0)
            if fit.law.has_law:  # flagged laws too: their status is in the legend
                n = np.geomspace(fit.curve.n.min(), fit.curve.n.max(), DENSE_POINTS)
                ax.plot(n, fit.law.predict(n), color=color, lw=1.6, label=_legend_label(fit))
                if fit.law.has_intervals:
                    low, high = np.quantile(fit.law.predict_replicates(n), [tail, 1 - tail], axis=0)
                    ax.fill_between(n, low, high, color=color, alpha=0.18, linewidth=0)
            else:
                ax.plot([], [], color=color, ls="none", marker="o", label=_legend_label(fit))
        _log_n_axis(ax, np.concatenate([f.curve.sizes for f in curves]))
        ax.set_ylabel(metric)
        ax.set_title(metric_title(metric))
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize="small")
    return _save(fig, path)


def exchange_figure(exchange: pd.DataFrame, path: Path, metrics: list[str], reference: str = REFERENCE_POLICY) -> Path:
    """The ratio (n + v)/n against n per augmentation policy, one panel per metric."""
    from matplotlib.ticker import LogLocator, NullFormatter

    colors = policy_colors([*exchange["augmentation"].unique(), reference], reference)
    fig, axes = _figure(len(metrics))
    for ax, metric in zip(axes, metrics):
        rows = exchange[exchange["metric"] == metric]
        dense = rows[rows["grid"] == "dense"]
        for policy, curve in dense.groupby("augmentation", sort=True):
            color = colors[policy]
            ok = curve["status"] == "ok"
            ax.plot(curve["n"], curve["ratio"].where(ok), color=color, lw=1.6, label=policy)
            # issue 19 A: rates from a fit whose asymptote is undetermined (or a poor fit): dashed
            flagged = curve["status"].isin(FLAGGED_EXCHANGE_STATUSES)
            if flagged.any():
                ax.plot(curve["n"], curve["ratio"].where(flagged), color=color, lw=1.4, ls="--",
                        label=f"{policy} ({', '.join(sorted(curve.loc[flagged, 'status'].unique()))})")
            high = curve["ratio_high"].fillna(np.inf)  # an end beyond b_ref: the band runs to the top
            ax.fill_between(curve["n"], curve["ratio_low"], np.minimum(high, 1e9), where=ok & curve["ratio_low"].notna(),
                            color=color, alpha=0.18, linewidth=0)
            beyond = curve["beyond_asymptote"].fillna(False).to_numpy(dtype=bool)
            if beyond.any():
                ax.plot(curve["n"].where(beyond), np.where(beyond, 0.97, np.nan), color=color, lw=5, alpha=0.8,
                        transform=ax.get_xaxis_transform(), solid_capstyle="butt", label=f"{policy}: beyond b_ref")
            at_sizes = rows[(rows["grid"] == "study") & (rows["augmentation"] == policy)
                            & rows["status"].isin(("ok", *FLAGGED_EXCHANGE_STATUSES))]
            ax.scatter(at_sizes["n"], at_sizes["ratio"], color=color, s=18, zorder=3)
        missing = sorted(set(rows["augmentation"]) - set(dense["augmentation"]))
        for policy in missing:
            status = rows.loc[rows["augmentation"] == policy, "status"].iloc[0]
            ax.plot([], [], color=colors[policy], ls="none", marker="o", label=f"{policy} ({status})")
        ax.axhline(1.0, color="black", lw=0.8, ls=":")
        _log_n_axis(ax, rows.loc[rows["grid"] == "study", "n"])
        finite = dense.loc[dense["status"].isin(("ok", *FLAGGED_EXCHANGE_STATUSES)), ["ratio", "ratio_low", "ratio_high"]].to_numpy(dtype=float)
        finite = finite[np.isfinite(finite) & (finite > 0)]
        # Limits from the finite numbers, capped: next to b_ref the ratio shoots up and would squash
        # the rest; there the curve runs off the top into the "beyond" bar. A panel without any
        # exchange rate still needs positive limits on its log axis.
        low, high = (min(finite.min(), 1.0) / 1.15, min(max(finite.max(), 1.0) * 1.4, RATIO_AXIS_MAX)) if finite.size else (0.5, 2.0)
        ax.set_yscale("log")
        ax.set_ylim(low, high)
        ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0) if high / low < 100 else (1.0,)))
        ax.yaxis.set_major_formatter(lambda value, _: f"{value:g}")
        ax.yaxis.set_minor_formatter(NullFormatter())
        ax.set_ylabel("(n + v(n)) / n")
        ax.set_title(f"exchange rate: {metric_title(metric)}")
        ax.grid(True, which="both", alpha=0.3)
        legend_or_note(ax, "no exchange rates")
    return _save(fig, path)


def residuals_figure(fits: list[CurveFit], path: Path, reference: str = REFERENCE_POLICY) -> Path:
    """Every run's residual y - f(n) from its curve's law, per policy."""
    panels = _by_metric(fits)
    colors = policy_colors([f.key["augmentation"] for f in fits], reference)
    fig, axes = _figure(len(panels))
    for ax, (metric, curves) in zip(axes, panels.items()):
        ordered = sorted(curves, key=lambda f: (f.key["augmentation"] != reference, f.key["augmentation"]))
        for i, fit in enumerate(ordered):
            # Policies side by side around each size, so runs at the same n do not hide each other.
            shift = 1 + 0.04 * (i - (len(ordered) - 1) / 2)
            if fit.law.has_law:
                ax.scatter(fit.curve.n * shift, fit.curve.y - fit.law.predict(fit.curve.n), s=14,
                           color=colors[fit.key["augmentation"]], alpha=0.7, label=fit.key["augmentation"])
        ax.axhline(0.0, color="black", lw=0.8, ls=":")
        _log_n_axis(ax, np.concatenate([f.curve.sizes for f in curves]))
        ax.set_ylabel(f"{metric} − law")
        ax.set_title(f"residuals: {metric_title(metric)}")
        ax.grid(True, which="both", alpha=0.3)
        legend_or_note(ax, "no fitted law")
    return _save(fig, path)
