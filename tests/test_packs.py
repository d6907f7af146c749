"""Packs: which runs one job takes. Hand-computed cases of the planning rules, then the registry."""

from __future__ import annotations

import copy
import json

import pytest

from conftest import complete_file
from dataworth.jobs import RunsFailed, for_each_run
from dataworth.packs import Packs, current_packs, pack_signature, plan_packs
from dataworth.runs import StudyDir
from dataworth.study import load_study, short_hash


def runs(*specs: tuple[str, str]) -> list[dict]:
    """Runs named by (run_id, model): everything else equal."""
    return [{"run_id": run_id, "n_train": 10, "augmentation": {"name": "none"}, "seed": 0, "model": model}
            for run_id, model in specs]


def test_new_runs_are_chunked_in_study_order_within_one_signature():
    study_runs = runs(("a", "m1"), ("b", "m2"), ("c", "m1"), ("d", "m1"), ("e", "m2"))
    registry = plan_packs(study_runs, 2)
    assert registry == {"runs_per_job": 2, "packs": {
        short_hash(["a", "c"]): ["a", "c"], short_hash(["d"]): ["d"], short_hash(["b", "e"]): ["b", "e"],
    }}


def test_signature_ignores_exactly_the_per_run_axes():
    base = {"run_id": "a", "n_train": 10, "augmentation": {"name": "x"}, "seed": 0, "model": "m", "train": {"lr": 1}}
    other = dict(base, run_id="b", n_train=20, augmentation={"name": "y"}, seed=3)
    assert pack_signature(base) == pack_signature(other)
    assert pack_signature(base) != pack_signature(dict(base, train={"lr": 2}))


def test_recorded_packs_keep_their_runs_and_new_runs_get_new_packs():
    first = plan_packs(runs(("a", "m"), ("b", "m"), ("c", "m")), 2)
    grown = plan_packs(runs(("x", "m"), ("a", "m"), ("b", "m"), ("c", "m"), ("y", "m")), 2, first)
    assert grown["packs"] == {**first["packs"], short_hash(["x", "y"]): ["x", "y"]}


def test_a_dropped_run_leaves_its_pack_and_finds_it_again():
    first = plan_packs(runs(("a", "m"), ("b", "m")), 2)
    narrowed = plan_packs(runs(("b", "m")), 2, first)
    assert narrowed == first  # the record keeps "a"
    assert current_packs(narrowed, runs(("b", "m"))) == {short_hash(["a", "b"]): ["b"]}
    assert plan_packs(runs(("a", "m"), ("b", "m")), 2, narrowed) == first


def test_a_new_runs_per_job_repacks_only_packs_that_never_started():
    first = plan_packs(runs(("a", "m"), ("b", "m"), ("c", "m"), ("d", "m")), 1)
    started = {short_hash(["a"])}
    repacked = plan_packs(runs(("a", "m"), ("b", "m"), ("c", "m"), ("d", "m")), 4, first,
                          started=lambda pack_id, run_ids: pack_id in started)
    assert repacked == {"runs_per_job": 4, "packs": {short_hash(["a"]): ["a"], short_hash(["b", "c", "d"]): ["b", "c", "d"]}}
    # The same K again: nothing moves, started or not.
    assert plan_packs(runs(("a", "m"), ("b", "m"), ("c", "m"), ("d", "m")), 4, repacked, started=lambda *_: False) == repacked


def test_registry_is_written_once_and_read_back(tmp_path, tiny_study):
    tiny_study["resources"] = {"runs_per_job": 3}
    study = load_study(tiny_study)
    packs = Packs(study, tmp_path)
    assert [len(m) for m in packs.members.values()] == [3, 1]
    assert sorted(packs.pack_of) == sorted(r["run_id"] for r in study.runs)
    assert packs.write() and not packs.write()
    assert json.loads((tmp_path / "packs.json").read_text()) == packs.registry

    grown = copy.deepcopy(tiny_study)
    grown["grid"]["seed"] = [0, 1]
    again = Packs(load_study(grown), tmp_path)
    assert {k: v for k, v in again.members.items() if k in packs.members} == packs.members
    assert sum(len(m) for m in again.members.values()) == 8


