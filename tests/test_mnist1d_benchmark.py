"""The MNIST-1D benchmark (studies/mnist1d-benchmark.yaml): the paper's models, its data split, and
the study in a reduced form (few steps) through the workflow to its published-vs-reproduced table."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import yaml

from conftest import REPO, Project
from dataworth.models import build_model
from dataworth.study import load_study
from dataworth.tracking.schemas import REFERENCE, read_parquet

STUDY_FILE = REPO / "studies" / "mnist1d-benchmark.yaml"


@pytest.mark.parametrize("name, width, parameters", [
    # By hand from the paper's notebooks/models.py (input 40, 10 classes):
    ("linear", 1, 40 * 10 + 10),  # LinearBase
    ("mnist1d_mlp", 100, (40 * 100 + 100) + (100 * 100 + 100) + (100 * 10 + 10)),  # MLPBase(hidden 100)
    # ConvBase(channels 25): conv 1->25 k5, 25->25 k3 twice, Linear(125, 10); lengths 40 -> 19 -> 10 -> 5
    ("mnist1d_cnn", 25, (1 * 25 * 5 + 25) + 2 * (25 * 25 * 3 + 25) + (25 * 5 * 10 + 10)),
    # GRUBase(hidden 6, bidirectional): per direction 3 gates x (6x1 input + 6x6 recurrent + 2 biases of 6);
    # Linear(2 * 6 * 40 time steps, 10)
    ("mnist1d_gru", 6, 2 * 3 * (6 * 1 + 6 * 6 + 6 + 6) + (2 * 6 * 40 * 10 + 10)),
])
def test_models_have_the_papers_parameter_counts(name, width, parameters):
    model = build_model(name, width, (1, 40), 10)
    assert sum(p.numel() for p in model.parameters()) == parameters
    x = torch.randn(3, 1, 40)
    assert model(x).shape == (3, 10) and torch.allclose(model.head(model.features(x)), model(x))


def test_mlp_hidden_layer_is_residual():
    model = build_model("mnist1d_mlp", 4, (1, 3), 2)
    hidden = model.encoder
    x = torch.randn(5, 1, 3)
    h = torch.relu(x.flatten(1) @ hidden.first.weight.T + hidden.first.bias)
    expected = h + torch.relu(h @ hidden.second.weight.T + hidden.second.bias)
    assert torch.allclose(model.features(x), expected)


def test_the_reference_block_holds_the_four_published_numbers():
    reference = load_study(STUDY_FILE).spec.reference
    published = {row.setting["model"]: (row.metric, row.value) for row in reference.rows}
    assert published == {"linear": ("test_accuracy", 0.32), "mnist1d_mlp": ("test_accuracy", 0.68),
                         "mnist1d_cnn": ("test_accuracy", 0.94), "mnist1d_gru": ("test_accuracy", 0.91)}


@pytest.fixture(scope="module")
def benchmark(tmp_path_factory):
    """The study as shipped, but 20 steps, 2 seeds and one job, through the workflow (once for
    the tests below)."""
    project = Project(tmp_path_factory.mktemp("benchmark"))
    reduced = yaml.safe_load(STUDY_FILE.read_text())
    reduced["train"].update(steps=20, log_every=10)
    reduced["grid"]["seed"] = [0, 1]
    reduced["resources"]["runs_per_job"] = 8
    project.write_study(reduced)
    project.snakemake()
    return project.results("mnist1d-benchmark")


@pytest.mark.integration
def test_reduced_benchmark_runs_to_its_reference_section(benchmark):
    table = read_parquet(benchmark / "reference.parquet", REFERENCE)
    assert table["label"].tolist() == ["logistic regression", "MLP", "CNN", "GRU"]
    assert table["published"].tolist() == [0.32, 0.68, 0.94, 0.91]
    assert (table["seeds_used"] == 2).all() and table["mean"].between(0, 1).all()
    assert table["ci_low"].notna().all() and (table["ci_low"] <= table["mean"]).all()
    assert table["verdict"].isin(["within", "outside"]).all()
    text = (benchmark / "report" / "report.md").read_text()
    section = text[text.index("## Published vs reproduced"):text.index("## Scaling laws")]
    rows = [line for line in section.splitlines() if line.startswith("| ") and "`test_accuracy`" in line]
    assert len(rows) == 4 and all("**within**" in r or "**outside**" in r for r in rows)
    assert "Greydanus & Bau (2024)" in section


@pytest.mark.integration
def test_the_study_trains_on_the_papers_4000_1000_split(benchmark):
    """The study's prepared data is the paper's dataset (mnist1d's make_dataset with its default
    arguments, split 4,000 / 1,000), up to our standardisation with the training pool's mean and std."""
    from mnist1d.data import get_dataset_args, make_dataset

    [prepared] = (benchmark / "data").glob("mnist1d-*.pt")
    ours = torch.load(prepared, weights_only=False)
    paper = make_dataset(get_dataset_args())
    assert (len(paper["x"]), len(paper["x_test"])) == (4000, 1000)
    mean, std = paper["x"].mean(), paper["x"].std()
    np.testing.assert_allclose(ours["x_train"][:, 0].numpy(), (paper["x"] - mean) / std, atol=1e-5)
    np.testing.assert_allclose(ours["x_test"][:, 0].numpy(), (paper["x_test"] - mean) / std, atol=1e-5)
    assert (ours["y_train"].numpy() == paper["y"]).all() and (ours["y_test"].numpy() == paper["y_test"]).all()
