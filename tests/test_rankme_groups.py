"""RankMe judged within groups (issue 19 C) on hand-built tables, and the grid axes over settings
(grid.settings) that the shipped hyperparameter study uses."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dataworth.analysis import rankme_groups, rankme_vs_probe
from dataworth.study import StudyError, load_study

ROOT = Path(__file__).resolve().parents[1]


def runs(method, policy, rankme, accuracy, status="ok"):
    return pd.DataFrame({"run_id": [f"{method[0]}{policy[0]}{i}" for i in range(len(rankme))], "method": method,
                         "augmentation": policy, "status": status, "rankme_encoder": rankme,
                         "rankme_projector": np.nan, "probe_test_accuracy": accuracy})


def hand_built() -> pd.DataFrame:
    return pd.concat([
        # RankMe ranks 1 2 3 4, probe ranks 1 3 2 4: d^2 = 0+1+1+0, rho = 1 - 6*2/(4*15) = 0.8;
        # the highest RankMe (run 3) is also the best by the probe: nothing lost
        runs("simclr", "none", [10.0, 20.0, 30.0, 40.0], [0.60, 0.70, 0.65, 0.75]),
        # RankMe against the probe exactly reversed: rho = -1; its pick (run 2) is the worst, 0.2 below the best
        runs("simclr", "shift", [10.0, 20.0, 30.0], [0.90, 0.80, 0.70]),
        runs("simclr", "shift", [99.0], [0.99], status="diverged"),  # not ok: left out
        runs("simclr", "shift", [99.0], [np.nan]),  # no probe: left out
        runs("vicreg", "shift", [5.0, 6.0], [0.5, 0.6]),  # 2 runs: too few
    ], ignore_index=True).assign(run_id=lambda t: [f"r{i:02d}" for i in range(len(t))])


def test_within_group_rho_and_the_accuracy_lost_by_choosing_by_rankme():
    groups = rankme_groups.within_groups(hand_built())
    encoder = groups[groups["rankme"] == "rankme_encoder"].set_index(["method", "augmentation"])
    none, shift, vicreg = encoder.loc[("simclr", "none")], encoder.loc[("simclr", "shift")], encoder.loc[("vicreg", "shift")]
    assert none["runs"] == 4 and none["spearman"] == pytest.approx(0.8)
    assert none["accuracy_lost"] == 0.0 and none["chosen_rank"] == 1 and none["chosen_run"] == "r03"
    assert shift["runs"] == 3 and shift["spearman"] == pytest.approx(-1.0)
    assert shift["accuracy_lost"] == pytest.approx(0.2) and shift["chosen_rank"] == 3
    assert shift["chosen_run"] == "r06" and shift["best_run"] == "r04"
    assert vicreg["runs"] == 2 and np.isnan(vicreg["spearman"]) and np.isnan(vicreg["accuracy_lost"])
    assert (groups.loc[groups["rankme"] == "rankme_projector", "runs"] == 0).all()  # no projector column values


def test_pooled_rho_measures_the_policy_where_every_group_agrees_with_the_probe():
    # Augmented runs: better probe, lower rank; within each policy RankMe orders the runs perfectly.
    table = pd.concat([runs("simclr", "none", [50.0, 60.0, 70.0], [0.60, 0.65, 0.70]),
                       runs("simclr", "shift", [10.0, 20.0, 30.0], [0.90, 0.92, 0.94])], ignore_index=True)
    table["run_id"] = [f"r{i}" for i in range(len(table))]
    pooled = rankme_vs_probe.correlations(table)
    assert pooled.set_index("rankme").loc["rankme_encoder", "spearman"] < -0.4
    groups = rankme_groups.within_groups(table)
    assert np.allclose(groups.loc[groups["rankme"] == "rankme_encoder", "spearman"], 1.0)
    shown = rankme_groups.table(groups, pooled)
    assert [row[:5] for row in shown.rows] == [["simclr", "none", "encoder features", "3", "1.00"],
                                                ["simclr", "shift", "encoder features", "3", "1.00"]]
    assert shown.rows[0][5] == shown.rows[1][5] == f"{pooled['spearman'].iloc[0]:.2f}"  # the pooled rho beside


def test_answers_say_the_pick_its_cost_and_too_few_runs():
    lines = rankme_groups.answers(rankme_groups.within_groups(hand_built()))
    assert any("simclr / shift" in line and "rank 3 of 3" in line and "loses 20.0 points" in line for line in lines)
    assert any("simclr / none" in line and "is the best run" in line and "loses 0.0 points" in line for line in lines)
    assert any(line.startswith("- vicreg / shift") and "too few runs" in line for line in lines)


def test_the_hyperparameter_study_validates_and_plans_its_runs():
    study = load_study(ROOT / "studies" / "rankme-hparams.yaml")
    by_method = pd.Series([r["method"] for r in study.runs]).value_counts().to_dict()
    assert by_method == {"simclr": 3 * 2 * 2, "vicreg": 2 * 2 * 2 * 2} and len(study.runs_by_id) == 28
    simclr = [r for r in study.runs if r["method"] == "simclr"]
    assert {(r["ssl"]["simclr"]["temperature"], r["ssl"]["projector"]["out"], r["train"]["lr"]) for r in simclr} == {
        (t, o, lr) for t in (0.05, 0.2, 1.0) for o in (16, 128) for lr in (0.001, 0.004)}
    assert all("vicreg" not in r["ssl"] for r in simclr)  # VICReg's weights do not multiply SimCLR's runs


def _study(**settings) -> dict:
    return {"study": "s", "dataset": {"name": "mnist1d", "train_pool": 500, "test_size": 100},
            "augmentations": {"none": []},
            "grid": {"method": ["simclr"], "n_train": [100], "augmentation": ["none"],
                     "model": [{"name": "mlp", "width": 8}], "seed": [0], **({"settings": settings} if settings else {})},
            "train": {"steps": 10, "lr": 0.01}}


def test_a_setting_equal_to_its_sections_value_keeps_the_run_id():
    plain = load_study(_study())
    same = load_study(_study(**{"train.lr": [0.01], "ssl.simclr.temperature": [0.5]}))
    assert [r["run_id"] for r in same.runs] == [r["run_id"] for r in plain.runs]
    varied = load_study(_study(**{"train.lr": [0.01, 0.02]}))
    assert len(varied.runs) == 2 and varied.runs[0]["run_id"] == plain.runs[0]["run_id"]


@pytest.mark.parametrize("settings, message", [
    ({"train.lrr": [0.1]}, "grid.settings.train.lrr: unknown setting; allowed: train.steps"),
    ({"ssl.simclr.temperature": [0.5, -1.0]}, "grid.settings.ssl.simclr.temperature[1]: Input should be greater than 0"),
    ({"ssl.vicreg.covariance": [1.0]}, "grid.settings.ssl.vicreg.covariance: no method of grid.method (simclr) uses"),
    ({"train.label_smoothing": [0.1]}, "grid.settings.train.label_smoothing: no method of grid.method"),
    ({"train.lr": [0.1, 0.1]}, "grid.settings.train.lr: duplicate values"),
    ({"train.lr": ["0.1"]}, "grid.settings.train.lr[0]: must be a number, not the text '0.1'"),
    ({"train.steps": [5, 20], "train.warmup_steps": [0, 8]}, "grid.settings: the combination train.steps=5, "
                                                            "train.warmup_steps=8 gives train: warmup_steps (8)"),
])
def test_bad_settings_axes_are_named(settings, message):
    with pytest.raises(StudyError) as caught:
        load_study(_study(**settings))
    assert message in str(caught.value)
