"""Datasets build offline with fixed test/OOD sets; subsets are nested and class-stratified."""

from __future__ import annotations

import numpy as np
import pytest

from dataworth.data import load_dataset, nested_subset, prepare_dataset, stratified_order
from dataworth.data.datasets import DigitsSpec, Mnist1dSpec, SyntheticSpec


@pytest.fixture(scope="module")
def labels():
    # Unbalanced classes: 50, 30 and 20 samples.
    return np.repeat([0, 1, 2], [50, 30, 20])


def test_subsets_are_nested_for_a_seed(labels):
    for seed in (0, 1, 7):
        previous = set()
        for n in (1, 5, 10, 33, 64, 99, 100):
            subset = set(nested_subset(labels, n, seed).tolist())
            assert len(subset) == n
            assert previous <= subset
            previous = subset


def test_every_prefix_is_class_stratified(labels):
    order = stratified_order(labels, seed=3)
    shares = np.bincount(labels) / len(labels)
    for n in range(1, len(labels) + 1):
        counts = np.bincount(labels[order[:n]], minlength=3)
        assert np.all(np.abs(counts - n * shares) <= 1.0), (n, counts)


def test_seeds_draw_different_subsets(labels):
    a, b = nested_subset(labels, 20, 0), nested_subset(labels, 20, 1)
    assert set(a.tolist()) != set(b.tolist())
    assert np.array_equal(nested_subset(labels, 20, 0), a)


def test_subset_size_is_checked(labels):
    with pytest.raises(ValueError, match="1..100"):
        nested_subset(labels, 101, 0)


@pytest.mark.parametrize(
    "spec, shape, classes",
    [
        (SyntheticSpec(name="synthetic", train_pool=64, test_size=32), (1, 32), 4),
        (Mnist1dSpec(name="mnist1d", train_pool=300, test_size=100), (1, 40), 10),
        (DigitsSpec(name="digits"), (1, 8, 8), 10),
    ],
)
def test_datasets_build_train_test_and_ood_sets(spec, shape, classes):
    arrays = spec.build()
    pool = spec.train_pool_size()
    assert arrays["x_train"].shape == (pool, *shape)
    assert arrays["x_test"].shape[1:] == shape and arrays["x_ood"].shape == arrays["x_test"].shape
    assert np.array_equal(arrays["y_ood"], arrays["y_test"])
    assert arrays["x_train"].dtype == np.float32 and arrays["y_train"].dtype == np.int64
    assert set(np.unique(arrays["y_train"])) == set(range(classes))
    # Standardised with the training pool's statistics.
    assert abs(arrays["x_train"].mean()) < 1e-4 and abs(arrays["x_train"].std() - 1) < 1e-3
    # The OOD set is a real shift of the test set, not a copy of it.
    assert np.abs(arrays["x_ood"] - arrays["x_test"]).mean() > 0.1
    # Generated data are fixed by the dataset seed.
    again = spec.build()
    assert all(np.array_equal(arrays[k], again[k]) for k in arrays)


def test_mnist1d_has_exactly_the_requested_sizes():
    arrays = Mnist1dSpec(name="mnist1d", train_pool=123, test_size=45).build()
    assert len(arrays["y_train"]) == 123 and len(arrays["y_test"]) == 45


def test_prepared_file_roundtrip_and_content_hash(tmp_path):
    config = {"name": "synthetic", "train_pool": 40, "test_size": 20}
    meta = prepare_dataset(config, tmp_path / "d.pt")
    data = load_dataset(tmp_path / "d.pt")
    assert data.meta == meta
    assert data.sample_shape == (1, 32) and data.num_classes == 4
    assert data.x["train"].shape[0] == 40 and data.y["test"].shape[0] == 20
    assert len(meta["sha256"]) == 64
    assert prepare_dataset(config, tmp_path / "e.pt")["sha256"] == meta["sha256"]
    assert prepare_dataset({**config, "seed": 1}, tmp_path / "f.pt")["sha256"] != meta["sha256"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.pt", "e.pt", "f.pt"]  # no temp files left
