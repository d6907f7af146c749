"""Fixed repetitions (issue 17 item 2): r augmented copies drawn once, trained on instead of fresh draws.

A rounds policy also trains through the workflow in test_augment_image_workflow.py."""

from __future__ import annotations

import copy

import pytest
import torch

from dataworth.augment import build_policy
from dataworth.data import prepare_dataset
from dataworth.runs import RunDir
from dataworth.study import StudyError, load_study
from dataworth.tracking.schemas import HISTORY, read_parquet
from dataworth.train import train_run
from dataworth.train.loop import train
from dataworth.train.repetitions import fixed_copies
from dataworth.train.run import prepare_run

from conftest import TINY_STUDY

NOISE = [{"op": "noise", "std": 1.0}]


def study_with(**policies) -> dict:
    study = copy.deepcopy(TINY_STUDY)
    study["augmentations"].update(policies)
    study["grid"]["augmentation"] += list(policies)
    study["grid"]["n_train"] = [32]
    study["train"]["steps"] = 6
    return study


def run_of(study: dict, policy: str) -> dict:
    return next(r for r in load_study(study).runs if r["augmentation"]["name"] == policy)


@pytest.fixture
def data(tmp_path):
    path = tmp_path / "data.pt"
    prepare_dataset(TINY_STUDY["dataset"], path)
    return path


def test_policies_without_rounds_keep_their_run_ids():
    before = {r["run_id"] for r in load_study(copy.deepcopy(TINY_STUDY)).runs}
    study = copy.deepcopy(TINY_STUDY)
    # The same policy written as a mapping without rounds is the same policy: same ids.
    study["augmentations"]["shift"] = {"ops": study["augmentations"]["shift"]}
    assert {r["run_id"] for r in load_study(study).runs} == before
    # Adding a policy with rounds adds runs and changes no other run's id.
    plain = {r["run_id"] for r in load_study(study_with()).runs}
    runs = load_study(study_with(reps={"ops": NOISE, "rounds": 3})).runs
    assert {r["run_id"] for r in runs if r["augmentation"]["name"] != "reps"} == plain
    reps = [r for r in runs if r["augmentation"]["name"] == "reps"]
    assert reps[0]["augmentation"]["rounds"] == 3 and reps[0]["augmentation"]["first_round_clean"] is False
    changed = study_with(reps={"ops": NOISE, "rounds": 3, "first_round_clean": True})
    assert run_of(changed, "reps")["run_id"] != reps[0]["run_id"]


def test_rounds_are_validated_with_one_line_each():
    with pytest.raises(StudyError) as err:
        load_study(study_with(b={"ops": [], "rounds": 0}))
    assert err.value.problems == ["augmentations.b.rounds: Input should be greater than 0 (got 0)"]
    with pytest.raises(StudyError) as err:
        load_study(study_with(b=[{"op": "noise"}]))  # the list form's errors name the list's items
    assert err.value.problems == ["augmentations.b[0].std: required key is missing"]
    with pytest.raises(StudyError) as err:
        load_study(study_with(a={"ops": [], "first_round_clean": True}))
    assert err.value.problems == ["augmentations.a.first_round_clean: needs rounds; allowed: set rounds, or leave "
                                  "first_round_clean false"]
    ssl = study_with(c={"ops": NOISE, "rounds": 2})
    ssl["grid"]["method"] = ["supervised", "simclr"]
    with pytest.raises(StudyError, match=r"augmentations\.c\.rounds: a fixed set of copies trains supervised runs only"):
        load_study(ssl)
    # The device-memory bound: 32 images x 32 float32 values x rounds > 8 GiB.
    big = study_with(d={"ops": NOISE, "rounds": 3_000_000})
    with pytest.raises(StudyError, match=r"augmentations\.d\.rounds: .* exceed the 8 GiB .*allowed: rounds <= 2097152"):
        load_study(big)


def test_one_clean_round_trains_exactly_like_no_augmentation(tmp_path, data):
    study = study_with(clean1={"ops": NOISE, "rounds": 1, "first_round_clean": True})
    a, b = RunDir(tmp_path / "none"), RunDir(tmp_path / "clean1")
    train_run(run_of(study, "none"), data, a)
    train_run(run_of(study, "clean1"), data, b)
    ha, hb = read_parquet(a.history, HISTORY), read_parquet(b.history, HISTORY)
    assert ha["loss"].tolist() == hb["loss"].tolist()
    wa, wb = torch.load(a.model), torch.load(b.model)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def _prepared(tmp_path, data, run):
    return prepare_run(run, data, RunDir(tmp_path / run["run_id"]), torch.device("cpu"), 0.0)


