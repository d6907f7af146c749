"""Batched augmentation ops with per-sample random parameters.

Each op is its own validated spec (the study YAML names it by `op`) and applies to a whole
batch on the batch's device: every random parameter is drawn as one tensor of per-sample
values from the caller's `torch.Generator`, so a seed reproduces every draw and no Python
loop runs over samples. `p` is the per-sample probability that the op is applied.

Signals are (N, C, L), images (N, C, H, W). Data are standardised, so "zero fill" means
"fill with the dataset mean".
"""

from __future__ import annotations

import math
from typing import ClassVar, Literal

from pydantic import Field, model_validator

from dataworth.augment.image_ops import IMAGE_OPS
from dataworth.augment.policies import POLICY_OPS
from dataworth.augment.spec import IMAGE, SIGNAL, OpSpec

__all__ = ["IMAGE", "OP_SPECS", "SIGNAL", "OpSpec"]


def _uniform(n, low, high, gen, device):
    import torch

    return low + (high - low) * torch.rand(n, generator=gen, device=device)


def _window(x_padded, start, length):
    """Per-sample windows x_padded[i, :, start[i] : start[i] + length] along the last axis."""
    import torch

    idx = start[:, None] + torch.arange(length, device=x_padded.device)[None, :]
    idx = idx[:, None, :].expand(-1, x_padded.shape[1], -1)
    return x_padded.gather(-1, idx)


class Shift(OpSpec):
    """Translate each signal by a random whole number of samples in [-max_shift, max_shift]."""

    op: Literal["shift"]
    max_shift: int = Field(gt=0, description="largest shift, in samples")
    modalities: ClassVar[tuple[str, ...]] = (SIGNAL,)

    def transform(self, x, gen):
        import torch
        import torch.nn.functional as F

        s = self.max_shift
        start = torch.randint(0, 2 * s + 1, (x.shape[0],), generator=gen, device=x.device)
        return _window(F.pad(x, (s, s)), start, x.shape[-1])


class Scale(OpSpec):
    """Multiply each sample by a random amplitude in [min, max]."""

    op: Literal["scale"]
    min: float = Field(default=0.8, gt=0, description="smallest amplitude")
    max: float = Field(default=1.2, gt=0, description="largest amplitude")
    modalities: ClassVar[tuple[str, ...]] = (SIGNAL, IMAGE)

    @model_validator(mode="after")
    def _ordered(self):
        if self.min > self.max:
            raise ValueError(f"min ({self.min}) must not exceed max ({self.max})")
        return self

    def transform(self, x, gen):
        factor = _uniform(x.shape[0], self.min, self.max, gen, x.device)
        return x * factor.view(-1, *([1] * (x.dim() - 1))).to(x.dtype)


class Noise(OpSpec):
    """Add i.i.d. Gaussian noise of standard deviation `std`."""

    op: Literal["noise"]
    std: float = Field(gt=0, description="standard deviation of the noise (data are standardised)")
    modalities: ClassVar[tuple[str, ...]] = (SIGNAL, IMAGE)

    def transform(self, x, gen):
        import torch

        return x + self.std * torch.randn(x.shape, generator=gen, device=x.device, dtype=x.dtype)


class CorrelatedNoise(OpSpec):
    """Add Gaussian noise smoothed along time (Gaussian kernel of `length_scale` samples), std `std`."""

    op: Literal["correlated_noise"]
    std: float = Field(gt=0, description="standard deviation of the smoothed noise")
    length_scale: float = Field(default=2.0, gt=0, description="std of the Gaussian smoothing kernel, in samples")
    modalities: ClassVar[tuple[str, ...]] = (SIGNAL,)

    def transform(self, x, gen):
        import torch
        import torch.nn.functional as F

        radius = max(1, int(3 * self.length_scale))
        t = torch.arange(-radius, radius + 1, device=x.device, dtype=x.dtype)
        kernel = torch.exp(-0.5 * (t / self.length_scale) ** 2)
        kernel = kernel / kernel.square().sum().sqrt()  # keeps unit variance after smoothing
        n, c, length = x.shape
        white = torch.randn((n * c, 1, length + 2 * radius), generator=gen, device=x.device, dtype=x.dtype)
        smooth = F.conv1d(white, kernel.view(1, 1, -1)).view(n, c, length)
        return x + self.std * smooth


