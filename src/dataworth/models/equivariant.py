"""The paper's E(2)-equivariant networks (fig. 4), a ResNet-18 (`e2cnn18`) and a Wide-ResNet-22-4
(`e2cnn`), written as group-convolutional networks (Cohen & Welling 2016) in plain PyTorch.

Geiping et al. build it with the e2cnn library: a dihedral group D_N (N rotations and the
mirrors; they use N = 2), regular feature fields, a 5x5 lifting convolution, stages of
pre-activation wide-ResNet blocks (the ResNet-18: four of two blocks, planes width, 2w, 4w, 8w; the
Wide-ResNet-22-k: three of three blocks, planes 16k, 32k, 64k; the stride sits on a block's second
conv), field counts scaled by sqrt(|G|)/|G| so the parameter count stays near the plain network's,
and an input resized to 33x33 so that every stride-2 grid is symmetric about the image centre.
e2cnn does not run with our NumPy 2 (and escnn needs a Fortran compiler to install), so this
module implements the same group equivariance directly: for a finite group of image symmetries,
a convolution over regular fields is an ordinary convolution with a bank of filters, one per
group element g, each the base filter spatially transformed by g with its group axis permuted
by g^-1. Pooling over the group and the plane at the end makes the logits invariant: rotating
(by 180 degrees for D2, by 90 for D4) or mirroring the input leaves them unchanged up to
floating-point error (tests/test_paper_models.py checks it).

Difference to e2cnn: the last block keeps regular fields and is pooled over the group (e2cnn's
model maps it to invariant fields with a convolution), and e2cnn expands filters in a steerable
basis with a frequency cut-off, so parameter counts differ slightly from theirs.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from dataworth.models.base import Classifier

GROUP_ROTATIONS = {"d2": 2, "d4": 4}  # dihedral groups: rotations by 360/N degrees, and the mirrors


def _act(x: torch.Tensor, mirror: int, quarter_turns: int) -> torch.Tensor:
    """The image transform of one group element on the last two dims: mirror, then rotate."""
    if mirror:
        x = x.flip(-1)
    return torch.rot90(x, quarter_turns, dims=(-2, -1)) if quarter_turns else x


class DihedralGroup:
    def __init__(self, name: str):
        n = GROUP_ROTATIONS[name]
        self.elements = [(m, k * (4 // n)) for m in (0, 1) for k in range(n)]
        self.order = len(self.elements)
        # The multiplication table, found by acting on a generic pattern (no two elements agree on it).
        probe = torch.arange(25.0, device="cpu").view(5, 5)  # also under a meta-device context
        images = [_act(probe, *e) for e in self.elements]

        def index(img):
            return next(i for i, ref in enumerate(images) if torch.equal(ref, img))

        self.inverse = [index(_inverse_image(probe, e)) for e in self.elements]
        # compose[g][h]: the element g∘h (h first)
        self.compose = [[index(_act(_act(probe, *h), *g)) for h in self.elements] for g in self.elements]

    def act(self, x: torch.Tensor, g: int) -> torch.Tensor:
        return _act(x, *self.elements[g])


def _inverse_image(probe: torch.Tensor, element: tuple[int, int]) -> torch.Tensor:
    mirror, turns = element
    x = torch.rot90(probe, -turns, dims=(-2, -1)) if turns else probe
    return x.flip(-1) if mirror else x


class LiftingConv(nn.Module):
    """Plain channels -> regular fields: one filter bank per group element (the filter moved by g)."""

    def __init__(self, group: DihedralGroup, cin: int, fields: int, kernel: int, padding: int):
        super().__init__()
        self.group, self.padding = group, padding
        self.weight = nn.Parameter(torch.empty(fields, cin, kernel, kernel))
        nn.init.kaiming_normal_(self.weight, nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bank = torch.stack([self.group.act(self.weight, g) for g in range(self.group.order)], dim=1)
        out = nn.functional.conv2d(x, bank.flatten(0, 1), padding=self.padding)
        return out.view(out.shape[0], -1, self.group.order, *out.shape[-2:])


class GroupConv(nn.Module):
    """Regular fields -> regular fields: out(g) = sum_h (g . W[g^-1 h]) * in(h)."""

    def __init__(self, group: DihedralGroup, fields_in: int, fields_out: int, kernel: int, stride: int = 1):
        super().__init__()
        self.group, self.stride, self.padding = group, stride, kernel // 2
        order = group.order
        self.weight = nn.Parameter(torch.empty(fields_out, fields_in, order, kernel, kernel))
        nn.init.kaiming_normal_(self.weight.view(fields_out, fields_in * order, kernel, kernel), nonlinearity="relu")
        perms = [[group.compose[group.inverse[g]][h] for h in range(order)] for g in range(order)]
        self.register_buffer("perms", torch.tensor(perms), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        order = self.group.order
        bank = torch.stack([self.group.act(self.weight[:, :, self.perms[g]], g) for g in range(order)], dim=1)
        out = nn.functional.conv2d(x.flatten(1, 2), bank.flatten(0, 1).flatten(1, 2), stride=self.stride,
                                   padding=self.padding)
        return out.view(out.shape[0], -1, order, *out.shape[-2:])


class FieldNorm(nn.BatchNorm3d):
    """BatchNorm of regular fields: one mean and scale per field, shared by its group axis."""


class EquivariantBlock(nn.Module):
    """The pre-activation wide-ResNet block of their model (stride on the second conv)."""

    def __init__(self, group: DihedralGroup, fields_in: int, fields_out: int, stride: int):
        super().__init__()
        self.bn1, self.bn2 = FieldNorm(fields_in), FieldNorm(fields_out)
        self.conv1 = GroupConv(group, fields_in, fields_out, 3)
        self.conv2 = GroupConv(group, fields_out, fields_out, 3, stride)
        self.shortcut = GroupConv(group, fields_in, fields_out, 1, stride) if stride != 1 or fields_in != fields_out else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x_n = torch.relu(self.bn1(x))
        out = self.conv2(torch.relu(self.bn2(self.conv1(x_n))))
        return out + (self.shortcut(x_n) if self.shortcut is not None else x)


def regular_fields(planes: int, order: int) -> int:
    """e2cnn's `regular_feature_type(..., fixparams=True)`: planes * sqrt(|G|) / |G| fields."""
    return int(planes * math.sqrt(order) / order)