def test_the_fixed_set_is_fixed_by_the_seed_and_holds_the_rounds(tmp_path, data):
    study = study_with(reps={"ops": NOISE, "rounds": 3, "first_round_clean": True})
    run = run_of(study, "reps")
    clean = _prepared(tmp_path, data, run_of(study, "none")).member.x
    member = _prepared(tmp_path, data, run).member
    n = len(clean)
    assert member.x.shape == (3 * n, *clean.shape[1:]) and torch.equal(member.y, member.y[:n].repeat(3))
    assert torch.equal(member.x[:n], clean)  # first round: the clean images
    # Rounds 2 and 3: clean + unit noise, different in each round (noise std 1 around 0).
    for r in (1, 2):
        diff = member.x[r * n:(r + 1) * n] - clean
        assert 0.8 < diff.std().item() < 1.2
    assert not torch.equal(member.x[n:2 * n], member.x[2 * n:])
    again = _prepared(tmp_path, data, run).member.x
    assert torch.equal(again, member.x)
    other_seed = {**run, "seed": 1}
    assert not torch.equal(_prepared(tmp_path, data, other_seed).member.x[n:], member.x[n:])


def test_every_training_batch_comes_from_the_fixed_set(tmp_path, data):
    study = study_with(reps={"ops": NOISE, "rounds": 2})
    run = run_of(study, "reps")
    prepared = _prepared(tmp_path, data, run)
    member, seen = prepared.member, []
    policy = member.policy

    def spy(batch, gen):
        out = policy(batch, gen)
        seen.append(out)
        return out

    member.policy = spy
    train(prepared.objective, [member], run["train"])
    batches = torch.cat(seen)
    assert len(batches) == run["train"]["steps"] * run["train"]["batch_size"]
    # Each trained sample equals one of the 2 x 32 precomputed copies, exactly: no fresh draw.
    matches = (batches[:, None] == member.x[None]).flatten(2).all(-1)
    assert (matches.sum(1) == 1).all()
    # Over 6 batches of 32 from 64 copies, both rounds are sampled.
    rows = matches.float().argmax(1)
    assert (rows < 32).any() and (rows >= 32).any()


def test_pixel_copies_are_uint8_and_follow_the_policy_draws():
    # Pixel datasets: the copies are stored as the paper stores them (uint8), and each round is
    # the policy's draw from the copies' generator, in round order.
    x = torch.randint(0, 256, (10, 3, 8, 8), dtype=torch.uint8)
    policy = build_policy([{"op": "hflip", "p": 0.5}, {"op": "crop", "padding": 2}])
    copies = fixed_copies(x, policy, 2, False, torch.Generator().manual_seed(5), True, 2**20)
    gen = torch.Generator().manual_seed(5)
    expected = torch.cat([policy(x.float(), gen), policy(x.float(), gen)])
    assert copies.dtype == torch.uint8 and torch.equal(copies, expected.to(torch.uint8))
    with pytest.raises(ValueError, match=r"augmentation\.rounds: 10 images x 2 rounds"):
        fixed_copies(x, policy, 2, False, torch.Generator(), True, 100)


def test_pixel_dataset_rounds_are_uint8_copies_normalised_only_when_trained(tmp_path, monkeypatch):
    from fixtures_data import write_cifar10

    from dataworth.train.repetitions import repetition_seed

    monkeypatch.delenv("DATAWORTH_DATA", raising=False)
    monkeypatch.delenv("DATAWORTH_CACHE", raising=False)
    write_cifar10(tmp_path / "files", per_batch=20)  # 100 images: every class of the test set
    ops = [{"op": "trivial_augment"}]
    study = {"study": "cifar-reps", "dataset": {"name": "cifar10", "root": str(tmp_path / "files"), "ood": "cifar10:test"},
             "augmentations": {"none": [], "ta_r3": {"ops": ops, "rounds": 3, "first_round_clean": True}},
             "grid": {"n_train": [20], "augmentation": ["none", "ta_r3"], "model": [{"name": "cnn2d", "width": 4}],
                      "seed": [0]},
             "train": {"steps": 2, "batch_size": 8}}
    runs = {r["augmentation"]["name"]: r for r in load_study(study).runs}
    data = tmp_path / "data.pt"
    prepare_dataset(study["dataset"], data)
    clean = _prepared(tmp_path, data, runs["none"]).member.x
    member = _prepared(tmp_path, data, runs["ta_r3"]).member
    assert clean.dtype == member.x.dtype == torch.uint8 and member.x.shape == (60, 3, 32, 32)
    assert torch.equal(member.x[:20], clean)
    expected = fixed_copies(clean, build_policy(ops), 2, False, torch.Generator().manual_seed(repetition_seed(0)),
                            True, 2**30)
    assert torch.equal(member.x[20:], expected)
    # The member's policy only converts to network input: the same as the clean policy's on a clean batch
    # with no augmentation (mean/std normalisation of 0..255 pixels).
    none_policy = _prepared(tmp_path, data, runs["none"]).member.policy
    batch = member.x[:8]
    assert torch.equal(member.policy(batch, torch.Generator()), none_policy(batch, torch.Generator()))
