"""Representation evaluations: RankMe, the linear probe and k-NN on known cases."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dataworth.evaluate.knn import knn_accuracy, knn_predict
from dataworth.evaluate.probe import probe_loss_and_accuracy, train_linear_probe
from dataworth.evaluate.rankme import rankme


def rankme_numpy(z: np.ndarray, eps: float = 1e-7) -> float:
    sigma = np.linalg.svd(z, compute_uv=False)
    p = sigma / np.abs(sigma).sum() + eps
    return float(np.exp(-(p * np.log(p)).sum()))


@pytest.mark.parametrize("shape", [(50, 8), (8, 50), (200, 32)])
def test_rankme_matches_a_direct_numpy_computation(shape):
    z = np.random.default_rng(0).normal(size=shape) * np.linspace(0.1, 3, shape[1])
    assert rankme(torch.tensor(z, dtype=torch.float32)) == pytest.approx(rankme_numpy(z), rel=1e-5)


def test_rankme_of_identity_like_embeddings_is_full_rank():
    assert rankme(torch.eye(16)) == pytest.approx(16, rel=1e-4)
    assert rankme(torch.eye(8).repeat(8, 1)) == pytest.approx(8, rel=1e-4)  # N = 64 > K = 8
    assert rankme(torch.eye(12)[:, :5] * 7.0) == pytest.approx(5, rel=1e-4)


def test_rankme_of_rank_one_embeddings_is_about_one():
    gen = torch.Generator().manual_seed(0)
    u, v = torch.randn(100, 1, generator=gen), torch.randn(1, 20, generator=gen)
    assert rankme(u @ v) == pytest.approx(1.0, abs=1e-3)


def test_rankme_of_constant_embeddings_does_not_crash():
    assert rankme(torch.ones(10, 4)) == pytest.approx(1.0, abs=1e-3)  # rank one
    zero = rankme(torch.zeros(10, 4))  # no direction at all: the formula's floor, about 1
    assert np.isfinite(zero) and zero == pytest.approx(1.0, abs=1e-3)


def separable(n_per_class: int, seed: int):
    """Three classes around far-apart centres in 5 dimensions: linearly separable."""
    gen = torch.Generator().manual_seed(seed)
    labels = torch.arange(3).repeat_interleave(n_per_class)
    centres = 6.0 * torch.eye(3, 5)
    return centres[labels] + 0.5 * torch.randn(len(labels), 5, generator=gen), labels


def test_linear_probe_on_separable_features_reaches_100_percent():
    x, y = separable(40, seed=0)
    x_test, y_test = separable(100, seed=1)
    cfg = {"steps": 200, "lr": 0.05, "batch_size": 32, "weight_decay": 0.0}
    probe = train_linear_probe(x, y, 3, cfg, torch.Generator().manual_seed(0))
    train_loss, train_accuracy = probe_loss_and_accuracy(probe, x, y)
    assert train_accuracy == 1.0 and train_loss < 0.1
    assert probe_loss_and_accuracy(probe, x_test, y_test)[1] == 1.0


def test_linear_probe_ignores_a_feature_constant_on_the_labeled_set():
    x, y = separable(20, seed=0)
    x[:, 4] = 0.0  # a dead unit; on test samples it is huge
    cfg = {"steps": 100, "lr": 0.05, "batch_size": 16, "weight_decay": 0.0}
    probe = train_linear_probe(x, y, 3, cfg, torch.Generator().manual_seed(0))
    x_test, y_test = separable(50, seed=1)
    x_test[:, 4] = 1e6
    assert probe_loss_and_accuracy(probe, x_test, y_test)[1] == 1.0


def test_knn_on_a_toy_case():
    bank = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.8, 0.3], [0.0, 1.0], [0.1, 0.9]])
    labels = torch.tensor([0, 0, 0, 1, 1])
    queries = torch.tensor([[1.0, 0.05], [0.05, 1.0], [0.5, 0.6]])
    # k=3 by cosine: the first query's neighbours are the three 0s; the second's both 1s and
    # (0.8, 0.3); the third's (0.8, 0.3) (cos .87), (0.1, 0.9) (.83) and (0, 1) (.77): 1 wins 2:1.
    assert knn_predict(bank, labels, queries, k=3, num_classes=2).tolist() == [0, 1, 1]
    # Scale does not matter (cosine), and accuracy counts matches.
    assert knn_accuracy(10 * bank, labels, queries, torch.tensor([0, 1, 0]), k=3, num_classes=2) == pytest.approx(2 / 3)


def test_knn_breaks_a_tied_vote_by_nearness():
    bank = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    labels = torch.tensor([0, 1])
    queries = torch.tensor([[1.0, 0.2], [0.2, 1.0]])  # one vote each: the nearer neighbour wins
    assert knn_predict(bank, labels, queries, k=2, num_classes=2).tolist() == [0, 1]
    assert knn_predict(bank, torch.tensor([1, 0]), queries, k=2, num_classes=2).tolist() == [1, 0]
