"""VGG-13 for 32x32 images, as Geiping et al. (2022) build it (their `vgg13` config, from
kuangliu/pytorch-cifar): ten 3x3 conv (with bias) + BatchNorm + ReLU layers in five stages,
each closed by a 2x2 max-pool, then one Linear on the 1x1x(8*width) map ("CIFAR" head), and the
classical initialisation (Kaiming-normal fan_out convs, N(0, 0.01) Linear, zero biases).

`width` is the first stage's channels (64 in VGG-13); stages use width, 2w, 4w, 8w, 8w.
"""

from __future__ import annotations

from torch import nn

from dataworth.models.base import Classifier

VGG13_STAGES = ((1, 1), (2, 2), (4, 4), (8, 8), (8, 8))  # channel multipliers of each stage's convs


class VGG13(Classifier):
    def __init__(self, in_channels: int, width: int, num_classes: int):
        layers: list[nn.Module] = []
        cin = in_channels
        for stage in VGG13_STAGES:
            for mult in stage:
                cout = width * mult
                layers += [nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU()]
                cin = cout
            layers.append(nn.MaxPool2d(2, 2))
        # After five 2x2 pools a 32x32 image is 1x1; the pool makes other sizes work the same way.
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        super().__init__(nn.Sequential(*layers), cin, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.constant_(m.bias, 0)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.constant_(m.bias, 0)
