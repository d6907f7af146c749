"""Held-out learning curves (train.eval_every, train/heldout.py): the numbers against a NumPy
reference, one forward for a pack equal to each run alone, training left exactly as it was, and
the rows a run and a pack write."""

from __future__ import annotations

import copy
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from conftest import TINY_STUDY
from dataworth.data import load_dataset, prepare_dataset
from dataworth.evaluate.classification import evaluate_split
from dataworth.files import load_torch
from dataworth.models import build_model
from dataworth.runs import RunDir
from dataworth.study import StudyError, load_study
from dataworth.tracking.schemas import HISTORY, read_parquet
from dataworth.train import train_run
from dataworth.train.heldout import HeldOutCurves, fixed_subset
from dataworth.train.packed import pack_modules
from dataworth.train.run import train_runs_together


def numpy_cross_entropy_and_accuracy(logits: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    shifted = logits - logits.max(1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(1, keepdims=True))
    return float(-log_probs[np.arange(len(y)), y].mean()), float((logits.argmax(1) == y).mean())


def tiny_data(n_test=10, n_ood=7, features=3, classes=4):
    gen = torch.Generator().manual_seed(1)
    x = {s: torch.randn(n, features, generator=gen) for s, n in (("test", n_test), ("ood", n_ood))}
    y = {s: torch.randint(0, classes, (len(x[s]),), generator=gen) for s in x}
    return SimpleNamespace(x=x, y=y, eval_input=lambda batch: batch)


def test_losses_and_accuracies_match_numpy_and_a_pack_equals_each_run_alone():
    data = tiny_data()
    torch.manual_seed(0)
    models = [nn.Linear(3, 4), nn.Linear(3, 4)]
    curves = HeldOutCurves(data, every=5, samples=100, batch_size=4)  # batches of 4: the sums cross batches
    for model in models:
        [row] = curves(model, 1, 10, 40)
        for name in ("test", "ood"):
            logits = model(data.x[name]).detach().numpy()
            loss, accuracy = numpy_cross_entropy_and_accuracy(logits, data.y[name].numpy())
            assert row[f"{name}_loss"] == pytest.approx(loss, rel=1e-6)
            assert row[f"{name}_accuracy"] == pytest.approx(accuracy)
    packed = pack_modules(models)
    together = curves(packed, 2, 10, 40)
    for model, row in zip(models, together, strict=True):
        assert row == pytest.approx(curves(model, 1, 10, 40)[0], rel=1e-6)
    assert curves(models[0], 1, 7, 40) == [{}] and curves(models[0], 1, 40, 40)[0]  # every 5 steps, and the last


def test_the_subset_is_fixed_sorted_and_at_most_the_samples():
    first, again = fixed_subset(100, 30, "cpu"), fixed_subset(100, 30, "cpu")
    assert torch.equal(first, again) and len(first) == 30 and len(set(first.tolist())) == 30
    assert first.tolist() == sorted(first.tolist()) and 0 <= first.min() and first.max() < 100
    assert torch.equal(fixed_subset(20, 30, "cpu"), torch.arange(20))
    data = tiny_data(n_test=50)
    curves = HeldOutCurves(data, every=1, samples=30, batch_size=8)
    assert torch.equal(curves.sets["test"][1], data.y["test"][fixed_subset(50, 30, "cpu")])
    assert len(curves.sets["ood"][1]) == 7


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Runs of the tiny study with and without held-out curves every 20 of 40 steps, and a pack."""
    root = tmp_path_factory.mktemp("heldout")
    data_path = root / "data.pt"
    prepare_dataset(TINY_STUDY["dataset"], data_path)

    def runs(**train):
        spec = copy.deepcopy(TINY_STUDY)
        spec["train"].update(train)
        return [r for r in load_study(spec).runs if r["n_train"] == 64]  # none and shift

    plain, watched = runs(), runs(eval_every=20, eval_samples=48)
    assert [r["run_id"] for r in plain] == [r["run_id"] for r in watched]  # execution-only: same run ids
    out = {}
    for name, run in (("plain", plain[0]), ("watched", watched[0]), ("watched_b", watched[1])):
        out[name] = RunDir(root / name)
        train_run(run, data_path, out[name])
    out["pack"] = [RunDir(root / f"pack{i}") for i in range(2)]
    train_runs_together(watched, data_path, out["pack"])
    return out, data_path, watched


def test_curves_leave_training_unchanged_and_match_an_independent_evaluation(trained):
    out, data_path, runs = trained
    plain, watched = read_parquet(out["plain"].history, HISTORY), read_parquet(out["watched"].history, HISTORY)
    assert plain["loss"].tolist() == watched["loss"].tolist()  # the same batches, augmentations, updates
    for key, value in load_torch(out["plain"].model).items():
        assert torch.equal(value, load_torch(out["watched"].model)[key]), key
    assert plain["test_accuracy"].isna().all()
    rows = watched.dropna(subset=["test_accuracy"])
    assert rows["step"].tolist() == [20, 40] and rows[["test_loss", "ood_loss", "ood_accuracy"]].notna().all().all()
    # The last point: the trained model on the same 48 test samples, through the evaluate stage's code.
    data = load_dataset(data_path, torch.device("cpu"))
    model = build_model("cnn1d", 8, data.sample_shape, data.num_classes)
    model.load_state_dict(load_torch(out["watched"].model))
    keep = fixed_subset(len(data.y["test"]), 48, "cpu")
    loss, accuracy = evaluate_split(model, data.x["test"][keep], data.y["test"][keep], 256)
    assert rows["test_loss"].iloc[-1] == pytest.approx(loss, rel=1e-5)
    assert rows["test_accuracy"].iloc[-1] == accuracy


def test_a_pack_writes_each_runs_curve(trained):
    out, _, _ = trained
    for alone, packed in ((out["watched"], out["pack"][0]), (out["watched_b"], out["pack"][1])):
        a = read_parquet(alone.history, HISTORY).dropna(subset=["test_accuracy"])
        p = read_parquet(packed.history, HISTORY).dropna(subset=["test_accuracy"])
        assert p["step"].tolist() == [20, 40]
        # Equal to the run trained alone up to floating-point summation order.
        assert p["test_loss"].tolist() == pytest.approx(a["test_loss"].tolist(), rel=1e-3)
        assert np.abs(p["test_accuracy"].to_numpy() - a["test_accuracy"].to_numpy()).max() <= 1 / 48 + 1e-9


def test_eval_every_must_fall_on_history_rows():
    spec = copy.deepcopy(TINY_STUDY)
    spec["train"]["eval_every"] = 15  # log_every is 10
    with pytest.raises(StudyError, match=r"eval_every \(15\) must be a multiple of log_every \(10\)"):
        load_study(spec)
