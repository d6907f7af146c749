"""TrivialAugmentWide, RandAugment and AutoAugment (CIFAR-10 policy), per image, batched.

The target is torchvision's implementation on PIL images (`transforms/autoaugment.py`), which the
paper's code trains with: the same op lists, magnitude bins (float32 `linspace`, as torchvision
builds them), random signs, whole-pixel translations, shear as F.affine's degrees(atan(m)) about
the corner, rotation about the centre, fill 0 and NEAREST interpolation by default. Every random
choice (op, bin, sign, sub-policy, probability) is drawn per image, as a tensor, from the run's
augmentation generator; torchvision draws them per image too (kornia's automatic policies pick
one op per batch, which is not what the paper trained with).

Each policy splits into `draw` (the per-image choices, a dict of tensors) and `apply`; tests
read the draws. Applying loops over the ~14 op kinds, never over images: all affine kinds share
one warp with a per-image matrix, each colour kind runs on its subset of the batch.
"""

from __future__ import annotations

import functools
from typing import ClassVar, Literal

from pydantic import Field, model_validator

from dataworth.augment.spec import IMAGE, OpSpec

GEOMETRIC = ("ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate")  # one warp for all of them

# AutoAugment's CIFAR-10 policy (Cubuk et al. 2019, as torchvision lists it): 25 sub-policies of
# two (op, probability, magnitude bin of 10) steps; bin None for ops without a magnitude.
CIFAR10_POLICY = (
    (("Invert", 0.1, None), ("Contrast", 0.2, 6)),
    (("Rotate", 0.7, 2), ("TranslateX", 0.3, 9)),
    (("Sharpness", 0.8, 1), ("Sharpness", 0.9, 3)),
    (("ShearY", 0.5, 8), ("TranslateY", 0.7, 9)),
    (("AutoContrast", 0.5, None), ("Equalize", 0.9, None)),
    (("ShearY", 0.2, 7), ("Posterize", 0.3, 7)),
    (("Color", 0.4, 3), ("Brightness", 0.6, 7)),
    (("Sharpness", 0.3, 9), ("Brightness", 0.7, 9)),
    (("Equalize", 0.6, None), ("Equalize", 0.5, None)),
    (("Contrast", 0.6, 7), ("Sharpness", 0.6, 5)),
    (("Color", 0.7, 7), ("TranslateX", 0.5, 8)),
    (("Equalize", 0.3, None), ("AutoContrast", 0.4, None)),
    (("TranslateY", 0.4, 3), ("Sharpness", 0.2, 6)),
    (("Brightness", 0.9, 6), ("Color", 0.2, 8)),
    (("Solarize", 0.5, 2), ("Invert", 0.0, None)),
    (("Equalize", 0.2, None), ("AutoContrast", 0.6, None)),
    (("Equalize", 0.2, None), ("Equalize", 0.6, None)),
    (("Color", 0.9, 9), ("Equalize", 0.6, None)),
    (("AutoContrast", 0.8, None), ("Solarize", 0.2, 8)),
    (("Brightness", 0.1, 3), ("Color", 0.7, 0)),
    (("Solarize", 0.4, 5), ("AutoContrast", 0.9, None)),
    (("TranslateY", 0.9, 9), ("TranslateY", 0.7, 9)),
    (("AutoContrast", 0.9, None), ("Solarize", 0.8, 3)),
    (("Equalize", 0.8, None), ("Invert", 0.1, None)),
    (("TranslateY", 0.7, 9), ("AutoContrast", 0.9, None)),
)


@functools.lru_cache(maxsize=None)
def augmentation_space(kind: str, num_bins: int, height: int, width: int) -> tuple[tuple[str, object, bool], ...]:
    """(op name, magnitudes (float32 tensor of num_bins) or None, signed) in torchvision's order.

    `wide` is TrivialAugmentWide's space; `standard` RandAugment's; `auto` AutoAugment's (the
    standard ranges with 10 bins, Invert instead of Identity). Cached: treat as read-only."""
    import torch

    lin = lambda hi: torch.linspace(0.0, hi, num_bins)
    if kind == "wide":
        bits = 8 - (torch.arange(num_bins) / ((num_bins - 1) / 6)).round().int()
        ranges = [("ShearX", lin(0.99)), ("ShearY", lin(0.99)), ("TranslateX", lin(32.0)), ("TranslateY", lin(32.0)),
                  ("Rotate", lin(135.0)), ("Brightness", lin(0.99)), ("Color", lin(0.99)), ("Contrast", lin(0.99)),
                  ("Sharpness", lin(0.99))]
    else:
        bits = 8 - (torch.arange(num_bins) / ((num_bins - 1) / 4)).round().int()
        ranges = [("ShearX", lin(0.3)), ("ShearY", lin(0.3)), ("TranslateX", lin(150.0 / 331.0 * width)),
                  ("TranslateY", lin(150.0 / 331.0 * height)), ("Rotate", lin(30.0)), ("Brightness", lin(0.9)),
                  ("Color", lin(0.9)), ("Contrast", lin(0.9)), ("Sharpness", lin(0.9))]
    space = [("Identity", None, False)] + [(name, mags, True) for name, mags in ranges]
    space += [("Posterize", bits.float(), False), ("Solarize", torch.linspace(255.0, 0.0, num_bins), False),
              ("AutoContrast", None, False), ("Equalize", None, False)]
    if kind == "auto":
        space = space[1:] + [("Invert", None, False)]
    return tuple(space)


