"""Hostile study files (issue 15): each is refused with one message naming the field and what is
allowed, before anything runs."""

from __future__ import annotations

import pytest
import yaml

from dataworth.cluster.resources import slurm_settings, snakemake_resources
from dataworth.study import MAX_GENERATED_DATASET_BYTES, NAME_MAX_LENGTH, StudyError, load_study


def problems_of(study) -> list[str]:
    with pytest.raises(StudyError) as info:
        load_study(study)
    return info.value.problems


def one_problem(study) -> str:
    problems = problems_of(study)
    assert len(problems) == 1, problems
    return problems[0]


# --- item 1: nothing in a study reaches a shell as a command -------------------------------------

@pytest.mark.parametrize("extra, refused", [
    ("--constraint=a100; touch /tmp/x", "'--constraint=a100;' is not an sbatch option"),
    ("--constraint=a100 && touch /tmp/x", "'&&'"),
    ("--comment=$(touch /tmp/x)", "'--comment=$(touch'"),
    ("--comment=`id`", "'--comment=`id`'"),
    ("--constraint=a100 | tee /tmp/x", "'|'"),
    ("--output=/tmp/x > /tmp/y", "'>'"),
    ("touch /tmp/x", "'touch'"),
    ("--comment='a b'", "'--comment=a b'"),
    ("--constraint='a100", "not a list of sbatch options"),
])
def test_slurm_extra_allows_only_sbatch_options(tiny_study, extra, refused):
    tiny_study["resources"] = {"slurm": {"extra": extra}}
    problem = one_problem(tiny_study)
    assert problem.startswith("resources.slurm.extra: ")
    assert refused in problem


@pytest.mark.parametrize("field", ["partition", "account", "qos"])
def test_slurm_names_reaching_the_sbatch_line_are_plain(tiny_study, field):
    tiny_study["resources"] = {"slurm": {field: "gpu;touch /tmp/x"}}
    problem = one_problem(tiny_study)
    assert problem.startswith(f"resources.slurm.{field}: must be a SLURM name")


def test_plain_sbatch_options_pass_unchanged(tiny_study):
    tiny_study["resources"] = {"slurm": {"extra": "--constraint=a100|h100 --exclusive -C a100", "partition": "gpu,cpu"}}
    with pytest.raises(StudyError):  # '|' in a value is a shell pipe too
        load_study(tiny_study)
    tiny_study["resources"] = {"slurm": {"extra": "--constraint=a100 --exclusive -C a100", "partition": "gpu,cpu"}}
    spec = load_study(tiny_study).spec.resources.slurm
    resources = snakemake_resources(spec, "evaluate", environ={})
    assert resources["slurm_extra"] == "--constraint=a100 --exclusive -C a100"
    assert resources["slurm_partition"] == "gpu,cpu"


def test_environment_overrides_are_checked_like_the_study(tiny_study):
    spec = load_study(tiny_study).spec.resources.slurm
    with pytest.raises(ValueError, match="DATAWORTH_SLURM_EXTRA: '--exclusive;' is not an sbatch option"):
        slurm_settings(spec, {"DATAWORTH_SLURM_EXTRA": "--exclusive; rm -rf ~"})
    with pytest.raises(ValueError, match="DATAWORTH_SLURM_PARTITION: must be a SLURM name"):
        slurm_settings(spec, {"DATAWORTH_SLURM_PARTITION": "gpu$(id)"})


# --- item 2: a repeated grid value ---------------------------------------------------------------

def test_repeated_augmentation_in_the_grid_is_refused(tiny_study):
    tiny_study["grid"]["augmentation"] = ["none", "shift", "shift"]
    assert one_problem(tiny_study) == "grid.augmentation: duplicate policies in ['none', 'shift', 'shift']"


# --- item 3: a key given twice --------------------------------------------------------------------

