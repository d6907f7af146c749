"""Exchange rates (Eq. 1): the closed form of two known laws, the beyond-asymptote flag, statuses."""

from __future__ import annotations

import numpy as np
import pytest

from dataworth.analysis.curves import Curve
from dataworth.analysis.exchange import exchange_rate, exchange_rates
from dataworth.analysis.fits import CurveFit
from dataworth.analysis.laws import LawFit, power_law
from dataworth.tracking.schemas import EXCHANGE_RATES, read_parquet, write_parquet

REF = (-2.0, 0.95, 0.5)  # f_ref(n) = 0.95 - 2 n^-0.5
AUG = (-1.0, 0.97, 0.5)  # f_aug(n) = 0.97 - n^-0.5: beyond b_ref = 0.95 once n^-0.5 <= 0.02, i.e. n >= 2500
SIZES = (100, 400, 1600, 2500, 10000)


def closed_form_equivalent(n):
    # 0.95 - 2 m^-0.5 = 0.97 - n^-0.5  =>  m = 4 / (n^-0.5 - 0.02)^2
    return 4.0 / (n**-0.5 - 0.02) ** 2


def test_exchange_rate_equals_the_closed_form_and_flags_beyond_the_asymptote():
    n = np.array(SIZES, dtype=float)
    extra, ratio, beyond = exchange_rate(n, AUG, REF)
    below = n < 2500
    assert np.allclose(extra[below], closed_form_equivalent(n[below]) - n[below])
    assert np.allclose(ratio[below], closed_form_equivalent(n[below]) / n[below])
    assert list(beyond) == [False, False, False, True, True]
    assert np.isnan(extra[~below]).all() and np.isnan(ratio[~below]).all()  # a flag, not a huge number


@pytest.mark.parametrize("ref, aug", [((-2.0, 0.9, 0.5), (-1.0, 0.9, 0.5)),  # accuracy
                                      ((2.0, 0.1, 0.5), (1.0, 0.1, 0.5))])  # loss: falls to b
def test_laws_with_the_same_asymptote_and_exponent_give_a_constant_ratio(ref, aug):
    n = np.geomspace(10, 1e5, 7)
    extra, ratio, beyond = exchange_rate(n, aug, ref)
    assert np.allclose(ratio, (ref[0] / aug[0]) ** (1 / 0.5)) and not beyond.any()  # = 4
    assert np.allclose(extra, 3 * n)


def curve_fit(policy, law, status="ok", metric="test_accuracy", model="m", replicates=None):
    n = np.repeat(np.array(SIZES, dtype=float), 2)
    curve = Curve(key={"dataset": "d", "model": model, "width": 8, "method": "supervised", "augmentation": policy,
                       "metric": metric},
                  n=n, y=power_law(n, *law), sizes=SIZES, n_excluded=0, n_not_ok=0)
    if status != "ok":
        return CurveFit(curve, LawFit(status))
    reps = replicates if replicates is not None else np.empty((0, 3))
    return CurveFit(curve, LawFit("ok", a=law[0], b=law[1], c=law[2], replicates=reps))


def test_exchange_table_at_the_sizes_and_on_a_dense_grid(tmp_path):
    fits = [curve_fit("none", REF), curve_fit("aug", AUG)]
    table = exchange_rates(fits, dense_points=30)
    assert set(table["augmentation"]) == {"aug"} and (table["reference"] == "none").all()
    at_sizes = table[table["grid"] == "study"].set_index("n")
    assert list(at_sizes.index) == list(SIZES) and len(table[table["grid"] == "dense"]) == 30
    assert list(at_sizes["status"]) == ["ok"] * 3 + ["beyond_reference_asymptote"] * 2
    assert list(at_sizes["beyond_asymptote"]) == [False] * 3 + [True] * 2
    beyond = at_sizes.loc[[2500, 10000]]
    assert beyond[["equivalent_n", "extra_samples", "ratio"]].isna().all().all()
    assert at_sizes.loc[400, "equivalent_n"] == pytest.approx(closed_form_equivalent(400.0))
    assert at_sizes.loc[1600, "extrapolated"] and not at_sizes.loc[100, "extrapolated"]
    assert (at_sizes["reference_asymptote"] == 0.95).all()
    write_parquet(table, EXCHANGE_RATES, tmp_path / "x.parquet")  # the table fits its schema
    assert len(read_parquet(tmp_path / "x.parquet", EXCHANGE_RATES)) == len(table)


def test_bootstrap_intervals_and_the_share_beyond_the_asymptote():
    rng = np.random.default_rng(0)
    jitter = lambda law: np.array(law) + rng.normal(0, [0.02, 0.002, 0.01], size=(200, 3))  # noqa: E731
    fits = [curve_fit("none", REF, replicates=jitter(REF)), curve_fit("aug", AUG, replicates=jitter(AUG))]
    fits[0].law.replicates[:, 0] = -np.abs(fits[0].law.replicates[:, 0])
    at_sizes = exchange_rates(fits).query("grid == 'study'").set_index("n")
    low, point, high = at_sizes.loc[100, ["extra_samples_low", "extra_samples", "extra_samples_high"]]
    assert low < point < high and at_sizes.loc[100, "n_bootstrap"] == 200
    assert at_sizes.loc[100, "share_beyond_asymptote"] == 0
    # Where replicates are beyond b_ref, the upper end is unbounded (null), not a huge number.
    assert at_sizes.loc[10000, "share_beyond_asymptote"] > 0.5
    assert np.isnan(at_sizes.loc[10000, "ratio_high"])


def test_statuses_without_a_usable_reference():
    fits = [
        curve_fit("aug", AUG, model="no-reference"),
        curve_fit("none", REF, status="too_few_sizes", model="bad-reference"),
        curve_fit("aug", AUG, model="bad-reference"),
        curve_fit("none", REF, model="bad-augmented"),
        curve_fit("aug", AUG, status="flat", model="bad-augmented"),
    ]
    table = exchange_rates(fits)
    assert (table["grid"] == "study").all()  # no dense grid without two laws
    statuses = table.groupby("model")["status"].unique().map(list).to_dict()
    assert statuses == {"no-reference": ["no_reference"], "bad-reference": ["reference_not_fitted"],
                        "bad-augmented": ["augmented_not_fitted"]}
    assert table[["extra_samples", "ratio"]].isna().all().all() and table["beyond_asymptote"].isna().all()


def test_each_metric_is_compared_with_the_reference_of_the_same_metric():
    fits = [curve_fit("none", REF, metric="test_accuracy"), curve_fit("aug", AUG, metric="ood_accuracy")]
    assert set(exchange_rates(fits)["status"]) == {"no_reference"}
