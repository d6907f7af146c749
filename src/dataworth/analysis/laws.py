"""The saturating power law of Geiping et al. 2022, f(n) = a * n^(-c) + b, fitted to one curve.

b is the asymptote (the metric with unlimited real data), c how fast the curve approaches it and
a the gap at n = 1: negative for accuracy, which rises to b; positive for error and loss, which
fall to b. `fit_power_law` never raises on bad data: a curve it cannot fit gets a named status
(see STATUSES) and no numbers, so nothing downstream uses a number that means nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import least_squares
from scipy.stats import f as f_distribution

from dataworth.analysis import asymptote
from dataworth.analysis.curves import MetricKind

MIN_SIZES = 3  # as many distinct sizes as parameters; fewer cannot determine the law
C_BOUNDS = (1e-3, 5.0)
FLAT_CHANGE = 1e-3  # a law that moves less than this (metric units) over the sizes is flat
FLAT_P_VALUE = 0.05  # ... as is one that explains no more than a constant (F-test)
MIN_REPLICATES = 20  # fewer converged bootstrap fits give no interval
CONFIDENCE = 0.95
PARAMS = ("a", "b", "c")

STATUSES = {
    "ok": "fitted; the intervals are 95% bootstrap intervals over seeds, and b is determined by the data",
    "asymptote_undetermined": "fitted, but the data do not determine the asymptote b: b is on its bound, or its 95% "
                              "profile-likelihood interval reaches a bound of b or is wider than "
                              f"{asymptote.B_INTERVAL_MAX_WIDTH:g}; the numbers are kept, b is not a measurement",
    "poor_fit": f"fitted, but the law does not describe the data: R² < {asymptote.R2_MIN:g}, or the lack-of-fit F test "
                f"(size means against the seeds' spread) rejects it at p < {asymptote.LACK_OF_FIT_P:g}",
    "too_few_sizes": f"fewer than {MIN_SIZES} distinct sizes with usable runs: the three parameters are not determined",
    "flat": "the metric does not change with n beyond noise (or moves the wrong way): there is no law to fit",
    "not_converged": "the least-squares solver stopped before converging",
}
# Statuses whose fit has parameters (the others have none): ok, and the two flagged fits.
FITTED_STATUSES = ("ok", "asymptote_undetermined", "poor_fit")


def power_law(n, a, b, c):
    return a * np.power(n, -c) + b


def inverse_power_law(y, a, b, c):
    """The n at which f(n) = y; +inf where y is at or beyond the asymptote b (no n reaches it)."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        gap = (np.asarray(y, dtype=float) - b) / a  # = n^-c, positive while y is short of b
        n = np.power(gap, -1.0 / c)
    return np.where(gap > 0, n, np.inf)


@dataclass
class LawFit:
    status: str
    message: str = ""
    a: float = np.nan
    b: float = np.nan
    c: float = np.nan
    r2: float = np.nan
    rmse: float = np.nan
    max_abs_residual: float = np.nan
    n_sizes: int = 0
    n_runs: int = 0
    # issue 19 A: the 95% profile-likelihood interval of b, the lack-of-fit p-value, and for a
    # flagged fit the one line that says what data would settle it (asymptote.py)
    b_profile_low: float = np.nan
    b_profile_high: float = np.nan
    b_profile_reaches_bound: str | None = None  # low, high or both
    lack_of_fit_p: float = np.nan
    remedy: str = ""
    # (a, b, c) of every bootstrap fit that converged, one row each
    replicates: np.ndarray = field(default_factory=lambda: np.empty((0, 3)))

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def has_law(self) -> bool:
        """Whether the fit has parameters: ok, or flagged (asymptote_undetermined, poor_fit)."""
        return self.status in FITTED_STATUSES

    @property
    def params(self) -> np.ndarray:
        return np.array([self.a, self.b, self.c])

    @property
    def has_intervals(self) -> bool:
        return self.has_law and len(self.replicates) >= MIN_REPLICATES

    def interval(self, param: str) -> tuple[float, float]:
        if not self.has_intervals:
            return np.nan, np.nan
        tail = (1 - CONFIDENCE) / 2
        low, high = np.quantile(self.replicates[:, PARAMS.index(param)], [tail, 1 - tail])
        return float(low), float(high)

    def predict(self, n) -> np.ndarray:
        return power_law(np.asarray(n, dtype=float), self.a, self.b, self.c)

    def predict_replicates(self, n) -> np.ndarray:
        """Shape (replicates, len(n)): the law of every bootstrap fit at n."""
        a, b, c = (self.replicates[:, [i]] for i in range(3))
        return power_law(np.asarray(n, dtype=float)[None, :], a, b, c)