def test_duplicate_yaml_key_names_the_key_and_its_lines(tmp_path, tiny_study):
    text = yaml.safe_dump(tiny_study, sort_keys=False)
    text = text.replace("  none: []\n", "  none: []\n  none:\n  - op: shift\n    max_shift: 1\n")
    path = tmp_path / "study.yaml"
    path.write_text(text)
    lines = text.splitlines()
    first = lines.index("  none: []") + 1
    problem = one_problem(path)
    assert problem == f"duplicate key 'none' at line {first + 1} (first at line {first}); each key may appear once in a mapping"


def test_duplicate_json_key_is_refused(tmp_path):
    path = tmp_path / "study.json"
    path.write_text('{"study": "a", "study": "b"}')
    assert one_problem(path) == "duplicate key 'study'; each key may appear once in an object"


def test_study_json_reads_small_floats_as_numbers(tmp_path, tiny_study):
    # json.dumps writes 1e-05, which YAML 1.1 reads as text: study.json is read as JSON.
    tiny_study["train"]["weight_decay"] = 1e-05
    study = load_study(tiny_study)
    path = tmp_path / "study.json"
    study.write_json(path)
    assert "1e-05" in path.read_text()
    assert load_study(path).runs == study.runs


# --- item 5: values that validate but cannot work -------------------------------------------------

def test_study_name_is_bounded_by_the_file_name_limit(tiny_study):
    tiny_study["study"] = "a" * 300
    problem = one_problem(tiny_study)
    assert problem.startswith(f"study: 300 characters; allowed: at most {NAME_MAX_LENGTH}")
    assert "255 bytes" in problem
    tiny_study["study"] = "a" * NAME_MAX_LENGTH
    load_study(tiny_study)


@pytest.mark.parametrize("key, value", [("train_pool", 1_000_000_000), ("test_size", 100_000_000)])
def test_generated_dataset_sizes_are_bounded_by_memory(tiny_study, key, value):
    tiny_study["dataset"][key] = value
    problem = one_problem(tiny_study)
    # synthetic, length 32: 4 GiB / (4 bytes x 32 values) samples at most
    largest = MAX_GENERATED_DATASET_BYTES // (4 * 32)
    assert largest == 33_554_432
    assert problem.startswith("dataset: train_pool")
    assert f"allowed: train_pool + 2 x test_size <= {largest}" in problem


def test_mnist1d_sizes_are_bounded_too(tiny_study):
    tiny_study["dataset"] = {"name": "mnist1d", "train_pool": 1_000_000_000}
    tiny_study["grid"]["n_train"] = [32]
    assert "<= 26843545" in one_problem(tiny_study)  # 4 GiB / (4 bytes x 40 values)


def test_width_is_bounded_by_a_stated_memory_estimate(tiny_study):
    tiny_study["grid"]["model"] = [{"name": "cnn1d", "width": 100_000_000}]
    problem = one_problem(tiny_study)
    # cnn1d has 18 width**2 parameters at least: width <= sqrt(1e9 / 18) = 7453
    assert problem.startswith("grid.model[0]: width 100000000 gives cnn1d at least 1.80e+17 parameters")
    assert "allowed: width 1..7453" in problem
    tiny_study["grid"]["model"] = [{"name": "cnn1d", "width": 7453}]
    load_study(tiny_study)
    tiny_study["grid"]["model"] = [{"name": "cnn1d", "width": 7454}]
    problems_of(tiny_study)


@pytest.mark.parametrize("value", [float("inf"), float("-inf"), float("nan")])
def test_learning_rate_must_be_finite(tiny_study, value):
    tiny_study["train"]["lr"] = value
    assert one_problem(tiny_study) == f"train.lr: {value} is not a finite number; allowed: a finite number"


def test_infinity_anywhere_is_refused(tmp_path, tiny_study):
    tiny_study["augmentations"]["shift"] = [{"op": "noise", "std": float("inf")}]
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(tiny_study).replace("std: .inf", "std: .inf"))
    assert one_problem(path) == "augmentations.shift[0].std: inf is not a finite number; allowed: a finite number"


