"""FLOPs of one training sample, measured rather than assumed.

torch's FlopCounterMode counts one forward and backward pass on the meta device (shapes only:
nothing is computed, so ResNet-18 width 64 costs no time). A multiply-add counts as 2 FLOPs;
BatchNorm, ReLU and pooling are not counted. The paper's ResNet-18 on a 32x32 image does about
0.56 G multiply-adds forward, so 3.33 GFLOP per training sample (forward + backward).
"""

from __future__ import annotations


def flops_per_sample(model_name: str, width: int, sample_shape: tuple[int, ...], num_classes: int = 10) -> float:
    """Forward + backward FLOPs of one training sample of `build_model(model_name, width, ...)`."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from dataworth.models import build_model

    batch = 2  # BatchNorm in training mode needs more than one sample
    with torch.device("meta"):
        model = build_model(model_name, width, tuple(sample_shape), num_classes)
        x = torch.randn(batch, *sample_shape)
    with FlopCounterMode(display=False) as counter:
        model(x).float().sum().backward()
    return counter.get_total_flops() / batch
