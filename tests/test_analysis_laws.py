"""The saturating power law: recovery of a known law, bootstrap coverage, and the named statuses."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dataworth.analysis.curves import METRIC_KINDS, AnalysisInputError, curves_from_metrics, default_metrics, metric_kind
from dataworth.analysis.laws import fit_power_law, inverse_power_law, power_law

ACCURACY = METRIC_KINDS["_accuracy"]
LOSS = METRIC_KINDS["_loss"]
TRUE = {"a": -3.0, "b": 0.95, "c": 0.5}
SIZES = np.array([100, 200, 400, 800, 1600, 3200, 6400])


def noisy_runs(rng, seeds=3, noise=0.004, law=TRUE, sizes=SIZES):
    n = np.repeat(sizes, seeds).astype(float)
    return n, power_law(n, law["a"], law["b"], law["c"]) + rng.normal(0, noise, len(n))


def test_inverse_undoes_the_law_and_is_infinite_at_or_beyond_the_asymptote():
    n = np.array([10.0, 1000.0, 1e6])
    y = power_law(n, **TRUE)
    assert np.allclose(inverse_power_law(y, **TRUE), n)
    assert np.all(np.isinf(inverse_power_law([0.95, 0.96], **TRUE)))


def test_fit_recovers_a_known_law_from_noisy_runs():
    n, y = noisy_runs(np.random.default_rng(0))
    fit = fit_power_law(n, y, ACCURACY)
    assert fit.status == "ok" and fit.n_sizes == 7 and fit.n_runs == 21
    assert fit.b == pytest.approx(TRUE["b"], abs=0.01)
    assert fit.c == pytest.approx(TRUE["c"], rel=0.15)
    assert fit.a == pytest.approx(TRUE["a"], rel=0.3)
    assert fit.r2 > 0.99 and fit.rmse < 0.006 and fit.max_abs_residual < 0.015


def test_bootstrap_intervals_cover_the_truth_in_most_repetitions():
    rng = np.random.default_rng(1)
    repetitions, covered = 20, {p: 0 for p in TRUE}
    for _ in range(repetitions):
        n, y = noisy_runs(rng)
        fit = fit_power_law(n, y, ACCURACY, n_bootstrap=100, rng=rng)
        assert fit.has_intervals
        for param, truth in TRUE.items():
            low, high = fit.interval(param)
            assert low <= getattr(fit, param) <= high
            covered[param] += low <= truth <= high
    assert all(count >= 0.7 * repetitions for count in covered.values()), covered


def test_a_loss_falls_to_its_asymptote_with_a_positive_scale():
    law = {"a": 5.0, "b": 0.2, "c": 0.6}
    n, y = noisy_runs(np.random.default_rng(2), noise=0.01, law=law)
    fit = fit_power_law(n, y, LOSS)
    assert fit.status == "ok" and fit.a > 0
    assert fit.b == pytest.approx(0.2, abs=0.03) and fit.c == pytest.approx(0.6, rel=0.2)


@pytest.mark.parametrize("sizes", [[500], [250, 500]])
def test_fewer_than_three_sizes_are_too_few(sizes):
    n, y = noisy_runs(np.random.default_rng(3), sizes=np.array(sizes))
    fit = fit_power_law(n, y, ACCURACY, n_bootstrap=50)
    assert fit.status == "too_few_sizes" and np.isnan(fit.params).all()
    assert fit.n_sizes == len(sizes)


def test_constant_accuracy_is_flat():
    fit = fit_power_law(np.repeat(SIZES, 2), np.full(14, 0.25), ACCURACY)
    assert fit.status == "flat" and np.isnan(fit.params).all()


def test_pure_noise_and_a_falling_accuracy_are_flat():
    rng = np.random.default_rng(4)
    n = np.repeat(SIZES, 3).astype(float)
    assert fit_power_law(n, 0.5 + rng.normal(0, 0.01, len(n)), ACCURACY).status == "flat"
    falling = 0.9 - 0.02 * np.log(n) + rng.normal(0, 0.002, len(n))
    assert fit_power_law(n, falling, ACCURACY).status == "flat"


def test_nans_are_left_out():
    n, y = noisy_runs(np.random.default_rng(5))
    y[:4] = np.nan
    fit = fit_power_law(n, y, ACCURACY)
    assert fit.status == "ok" and fit.n_runs == len(y) - 4
    assert fit_power_law(n, np.full(len(n), np.nan), ACCURACY).status == "too_few_sizes"


def test_a_solver_stopped_early_is_not_converged():
    n, y = noisy_runs(np.random.default_rng(6))
    fit = fit_power_law(n, y, ACCURACY, max_nfev=1)
    assert fit.status == "not_converged" and np.isnan(fit.params).all()


def test_one_run_per_size_fits_but_has_no_intervals():
    n, y = noisy_runs(np.random.default_rng(7), seeds=1)
    fit = fit_power_law(n, y, ACCURACY, n_bootstrap=100)
    assert fit.status == "ok" and not fit.has_intervals and np.isnan(fit.interval("b")).all()
    assert "one run per size" in fit.message


def metrics_frame(rows):
    base = {"dataset": "d", "model": "m", "width": 8, "method": "supervised", "status": "ok", "train_accuracy": 1.0}
    return pd.DataFrame([{**base, **row} for row in rows])


def test_curves_leave_out_diverged_runs_and_missing_metrics_and_count_them():
    rows = [{"augmentation": "none", "n_train": n, "seed": s, "test_accuracy": 0.9, "ood_accuracy": 0.7}
            for n in (100, 200, 400) for s in (0, 1)]
    rows[0].update(status="diverged", test_accuracy=np.nan, ood_accuracy=np.nan)
    rows[1].update(ood_accuracy=np.nan)
    curves = {c.key["metric"]: c for c in curves_from_metrics(metrics_frame(rows))}
    assert set(curves) == {"test_accuracy", "ood_accuracy"}  # not train_accuracy
    assert curves["test_accuracy"].n_excluded == 1 and len(curves["test_accuracy"].y) == 5
    assert curves["ood_accuracy"].n_excluded == 2 and curves["ood_accuracy"].n_not_ok == 1
    assert curves["ood_accuracy"].sizes == (100, 200, 400)


def test_bad_metric_names_are_errors_naming_the_metric():
    frame = metrics_frame([{"augmentation": "none", "n_train": 100, "test_accuracy": 0.9, "wall_seconds": 1.0}])
    with pytest.raises(AnalysisInputError, match="'probe_accuracy': not a column"):
        curves_from_metrics(frame, ["probe_accuracy"])
    with pytest.raises(AnalysisInputError, match="'wall_seconds': no scaling law"):
        curves_from_metrics(frame, ["wall_seconds"])
    assert metric_kind("probe_accuracy").improves_upward
    assert default_metrics(["train_accuracy", "test_accuracy", "probe_accuracy", "test_loss"]) == ["test_accuracy", "probe_accuracy"]
