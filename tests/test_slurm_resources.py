"""What cluster jobs ask for: the study's resources.slurm, environment overrides, run selection.

No cluster needed; tests/test_slurm.py runs the real thing.
"""

from __future__ import annotations

import pytest

from conftest import complete_file
from dataworth.cluster.resources import slurm_settings, snakemake_resources, submitit_parameters
from dataworth.cluster.submit import select_runs
from dataworth.runs import StudyDir
from dataworth.study import StudyError, load_study


def test_resources_are_optional_and_no_part_of_run_ids(tiny_study):
    plain = load_study(tiny_study)
    assert plain.spec.resources.slurm.gpus == 1 and plain.spec.resources.slurm.runtime_min == 60
    tiny_study["resources"] = {"slurm": {"gpus": 0, "cpus": 8, "runtime_min": 600, "partition": "gpu", "extra": "--exclusive"}}
    assert [r["run_id"] for r in load_study(tiny_study).runs] == [r["run_id"] for r in plain.runs]


def test_bad_resources_name_the_field(tiny_study):
    tiny_study["resources"] = {"slurm": {"gpu": 1, "mem_mb": 0, "extra": "--time=10 --exclusive"}}
    with pytest.raises(StudyError) as err:
        load_study(tiny_study)
    message = str(err.value)
    assert "resources.slurm.gpu: unknown key; allowed keys here: gpus, cpus" in message
    assert "resources.slurm.mem_mb:" in message
    assert "resources.slurm.extra: sets what resources.slurm.runtime_min sets" in message

    tiny_study["resources"] = {"slurm": {"runtime_min": 2, "signal_seconds": 180}}
    with pytest.raises(StudyError, match=r"signal_seconds \(180\) must be more than 60 s shorter than the time limit"):
        load_study(tiny_study)


def test_snakemake_resources_carry_the_signal_for_training_only(tiny_study):
    tiny_study["resources"] = {"slurm": {"gpus": 2, "cpus": 6, "mem_mb": 8000, "runtime_min": 30,
                                         "signal_seconds": 120, "account": "lab", "extra": "--constraint=a100"}}
    spec = load_study(tiny_study).spec.resources.slurm
    train = snakemake_resources(spec, "train", environ={})
    assert train == {"runtime": 30, "mem_mb": 8000, "cpus_per_task": 6, "gpu": 2, "slurm_account": "lab",
                     "slurm_extra": "--signal=TERM@120 --constraint=a100"}
    evaluate = snakemake_resources(spec, "evaluate", environ={})
    assert evaluate["slurm_extra"] == "--constraint=a100" and "slurm_partition" not in evaluate


def test_environment_overrides_win_and_are_checked(tiny_study):
    tiny_study["resources"] = {"slurm": {"partition": "gpu", "extra": "--constraint=a100"}}
    spec = load_study(tiny_study).spec.resources.slurm
    env = {"DATAWORTH_SLURM_PARTITION": "preempt", "DATAWORTH_SLURM_QOS": "low", "DATAWORTH_SLURM_EXTRA": "--nice=10"}
    assert slurm_settings(spec, env).partition == "preempt"
    resources = snakemake_resources(spec, "train", environ=env)
    assert resources["slurm_partition"] == "preempt" and resources["qos"] == "low"
    assert resources["slurm_extra"] == "--signal=TERM@180 --nice=10"
    with pytest.raises(ValueError, match="DATAWORTH_SLURM_EXTRA: sets what resources.slurm.partition sets"):
        snakemake_resources(spec, "train", environ={"DATAWORTH_SLURM_EXTRA": "-p debug"})


def test_submitit_parameters(tiny_study):
    tiny_study["resources"] = {"slurm": {"mem_mb": 4000, "runtime_min": 20, "signal_seconds": 90,
                                         "qos": "high", "extra": "--constraint=a100 --exclusive"}}
    params = submitit_parameters(load_study(tiny_study).spec.resources.slurm, environ={})
    assert params["timeout_min"] == 20 and params["slurm_mem"] == "4000M" and params["slurm_qos"] == "high"
    assert params["slurm_signal_delay_s"] == 90 and params["gpus_per_node"] == 1
    assert params["slurm_additional_parameters"] == {"requeue": True, "constraint": "a100", "exclusive": True}
    with pytest.raises(ValueError, match="resources.slurm.extra: '-x'"):
        submitit_parameters(load_study(tiny_study).spec.resources.slurm, environ={"DATAWORTH_SLURM_EXTRA": "-x node1"})


def test_select_runs_by_the_state_of_their_directory(tiny_study, tmp_path):
    study = load_study(tiny_study)
    ids = [r["run_id"] for r in study.runs]
    results = tmp_path / "results"
    StudyDir(results / study.name).run_dir(ids[1]).path.mkdir(parents=True)  # started, never trained
    trained = StudyDir(results / study.name).run_dir(ids[2])
    trained.path.mkdir(parents=True)
    for path in (trained.model, trained.history, trained.training):  # trained: all three written
        complete_file(path)

    def chosen(status, runs=None):
        return [r["run_id"] for r in select_runs(study, results, status, runs)]

    assert chosen("unfinished") == ids
    assert chosen("pending") == [ids[0], ids[3]]
    assert chosen("failed") == [ids[1]]
    assert chosen("trained") == [ids[2]]
    assert chosen("unfinished", [ids[3], ids[1]]) == [ids[1], ids[3]]
    with pytest.raises(ValueError, match="--runs: not runs of study 'tiny': nope"):
        chosen("all", ["nope"])


def test_the_literal_profile_name_slurm_resolves_at_the_repository_root(monkeypatch):
    from conftest import REPO
    from snakemake.cli import parse_args

    monkeypatch.chdir(REPO)
    _, args = parse_args(["--profile", "slurm", "--dry-run"])
    assert args.executor == "slurm" and args.slurm_requeue and args.retries >= 1
    assert args.max_status_checks_per_second <= 1  # sacct load: see the profile
