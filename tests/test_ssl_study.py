"""The method axis and the ssl and eval sections of a study: run ids and validation."""

from __future__ import annotations

import json

import pytest

from dataworth.study import StudyError, load_study


def ids(study) -> dict:
    return {(r["method"], r["n_train"], r["augmentation"]["name"], r["seed"]): r["run_id"] for r in study.runs}


def supervised_ids(study) -> dict:
    return {k: v for k, v in ids(study).items() if k[0] == "supervised"}


def test_method_axis_multiplies_the_grid_and_keeps_supervised_ids(tiny_study):
    before = ids(load_study(tiny_study))
    tiny_study["grid"]["method"] = ["supervised", "simclr", "vicreg", "byol"]
    study = load_study(tiny_study)
    assert len(study.runs) == 16 and len(study.runs_by_id) == 16
    assert supervised_ids(study) == before
    ssl_run = next(r for r in study.runs if r["method"] == "byol")
    assert set(ssl_run["ssl"]) == {"projector", "byol"}  # its own method's settings only
    assert "ssl" not in next(r for r in study.runs if r["method"] == "supervised")


@pytest.mark.parametrize(
    "edit, changed_methods",
    [
        (lambda s: s["ssl"]["simclr"].update(temperature=0.2), {"simclr"}),
        (lambda s: s["ssl"]["vicreg"].update(covariance=2.0), {"vicreg"}),
        (lambda s: s["ssl"]["byol"].update(momentum_base=0.9), {"byol"}),
        (lambda s: s["ssl"]["projector"].update(out=16), {"simclr", "vicreg", "byol"}),
        (lambda s: s["train"].update(label_smoothing=0.1), {"supervised"}),  # no labels in SSL training
        (lambda s: s["train"].update(lr=0.2), {"supervised", "simclr", "vicreg", "byol"}),
        (lambda s: s["eval"].update(labeled=64, knn={"k": 3}, probe={"steps": 10}, rankme={"samples": 100}), set()),
    ],
)
def test_run_ids_change_exactly_for_the_methods_whose_settings_changed(tiny_study, edit, changed_methods):
    tiny_study["grid"]["method"] = ["supervised", "simclr", "vicreg", "byol"]
    tiny_study["ssl"] = {"simclr": {"temperature": 0.5}, "vicreg": {}, "byol": {}, "projector": {}}
    base = ids(load_study(tiny_study))
    edit(tiny_study)
    edited = ids(load_study(tiny_study))
    for key, run_id in base.items():
        assert (edited[key] != run_id) == (key[0] in changed_methods), key


def test_exclude_accepts_method(tiny_study):
    tiny_study["grid"]["method"] = ["supervised", "simclr"]
    tiny_study["grid"]["exclude"] = [{"method": "simclr", "augmentation": "none"}]
    combos = {(r["method"], r["augmentation"]["name"]) for r in load_study(tiny_study).runs}
    assert combos == {("supervised", "none"), ("supervised", "shift"), ("simclr", "shift")}


def problems_of(study: dict) -> str:
    with pytest.raises(StudyError) as info:
        load_study(study)
    return "\n".join(info.value.problems)


@pytest.mark.parametrize(
    "edit, expected",
    [
        (lambda s: s["grid"].update(method=["moco"]), ["grid.method[0]", "'supervised', 'simclr', 'vicreg' or 'byol'", "'moco'"]),
        (lambda s: s["grid"].update(method=["simclr", "simclr"]), ["grid.method: duplicate methods"]),
        (lambda s: s["grid"].update(exclude=[{"method": "byol"}]), ["grid.exclude[0].method: 'byol' is not a value of the grid", "['supervised']"]),
        (lambda s: s["grid"].update(exclude=[{"methd": "byol"}]), ["grid.exclude[0]", "methd", "'method'"]),
        (lambda s: s.update(ssl={"simclr": {"temp": 0.1}}), ["ssl.simclr.temp: unknown key; allowed keys here: temperature"]),
        (lambda s: s.update(ssl={"moco": {}}), ["ssl.moco: unknown key; allowed keys here: projector, simclr, vicreg, byol"]),
        (lambda s: s.update(ssl={"simclr": {"temperature": 0}}), ["ssl.simclr.temperature", "greater than 0"]),
        (lambda s: s.update(ssl={"byol": {"momentum_base": 1.0}}), ["ssl.byol.momentum_base", "less than 1"]),
        (lambda s: s.update(ssl={"projector": {"out": 0}}), ["ssl.projector.out", "greater than 0"]),
        (lambda s: s["eval"].update(labeled="all"), ["eval.labeled: must be full (the whole training pool) or a whole number of samples > 0", "'all'"]),
        (lambda s: s["eval"].update(labeled=500), ["eval.labeled: 500 is larger than the synthetic training pool (128 samples); allowed: full or 1..128"]),
        (lambda s: s["eval"].update(rankme={"samples": 0}), ["eval.rankme.samples: must be full", "(got 0)"]),
        (lambda s: s["eval"].update(labeled=10, knn={"k": 11}), ["eval.knn.k: 11 neighbours but the labeled set (eval.labeled) has 10 samples; allowed: 1..10"]),
        (lambda s: s["eval"].update(probe={"stepz": 1}), ["eval.probe.stepz: unknown key; allowed keys here: steps, batch_size, lr, weight_decay"]),
    ],
)
def test_bad_values_name_the_field_and_what_is_allowed(tiny_study, edit, expected):
    edit(tiny_study)
    text = problems_of(tiny_study)
    for fragment in expected:
        assert fragment in text, f"{fragment!r} not in:\n{text}"


def test_each_evaluation_rule_reads_only_its_own_settings(tiny_study):
    tiny_study["eval"].update(labeled=64, probe={"steps": 7}, knn={"k": 3}, rankme={"samples": 100})
    study = load_study(tiny_study)
    params = {rule: json.loads(study.eval_params(rule)) for rule in ("evaluate", "probe", "knn", "rankme")}
    assert params["evaluate"] == {"batch_size": 256}  # what the whole eval section used to be
    assert params["probe"]["probe"]["steps"] == 7 and params["probe"]["labeled"] == 64 and "knn" not in params["probe"]
    assert params["knn"] == {"batch_size": 256, "labeled": 64, "knn": {"k": 3}}
    assert params["rankme"] == {"batch_size": 256, "rankme": {"samples": 100}}


def test_shipped_ssl_study_is_cpu_sized_and_has_every_method():
    from conftest import REPO

    study = load_study(REPO / "studies" / "ssl-mnist1d.yaml")
    assert set(study.spec.grid.method) == {"supervised", "simclr", "vicreg", "byol"}
    assert "none" in study.spec.grid.augmentation and len(study.spec.grid.n_train) >= 3
    assert study.spec.train.device == "auto"


def test_every_run_gets_rankme_and_self_supervised_runs_the_probes(tiny_study):
    tiny_study["grid"]["method"] = ["supervised", "vicreg"]
    study = load_study(tiny_study)
    stages = {r["method"]: study.stages(r) for r in study.runs}
    assert stages == {"supervised": ["train", "evaluate", "rankme"],
                      "vicreg": ["train", "evaluate", "probe", "knn", "rankme"]}
    tiny_study["eval"]["probe_supervised"] = True  # a representation baseline; no run id changes
    probed = load_study(tiny_study)
    assert all(probed.stages(r) == ["train", "evaluate", "probe", "knn", "rankme"] for r in probed.runs)
    assert [r["run_id"] for r in probed.runs] == [r["run_id"] for r in study.runs]