class _Problem:
    """Least squares in a well-conditioned form: f = alpha * (n/n0)^(-c) + b, n0 the geometric
    mean of the sizes, so alpha and c are nearly independent; a = alpha * n0^c."""

    def __init__(self, n: np.ndarray, kind: MetricKind):
        self.n0 = float(np.exp(np.mean(np.log(np.unique(n)))))
        self.log_x = np.log(n / self.n0)
        self.upward = kind.improves_upward
        alpha_bounds = (-np.inf, 0.0) if self.upward else (0.0, np.inf)
        self.b_bounds = kind.asymptote_bounds
        self.lower = np.array([alpha_bounds[0], self.b_bounds[0], C_BOUNDS[0]])
        self.upper = np.array([alpha_bounds[1], self.b_bounds[1], C_BOUNDS[1]])

    def residuals(self, x, y):
        alpha, b, c = x
        return alpha * np.exp(-c * self.log_x) + b - y

    def jacobian(self, x, y):
        alpha, _, c = x
        u = np.exp(-c * self.log_x)
        return np.column_stack([u, np.ones_like(u), -alpha * u * self.log_x])

    def _sign(self, alpha):
        return np.minimum(alpha, 0.0) if self.upward else np.maximum(alpha, 0.0)

    def initial_guess(self, y) -> np.ndarray:
        """For fixed c the law is linear in (alpha, b): solve that on a grid of c, keep the best.
        A start near the global optimum, so the local solver cannot wander off to a poor one."""
        cs = np.geomspace(*C_BOUNDS, 60)
        u = np.exp(-np.outer(cs, self.log_x))  # (grid, runs)
        du = u - u.mean(axis=1, keepdims=True)
        alpha = self._sign(du @ (y - y.mean()) / np.maximum((du**2).sum(axis=1), 1e-300))
        b = np.clip(y.mean() - alpha * u.mean(axis=1), *self.b_bounds)
        alpha = self._sign((u * (y - b[:, None])).sum(axis=1) / (u**2).sum(axis=1))  # refit alpha to the clipped b
        sse = ((alpha[:, None] * u + b[:, None] - y) ** 2).sum(axis=1)
        best = int(np.argmin(sse))
        return np.array([alpha[best], b[best], cs[best]])

    def solve(self, y, x0, max_nfev=None) -> np.ndarray | None:
        """The least-squares (alpha, b, c), or None where the solver did not converge."""
        x0 = np.clip(x0, self.lower, self.upper)
        try:
            result = least_squares(self.residuals, x0, jac=self.jacobian, bounds=(self.lower, self.upper),
                                   args=(y,), method="trf", x_scale="jac", max_nfev=max_nfev)
        except (ValueError, np.linalg.LinAlgError):
            return None
        if result.status <= 0 or not np.all(np.isfinite(result.x)):
            return None
        return result.x

    def to_params(self, x) -> tuple[float, float, float]:
        alpha, b, c = x
        return float(alpha * self.n0**c), float(b), float(c)


