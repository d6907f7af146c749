"""Training: schedule, batch order, CPU determinism, divergence, and the run's files."""

from __future__ import annotations

import math

import pandas as pd
import pytest
import torch

from dataworth.data import prepare_dataset
from dataworth.evaluate import evaluate_run
from dataworth.runs import RunDir
from dataworth.study import load_study
from dataworth.tracking.schemas import HISTORY, SUMMARY, TRAINING, read_parquet
from dataworth.train import seed_streams, train_run
from dataworth.train.loop import BatchStream
from dataworth.train.schedule import warmup_cosine


def test_warmup_then_cosine_by_hand():
    # 4 warm-up steps of 10: 1/4, 2/4, 3/4, 4/4, then cosine over the 6 remaining steps.
    values = [warmup_cosine(s, 4, 10) for s in range(10)]
    assert values[:4] == [0.25, 0.5, 0.75, 1.0]
    assert values[4] == 1.0
    assert values[5] == pytest.approx(0.5 * (1 + math.cos(math.pi / 6)))
    assert values[7] == pytest.approx(0.5)
    assert warmup_cosine(10, 4, 10) == pytest.approx(0.0)
    assert warmup_cosine(0, 0, 10) == 1.0


@pytest.mark.parametrize("n, batch", [(10, 3), (5, 8), (12, 4)])
def test_batch_stream_visits_every_sample_once_per_pass(n, batch):
    stream = BatchStream(n, batch, torch.Generator().manual_seed(0), "cpu")
    drawn = torch.cat([stream.next() for _ in range(n * 3)])  # exactly 3 * batch passes
    assert all(len(stream.next()) == batch for _ in range(3))
    passes = drawn.view(3 * batch, n)
    for p in passes:
        assert sorted(p.tolist()) == list(range(n))


def test_seed_streams_are_distinct_and_fixed():
    a = seed_streams(0)
    assert a == seed_streams(0)
    assert len(set(a.values())) == 3
    assert a != seed_streams(1)


@pytest.fixture
def prepared(tmp_path, tiny_study):
    data = tmp_path / "data.pt"
    prepare_dataset(tiny_study["dataset"], data)
    return data


def one_run(tiny_study, **train_overrides) -> dict:
    tiny_study["train"].update(train_overrides)
    study = load_study(tiny_study)
    return next(r for r in study.runs if r["augmentation"]["name"] == "shift" and r["n_train"] == 64)


def test_training_is_deterministic_on_cpu(tmp_path, tiny_study, prepared):
    run = one_run(tiny_study)
    first, second = RunDir(tmp_path / "a"), RunDir(tmp_path / "b")
    train_run(run, prepared, first)
    train_run(run, prepared, second)
    h1, h2 = read_parquet(first.history, HISTORY), read_parquet(second.history, HISTORY)
    pd.testing.assert_frame_equal(h1.drop(columns="elapsed_seconds"), h2.drop(columns="elapsed_seconds"))
    w1, w2 = torch.load(first.model), torch.load(second.model)
    assert all(torch.equal(w1[k], w2[k]) for k in w1)
    s1, s2 = evaluate_run(first, prepared), evaluate_run(second, prepared)
    for key in ("test_accuracy", "test_loss", "ood_accuracy", "train_accuracy", "train_loss"):
        assert s1[key] == s2[key], key


def test_another_seed_trains_differently(tmp_path, tiny_study, prepared):
    tiny_study["grid"]["seed"] = [0, 1]
    runs = [r for r in load_study(tiny_study).runs if r["augmentation"]["name"] == "none" and r["n_train"] == 64]
    dirs = [RunDir(tmp_path / str(r["seed"])) for r in runs]
    for run, d in zip(runs, dirs):
        train_run(run, prepared, d)
    assert not read_parquet(dirs[0].history, HISTORY)["loss"].equals(read_parquet(dirs[1].history, HISTORY)["loss"])


