"""Several test sets per study (eval.test_sets, issue 16 item 4): validation before any job, the
dynamic columns of metrics.parquet, and a small image study through real Snakemake."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml

from fixtures_data import write_cifar10, write_cifar10c, write_cifar100, write_cinic10, write_idx_dataset
from test_workflow import jobs_run

from dataworth.data.sources import CIFAR10C_CORRUPTIONS
from dataworth.study import StudyError, load_study
from dataworth.tracking.schemas import EXCHANGE_RATES, FITS, METRICS, SchemaError, read_parquet, write_parquet


def study_dict(root, test_sets: dict) -> dict:
    return {
        "study": "sets-tiny",
        "dataset": {"name": "cinic10", "root": str(root), "ood": "cifar10:test"},
        "augmentations": {"none": [], "flip": [{"op": "flip"}]},
        "grid": {"n_train": [20, 40], "augmentation": ["none", "flip"], "model": [{"name": "cnn2d", "width": 4}],
                 "seed": [0]},
        "train": {"steps": 6, "batch_size": 8, "log_every": 3},
        "eval": {"batch_size": 16, "test_sets": test_sets},
        "resources": {"runs_per_job": 4},
    }


@pytest.fixture
def data_root(tmp_path, monkeypatch):
    monkeypatch.delenv("DATAWORTH_DATA", raising=False)
    monkeypatch.delenv("DATAWORTH_CACHE", raising=False)
    root = tmp_path / "data"
    write_cinic10(root, per_class={"train": 3, "valid": 2, "test": 2})
    write_cifar10(root)
    write_cifar100(root)
    return root


def problems_of(root, test_sets) -> str:
    with pytest.raises(StudyError) as err:
        load_study(study_dict(root, test_sets))
    return str(err.value)


@pytest.mark.parametrize("name, expected", [
    ("Fog", "'Fog' is not allowed; allowed: lower-case letters, digits and _"),
    ("ood", "'ood' is taken by the fixed columns ood_accuracy/ood_loss"),
    ("probe_test", "'probe_test' would make the column probe_test_accuracy, which metrics.parquet already has"),
])
def test_a_bad_name_is_one_line_naming_what_is_allowed(data_root, name, expected):
    message = problems_of(data_root, {name: "cifar10:test"})
    assert f"eval.test_sets: name {expected}" in message and "Traceback" not in message


def test_an_unknown_reference_names_the_allowed_sources(data_root):
    message = problems_of(data_root, {"other": "imagenet:val"})
    assert "eval.test_sets.other: unknown source 'imagenet' in 'imagenet:val'; allowed: cifar10, " in message
    message = problems_of(data_root, {"c9": "cifar10c:all@9"})
    assert "eval.test_sets.c9: 'cifar10c:all@9': the severity is one of 1, 2, 3, 4, 5, not 9" in message


def test_a_set_with_other_classes_or_missing_files_fails_before_any_job(data_root):
    message = problems_of(data_root, {"c100": "cifar100:test"})  # fixture labels reach far beyond 9
    assert "eval.test_sets.c100: cifar100:test has labels 0.." in message
    assert "but the training data (cinic10) has 10 classes (0..9)" in message
    message = problems_of(data_root, {"fog3": "cifar10c:fog@3"})  # no CIFAR-10-C under the root
    assert "eval.test_sets.fog3: CIFAR-10-C: " in message and "CIFAR-10-C/fog.npy: not found" in message
    assert "expected layout: CIFAR-10-C/<corruption>.npy" in message and "dataworth data verify" in message


def test_a_set_of_another_image_shape_fails_before_any_job(data_root):
    write_idx_dataset(data_root)  # MNIST: 1 x 28 x 28, CINIC-10: 3 x 32 x 32
    message = problems_of(data_root, {"digits": "mnist:test"})
    assert ("eval.test_sets.digits: mnist:test has images of shape (1, 28, 28) but the training data (cinic10) "
            "has (3, 32, 32); they must match") in message


def test_test_sets_need_a_dataset_read_from_files():
    study = {"study": "s", "dataset": {"name": "digits"}, "augmentations": {"none": []},
             "grid": {"n_train": [50], "augmentation": ["none"], "model": [{"name": "mlp", "width": 4}], "seed": [0]},
             "train": {"steps": 2, "batch_size": 8}, "eval": {"test_sets": {"c10": "cifar10:test"}}}
    with pytest.raises(StudyError, match="eval.test_sets: digits is not read from dataset files"):
        load_study(study)


def test_test_sets_are_not_part_of_run_ids(data_root):
    write_cifar10c(data_root, corruptions=("fog",))
    plain = load_study(study_dict(data_root, {}))
    with_sets = load_study(study_dict(data_root, {"fog2": "cifar10c:fog@2"}))
    assert [r["run_id"] for r in plain.runs] == [r["run_id"] for r in with_sets.runs]
    assert "test_sets" not in plain.stages(plain.runs[0]) and "test_sets" in with_sets.stages(with_sets.runs[0])


def test_metrics_take_declared_dynamic_columns_only(tmp_path):
    row = {name: None for name in METRICS.names}
    frame = pd.DataFrame([row])
    frame["fog3_accuracy"], frame["fog3_loss"] = 0.25, 1.5
    write_parquet(frame, METRICS, tmp_path / "m.parquet")
    back = read_parquet(tmp_path / "m.parquet", METRICS)
    assert list(back.columns) == [*METRICS.names, "fog3_accuracy", "fog3_loss"]
    assert back["fog3_accuracy"].iloc[0] == 0.25 and back["fog3_loss"].iloc[0] == 1.5
    frame["fog3_seconds"] = 1.0  # not <set>_accuracy/_loss: still an error
    with pytest.raises(SchemaError, match="unexpected \\['fog3_seconds'\\]"):
        write_parquet(frame, METRICS, tmp_path / "bad.parquet")


def test_collect_pivots_each_runs_test_sets_into_columns_in_the_study_order(tmp_path):
    from dataworth.tracking.collect import collect_metrics
    from dataworth.tracking.schemas import SUMMARY, TEST_SETS

    paths = []
    for run_id, n_train, sets in (("r1", 20, {"fog3": (0.5, 1.25), "c10": (0.75, 0.5)}),
                                  ("r2", 10, {"fog3": (0.25, 2.0), "c10": (1.0, 0.125)})):
        summary = {name: None for name in SUMMARY.names}
        summary.update(run_id=run_id, dataset="cifar10", method="supervised", model="cnn2d", width=4,
                       augmentation="none", n_train=n_train, seed=0, status="ok")
        (tmp_path / run_id).mkdir()
        write_parquet(pd.DataFrame([summary]), SUMMARY, tmp_path / run_id / "summary.parquet")
        rows = [{"run_id": run_id, "set": name, "reference": "x:y", "parts": 1, "images": 4, "accuracy": acc,
                 "loss": loss, "test_sets_seconds": 0.0} for name, (acc, loss) in sets.items()]
        write_parquet(pd.DataFrame(rows), TEST_SETS, tmp_path / run_id / "test_sets.parquet")
        paths.append(tmp_path / run_id)
    metrics = collect_metrics([p / "summary.parquet" for p in paths], tmp_path / "metrics.parquet",
                              [p / "test_sets.parquet" for p in paths])
    assert list(metrics.columns[-4:]) == ["fog3_accuracy", "fog3_loss", "c10_accuracy", "c10_loss"]
    back = read_parquet(tmp_path / "metrics.parquet", METRICS).set_index("run_id")
    assert back.loc["r1", ["fog3_accuracy", "fog3_loss", "c10_accuracy", "c10_loss"]].tolist() == [0.5, 1.25, 0.75, 0.5]
    assert back.loc["r2", ["fog3_accuracy", "fog3_loss", "c10_accuracy", "c10_loss"]].tolist() == [0.25, 2.0, 1.0, 0.125]
    # Without test_sets files: exactly the fixed columns, as before eval.test_sets existed.
    plain = collect_metrics([p / "summary.parquet" for p in paths], tmp_path / "plain.parquet")
    assert list(plain.columns) == METRICS.names


def test_a_diverged_run_gets_a_null_row_per_set(tmp_path):
    from dataworth.evaluate.test_sets import test_sets_run
    from dataworth.runs import RunDir
    from dataworth.tracking.schemas import TEST_SETS, TRAINING

    run_dir = RunDir(tmp_path / "study" / "runs" / "r1")
    run_dir.path.mkdir(parents=True)
    run_dir.write_config({"run_id": "r1", "eval": {}})
    training = {name: None for name in TRAINING.names}
    training.update(run_id="r1", status="diverged")
    write_parquet(pd.DataFrame([training]), TRAINING, run_dir.training)
    sets = {"fog3": "cifar10c:fog@3", "c3": "cifar10c:all@3"}
    test_sets_run(run_dir, "no data read", {"batch_size": 4, "test_sets": sets})
    rows = read_parquet(run_dir.output("test_sets"), TEST_SETS)
    assert rows["set"].tolist() == ["fog3", "c3"] and rows["parts"].tolist() == [1, 19]
    assert rows["accuracy"].isna().all() and rows["loss"].isna().all() and rows["images"].isna().all()


def test_mlflow_logs_each_test_sets_columns_and_no_other_extra():
    from dataworth.tracking.mlflow_fields import test_set_metrics

    row = {"test_accuracy": 0.5, "probe_test_accuracy": 0.4, "fog3_accuracy": 0.25, "fog3_loss": 1.5, "note": "x"}
    assert test_set_metrics(row) == {"fog3_accuracy": 0.25, "fog3_loss": 1.5}


def _logits_by_hand(project_root, run_id, x_uint8):
    """The saved model's logits on stored uint8 images, normalised in NumPy with the prepared
    pool's mean and std (not through the Dataset wrapper the pipeline uses)."""
    import torch

    from dataworth.files import load_torch
    from dataworth.models import build_model

    study_dir = project_root / "results" / "sets-tiny"
    pointer = next((study_dir / "data").glob("*.pt"))
    meta = load_torch(pointer)["meta"]
    mean = np.asarray(meta["mean"]).reshape(1, -1, 1, 1)
    std = np.asarray(meta["std"]).reshape(1, -1, 1, 1)
    model = build_model("cnn2d", 4, tuple(meta["sample_shape"]), meta["num_classes"])
    model.load_state_dict(load_torch(study_dir / "runs" / run_id / "model.pt"))
    model.eval()
    with torch.no_grad():
        return model(torch.from_numpy(((x_uint8 - mean) / std).astype(np.float32))).double().numpy()


