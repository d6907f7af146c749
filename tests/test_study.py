"""The study spec: one clear message per bad field, run ids stable under grid edits."""

from __future__ import annotations

import pytest

from dataworth.study import StudyError, load_study


def problems_of(study: dict) -> list[str]:
    with pytest.raises(StudyError) as info:
        load_study(study)
    return info.value.problems


def test_tiny_study_is_valid(tiny_study):
    study = load_study(tiny_study)
    assert study.name == "tiny"
    assert len(study.runs) == 4
    assert len({r["run_id"] for r in study.runs}) == 4


def test_default_params_yaml_is_valid():
    from conftest import REPO

    study = load_study(REPO / "params.yaml")
    assert study.spec.dataset.name == "mnist1d"
    assert "none" in study.spec.grid.augmentation
    assert len(study.spec.grid.seed) >= 2
    assert len(study.spec.grid.n_train) >= 3


@pytest.mark.parametrize(
    "edit, expected",
    [
        (lambda s: s["dataset"].update(name="cifar11"), ["dataset", "unknown name 'cifar11'", "mnist1d", "digits", "synthetic"]),
        (lambda s: s["grid"]["model"].append({"name": "vit", "width": 4}), ["grid.model[1].name", "'mlp'", "'resnet18'"]),
        (lambda s: s["augmentations"]["shift"].append({"op": "rotate", "deg": 3}), ["augmentations.shift[1]", "unknown op 'rotate'", "cutout"]),
        (lambda s: s["grid"]["n_train"].append(1000), ["grid.n_train[2]", "1000 is larger than the synthetic training pool (128 samples)", "1..128"]),
        (lambda s: s["train"].update(steps=0), ["train.steps", "greater than 0"]),
        (lambda s: s["train"].update(stepz=10), ["train.stepz: unknown key", "allowed keys here: steps, batch_size"]),
        (lambda s: s.update(trian={}), ["trian: unknown key", "allowed keys here: study, dataset, augmentations, grid, train, eval"]),
        (lambda s: s["augmentations"]["shift"][0].update(max_shfit=2), ["augmentations.shift[0].max_shfit: unknown key; allowed keys here: p, op, max_shift"]),
        (lambda s: s["grid"]["augmentation"].append("crop_flip"), ["grid.augmentation[2]", "unknown policy 'crop_flip'", "none, shift"]),
        (lambda s: s["augmentations"].update(flip=[{"op": "flip"}]), ["augmentations.flip[0].op", "'flip' does not apply to signal1d data", "allowed: correlated_noise, noise, scale, shift"]),
        (lambda s: s["grid"]["model"].append({"name": "resnet18", "width": 4}), ["grid.model[1].name", "'resnet18' does not take signal1d data", "allowed: cnn1d, linear, mlp, mnist1d_cnn, mnist1d_gru, mnist1d_mlp"]),
        (lambda s: s["train"].update(optimizer="adam"), ["train.optimizer", "'sgd' or 'adamw'"]),
        (lambda s: s["train"].update(device="tpu"), ["train.device", "auto, cpu, cuda, cuda:N"]),
        (lambda s: s["train"].update(warmup_steps=40), ["train", "warmup_steps (40) must be smaller than steps (40)"]),
        (lambda s: s["grid"].update(exclude=[{"seed": 7}]), ["grid.exclude[0].seed", "7 is not a value of the grid"]),
        (lambda s: s["grid"].update(exclude=[{"seed": 0}]), ["every run of the grid is excluded"]),
        (lambda s: s["grid"].update(seed=[]), ["grid.seed", "at least 1 item"]),
        (lambda s: s["augmentations"]["shift"][0].update(max_shift=-1), ["augmentations.shift[0].max_shift: Input should be greater than 0"]),
        (lambda s: s["dataset"].pop("name"), ["dataset", "name"]),
        (lambda s: s.update(resources={"runs_per_job": True}), ["resources.runs_per_job: must be an integer, not true"]),
        (lambda s: s["train"].update(lr=False), ["train.lr: must be a number, not false"]),
    ],
)
def test_bad_values_name_the_field_and_what_is_allowed(tiny_study, edit, expected):
    edit(tiny_study)
    problems = problems_of(tiny_study)
    text = "\n".join(problems)
    for fragment in expected:
        assert fragment in text, f"{fragment!r} not in:\n{text}"