def test_training_learns_the_synthetic_task(tmp_path, tiny_study, prepared):
    tiny_study["train"].update(steps=150, log_every=50)
    run = one_run(tiny_study)
    out = RunDir(tmp_path / "run")
    record = train_run(run, prepared, out)
    summary = evaluate_run(out, prepared)
    assert record["status"] == "ok" and record["steps_completed"] == 150
    assert summary["train_accuracy"] > 0.9
    assert summary["test_accuracy"] > 0.6  # chance is 0.25
    history = read_parquet(out.history, HISTORY)
    assert history["step"].tolist() == [50, 100, 150]
    assert history["loss"].iloc[-1] < history["loss"].iloc[0]


def test_run_writes_its_files_with_their_schemas(tmp_path, tiny_study, prepared):
    run = one_run(tiny_study)
    out = RunDir(tmp_path / "run")
    train_run(run, prepared, out)
    summary_row = evaluate_run(out, prepared)
    assert out.read_config() == run
    training = read_parquet(out.training, TRAINING)
    summary = read_parquet(out.summary, SUMMARY)
    assert len(training) == 1 and len(summary) == 1
    assert summary.iloc[0]["run_id"] == run["run_id"] and summary.iloc[0]["augmentation"] == "shift"
    assert summary.iloc[0]["n_train"] == 64 and summary.iloc[0]["status"] == "ok"
    assert summary.iloc[0]["test_accuracy"] == summary_row["test_accuracy"]
    assert training.iloc[0]["compute_seconds"] > 0 and training.iloc[0]["wall_seconds"] >= training.iloc[0]["compute_seconds"]
    assert sorted(p.name for p in out.path.iterdir()) == sorted(
        ["config.json", "history.parquet", "model.pt", "training.parquet", "summary.parquet", "progress.json"]
    )


def test_nan_loss_ends_the_run_as_diverged(tmp_path, tiny_study, prepared):
    run = one_run(tiny_study, lr=1e12, warmup_steps=0)
    out = RunDir(tmp_path / "run")
    record = train_run(run, prepared, out)
    assert record["status"] == "diverged"
    assert record["steps_completed"] < run["train"]["steps"]
    assert not math.isfinite(record["final_loss"])
    summary = evaluate_run(out, prepared)
    assert summary["status"] == "diverged"
    assert all(math.isnan(summary[k]) for k in ("test_accuracy", "ood_accuracy", "train_loss"))
    assert read_parquet(out.summary, SUMMARY).iloc[0]["status"] == "diverged"


def test_cuda_device_without_cuda_is_a_clear_error(tmp_path, tiny_study, prepared):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: the error path cannot happen here")
    run = one_run(tiny_study, device="cuda")
    with pytest.raises(RuntimeError, match="train.device is 'cuda' but CUDA is not available"):
        train_run(run, prepared, RunDir(tmp_path / "run"))


def test_compile_trains_the_same_run_id_to_the_same_numbers(tmp_path, tiny_study, prepared):
    """train.compile is execution-only: the same run id, the same model.pt keys, the same curve
    within floating-point tolerance (inductor may fuse and reorder float operations)."""
    plain = one_run(tiny_study)
    compiled = one_run(tiny_study, compile=True)
    assert compiled["run_id"] == plain["run_id"]
    a, b = RunDir(tmp_path / "plain"), RunDir(tmp_path / "compiled")
    train_run(plain, prepared, a)
    train_run(compiled, prepared, b)
    h_plain, h_compiled = read_parquet(a.history, HISTORY), read_parquet(b.history, HISTORY)
    torch.testing.assert_close(torch.tensor(h_compiled["loss"].values), torch.tensor(h_plain["loss"].values),
                               rtol=1e-4, atol=1e-5)
    w_plain, w_compiled = torch.load(a.model), torch.load(b.model)
    assert w_plain.keys() == w_compiled.keys()
    for key in w_plain:
        torch.testing.assert_close(w_compiled[key].float(), w_plain[key].float(), rtol=1e-3, atol=1e-4)
