"""Test gaps an audit found (issue 15 item 11): evaluation checked against an independent NumPy
computation over the whole set, independent of eval.batch_size; `dataworth plan`'s states."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dataworth.data import load_dataset, nested_subset, prepare_dataset
from dataworth.evaluate import evaluate_run
from dataworth.models import build_model
from dataworth.plan import print_plan
from dataworth.runs import StudyDir
from dataworth.study import load_study
from dataworth.tracking.schemas import SUMMARY, read_parquet, write_parquet
from dataworth.train import train_run


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """The tiny study's data, one run trained, and its study dir."""
    from conftest import TINY_STUDY

    root = tmp_path_factory.mktemp("eval")
    study = load_study(TINY_STUDY)
    data = root / "data.pt"
    prepare_dataset(TINY_STUDY["dataset"], data)
    study_dir = study.study_dir(root)
    run = study.runs[3]
    train_run(run, data, study_dir.run_dir(run["run_id"]))
    return study, data, study_dir, run


def numpy_loss_and_accuracy(logits: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    logits = logits.astype(np.float64)
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return float(-log_probs[np.arange(len(labels)), labels].mean()), float((logits.argmax(1) == labels).mean())


def test_accuracy_and_loss_equal_a_direct_computation_whatever_the_batch_size(trained):
    study, data_path, study_dir, run = trained
    run_dir = study_dir.run_dir(run["run_id"])
    data = load_dataset(data_path)
    model = build_model(run["model"]["name"], run["model"]["width"], data.sample_shape, data.num_classes)
    model.load_state_dict(torch.load(run_dir.model, weights_only=True))
    model.eval()
    subset = nested_subset(data.y["train"].numpy(), run["n_train"], run["seed"])
    splits = {"train": (data.x["train"][subset], data.y["train"][subset]),
              "test": (data.x["test"], data.y["test"]), "ood": (data.x["ood"], data.y["ood"])}
    expected = {}
    with torch.no_grad():
        for split, (x, y) in splits.items():  # the whole set in one forward pass
            expected[split] = numpy_loss_and_accuracy(model(x).numpy(), y.numpy())
    # 64 test samples: batches of 7 leave a last batch of 1; 1024 is one batch.
    for batch_size in (7, 1024):
        row = evaluate_run(run_dir, data_path, {**run["eval"], "batch_size": batch_size})
        for split, (loss, accuracy) in expected.items():
            assert row[f"{split}_accuracy"] == accuracy, (split, batch_size)
            assert row[f"{split}_loss"] == pytest.approx(loss, rel=1e-5), (split, batch_size)
    assert 0.25 < expected["train"][1]  # trained: better than chance (4 classes) on its own samples


def plan_states(study, root, capsys) -> dict[str, str]:
    capsys.readouterr()  # drop what came before (training's progress lines)
    print_plan(study, root)
    lines = capsys.readouterr().out.splitlines()
    header = lines[0].split()
    rows = [dict(zip(header, line.split())) for line in lines[1:] if line.strip() and not line.startswith("study ")]
    return {row["run_id"]: row["state"] for row in rows}


def test_plan_shows_pending_trained_ok_and_diverged(trained, capsys):
    study, data_path, study_dir, run = trained
    run_dir = study_dir.run_dir(run["run_id"])
    evaluate_run(run_dir, data_path)
    states = plan_states(study, study_dir.path.parent, capsys)
    assert states[run["run_id"]] == "ok"
    assert [states[r["run_id"]] for r in study.runs[:3]] == ["pending"] * 3

    other = study.runs[2]
    train_run(other, data_path, study_dir.run_dir(other["run_id"]))
    assert plan_states(study, study_dir.path.parent, capsys)[other["run_id"]] == "trained"

    # A diverged run: its summary says so (what evaluate writes for a run whose loss became NaN).
    summary = read_parquet(run_dir.summary, SUMMARY).assign(status="diverged")
    write_parquet(summary, SUMMARY, run_dir.summary)
    states = plan_states(study, study_dir.path.parent, capsys)
    assert states[run["run_id"]] == "diverged" and states[other["run_id"]] == "trained"


def test_runs_falling_back_from_a_failed_grouped_pack_finish_equal_to_training_alone(trained, monkeypatch, tmp_path,
                                                                                    capsys):
    """Grouped training fails (out of memory, say) after writing the pack's checkpoint: the job trains
    the runs one by one, and each ends exactly as when trained alone (same device, same seeds)."""
    import dataworth.train.run
    from dataworth.tracking.schemas import HISTORY, TRAINING
    from dataworth.train.jobs import train_job

    study, data_path, _, _ = trained
    runs = study.runs[:2]

    def out_of_memory(runs, data, outs, **kwargs):
        outs[0].pack_checkpoint.parent.mkdir(parents=True, exist_ok=True)
        outs[0].pack_checkpoint.write_bytes(b"the pack's progress")
        raise RuntimeError("CUDA out of memory (simulated)")

    monkeypatch.setattr(dataworth.train.run, "train_runs_together", out_of_memory)
    packed = StudyDir(tmp_path / "packed")
    train_job(runs, str(data_path), packed, "concurrent")
    assert "warning: training the runs together failed (RuntimeError: CUDA out of memory (simulated)); training " \
           "them one by one" in capsys.readouterr().err
    for run in runs:
        fallback, alone = packed.run_dir(run["run_id"]), StudyDir(tmp_path / "alone").run_dir(run["run_id"])
        train_run(run, data_path, alone)
        assert read_parquet(fallback.training, TRAINING).iloc[0]["status"] == "ok"
        h_fallback, h_alone = (read_parquet(rd.history, HISTORY) for rd in (fallback, alone))
        assert h_fallback.drop(columns="elapsed_seconds").equals(h_alone.drop(columns="elapsed_seconds"))
        weights, reference = (torch.load(rd.model, weights_only=True) for rd in (fallback, alone))
        assert weights.keys() == reference.keys() and all(torch.equal(weights[k], reference[k]) for k in reference)
        assert not fallback.pack_checkpoint.exists()
