"""Exchange rates (Geiping et al. 2022, Eq. 1): how many real samples an augmentation is worth.

With f_aug the law of an augmented curve and f_ref that of the reference (policy `none`, same
dataset, model, width, method and metric), the augmentation at n real samples is worth

    v(n) = f_ref^-1(f_aug(n)) - n        extra real samples, and the ratio (n + v(n)) / n.

When f_aug(n) is at or beyond the reference's asymptote b_ref, no amount of real data matches
it: such points get the status beyond_reference_asymptote and no number, rather than a huge or
undefined one. Intervals pair the bootstrap fits of the two curves (independent runs).

A rate from a fit whose asymptote the data do not determine, or whose law does not describe the
data (fit statuses asymptote_undetermined, poor_fit), keeps its numbers but carries a status that
names the side: reference_undetermined, augmented_undetermined or both_undetermined. "Beyond the
reference asymptote" is claimed only when b_ref is determined; past an undetermined b_ref there is
no number and the status says the reference is undetermined.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from dataworth.analysis.curves import GROUP_KEY, REFERENCE_POLICY
from dataworth.analysis.fits import CurveFit
from dataworth.analysis.laws import CONFIDENCE, inverse_power_law, power_law
from dataworth.tracking.schemas import EXCHANGE_RATES

DENSE_POINTS = 60

STATUSES = {
    "ok": "the exchange rate is defined; intervals are 95% bootstrap intervals",
    "beyond_reference_asymptote": "f_aug(n) is at or beyond the reference's asymptote b_ref: "
                                  "the augmentation is worth more than any amount of real data",
    "no_reference": "the study has no reference policy for this dataset, model, width, method and metric",
    "reference_not_fitted": "the reference curve has no law (its fit status is not ok, see fits.parquet)",
    "augmented_not_fitted": "the augmented curve has no law (its fit status is not ok, see fits.parquet)",
    "reference_undetermined": "the reference's fit is asymptote_undetermined or poor_fit: the number is kept but not "
                              "measured, and no claim of 'beyond the reference asymptote' is made",
    "augmented_undetermined": "the augmented curve's fit is asymptote_undetermined or poor_fit: the number is kept "
                              "but not measured",
    "both_undetermined": "both fits are asymptote_undetermined or poor_fit: the number is kept but not measured",
}
FLAGGED_EXCHANGE_STATUSES = ("reference_undetermined", "augmented_undetermined", "both_undetermined")


def equivalent_samples(n, augmented_params, reference_params):
    """f_ref^-1(f_aug(n)): real samples the reference needs; +inf where f_aug(n) is beyond b_ref."""
    return inverse_power_law(power_law(np.asarray(n, dtype=float), *augmented_params), *reference_params)


def exchange_rate(n, augmented_params, reference_params) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(v(n), ratio (n + v)/n, beyond): v and ratio are NaN where beyond is True."""
    n = np.asarray(n, dtype=float)
    equivalent = equivalent_samples(n, augmented_params, reference_params)
    beyond = np.isinf(equivalent)
    equivalent = np.where(beyond, np.nan, equivalent)
    return equivalent - n, equivalent / n, beyond


def exchange_rates(fits: list[CurveFit], *, reference: str = REFERENCE_POLICY, dense_points: int = DENSE_POINTS) -> pd.DataFrame:
    """EXCHANGE_RATES rows of every non-reference curve: at the study's sizes always, and on a
    dense grid between them where both laws exist."""
    by_key = {_key(f): f for f in fits}
    rows = []
    for fit in fits:
        if fit.key["augmentation"] == reference:
            continue
        ref = by_key.get(_key(fit, augmentation=reference))
        sizes = np.array(fit.curve.sizes, dtype=float)
        rows += _rows(fit, ref, reference, "study", sizes)
        if ref is not None and ref.law.has_law and fit.law.has_law:
            rows += _rows(fit, ref, reference, "dense", np.geomspace(sizes.min(), sizes.max(), dense_points))
    table = pd.DataFrame(rows, columns=EXCHANGE_RATES.names)
    # Rows without a law leave the flags empty: keep them nullable booleans, not floats.
    return table.astype({"beyond_asymptote": "boolean", "extrapolated": "boolean", "n_bootstrap": "int64"})


def _key(fit: CurveFit, augmentation: str | None = None) -> tuple:
    return (*(fit.key[k] for k in GROUP_KEY), fit.key["metric"], augmentation or fit.key["augmentation"])


def _rows(fit: CurveFit, ref: CurveFit | None, reference: str, grid: str, n: np.ndarray) -> list[dict]:
    base = {k: fit.key[k] for k in (*GROUP_KEY, "augmentation", "metric")}
    base.update(reference=reference, grid=grid, n_bootstrap=0)
    if ref is None or not ref.law.has_law or not fit.law.has_law:
        status = "no_reference" if ref is None else "reference_not_fitted" if not ref.law.has_law else "augmented_not_fitted"
        return [dict(base, n=float(x), status=status) for x in n]

    aug_law, ref_law = fit.law, ref.law
    value = aug_law.predict(n)
    extra, ratio, beyond = exchange_rate(n, aug_law.params, ref_law.params)
    equivalent = n + extra
    low, high, share, n_pairs = _intervals(fit, ref, n)
    ref_sizes = ref.curve.n
    extrapolated = ~beyond & ((equivalent < ref_sizes.min()) | (equivalent > ref_sizes.max()))
    flagged = _flagged_side(fit.law.ok, ref_law.ok)
    rows = []
    for i, x in enumerate(n):
        rows.append(dict(
            base, n=float(x), n_bootstrap=n_pairs,
            status=flagged or ("beyond_reference_asymptote" if beyond[i] else "ok"),
            augmented_value=value[i], reference_asymptote=ref_law.b, equivalent_n=equivalent[i],
            extra_samples=extra[i], extra_samples_low=low[i] - x, extra_samples_high=high[i] - x,
            ratio=ratio[i], ratio_low=low[i] / x, ratio_high=high[i] / x,
            beyond_asymptote=bool(beyond[i]) and ref_law.ok, share_beyond_asymptote=share[i], extrapolated=bool(extrapolated[i]),
        ))
    return rows


def _flagged_side(augmented_ok: bool, reference_ok: bool) -> str:
    """The status naming which fit is flagged (asymptote_undetermined, poor_fit); "" if neither."""
    if augmented_ok and reference_ok:
        return ""
    return "augmented_undetermined" if reference_ok else "reference_undetermined" if augmented_ok else "both_undetermined"


def _intervals(fit: CurveFit, ref: CurveFit, n: np.ndarray):
    """Bootstrap interval of the equivalent n (NaN for an end that is beyond b_ref), the share of
    replicates beyond b_ref, and the number of replicate pairs."""
    nan = np.full(len(n), np.nan)
    if not (fit.law.has_intervals and ref.law.has_intervals):
        return nan, nan, nan, 0
    pairs = min(len(fit.law.replicates), len(ref.law.replicates))
    values = fit.law.predict_replicates(n)[:pairs]
    a, b, c = (ref.law.replicates[:pairs, [i]] for i in range(3))
    equivalent = inverse_power_law(values, a, b, c)  # (pairs, len(n)), +inf where beyond
    tail = (1 - CONFIDENCE) / 2
    # inverted_cdf picks order statistics without interpolating, so an infinite end stays infinite
    low, high = np.quantile(equivalent, [tail, 1 - tail], axis=0, method="inverted_cdf")
    return (np.where(np.isinf(low), np.nan, low), np.where(np.isinf(high), np.nan, high),
            np.isinf(equivalent).mean(axis=0), pairs)