class EquivariantEncoder(nn.Module):
    """A 5x5 lifting conv to `stem` planes, then stages of pre-activation blocks (`stages`: planes,
    first block's stride), `blocks` per stage, each plane count as regular fields of the group."""

    def __init__(self, in_channels: int, group: str, stem: int, stages: list[tuple[int, int]], blocks: int):
        super().__init__()
        self.group = DihedralGroup(group)
        order = self.group.order
        fields = [regular_fields(stem, order)] + [regular_fields(planes, order) for planes, _ in stages]
        self.lift = LiftingConv(self.group, in_channels, fields[0], 5, 2)
        layers = []
        for stage, (_, stride) in enumerate(stages):
            layers.append(EquivariantBlock(self.group, fields[stage], fields[stage + 1], stride))
            layers += [EquivariantBlock(self.group, fields[stage + 1], fields[stage + 1], 1) for _ in range(blocks - 1)]
        self.blocks = nn.Sequential(*layers)
        self.bn = FieldNorm(fields[-1])
        self.out_dim = fields[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        side = x.shape[-1] + (1 - x.shape[-1] % 2)  # odd, so stride-2 grids are symmetric about the centre
        if x.shape[-2:] != (side, side):
            x = nn.functional.interpolate(x, size=(side, side), mode="bilinear", align_corners=False)
        out = torch.relu(self.bn(self.blocks(self.lift(x))))
        return out.mean(dim=(2, 3, 4))  # pool over the group and the plane: invariant features


class EquivariantResNet18(Classifier):
    """Their `e2cnn18` (e2cnn's ComparableResNet, depth 18): stages of width, 2w, 4w, 8w planes, two
    blocks each, strides 1, 2, 2, 2."""

    def __init__(self, in_channels: int, width: int, num_classes: int, group: str = "d2"):
        stages = [(width, 1), (2 * width, 2), (4 * width, 2), (8 * width, 2)]
        encoder = EquivariantEncoder(in_channels, group, width, stages, blocks=2)
        super().__init__(encoder, encoder.out_dim, num_classes)


class EquivariantWideResNet22(Classifier):
    """Their `e2cnn` (e2cnn's Wide_ResNet, depth 22, widen factor k = `width`, no dropout, D2): a
    stem of 16 planes, then stages of 16k, 32k, 64k planes, (22 - 4) / 6 = 3 blocks each, strides
    1, 2, 2."""

    def __init__(self, in_channels: int, width: int, num_classes: int, group: str = "d2"):
        stages = [(16 * width, 1), (32 * width, 2), (64 * width, 2)]
        encoder = EquivariantEncoder(in_channels, group, 16, stages, blocks=3)
        super().__init__(encoder, encoder.out_dim, num_classes)