class Flip(OpSpec):
    """Mirror images left-right (with probability p, 0.5 by default)."""

    op: Literal["flip"]
    p: float = Field(default=0.5, ge=0, le=1, description="probability that a sample is mirrored")
    modalities: ClassVar[tuple[str, ...]] = (IMAGE,)
    moves_pixels_only: ClassVar[bool] = True

    def pixel_map(self, n, gen, device, height, width):
        from dataworth.augment.image_ops import mirror_map

        return mirror_map(n, gen, device, height, width, self.p, axis="x")


class Crop(OpSpec):
    """RandomCrop to the image size: pad by `padding` pixels (`padding_mode` constant = zero fill,
    edge, reflect or symmetric, as torchvision) and crop back at a random offset."""

    op: Literal["crop"]
    padding: int = Field(gt=0, description="pixels of padding on each side")
    padding_mode: Literal["constant", "edge", "reflect", "symmetric"] = Field(
        default="constant", description="constant (zero fill), edge, reflect or symmetric, as torchvision pads")
    modalities: ClassVar[tuple[str, ...]] = (IMAGE,)
    omitted_at_default: ClassVar[tuple[str, ...]] = ("padding_mode",)
    moves_pixels_only: ClassVar[bool] = True

    @property
    def may_fill(self) -> bool:
        return self.padding_mode == "constant"

    def size_problem(self, height, width):
        # One mirror image of the edge: reflect (about the edge pixel) reaches size - 1 pixels out,
        # symmetric (including it) size pixels.
        most = min(height, width) - (self.padding_mode == "reflect")
        if self.padding_mode in ("reflect", "symmetric") and self.padding > most:
            return (f"padding: {self.padding} with padding_mode {self.padding_mode} is too large for "
                    f"{height}x{width} images; allowed: 1..{most}")
        return None

    def pixel_map(self, n, gen, device, height, width):
        import torch

        from dataworth.augment.warp import identity_map, padded_index

        if problem := self.size_problem(height, width):
            raise ValueError(f"crop.{problem}")
        pad = self.padding
        rows, cols = identity_map(n, height, device), identity_map(n, width, device)
        dy = torch.randint(0, 2 * pad + 1, (n, 1), generator=gen, device=device)
        dx = torch.randint(0, 2 * pad + 1, (n, 1), generator=gen, device=device)
        cropped = (padded_index(rows + dy - pad, height, self.padding_mode),
                   padded_index(cols + dx - pad, width, self.padding_mode))
        if self.p >= 1.0:
            return cropped
        kept = (torch.rand(n, generator=gen, device=device) >= self.p)[:, None]  # drawn after, as before
        return torch.where(kept, rows, cropped[0]), torch.where(kept, cols, cropped[1])


class Cutout(OpSpec):
    """Zero a `size` x `size` square at a random centre (it may reach past the border)."""

    op: Literal["cutout"]
    size: int = Field(gt=0, description="side of the square, in pixels")
    modalities: ClassVar[tuple[str, ...]] = (IMAGE,)

    def transform(self, x, gen):
        import torch

        n, _, h, w = x.shape
        cy = torch.randint(0, h, (n,), generator=gen, device=x.device)
        cx = torch.randint(0, w, (n,), generator=gen, device=x.device)
        half = self.size / 2
        ys = torch.arange(h, device=x.device)[None, :] - cy[:, None]
        xs = torch.arange(w, device=x.device)[None, :] - cx[:, None]
        inside_y = (ys >= -math.floor(half)) & (ys < math.ceil(half))
        inside_x = (xs >= -math.floor(half)) & (xs < math.ceil(half))
        hole = inside_y[:, :, None] & inside_x[:, None, :]
        return x.masked_fill(hole[:, None], 0.0)


OP_SPECS: dict[str, type[OpSpec]] = {
    "shift": Shift,
    "scale": Scale,
    "noise": Noise,
    "correlated_noise": CorrelatedNoise,
    "flip": Flip,
    "crop": Crop,
    "cutout": Cutout,
}
# The image ops and automatic policies live in their own modules (issue 17); study validation
# sees every op through OP_SPECS.
OP_SPECS.update(IMAGE_OPS)
OP_SPECS.update(POLICY_OPS)