def test_markers_follow_the_runs_files(tmp_path, tiny_study):
    """mark_finished writes a stage's marker once every run of the pack has its file;
    stale_markers finds a marker whose runs lost theirs, naming exactly those runs."""
    tiny_study["resources"] = {"runs_per_job": 3}
    packs = Packs(load_study(tiny_study), tmp_path)
    pack_id, members = next(iter(packs.members.items()))
    assert packs.stages(pack_id) == ["train", "evaluate", "rankme"]
    trained = ("model.pt", "history.parquet", "training.parquet")  # all three, or not trained
    for run_id in members:
        (tmp_path / "runs" / run_id).mkdir(parents=True)
        for name in trained:
            complete_file(tmp_path / "runs" / run_id / name)
    (tmp_path / "runs" / members[2] / "model.pt").unlink()
    assert packs.mark_finished(pack_id) == [] and packs.stale_markers() == []
    complete_file(tmp_path / "runs" / members[2] / "model.pt")
    assert packs.mark_finished(pack_id) == ["train"]
    marker = tmp_path / "packs" / pack_id / "train.done"
    assert marker.exists() and packs.stale_markers() == []
    (tmp_path / "runs" / members[1] / "model.pt").unlink()
    assert packs.stale_markers() == [(marker, f"run(s) {members[1]} (model.pt missing) lack their train output")]
    (tmp_path / "runs" / members[1] / "model.pt").write_bytes(b"PK\x03\x04 cut short")  # a truncated write
    assert packs.stale_markers() == [(marker, f"run(s) {members[1]} (model.pt not a complete torch file "
                                              "(truncated or overwritten)) lack their train output")]


def test_evaluation_markers_record_their_eval_settings(tmp_path, tiny_study):
    """Without Snakemake's own records (a dvc pull, dataworth submit), the marker says which eval
    settings an evaluation ran with; other settings now make it stale."""
    tiny_study["resources"] = {"runs_per_job": 4}
    packs = Packs(load_study(tiny_study), tmp_path)
    pack_id, members = next(iter(packs.members.items()))
    for run_id in members:
        (tmp_path / "runs" / run_id).mkdir(parents=True)
        for name in ("model.pt", "history.parquet", "training.parquet", "summary.parquet", "rankme.parquet"):
            complete_file(tmp_path / "runs" / run_id / name)
    assert packs.mark_finished(pack_id) == ["train", "evaluate", "rankme"]
    marker = tmp_path / "packs" / pack_id / "evaluate.done"
    assert json.loads(marker.read_text()) == {"batch_size": 256}
    assert (tmp_path / "packs" / pack_id / "train.done").read_text() == "\n"
    assert packs.stale_markers() == []
    tiny_study["eval"]["batch_size"] = 7
    changed = Packs(load_study(tiny_study), tmp_path)
    assert [(m.name, why) for m, why in changed.stale_markers()] == [
        ("evaluate.done", 'it ran with other eval settings ({"batch_size": 256})'),
        ("rankme.done", 'it ran with other eval settings ({"batch_size": 256, "rankme": {"samples": "full"}})'),
    ]


def test_an_unreadable_registry_is_a_clear_error(tmp_path, tiny_study):
    (tmp_path / "packs.json").write_text("{not json")
    with pytest.raises(ValueError, match="unreadable pack registry .* delete it to pack anew"):
        Packs(load_study(tiny_study), tmp_path)


def test_for_each_run_goes_on_after_a_failure_and_names_it(tmp_path, capsys):
    done = []

    def work(run, out):
        print(f"working on {run['run_id']}")
        if run["run_id"] == "b":
            raise RuntimeError("disk full")
        done.append(run["run_id"])

    with pytest.raises(RunsFailed, match=r"train failed for 1 of 3 runs: b \(each run's logs/train.log"):
        for_each_run(runs(("a", "m"), ("b", "m"), ("c", "m")), StudyDir(tmp_path), "train", work)
    assert done == ["a", "c"]
    assert (tmp_path / "runs" / "b" / "logs" / "train.log").read_text().count("disk full") >= 1
    assert (tmp_path / "runs" / "a" / "logs" / "train.log").read_text() == "working on a\n"  # only its own lines
    job_log = capsys.readouterr()
    assert "[1/3] working on a" in job_log.out and "[3/3] working on c" in job_log.out


def test_for_each_run_skips_done_runs(tmp_path, capsys):
    seen = []
    for_each_run(runs(("a", "m"), ("b", "m")), StudyDir(tmp_path), "train", lambda run, out: seen.append(run["run_id"]),
                 done=lambda out: out.path.name == "a")
    assert seen == ["b"] and "[1/2] run a: already done, skipped" in capsys.readouterr().out
