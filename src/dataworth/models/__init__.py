"""Models. Each is an `encoder` (its representation, `features`) followed by a linear `head`.

`build_model(name, width, sample_shape, num_classes, **options)`; `build_run_model(run["model"], ...)`
for a run's model section. `MODEL_MODALITIES` says which data each takes and `MODEL_OPTIONS` which
options each has, so a study is checked before any job starts. The image models after `resnet18`
are the architectures of Geiping et al. (2022) (docs/paper.md says which config each reproduces).
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
    # --- issue 18: the paper's architectures (fig. 3b, fig. 4) ---
    "flip_invariant_resnet18": ("image",),
    "orbit_resnet18": ("image",),
    "e2_resnet18": ("image",),
    "e2_wrn22": ("image",),
    "vgg13": ("image",),
    "pyramidnet110": ("image",),
    "convmixer": ("image",),
    "swin": ("image",),
}

# What `width` means for each model (docs and validation messages).
WIDTH_MEANING: dict[str, str] = {
    "mlp": "hidden units",
    "cnn1d": "base channels",
    "cnn2d": "base channels",
    "resnet18": "first-stage channels (64 in the standard network)",
    "flip_invariant_resnet18": "first-stage channels (64)",
    "orbit_resnet18": "first-stage channels (64)",
    "e2_resnet18": "first-stage channels of the plain network it matches (64); fields = width*sqrt(|G|)/|G|",
    "e2_wrn22": "widen factor k (4 in the paper): stages of 16k, 32k, 64k planes; fields = planes*sqrt(|G|)/|G|",
    "vgg13": "first-stage channels (64)",
    "pyramidnet110": "alpha, the channels added over the network (84 in the paper)",
    "convmixer": "dim (256 in the paper)",
    "swin": "embed_dim (128 in the paper)",
    "linear": "not used (write 1): logistic regression has no hidden layer",
    "mnist1d_mlp": "hidden units (256 in the MNIST-1D benchmark)",
    "mnist1d_cnn": "channels (25 in the MNIST-1D benchmark)",
    "mnist1d_gru": "hidden units per direction (6 in the MNIST-1D benchmark)",
}

# Options a model takes besides its width, with their allowed values (the first is the default).
RESNET_OPTIONS = {"downsample": ("B", "C"), "init": ("torch", "paper")}
MODEL_OPTIONS: dict[str, dict[str, tuple[str, ...]]] = {
    "resnet18": RESNET_OPTIONS,
    "flip_invariant_resnet18": RESNET_OPTIONS,
    "orbit_resnet18": RESNET_OPTIONS,
    "e2_resnet18": {"group": ("d2", "d4")},
    "e2_wrn22": {"group": ("d2", "d4")},
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
    "flip_invariant_resnet18": 2727,
    "orbit_resnet18": 2727,
    "e2_resnet18": 2000,  # ~2727 for wide networks; rounding fields down costs up to ~25% at width 8
    # 9 blocks of two 3x3 convs over planes p: a group conv has (p/sqrt|G|)^2 |G| 9 = 9 p^2 weights, as
    # a plain one; 2 * 9 * 3 * (16^2 + 32^2 + 64^2) k^2 = 290,304 k^2 less the first blocks' smaller inputs and
    # the rounding of fields (measured: 253,000-271,000 k^2 for D2 and D4, k = 1 ... 8)
    "e2_wrn22": 250_000,
    "vgg13": 2295,  # 9 * (1 + 2 + 4 + 8 + 16 + 32 + 3 * 64): its 3x3 convs after the first
    "pyramidnet110": 300,  # ~333 alpha^2 for large alpha: 18 * sum_k (k alpha / 54)^2 over 54 blocks
    "convmixer": 16,  # 16 pointwise convs dim -> dim
    "swin": 248,  # 4 blocks * 12 C^2 + merge 8 C^2 + 4 blocks * 12 (2C)^2
}


def estimated_parameters(name: str, width: int) -> int:
    """A lower bound of the model's parameter count (its width-squared layers)."""
    return PARAMETERS_PER_WIDTH_SQUARED[name] * width * width


def input_problem(name: str, sample_shape: tuple[int, ...]) -> str | None:
    """Why the model cannot take samples of this shape, or None."""
    if name == "swin":
        from dataworth.models.swin import swin_input_problem

        return swin_input_problem(tuple(sample_shape))
    if name == "vgg13" and min(sample_shape[1:]) < 32:
        return f"pools five times by 2 and needs images of at least 32x32, not {sample_shape[1]}x{sample_shape[2]}"
    return None


def build_model(name: str, width: int, sample_shape: tuple[int, ...], num_classes: int, **options):
    from dataworth.models.cnn import CNN1d, CNN2d
    from dataworth.models.mlp import MLP

    in_channels = sample_shape[0]
    if name == "mlp":
        return MLP(sample_shape, width, num_classes)
    if name == "cnn1d":
        return CNN1d(in_channels, width, num_classes)
    if name == "cnn2d":
        return CNN2d(in_channels, width, num_classes)
    if name in ("resnet18", "flip_invariant_resnet18", "orbit_resnet18"):
        from dataworth.models.resnet import FlipInvariantResNet18, OrbitResNet18, ResNet18

        cls = {"resnet18": ResNet18, "flip_invariant_resnet18": FlipInvariantResNet18, "orbit_resnet18": OrbitResNet18}
        return cls[name](in_channels, width, num_classes, **options)
    if name in ("e2_resnet18", "e2_wrn22"):
        from dataworth.models.equivariant import EquivariantResNet18, EquivariantWideResNet22

        cls = {"e2_resnet18": EquivariantResNet18, "e2_wrn22": EquivariantWideResNet22}
        return cls[name](in_channels, width, num_classes, **options)
    if name == "vgg13":
        from dataworth.models.vgg import VGG13

        return VGG13(in_channels, width, num_classes)
    if name == "pyramidnet110":
        from dataworth.models.pyramidnet import PyramidNet

        return PyramidNet(in_channels, width, num_classes, depth=110)
    if name == "convmixer":
        from dataworth.models.convmixer import ConvMixer

        return ConvMixer(in_channels, width, num_classes)
    if name == "swin":
        from dataworth.models.swin import Swin

        return Swin(in_channels, sample_shape[-1], width, num_classes)
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


def build_run_model(model: dict, sample_shape: tuple[int, ...], num_classes: int):
    """The model of a run's `model` section: name, width and the options it sets."""
    options = {k: v for k, v in model.items() if k not in ("name", "width") and v is not None}
    return build_model(model["name"], model["width"], sample_shape, num_classes, **options)