@pytest.mark.parametrize("edit, expected", [
    (lambda s: s["train"].update(steps="200"), "train.steps: must be a number, not the text '200'; write it without quotes"),
    (lambda s: s["train"].update(lr="0.1"), "train.lr: must be a number, not the text '0.1'"),
    (lambda s: s["train"].update(lr="1e-3"), "(YAML reads 1e-3 as text: write 1.0e-3)"),
    (lambda s: s["grid"].update(n_train=[32, "64"]), "grid.n_train[1]: must be a number, not the text '64'"),
    (lambda s: s["dataset"].update(test_size="64"), "dataset.test_size: must be a number, not the text '64'"),
    (lambda s: s["augmentations"]["shift"][0].update(max_shift="3"), "augmentations.shift[0].max_shift: must be a number"),
])
def test_quoted_numbers_are_an_error(tiny_study, edit, expected):
    edit(tiny_study)
    assert expected in one_problem(tiny_study)


# --- item 10: policy names --------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["shi\nft", "a|b", "../x", "", "a" * (NAME_MAX_LENGTH + 1)])
def test_policy_names_are_restricted_like_study_names(tiny_study, name):
    tiny_study["augmentations"][name] = tiny_study["augmentations"].pop("shift")
    tiny_study["grid"]["augmentation"] = ["none", name]
    assert f"augmentations: policy name {name!r} is not allowed" in one_problem(tiny_study)


# --- item 6 (the study part): files that are not study files --------------------------------------

def test_a_folder_or_a_non_utf8_file_is_one_problem(tmp_path):
    assert one_problem(tmp_path) == f"{tmp_path} is a folder; give a study file (.yaml)"
    path = tmp_path / "latin1.yaml"
    path.write_bytes("study: caf\u00e9\n".encode("latin-1"))
    assert one_problem(path) == "not UTF-8 text (byte 10: b'\\xe9'); save the file as UTF-8"


# --- hostile cases beyond the issue ------------------------------------------------------------------

def test_a_billion_laughs_document_is_refused_quickly(tmp_path):
    lines = ['a: &a ["x","x","x","x","x","x","x","x","x"]']
    for prev, name in zip("abcdefg", "bcdefgh"):
        lines.append(f"{name}: &{name} [{', '.join([f'*{prev}'] * 9)}]")  # 9**8 values written out
    path = tmp_path / "laughs.yaml"
    path.write_text("\n".join(lines) + "\n")
    assert one_problem(path) == "more than 100000 values once its YAML aliases (*name) are written out; a study has a few hundred"


def test_yaml_aliases_for_reuse_still_work(tmp_path, tiny_study):
    text = yaml.safe_dump(tiny_study, sort_keys=False)
    text = text.replace("  shift:\n  - op: shift\n    max_shift: 3\n",
                        "  shift: &s\n  - op: shift\n    max_shift: 3\n  shift_again: *s\n")
    path = tmp_path / "s.yaml"
    path.write_text(text)
    study = load_study(path)
    assert study.spec.augmentations["shift_again"] == study.spec.augmentations["shift"]


def test_a_device_or_a_fifo_is_not_read(tmp_path):
    import os

    assert one_problem("/dev/zero") == "/dev/zero is not a regular file; give a study file (.yaml)"
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)  # reading it would block forever
    assert one_problem(fifo) == f"{fifo} is not a regular file; give a study file (.yaml)"


@pytest.mark.parametrize("extra, why", [
    ("--wrap=reboot", "--wrap is not allowed here: it replaces the job's command"),
    ("--export=LD_PRELOAD=/tmp/x.so", "--export is not allowed here"),
    ("-D /tmp", "-D is not allowed here: jobs run in the repository root"),
])
def test_sbatch_options_that_change_what_runs_are_refused(tiny_study, extra, why):
    tiny_study["resources"] = {"slurm": {"extra": extra}}
    assert why in one_problem(tiny_study)


def test_integers_beyond_int64_are_refused(tiny_study):
    tiny_study["grid"]["seed"] = [0, 2**64]
    assert one_problem(tiny_study) == f"grid.seed[1]: {2**64} does not fit in 64 bits; allowed: at most {2**63 - 1}"
