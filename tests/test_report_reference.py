"""Published vs reproduced (a study's reference block) and exchange rates across models and widths,
from small metrics tables with known values: reference.parquet, the report's sections, its files."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from dataworth.analysis.laws import power_law
from dataworth.analysis.reference import mlflow_fields, reference_table
from dataworth.analysis.report import build_report
from dataworth.study import StudyError, StudySpec, load_study
from dataworth.tracking.schemas import METRICS, REFERENCE, read_parquet

SIZES = (250, 500, 1000, 2000)
# (a, b, c) of test_accuracy per (model, width) and policy; noise-free, so the fits are the laws.
LAWS = {
    ("cnn1d", 8): {"none": (-4.0, 0.90, 0.5), "shift": (-3.0, 0.92, 0.5)},
    ("cnn1d", 16): {"none": (-4.0, 0.93, 0.5), "shift": (-2.0, 0.94, 0.5)},
    ("mlp", 32): {"none": (-3.0, 0.85, 0.4), "shift": (-3.0, 0.86, 0.4)},
}
# Student t quantiles at 0.975 in closed form: 1 degree of freedom (Cauchy) tan(pi (p - 1/2)); 2: (2p - 1) / sqrt(2p(1 - p)).
T_975 = {1: math.tan(math.pi * 0.475), 2: 0.95 / math.sqrt(2 * 0.975 * 0.025)}


def _metrics() -> pd.DataFrame:
    rows = []
    for (model, width), policies in LAWS.items():
        for policy, law in policies.items():
            for n in SIZES:
                for seed in (0, 1):
                    y = power_law(n, *law)
                    rows.append({"run_id": f"{model}{width}{policy}{n}{seed}", "study": "s", "dataset": "synthetic",
                                 "method": "supervised", "n_train": n, "augmentation": policy, "model": model,
                                 "width": width, "seed": seed, "status": "ok", "test_accuracy": y, "ood_accuracy": y - 0.1})
    metrics = pd.DataFrame(rows, columns=METRICS.names)
    at = lambda model, policy, n: (metrics["model"] == model) & (metrics["augmentation"] == policy) & (metrics["n_train"] == n)
    # Known values for the reference rows (the MLP's curves only: the CNNs' stay exact laws).
    metrics.loc[at("mlp", "none", 2000), "test_accuracy"] = [0.90, 0.94]
    metrics.loc[at("mlp", "shift", 2000), "test_accuracy"] = [0.80, np.nan]
    metrics.loc[at("mlp", "shift", 2000) & (metrics["seed"] == 1), "status"] = "diverged"
    metrics.loc[at("mlp", "none", 250), "status"] = "diverged"
    return metrics


STUDY = {
    "study": "s",
    "dataset": {"name": "synthetic"},
    "augmentations": {"none": [], "shift": [{"op": "shift", "max_shift": 2}]},
    "grid": {"n_train": list(SIZES), "augmentation": ["none", "shift"], "seed": [0, 1],
             "model": [{"name": m, "width": w} for m, w in LAWS]},
    "train": {"steps": 10},
    "reference": {
        "source": "A. Author (2020), Table 1",
        "rows": [
            {"label": "within", "setting": {"model": "mlp", "n_train": 2000, "augmentation": "none"},
             "metric": "test_accuracy", "value": 0.93, "tolerance": 0.02},
            {"label": "outside", "setting": {"model": "mlp", "n_train": 2000, "augmentation": "shift"},
             "metric": "test_accuracy", "value": 0.90, "tolerance": 0.05},
            {"label": "not run", "setting": {"model": "mlp", "n_train": 250, "augmentation": "none"},
             "metric": "ood_accuracy", "value": 0.5, "tolerance": 0.1},
        ],
    },
}


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("study")
    return build_report(_metrics(), out, metric_names=["test_accuracy"], n_bootstrap=0,
                        study_spec=StudySpec.model_validate(STUDY))


def test_reference_rows_by_hand():
    from scipy import stats

    assert [stats.t.ppf(0.975, k) for k in (1, 2)] == pytest.approx([T_975[1], T_975[2]], rel=1e-9)
    table = reference_table(_metrics(), StudySpec.model_validate(STUDY).reference)
    within, outside, not_run = (r for _, r in table.iterrows())
    # within: seeds 0.90 and 0.94: mean 0.92, s = 0.02·√2, interval 0.92 ± 12.706·0.02
    assert within["verdict"] == "within" and within["seeds_used"] == 2 and within["runs"] == 2
    assert within["mean"] == pytest.approx(0.92) and within["difference"] == pytest.approx(-0.01)
    assert (within["ci_low"], within["ci_high"]) == pytest.approx((0.92 - T_975[1] * 0.02, 0.92 + T_975[1] * 0.02))
    # outside: one seed diverged; 0.80 alone is 0.10 under 0.90 (> 0.05); no interval from one seed
    assert outside["verdict"] == "outside" and outside["seeds_used"] == 1 and outside["runs"] == 2
    assert outside["mean"] == pytest.approx(0.80) and outside["difference"] == pytest.approx(-0.10)
    assert math.isnan(outside["ci_low"]) and math.isnan(outside["ci_high"])
    # not run: both runs of the setting diverged
    assert not_run["verdict"] == "not run" and not_run["seeds_used"] == 0 and math.isnan(not_run["mean"])
    assert table["source"].unique().tolist() == ["A. Author (2020), Table 1"]

    metrics, tags = mlflow_fields(table)
    assert metrics["reference.0.mean"] == pytest.approx(0.92) and "reference.2.mean" not in metrics
    assert (metrics["reference.within"], metrics["reference.outside"], metrics["reference.not_run"]) == (1, 1, 1)
    assert tags == {"reference.0.verdict": "within", "reference.0.label": "within", "reference.1.verdict": "outside",
                    "reference.1.label": "outside", "reference.2.verdict": "not run", "reference.2.label": "not run"}


def test_three_seeds_interval_uses_two_degrees_of_freedom():
    metrics = _metrics()
    extra = metrics[(metrics["model"] == "mlp") & (metrics["augmentation"] == "none") & (metrics["n_train"] == 2000)].iloc[:1].copy()
    extra[["seed", "test_accuracy"]] = [2, 0.98]
    table = reference_table(pd.concat([metrics, extra]), StudySpec.model_validate(STUDY).reference)
    row = table.iloc[0]
    values = np.array([0.90, 0.94, 0.98])
    half = T_975[2] * values.std(ddof=1) / math.sqrt(3)
    assert (row["mean"], row["ci_low"], row["ci_high"]) == pytest.approx((0.94, 0.94 - half, 0.94 + half))
    assert row["verdict"] == "within" and row["difference"] == pytest.approx(0.01)  # 0.01 <= 0.02


def test_report_has_the_reference_section_and_parquet(report):
    out = report.folder.parent
    stored = read_parquet(out / "reference.parquet", REFERENCE)
    assert stored["verdict"].tolist() == ["within", "outside", "not run"]
    text = (report.folder / "report.md").read_text()
    assert text.index("## Published vs reproduced") < text.index("## Scaling laws")
    assert "A. Author (2020), Table 1" in text and "Student-t" in text
    row = next(line for line in text.splitlines() if line.startswith("| within |"))
    assert "0.9300" in row and "0.9200" in row and "[0.6659, 1.1741]" in row and "-0.0100" in row and "**within**" in row
    assert "Verdicts: 1 within, 1 outside, 1 not run." in text


def test_exchange_rates_across_models_and_widths(report):
    folder = report.folder
    assert "## Exchange rates across models and widths" in (folder / "report.md").read_text()
    png = folder / "across_settings_synthetic_supervised.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    assert f"]({png.name})" in (folder / "report.md").read_text()
    table = (folder / "across_settings_synthetic_supervised_test_accuracy.md").read_text()
    cells = {tuple(c.strip() for c in line.strip("|").split("|")[:2]): line.strip("|").split("|")[2].strip()
             for line in table.splitlines() if line.startswith("| cnn1d") or line.startswith("| mlp")}
    # At n = 2000 (the largest size all three share), by hand from the laws: the reference needs
    # ((f_shift(n) - b_none) / a_none)^(-1/c_none) real samples to match f_shift(n).
    for width in (8, 16):
        (a_ref, b_ref, c_ref), shift = LAWS[("cnn1d", width)]["none"], LAWS[("cnn1d", width)]["shift"]
        equivalent = ((power_law(2000, *shift) - b_ref) / a_ref) ** (-1 / c_ref)
        assert float(cells[("cnn1d", str(width))].split()[0]) == pytest.approx(equivalent / 2000, abs=0.006)
    assert set(cells) == {("cnn1d", "8"), ("cnn1d", "16"), ("mlp", "32")}
    assert (folder / "across_settings_synthetic_supervised_test_accuracy.tex").exists()


def test_reference_block_is_checked_at_validate_time():
    study = {**STUDY, "reference": {"source": "x", "rows": [
        {"setting": {"model": "mlp"}, "metric": "test_acuracy", "value": 0.9, "tolerance": 0.01},
        {"setting": {"model": "resnet18"}, "metric": "test_accuracy", "value": 0.9, "tolerance": 0.01},
        {"setting": {"model": "cnn1d", "n_train": 2000, "augmentation": "none"}, "metric": "test_accuracy",
         "value": 0.9, "tolerance": 0.01},
        {"setting": {"model": "mlp"}, "metric": "test_accuracy", "value": 0.9, "tolerance": -1},
    ]}}
    with pytest.raises(StudyError) as error:
        load_study(study)
    message = str(error.value)
    assert "reference.rows[3].tolerance" in message  # field errors first; the cross-checks need a valid spec
    study["reference"]["rows"].pop()
    with pytest.raises(StudyError) as error:
        load_study(study)
    lines = str(error.value).splitlines()
    assert any("reference.rows[0].metric: 'test_acuracy' is not a metrics.parquet column" in l for l in lines)
    assert any("reference.rows[1].setting: model=resnet18 picks no run of the grid" in l for l in lines)
    assert any("reference.rows[2].setting" in l and "(they differ in width)" in l for l in lines)
    assert any("reference.rows[0].setting" in l and "differ in n_train, augmentation" in l for l in lines)