def test_every_problem_is_reported_at_once(tiny_study):
    tiny_study["train"]["steps"] = -5
    tiny_study["train"]["lr"] = 0
    tiny_study["grid"]["model"][0]["widht"] = 3
    problems = problems_of(tiny_study)
    assert len(problems) == 3
    assert any(p.startswith("train.steps") for p in problems)
    assert any(p.startswith("train.lr") for p in problems)
    assert any(p.startswith("grid.model[0].widht") for p in problems)


def test_error_message_names_the_source_file(tmp_path, tiny_study):
    from conftest import write_yaml

    tiny_study["train"]["steps"] = 0
    path = write_yaml(tmp_path / "study.yaml", tiny_study)
    with pytest.raises(StudyError) as info:
        load_study(path)
    assert str(info.value).startswith(f"{path}: 1 problem(s):")
    assert "train.steps" in str(info.value)


def test_not_a_mapping_and_bad_yaml(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("study: [unclosed\n")
    with pytest.raises(StudyError, match="not valid YAML"):
        load_study(bad)
    bad.write_text("- 1\n- 2\n")
    with pytest.raises(StudyError, match="must be a mapping"):
        load_study(bad)
    with pytest.raises(StudyError, match="file not found"):
        load_study(tmp_path / "missing.yaml")


def ids_by_axes(study) -> dict:
    return {(r["n_train"], r["augmentation"]["name"], r["seed"]): r["run_id"] for r in study.runs}


def test_run_ids_are_stable_when_seeds_and_sizes_are_added(tiny_study):
    before = ids_by_axes(load_study(tiny_study))
    tiny_study["grid"]["seed"].append(1)
    tiny_study["grid"]["n_train"].insert(0, 16)
    after = ids_by_axes(load_study(tiny_study))
    assert len(after) == 2 * 3 * 2
    for key, run_id in before.items():
        assert after[key] == run_id


@pytest.mark.parametrize(
    "edit, changed_augmentations",
    [
        (lambda s: s["train"].update(lr=0.1), {"none", "shift"}),
        (lambda s: s["dataset"].update(seed=3), {"none", "shift"}),
        (lambda s: s["grid"]["model"][0].update(width=9), {"none", "shift"}),
        (lambda s: s["augmentations"]["shift"][0].update(max_shift=2), {"shift"}),
    ],
)
def test_run_ids_change_exactly_for_the_runs_whose_config_changed(tiny_study, edit, changed_augmentations):
    base = ids_by_axes(load_study(tiny_study))
    edit(tiny_study)
    edited = ids_by_axes(load_study(tiny_study))
    for key, run_id in base.items():
        assert (edited[key] != run_id) == (key[1] in changed_augmentations), key


def test_device_and_study_name_do_not_change_run_ids(tiny_study):
    base = ids_by_axes(load_study(tiny_study))
    tiny_study["train"]["device"] = "cpu"
    tiny_study["study"] = "renamed"
    assert ids_by_axes(load_study(tiny_study)) == base


def test_exclude_rules_match_all_keys_and_lists(tiny_study):
    tiny_study["grid"]["seed"] = [0, 1]
    tiny_study["grid"]["exclude"] = [{"augmentation": "shift", "n_train": [32]}, {"seed": 1, "n_train": 64}]
    runs = load_study(tiny_study).runs
    combos = {(r["n_train"], r["augmentation"]["name"], r["seed"]) for r in runs}
    assert combos == {(32, "none", 0), (32, "none", 1), (64, "none", 0), (64, "shift", 0)}


def test_run_table_has_the_schema_columns(tiny_study):
    from dataworth.tracking.schemas import RUN_TABLE

    from dataworth.tracking.collect import run_table

    table = run_table(load_study(tiny_study))
    assert list(table.columns) == RUN_TABLE.names
    assert len(table) == 4
    assert set(table["augmentation"]) == {"none", "shift"}