def _loss_and_accuracy(logits, y):
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return -log_probs[np.arange(len(y)), y].mean(), (logits.argmax(axis=1) == y).mean()


@pytest.mark.integration
def test_image_study_with_two_shifted_test_sets_through_snakemake(project, data_root):
    corruptions = write_cifar10c(data_root, corruptions=CIFAR10C_CORRUPTIONS, n=8)
    sets = {"cifar10": "cifar10:test", "fog2": "cifar10c:fog@2", "c3": "cifar10c:all@3"}
    project.write_study(study_dict(data_root, sets))
    first = project.snakemake("results/sets-tiny/report")
    assert jobs_run(first.stdout + first.stderr)["test_sets"] == 1
    metrics = read_parquet(project.results("sets-tiny") / "metrics.parquet", METRICS)
    new = ["cifar10_accuracy", "cifar10_loss", "fog2_accuracy", "fog2_loss", "c3_accuracy", "c3_loss"]
    assert list(metrics.columns) == [*METRICS.names, *new]
    # cifar10:test is also the ood set: the same images, the same numbers.
    assert np.allclose(metrics["cifar10_accuracy"], metrics["ood_accuracy"])
    assert np.allclose(metrics["cifar10_loss"], metrics["ood_loss"])

    # One run, checked against the saved model's logits computed by hand.
    run_id = metrics["run_id"].iloc[0]
    x_fog, y_fog = corruptions["fog"]
    loss, accuracy = _loss_and_accuracy(_logits_by_hand(project.root, run_id, x_fog[8:16]), y_fog[8:16])
    assert metrics["fog2_accuracy"].iloc[0] == pytest.approx(accuracy)
    assert metrics["fog2_loss"].iloc[0] == pytest.approx(loss, rel=1e-4)
    # all@3: the mean over the 19 corruptions at severity 3 (images 16..23 of each file).
    per_corruption = [_loss_and_accuracy(_logits_by_hand(project.root, run_id, x[16:24]), y[16:24])
                      for x, y in corruptions.values()]
    assert metrics["c3_loss"].iloc[0] == pytest.approx(np.mean([p[0] for p in per_corruption]), rel=1e-4)
    assert metrics["c3_accuracy"].iloc[0] == pytest.approx(np.mean([p[1] for p in per_corruption]))

    fits = read_parquet(project.results("sets-tiny") / "fits.parquet", FITS)
    assert {"cifar10_accuracy", "fog2_accuracy", "c3_accuracy"} <= set(fits["metric"])
    rates = read_parquet(project.results("sets-tiny") / "exchange_rates.parquet", EXCHANGE_RATES)
    assert {"cifar10_accuracy", "fog2_accuracy", "c3_accuracy"} <= set(rates["metric"])
    report_text = "\n".join(p.read_text() for p in (project.results("sets-tiny") / "report").rglob("*.md"))
    assert "fog2_accuracy" in report_text and "c3_accuracy" in report_text

    # Another set of test sets: re-evaluated, never retrained (a dry run: the jobs it would run).
    study = study_dict(data_root, {"fog2": "cifar10c:fog@2", "noise1": "cifar10c:gaussian_noise@1"})
    (project.root / "params.yaml").write_text(yaml.safe_dump(study))
    again = project.snakemake("results/sets-tiny/metrics.parquet", "-n")
    ran = jobs_run(again.stdout + again.stderr)
    assert ran.get("test_sets") == 1 and "train" not in ran and "evaluate" not in ran, ran
