"""The analysis of a study with methods: curves only where a method has the metric, exchange rates
on probe accuracy, and RankMe against probe accuracy; and collect joining the evaluation files."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dataworth.analysis import rankme_vs_probe
from dataworth.analysis.laws import power_law
from dataworth.analysis.report import build_report
from dataworth.tracking.schemas import METRICS
from test_analysis_report import LAWS, SIZES, synthetic_metrics


def with_probes(metrics: pd.DataFrame, rng) -> pd.DataFrame:
    """Probe and k-NN accuracies that follow the test-accuracy law, and a RankMe that rises with them."""
    metrics = metrics.copy()
    metrics["probe_test_accuracy"] = metrics["test_accuracy"] - 0.05 + rng.normal(0, 0.003, len(metrics))
    metrics["probe_ood_accuracy"] = metrics["ood_accuracy"] - 0.05
    metrics["knn_test_accuracy"] = metrics["test_accuracy"] - 0.1
    metrics["knn_ood_accuracy"] = metrics["ood_accuracy"] - 0.1
    metrics["rankme_encoder"] = 100 * metrics["probe_test_accuracy"]  # perfectly rank-correlated
    return metrics


def study_with_methods() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    supervised = with_probes(synthetic_metrics(), rng)
    simclr = with_probes(synthetic_metrics(seed=1, method="simclr"), rng)
    simclr["run_id"] = "s" + simclr["run_id"].str[1:]
    # Self-supervised runs train no head: their supervised columns are null; they have a projector.
    simclr[["train_loss", "train_accuracy", "test_loss", "test_accuracy", "ood_loss", "ood_accuracy"]] = np.nan
    simclr["rankme_projector"] = 50 - 10 * simclr["probe_test_accuracy"]  # perfectly anti-correlated
    vicreg = with_probes(synthetic_metrics({"none": LAWS["none"]}, sizes=SIZES[:2], seeds=(0,), seed=2, method="vicreg"), rng)
    vicreg[["test_accuracy", "ood_accuracy"]] = np.nan
    return pd.concat([supervised, simclr, vicreg], ignore_index=True)[METRICS.names]


# The report's figures take seconds each to draw: built once per module, and the tests that read
# it share one worker (xdist group) rather than each worker building it again.
@pytest.fixture(scope="module")
def report(tmp_path_factory):
    return build_report(study_with_methods(), tmp_path_factory.mktemp("study"), n_bootstrap=20)


@pytest.mark.xdist_group("ssl_report")
def test_a_method_gets_curves_only_for_the_metrics_it_has(report):
    curves = report.fits.groupby("method")["metric"].unique().map(set).to_dict()
    probes = {"probe_test_accuracy", "probe_ood_accuracy", "knn_test_accuracy", "knn_ood_accuracy"}
    assert curves["supervised"] == {"test_accuracy", "ood_accuracy"} | probes
    assert curves["simclr"] == probes and curves["vicreg"] == probes  # no null test_accuracy curves
    simclr = report.fits[(report.fits["method"] == "simclr") & (report.fits["metric"] == "probe_test_accuracy")]
    assert (simclr["status"] == "ok").all() and len(simclr) == 3
    assert (report.fits.loc[report.fits["method"] == "vicreg", "status"] == "too_few_sizes").all()


@pytest.mark.xdist_group("ssl_report")
def test_exchange_rates_work_on_probe_accuracy(report):
    rates = report.exchange_rates
    simclr = rates[(rates["method"] == "simclr") & (rates["metric"] == "probe_test_accuracy") & (rates["grid"] == "study")]
    assert set(simclr["augmentation"]) == {"shift", "strong"} and (simclr["status"] != "no_reference").all()
    assert (simclr.loc[simclr["status"] == "ok", "ratio"] > 0).all()
    text = (report.folder / "exchange_ratio_probe_test_accuracy.md").read_text()
    assert "simclr" in text and "supervised" in text


@pytest.mark.xdist_group("ssl_report")
def test_report_has_rankme_against_probe_accuracy_per_method(report):
    table = (report.folder / "rankme_vs_probe.md").read_text()
    rows = {line.split("|")[1].strip(): line for line in table.splitlines() if line.startswith("| ")}
    assert "| simclr | 54 | 1.00 |" in rows["simclr"] and "| 54 | -1.00 |" in rows["simclr"]
    assert "| supervised | 54 | 1.00 |" in rows["supervised"] and "| 0 | – | – |" in rows["supervised"]  # no projector
    assert "| vicreg | 2 | – |" in rows["vicreg"]  # too few runs for a rank correlation
    without_probes = study_with_methods()
    without_probes.loc[without_probes["method"] == "supervised", "probe_test_accuracy"] = np.nan
    shown = rankme_vs_probe.table(rankme_vs_probe.correlations(without_probes))
    assert [row[0] for row in shown.rows] == ["simclr", "vicreg"]  # a method without probes is not listed
    png = (report.folder / "rankme_vs_probe.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 20_000
    text = (report.folder / "report.md").read_text()
    assert "## RankMe against probe accuracy" in text and "(rankme_vs_probe.png)" in text and "(rankme_vs_probe.tex)" in text
    for name in ("scaling_d-cnn1d-8-simclr.png", "exchange_d-cnn1d-8-simclr.png"):
        assert (report.folder / name).exists()


def test_spearman_per_method_and_the_degenerate_cases():
    metrics = pd.DataFrame({
        "method": ["a"] * 4 + ["b"] * 4 + ["c"] * 2,
        "status": ["ok"] * 3 + ["diverged"] + ["ok"] * 6,
        "probe_test_accuracy": [0.1, 0.2, 0.3, np.nan, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6],
        "rankme_encoder": [1.0, 3.0, 2.0, np.nan, 5.0, 5.0, 5.0, 5.0, 1.0, 2.0],
        "rankme_projector": [np.nan] * 4 + [4.0, 3.0, 2.0, 1.0, 1.0, 2.0],
    })
    got = rankme_vs_probe.correlations(metrics).set_index(["method", "rankme"])
    assert got.loc[("a", "rankme_encoder"), "spearman"] == pytest.approx(0.5)  # ranks 1,3,2 against 1,2,3
    assert got.loc[("a", "rankme_encoder"), "runs"] == 3  # the diverged run is left out
    assert got.loc[("a", "rankme_projector"), "runs"] == 0 and np.isnan(got.loc[("a", "rankme_projector"), "spearman"])
    assert np.isnan(got.loc[("b", "rankme_encoder"), "spearman"])  # constant RankMe
    assert got.loc[("b", "rankme_projector"), "spearman"] == pytest.approx(-1.0)
    assert np.isnan(got.loc[("c", "rankme_encoder"), "spearman"])  # two runs are too few


def test_metrics_without_rankme_give_the_report_without_that_section(tmp_path):
    result = build_report(synthetic_metrics(), tmp_path, n_bootstrap=0)
    assert not (result.folder / "rankme_vs_probe.md").exists()
    assert "RankMe" not in (result.folder / "report.md").read_text()


@pytest.mark.xdist_group("ssl_report")
def test_report_has_rankme_within_groups_beside_the_pooled_rho(report):
    # issue 19 C: one row per method, policy and RankMe column that has runs; the synthetic RankMe
    # follows the probe exactly, so every group's rho is 1 and RankMe's pick loses nothing
    table = (report.folder / "rankme_within_groups.md").read_text()
    simclr = [line for line in table.splitlines() if line.startswith("| simclr | none | encoder features |")]
    assert len(simclr) == 1 and "| 1.00 | 1.00 |" in simclr[0] and "| 0.000 | 1 of " in simclr[0]
    assert "| vicreg | none | encoder features | 2 | too few runs |" in table
    text = (report.folder / "report.md").read_text()
    assert "### RankMe within groups" in text and "(rankme_within_groups.tex)" in text
    assert "- simclr / none, RankMe of the encoder features (" in text and "loses 0.0 points" in text