@functools.lru_cache(maxsize=None)
def _magnitude_table(space, device: str):
    """(kinds, bins) float64 magnitudes and the (kinds,) signed flags, on `device`."""
    import torch

    table = torch.zeros(len(space), max(len(m) if m is not None else 1 for _, m, _ in space), dtype=torch.float64)
    for k, (_, mags, _) in enumerate(space):
        if mags is not None:
            table[k, : len(mags)] = mags.to(torch.float64)
    return table.to(device), torch.tensor([s for _, _, s in space], device=device)


def magnitudes(space, kind, bin_index, sign):
    """Per-image magnitude (float64) of op `kind` at `bin_index`, negated where the op is signed and
    the sign draw is 1 (torchvision: `if signed and torch.randint(2, (1,)): magnitude *= -1`)."""
    import torch

    table, signed = _magnitude_table(space, str(kind.device))
    value = table[kind, bin_index]
    return torch.where(signed[kind] & (sign == 1), -value, value)


def apply_ops(x, space, kind, magnitude, interpolation: str):
    """Apply op `space[kind[i]]` with `magnitude[i]` to image i, as torchvision's `_apply_op` does;
    kind == len(space) leaves the image as it is. One pass over the batch sorted by op: the affine
    ops share one warp (a matrix per image), each colour op runs on its own slice."""
    import torch

    import dataworth.augment.pixels as pixels
    import dataworth.augment.warp as warp

    n, _, h, w = x.shape
    names = [name for name, _, _ in space]
    colour = {
        "Brightness": lambda s, m: pixels.brightness(s, 1.0 + m),
        "Color": lambda s, m: pixels.saturation(s, 1.0 + m),
        "Contrast": lambda s, m: pixels.contrast(s, 1.0 + m),
        "Sharpness": lambda s, m: pixels.sharpness(s, 1.0 + m),
        "Posterize": lambda s, m: pixels.posterize(s, torch.trunc(m)),
        "Solarize": lambda s, m: pixels.solarize(s, m),
        "AutoContrast": lambda s, m: pixels.autocontrast(s),
        "Equalize": lambda s, m: pixels.equalize(s),
        "Invert": lambda s, m: pixels.invert(s),
    }

    def affine(images, index):
        kinds = kind[index]
        masks = {name: kinds == names.index(name) for name in GEOMETRIC}
        return warp.warp_affine(images, warp.op_matrices(masks, magnitude[index], h, w), interpolation, quantize=True)

    # Groups: 0 = unchanged (Identity, or no op), 1 = affine, then one per colour op.
    group_of_kind, fns = [], [None, affine]
    for name in names:
        if name in GEOMETRIC:
            group_of_kind.append(1)
        elif name in colour:
            group_of_kind.append(len(fns))
            fns.append(lambda images, index, fn=colour[name]: fn(images, magnitude[index]))
        else:
            group_of_kind.append(0)
    group_of_kind.append(0)  # kind == len(space): no op
    group = torch.tensor(group_of_kind, device=kind.device)[kind]
    return pixels.apply_by_group(x, group, fns)


class AutoPolicy(OpSpec):
    """Base of the automatic policies: pixel ops on images, NEAREST by default as torchvision."""

    modalities: ClassVar[tuple[str, ...]] = (IMAGE,)
    needs_pixels: ClassVar[bool] = True
    draw_p_first: ClassVar[bool] = True
    interpolation: Literal["nearest", "bilinear"] = Field(default="nearest", description="Pillow's resampling of the affine ops")

    def draw(self, n: int, gen, device, height: int, width: int) -> dict:
        raise NotImplementedError

    def apply(self, x, params: dict):
        raise NotImplementedError

    def transform(self, x, gen):
        return self.apply(x, self.draw(x.shape[0], gen, x.device, *x.shape[-2:]))


