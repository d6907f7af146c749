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
}


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
    raise ValueError(f"unknown model {name!r}; allowed: {', '.join(MODEL_MODALITIES)}")
