"""Fit the law to every curve of a study and lay the fits out as the FITS table."""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np
import pandas as pd

from dataworth.analysis.curves import CURVE_KEY, Curve, metric_kind
from dataworth.analysis.laws import PARAMS, LawFit, fit_power_law
from dataworth.tracking.schemas import FITS


@dataclass
class CurveFit:
    curve: Curve
    law: LawFit

    @property
    def key(self) -> dict:
        return self.curve.key


def fit_curves(curves: list[Curve], *, n_bootstrap: int = 200, seed: int = 0) -> list[CurveFit]:
    fits = []
    for curve in curves:
        # A generator per curve, seeded by the curve's name: a curve's intervals do not change
        # when other curves (policies, metrics) are added to or removed from the study.
        rng = np.random.default_rng([seed, zlib.crc32(curve.label.encode())])
        law = fit_power_law(curve.n, curve.y, metric_kind(curve.key["metric"]), n_bootstrap=n_bootstrap, rng=rng)
        if curve.n_excluded:
            left_out = f"{curve.n_excluded} run(s) left out ({curve.n_not_ok} not ok, e.g. diverged; " \
                       f"{curve.n_excluded - curve.n_not_ok} without the metric)"
            law.message = "; ".join(m for m in (law.message, left_out) if m)
        fits.append(CurveFit(curve, law))
    return fits


def fits_table(fits: list[CurveFit]) -> pd.DataFrame:
    """One FITS row per curve."""
    rows = []
    for fit in fits:
        law, curve = fit.law, fit.curve
        row = {k: curve.key[k] for k in CURVE_KEY}
        row.update(status=law.status, message=law.message or None)
        for param in PARAMS:
            low, high = law.interval(param)
            row.update({param: getattr(law, param), f"{param}_low": low, f"{param}_high": high})
        row.update(
            r2=law.r2, rmse=law.rmse, max_abs_residual=law.max_abs_residual,
            n_sizes=law.n_sizes, n_runs=law.n_runs, n_excluded=curve.n_excluded,
            n_min=int(curve.n.min()) if len(curve.n) else None,
            n_max=int(curve.n.max()) if len(curve.n) else None,
            n_bootstrap=len(law.replicates),
            b_profile_low=law.b_profile_low, b_profile_high=law.b_profile_high,
            b_profile_reaches_bound=law.b_profile_reaches_bound, lack_of_fit_p=law.lack_of_fit_p,
            remedy=law.remedy or None,
        )
        rows.append(row)
    table = pd.DataFrame(rows, columns=FITS.names)
    for column in ("n_min", "n_max"):
        table[column] = table[column].astype("Int64")
    return table