class TrivialAugment(AutoPolicy):
    """TrivialAugmentWide: per image one of 14 ops (identity, shear x/y, translate x/y, rotate,
    brightness, color, contrast, sharpness, posterize, solarize, autocontrast, equalize), one of
    `num_magnitude_bins` magnitudes of the wide ranges, a random sign where the op is symmetric."""

    op: Literal["trivial_augment"]
    num_magnitude_bins: int = Field(default=31, ge=2, description="magnitude bins of each op's range")

    def space(self, height, width):
        return augmentation_space("wide", self.num_magnitude_bins, height, width)

    def draw(self, n, gen, device, height, width):
        import torch

        k = len(self.space(height, width))
        return {"kind": torch.randint(k, (n,), generator=gen, device=device),
                "bin": torch.randint(self.num_magnitude_bins, (n,), generator=gen, device=device),
                "sign": torch.randint(2, (n,), generator=gen, device=device)}

    def apply(self, x, params):
        space = self.space(*x.shape[-2:])
        mag = magnitudes(space, params["kind"], params["bin"], params["sign"])
        return apply_ops(x, space, params["kind"], mag, self.interpolation)


class RandAugment(AutoPolicy):
    """RandAugment: `num_ops` rounds, each applying to every image an op drawn per image from the
    standard 14 (identity included) at the fixed bin `magnitude` of `num_magnitude_bins`, with a
    random sign where the op is symmetric."""

    op: Literal["rand_augment"]
    num_ops: int = Field(default=2, ge=1, description="ops applied one after another to each image")
    magnitude: int = Field(default=9, ge=0, description="the magnitude bin every op uses")
    num_magnitude_bins: int = Field(default=31, ge=2, description="magnitude bins of each op's range")

    @model_validator(mode="after")
    def _bin_exists(self):
        if self.magnitude >= self.num_magnitude_bins:
            raise ValueError(f"magnitude {self.magnitude} must be below num_magnitude_bins ({self.num_magnitude_bins})")
        return self

    def space(self, height, width):
        return augmentation_space("standard", self.num_magnitude_bins, height, width)

    def draw(self, n, gen, device, height, width):
        import torch

        k = len(self.space(height, width))
        return {"kind": torch.randint(k, (n, self.num_ops), generator=gen, device=device),
                "sign": torch.randint(2, (n, self.num_ops), generator=gen, device=device)}

    def apply(self, x, params):
        import torch

        space = self.space(*x.shape[-2:])
        for r in range(self.num_ops):
            kind = params["kind"][:, r]
            mag = magnitudes(space, kind, torch.full_like(kind, self.magnitude), params["sign"][:, r])
            x = apply_ops(x, space, kind, mag, self.interpolation)
        return x


class AutoAugment(AutoPolicy):
    """AutoAugment with the CIFAR-10 policy: per image one of its 25 sub-policies; each of its two
    steps applies with its probability, at its magnitude bin (of 10), with a random sign."""

    op: Literal["auto_augment"]
    policy: Literal["cifar10"] = Field(default="cifar10", description="the learned policy (CIFAR-10's)")

    def space(self, height, width):
        return augmentation_space("auto", 10, height, width)

    def tables(self, height, width, device):
        """(25, 2) tensors: op index into `space`, bin, probability."""
        import torch

        names = [name for name, _, _ in self.space(height, width)]
        kind = torch.tensor([[names.index(op) for op, _, _ in sub] for sub in CIFAR10_POLICY], device=device)
        bins = torch.tensor([[b or 0 for _, _, b in sub] for sub in CIFAR10_POLICY], device=device)
        prob = torch.tensor([[p for _, p, _ in sub] for sub in CIFAR10_POLICY], device=device)
        return kind, bins, prob

    def draw(self, n, gen, device, height, width):
        import torch

        return {"sub_policy": torch.randint(len(CIFAR10_POLICY), (n,), generator=gen, device=device),
                "prob": torch.rand(n, 2, generator=gen, device=device),
                "sign": torch.randint(2, (n, 2), generator=gen, device=device)}

    def steps(self, params, height, width, device):
        """Per step (0, 1): the op index per image and whether it applies (torchvision: probs[i] <= p)."""
        kind, bins, prob = self.tables(height, width, device)
        sub = params["sub_policy"]
        return [(kind[sub, i], bins[sub, i], params["prob"][:, i] <= prob[sub, i]) for i in range(2)]

    def apply(self, x, params):
        import torch

        space = self.space(*x.shape[-2:])
        for i, (kind, bins, applies) in enumerate(self.steps(params, *x.shape[-2:], x.device)):
            # AutoAugment negates on a sign draw of 0 (`if signed and signs[i] == 0`), the others on 1.
            mag = magnitudes(space, kind, bins, 1 - params["sign"][:, i])
            x = apply_ops(x, space, torch.where(applies, kind, len(space)), mag, self.interpolation)
        return x


POLICY_OPS = {"trivial_augment": TrivialAugment, "rand_augment": RandAugment, "auto_augment": AutoAugment}
