"""Models. Each is an `encoder` (its representation, `features`) followed by a linear `head`.

`build_model(name, width, sample_shape, num_classes)`; `MODEL_MODALITIES` says which data each
takes, so a study is checked before any job starts.
"""

from __future__ import annotations

MODEL_MODALITIES: dict[str, tuple[str, ...]] = {
    "mlp": ("signal1d", "image"),
    "cnn1d": ("signal1d",),
    "cnn2d": ("image",),
    "resnet18": ("image",),
    # issue 18 item 5: the MNIST-1D benchmark's baselines (models/mnist1d_baselines.py)
    "linear": ("signal1d", "image"),
    "mnist1d_mlp": ("signal1d", "image"),
    "mnist1d_cnn": ("signal1d",),
    "mnist1d_gru": ("signal1d",),
}


# Parameters of each model per width**2, from its width-squared layers (the stem, the input layer of
# the MLP and the head are left out: a lower bound). The study bounds widths by it: a width whose
# weights alone would not fit in memory fails validation, not a job hours later.
PARAMETERS_PER_WIDTH_SQUARED: dict[str, int] = {
    "mlp": 1,  # Linear(width, width)
    "cnn1d": 18,  # conv3 width->2w (6 w^2) + conv3 2w->2w (12 w^2)
    "cnn2d": 90,  # conv3x3 width->2w (18 w^2) + conv3x3 2w->4w (72 w^2)
    "resnet18": 2727,  # 11.17 M parameters at width 64 (the standard network) / 64**2
    "linear": 0,  # no hidden layer: width is not used
    "mnist1d_mlp": 1,  # Linear(width, width)
    "mnist1d_cnn": 6,  # conv3 width->width, twice
    "mnist1d_gru": 6,  # 3 gates x width->width, two directions
}


def estimated_parameters(name: str, width: int) -> int:
    """A lower bound of the model's parameter count (its width-squared layers)."""
    return PARAMETERS_PER_WIDTH_SQUARED[name] * width * width


def build_model(name: str, width: int, sample_shape: tuple[int, ...], num_classes: int):
    from dataworth.models.cnn import CNN1d, CNN2d
    from dataworth.models.mlp import MLP
    from dataworth.models.resnet import ResNet18

    in_channels = sample_shape[0]
    if name == "mlp":
        return MLP(sample_shape, width, num_classes)
    if name == "cnn1d":
        return CNN1d(in_channels, width, num_classes)
    if name == "cnn2d":
        return CNN2d(in_channels, width, num_classes)
    if name == "resnet18":
        return ResNet18(in_channels, width, num_classes)
    # --- issue 18 item 5
    from dataworth.models import mnist1d_baselines as baselines

    if name == "linear":
        return baselines.Linear(sample_shape, num_classes)
    if name == "mnist1d_mlp":
        return baselines.Mnist1dMLP(sample_shape, width, num_classes)
    if name == "mnist1d_cnn":
        return baselines.Mnist1dCNN(sample_shape, width, num_classes)
    if name == "mnist1d_gru":
        return baselines.Mnist1dGRU(sample_shape, width, num_classes)
    # ---
    raise ValueError(f"unknown model {name!r}; allowed: {', '.join(MODEL_MODALITIES)}")