def fit_power_law(n, y, kind: MetricKind, *, n_bootstrap: int = 0, rng: np.random.Generator | None = None,
                  max_nfev: int | None = None) -> LawFit:
    """Fit f(n) = a * n^(-c) + b to runs (n, y) by bounded least squares; bootstrap over seeds."""
    n = np.asarray(n, dtype=float)
    y = np.asarray(y, dtype=float)
    usable = np.isfinite(n) & (n > 0) & np.isfinite(y)
    n, y = n[usable], y[usable]
    sizes = np.unique(n)
    counts = dict(n_sizes=len(sizes), n_runs=len(y))
    if len(sizes) < MIN_SIZES:
        return LawFit("too_few_sizes", f"{len(sizes)} size(s) with usable runs; the law needs {MIN_SIZES}", **counts)
    if np.ptp(y) == 0:
        return LawFit("flat", f"the metric is {y[0]:.4g} at every size", **counts)

    problem = _Problem(n, kind)
    x = problem.solve(y, problem.initial_guess(y), max_nfev)
    if x is None:
        return LawFit("not_converged", "the solver stopped before converging (evaluation limit or bad numbers)", **counts)
    a, b, c = problem.to_params(x)

    residuals = y - power_law(n, a, b, c)
    sse = float(np.sum(residuals**2))
    sst = float(np.sum((y - y.mean()) ** 2))
    flat = _flat_reason(sse, sst, len(y), change=abs(power_law(sizes[-1], a, b, c) - power_law(sizes[0], a, b, c)))
    if flat:
        return LawFit("flat", flat, **counts)

    replicates, notes = _bootstrap(problem, n, y, x, n_bootstrap, rng or np.random.default_rng(0), max_nfev)
    notes += _bound_notes(problem, x)
    profile = asymptote.Profile(problem.log_x, y, problem.upward, C_BOUNDS)
    judgement = asymptote.judge(profile, n, y, power_law(n, a, b, c), b, c, problem.b_bounds, C_BOUNDS)
    # A law that does not describe the data says nothing about b either: poor_fit comes first.
    status = "poor_fit" if judgement.poor else "asymptote_undetermined" if judgement.undetermined else "ok"
    reasons = judgement.poor + judgement.undetermined
    return LawFit(
        status, "; ".join(reasons + notes), a=a, b=b, c=c,
        r2=1 - sse / sst, rmse=float(np.sqrt(sse / len(y))), max_abs_residual=float(np.max(np.abs(residuals))),
        replicates=replicates, b_profile_low=judgement.b_low, b_profile_high=judgement.b_high,
        b_profile_reaches_bound={(True, False): "low", (False, True): "high", (True, True): "both"}.get(
            (judgement.reaches_low_bound, judgement.reaches_high_bound)),
        lack_of_fit_p=judgement.lack_of_fit_p, remedy=judgement.remedy, **counts,
    )


def _flat_reason(sse: float, sst: float, n_runs: int, change: float) -> str:
    if change < FLAT_CHANGE:
        return f"the fitted law moves by {change:.2g} over the sizes (less than {FLAT_CHANGE:g})"
    dof = n_runs - 3
    if dof > 0 and sse > 0:
        # F-test of the law (3 parameters) against a constant (1): a law no better than a constant
        # would turn noise into an asymptote and an exchange rate.
        p = float(f_distribution.sf(((sst - sse) / 2) / (sse / dof), 2, dof))
        if p > FLAT_P_VALUE:
            return f"the law explains no more than a constant (F-test p = {p:.2g})"
    return ""


def _bootstrap(problem: _Problem, n, y, x_hat, n_bootstrap: int, rng, max_nfev) -> tuple[np.ndarray, list[str]]:
    """Refit to resampled runs: at each size, draw that size's runs (seeds) with replacement."""
    empty = np.empty((0, 3))
    if n_bootstrap <= 0:
        return empty, ["no bootstrap asked for: no intervals"]
    groups = [np.flatnonzero(n == s) for s in np.unique(n)]
    if all(len(g) == 1 for g in groups):
        return empty, ["one run per size: no seed variation to resample, so no intervals (they need 2+ seeds)"]
    resampled = np.empty((n_bootstrap, len(y)))
    for g in groups:
        k = len(g)
        if k == 1:
            resampled[:, g] = y[g]
            continue
        draws = y[g][rng.integers(0, k, size=(n_bootstrap, k))]
        mean = y[g].mean()
        # Resampling k values shrinks their spread to (k-1)/k of the seeds' variance; with the
        # usual 2-3 seeds that halves it. Rescaling the deviations restores the spread.
        resampled[:, g] = mean + np.sqrt(k / (k - 1)) * (draws - mean)
    replicates = [problem.to_params(xb) for yb in resampled if (xb := problem.solve(yb, x_hat, max_nfev)) is not None]
    notes = []
    if len(replicates) < n_bootstrap:
        notes.append(f"{n_bootstrap - len(replicates)} of {n_bootstrap} bootstrap fits did not converge")
    if len(replicates) < MIN_REPLICATES:
        notes.append(f"fewer than {MIN_REPLICATES} bootstrap fits: no intervals")
    return (np.array(replicates) if replicates else empty), notes


def _bound_notes(problem: _Problem, x) -> list[str]:
    c = x[2]
    notes = []  # b on its bound is a reason for asymptote_undetermined (asymptote.judge)
    if np.isclose(c, C_BOUNDS[0]):
        notes.append(f"c reached its bound {C_BOUNDS[0]:g}: no saturation within the sizes, so b is weakly determined")
    if np.isclose(c, C_BOUNDS[1]):
        notes.append(f"c reached its bound {C_BOUNDS[1]:g}: the curve saturates within the smallest sizes")
    return notes
