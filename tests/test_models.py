from __future__ import annotations

import pytest
import torch

from dataworth.models import MODEL_MODALITIES, build_model


@pytest.mark.parametrize(
    "name, width, shape, feature_dim",
    [
        ("mlp", 64, (1, 40), 64),
        ("mlp", 32, (1, 8, 8), 32),
        ("cnn1d", 16, (1, 40), 32),
        ("cnn2d", 8, (1, 8, 8), 32),
        ("resnet18", 4, (1, 8, 8), 32),
        ("resnet18", 8, (3, 32, 32), 64),
    ],
)
def test_logits_and_features_shapes(name, width, shape, feature_dim):
    model = build_model(name, width, shape, num_classes=10)
    x = torch.randn(5, *shape)
    assert model(x).shape == (5, 10)
    assert model.features(x).shape == (5, feature_dim)
    assert model.feature_dim == feature_dim
    assert torch.allclose(model.head(model.features(x)), model(x))


def test_resnet_width_multiplier_scales_parameters_quadratically():
    count = lambda w: sum(p.numel() for p in build_model("resnet18", w, (3, 32, 32), 10).encoder.parameters())
    ratio = count(16) / count(8)
    assert 3.9 < ratio < 4.1  # conv weights grow with width^2
    # Width 64 is the standard CIFAR ResNet-18: about 11.2M parameters.
    total = sum(p.numel() for p in build_model("resnet18", 64, (3, 32, 32), 10).parameters())
    assert 11_100_000 < total < 11_200_000


def test_every_model_declares_its_modalities():
    assert set(MODEL_MODALITIES) == {"mlp", "cnn1d", "cnn2d", "resnet18", "flip_invariant_resnet18", "orbit_resnet18",
                                     "e2_resnet18", "e2_wrn22", "vgg13", "pyramidnet110", "convmixer", "swin",
                                     "linear", "mnist1d_mlp", "mnist1d_cnn", "mnist1d_gru"}
