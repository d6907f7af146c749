"""Is a fitted law's asymptote measured by the data, and does the law describe the data at all?

A curve that has not saturated between its smallest and largest size fits equally well with many
asymptotes b: the least-squares b then lands on its bound (1.0 for accuracy) or anywhere in a wide
range, and every number that leans on b (exchange rates near b_ref, "beyond the reference
asymptote") is not measured. This module judges a fit; laws.fit_power_law gives it its status.

**Profile-likelihood interval of b.** For each fixed b the other two parameters are fitted again
(S(b) = min over a, c of the squared residuals); the 95% interval is every b whose S(b) passes the
F criterion of nonlinear least squares (Bates & Watts 1988, Sec. 6.1):

    S(b) <= S_hat * (1 + F_{1, N-3}(0.95) / (N - 3)),    N runs, 3 parameters.

For fixed (b, c) the law is linear in a, so S(b) is a one-dimensional minimum over c: a grid over
the allowed c, refined by a bounded scalar search around the grid's best point.

A fit is **asymptote_undetermined** when b sits on its bound, when the interval reaches a bound of
b (the data allow the asymptote to be as high as accuracy can go), when the interval is wider than
B_INTERVAL_MAX_WIDTH, or when there are no residual degrees of freedom (N <= 3).

A fit is a **poor_fit** when R² < R2_MIN (the law explains too little of the runs' variance), or
when the lack-of-fit F test (the law's residuals at each size against the seeds' own spread there,
needing 2+ seeds at some size and 4+ sizes) rejects the law at LACK_OF_FIT_P.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import brentq, minimize_scalar
from scipy.stats import f as f_distribution

CONFIDENCE = 0.95
B_INTERVAL_MAX_WIDTH = 0.05  # metric units: 5 accuracy points
R2_MIN = 0.9
LACK_OF_FIT_P = 0.01
_C_GRID_POINTS = 240
_UNBOUNDED_SEARCH_STEPS = 40  # doublings of the search span where b has no upper bound (losses)


@dataclass
class Judgement:
    b_low: float = np.nan  # the profile interval of b; a reached bound is given as the bound itself
    b_high: float = np.nan
    reaches_low_bound: bool = False
    reaches_high_bound: bool = False
    undetermined: list[str] | None = None  # why b is not determined (empty: it is)
    poor: list[str] | None = None  # why the law does not describe the data (empty: it does)
    lack_of_fit_p: float = np.nan
    remedy: str = ""


class Profile:
    """S(b): the least sum of squares with b held fixed, for a curve in the fit's parametrisation
    f = alpha * exp(-c * log_x) + b (alpha <= 0 when the metric rises, >= 0 when it falls)."""

    def __init__(self, log_x: np.ndarray, y: np.ndarray, upward: bool, c_bounds: tuple[float, float]):
        self.log_x, self.y, self.upward = log_x, y, upward
        self.c_bounds = c_bounds
        self.c_grid = np.geomspace(*c_bounds, _C_GRID_POINTS)
        self.u = np.exp(-np.outer(self.c_grid, log_x))  # (grid, runs)
        self.uu = (self.u**2).sum(axis=1)

    def _alpha(self, num, uu):
        alpha = num / uu
        return np.minimum(alpha, 0.0) if self.upward else np.maximum(alpha, 0.0)

    def _sse_at_c(self, c: float, r: np.ndarray) -> float:
        u = np.exp(-c * self.log_x)
        alpha = self._alpha(u @ r, u @ u)
        return float(((alpha * u - r) ** 2).sum())

    def __call__(self, b: float) -> float:
        r = self.y - b
        num = self.u @ r
        alpha = self._alpha(num, self.uu)
        sse = r @ r - 2 * alpha * num + alpha**2 * self.uu
        best = int(np.argmin(sse))
        lo = self.c_grid[max(best - 1, 0)]
        hi = self.c_grid[min(best + 1, len(self.c_grid) - 1)]
        refined = minimize_scalar(lambda log_c: self._sse_at_c(np.exp(log_c), r), bounds=(np.log(lo), np.log(hi)),
                                  method="bounded", options={"xatol": 1e-6})
        return float(min(sse[best], refined.fun))


def profile_interval(profile: Profile, b_hat: float, sse_hat: float, n_runs: int,
                     b_bounds: tuple[float, float], span: float) -> tuple[float, float, bool, bool]:
    """(low, high, reaches_low_bound, reaches_high_bound) of the 95% profile interval of b.

    `span` scales the search where b has no finite bound (loss metrics): the search doubles it
    until S(b) passes the threshold, and reports the bound as reached if it never does."""
    dof = n_runs - 3
    threshold = sse_hat * (1 + f_distribution.ppf(CONFIDENCE, 1, dof) / dof)
    threshold += 1e-12 * max(span, 1e-12) ** 2  # exact data: S_hat is 0 up to rounding
    at_estimate = profile(b_hat) - threshold  # negative: S(b_hat) is S_hat up to the profile's accuracy

    def end(direction: int) -> tuple[float, bool]:
        bound = b_bounds[1] if direction > 0 else b_bounds[0]
        if np.isfinite(bound):
            if abs(bound - b_hat) < 1e-12 or profile(bound) <= threshold:
                return float(bound), True
            far = bound
        else:
            step = max(span, 1e-6)
            far = b_hat + direction * step
            for _ in range(_UNBOUNDED_SEARCH_STEPS):
                if profile(far) > threshold:
                    break
                step *= 2
                far = b_hat + direction * step
            else:
                return float(bound), True
        if at_estimate >= 0:  # the profile cannot resolve S near S_hat (exact data): keep the estimate
            return float(b_hat), False
        return float(brentq(lambda b: profile(b) - threshold, b_hat, far, xtol=1e-7)), False

    low, reaches_low = end(-1)
    high, reaches_high = end(+1)
    return low, high, reaches_low, reaches_high


def lack_of_fit_p(n: np.ndarray, y: np.ndarray, fitted: np.ndarray) -> float:
    """p-value of the lack-of-fit F test: the residual sum of squares split into pure error (runs
    around their size's mean) and lack of fit (size means around the law); NaN where it is not
    defined (no size with 2+ runs, or no more sizes than parameters)."""
    sizes = np.unique(n)
    pure = sum(((y[n == s] - y[n == s].mean()) ** 2).sum() for s in sizes)
    dof_pure = len(y) - len(sizes)
    dof_lack = len(sizes) - 3
    if dof_pure <= 0 or dof_lack <= 0 or pure <= 0:
        return np.nan
    lack = float(((y - fitted) ** 2).sum()) - pure
    statistic = max(lack, 0.0) / dof_lack / (pure / dof_pure)
    return float(f_distribution.sf(statistic, dof_lack, dof_pure))


def judge(profile: Profile, n: np.ndarray, y: np.ndarray, fitted: np.ndarray, b_hat: float, c_hat: float,
          b_bounds: tuple[float, float], c_bounds: tuple[float, float]) -> Judgement:
    residuals = y - fitted
    sse = float((residuals**2).sum())
    sst = float(((y - y.mean()) ** 2).sum())
    r2 = 1 - sse / sst if sst > 0 else np.nan
    judgement = Judgement(undetermined=[], poor=[])
    at_bound = bool(np.isclose(b_hat, b_bounds[0]) or np.isclose(b_hat, b_bounds[1]))
    if at_bound:
        judgement.undetermined.append(f"b is on its bound {b_hat:g}")
    if len(y) <= 3:
        judgement.undetermined.append(f"{len(y)} runs for 3 parameters: no residual to judge b by")
    else:
        low, high, reaches_low, reaches_high = profile_interval(
            profile, b_hat, sse, len(y), b_bounds, span=max(float(np.ptp(y)), 1e-3))
        judgement.b_low, judgement.b_high = low, high
        judgement.reaches_low_bound, judgement.reaches_high_bound = reaches_low, reaches_high
        if reaches_low or reaches_high:
            bound = b_bounds[1] if reaches_high else b_bounds[0]
            judgement.undetermined.append(f"the 95% profile interval of b reaches its bound {bound:g}")
        elif high - low > B_INTERVAL_MAX_WIDTH:
            judgement.undetermined.append(
                f"the 95% profile interval of b, [{low:.4g}, {high:.4g}], is wider than {B_INTERVAL_MAX_WIDTH:g}")
    if np.isfinite(r2) and r2 < R2_MIN:
        judgement.poor.append(f"R² = {r2:.3f} < {R2_MIN:g}")
    judgement.lack_of_fit_p = lack_of_fit_p(n, y, fitted)
    if judgement.lack_of_fit_p < LACK_OF_FIT_P:
        judgement.poor.append(f"lack-of-fit F test p = {judgement.lack_of_fit_p:.2g} < {LACK_OF_FIT_P:g} "
                              "(the size means depart from the law more than the seeds vary)")
    judgement.remedy = _remedy(judgement, n, residuals, y, c_hat, c_bounds, at_bound)
    return judgement


def _remedy(j: Judgement, n: np.ndarray, residuals: np.ndarray, y: np.ndarray, c_hat: float,
            c_bounds: tuple[float, float], at_bound: bool) -> str:
    """One line: what data would settle the fit."""
    sizes = np.unique(n)
    seeds = int(round(len(n) / len(sizes)))
    n_max = int(sizes.max())
    if j.poor:
        if j.lack_of_fit_p < LACK_OF_FIT_P:
            return ("the runs depart from the law systematically (see the residuals figure): check the sizes that "
                    "stand out (e.g. too few steps for the largest n) or fit a range of n where one law holds")
        return (f"more seeds (now about {seeds} per size): the seed noise (RMSE {np.sqrt(np.mean(residuals**2)):.3g}) "
                f"is large against the change over the sizes ({np.ptp(y):.3g})")
    if j.undetermined:
        if len(n) <= 3:
            return "more sizes or seeds: the law has as many parameters as there are runs"
        unsaturated = at_bound or j.reaches_high_bound or j.reaches_low_bound or np.isclose(c_hat, c_bounds[0])
        if unsaturated:
            return (f"larger sizes (beyond n = {n_max:,}, e.g. {2 * n_max:,} and {4 * n_max:,}): the curve has not "
                    "saturated, so the data cannot tell where it levels off")
        return (f"more seeds (now about {seeds} per size) and larger sizes (beyond n = {n_max:,}) to narrow the "
                "interval of b")
    return ""


def report_lines(fits) -> list[str]:
    """The report's lines on flagged fits (a FITS table): how they are judged, and one line per
    flagged curve with what would fix it."""
    import pandas as pd

    lines = [
        "**Is the asymptote measured?** Each fit's b gets a 95% profile-likelihood interval (S(b) = least squares "
        "with b held fixed; the interval is every b with S(b) ≤ S_min·(1 + F₁,N−3(0.95)/(N−3))). A fit whose b is "
        f"on its bound, whose interval reaches a bound of b or is wider than {B_INTERVAL_MAX_WIDTH:g} is "
        f"`asymptote_undetermined`; one with R² < {R2_MIN:g} or a lack-of-fit F test (size means against the "
        f"seeds' spread) with p < {LACK_OF_FIT_P:g} is `poor_fit`. Both keep their numbers, but b and the "
        "exchange rates that lean on it are not measurements.",
        "",
    ]
    flagged = fits[fits["status"].isin(("asymptote_undetermined", "poor_fit"))]
    if flagged.empty:
        return lines + ["Every fitted curve's asymptote is determined by its data.", ""]
    lines += ["Flagged curves, and what would fix them:", ""]
    for row in flagged.itertuples():
        interval = ("no interval" if pd.isna(row.b_profile_low)
                    else f"profile interval [{row.b_profile_low:.3f}, {row.b_profile_high:.3f}]"
                    + (f", at the bound ({row.b_profile_reaches_bound})" if isinstance(row.b_profile_reaches_bound, str) else ""))
        lines.append(f"- {row.method} {row.augmentation} / {row.metric} (`{row.status}`, b = {row.b:.3f}, {interval}): "
                     f"{row.remedy}")
    return lines + [""]
