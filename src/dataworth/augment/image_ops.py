"""Image ops a study names: flips, perspective, and the self-supervised view recipe
(resized crop, colour jitter, grayscale, Gaussian blur, solarize), each as torchvision does it
per image, batched with per-image random parameters.

`needs_pixels` ops act on 0..255 pixel values (colour and histogram arithmetic), so they only
apply to datasets that store pixels and run before normalisation; the geometric ops and the blur
also work on standardised data. torch is imported inside the methods: a study validates without it.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, model_validator

from dataworth.augment.spec import IMAGE, OpSpec


def mirror_map(n, gen, device, height, width, p: float, axis: str):
    """The pixel map of a left-right (axis x) or top-bottom (y) mirror of each image chosen with
    probability p (one uniform draw per image when p < 1, chosen where it is below p)."""
    import torch

    from dataworth.augment.warp import identity_map

    rows, cols = identity_map(n, height, device), identity_map(n, width, device)
    size, line = (width, cols) if axis == "x" else (height, rows)
    mirrored = (size - 1) - line
    if p < 1.0:
        chosen = torch.rand(n, generator=gen, device=device) < p
        mirrored = torch.where(chosen[:, None], mirrored, line)
    return (rows, mirrored) if axis == "x" else (mirrored, cols)


class HFlip(OpSpec):
    """RandomHorizontalFlip: mirror left-right with probability p (p = 1: every image)."""

    op: Literal["hflip"]
    p: float = Field(default=0.5, ge=0, le=1, description="probability that an image is mirrored (1: every image)")
    modalities: ClassVar[tuple[str, ...]] = (IMAGE,)
    moves_pixels_only: ClassVar[bool] = True

    def pixel_map(self, n, gen, device, height, width):
        return mirror_map(n, gen, device, height, width, self.p, axis="x")


class VFlip(OpSpec):
    """RandomVerticalFlip: mirror top-bottom with probability p."""

    op: Literal["vflip"]
    p: float = Field(default=0.5, ge=0, le=1, description="probability that an image is mirrored (1: every image)")
    modalities: ClassVar[tuple[str, ...]] = (IMAGE,)
    moves_pixels_only: ClassVar[bool] = True

    def pixel_map(self, n, gen, device, height, width):
        return mirror_map(n, gen, device, height, width, self.p, axis="y")


class Perspective(OpSpec):
    """RandomPerspective: with probability p, each corner moves inwards by a random whole number of
    pixels up to distortion_scale * half the side; fill 0; bilinear by default as torchvision."""

    op: Literal["perspective"]
    distortion_scale: float = Field(default=0.5, ge=0, le=1, description="largest corner shift, as a fraction of half the side")
    p: float = Field(default=0.5, ge=0, le=1, description="probability that an image is warped")
    interpolation: Literal["nearest", "bilinear"] = Field(default="bilinear", description="Pillow's resampling")
    modalities: ClassVar[tuple[str, ...]] = (IMAGE,)
    draw_p_first: ClassVar[bool] = True

    def draw(self, n: int, gen, device, height: int, width: int) -> dict:
        """The output corners (N, 4, 2) (top-left, top-right, bottom-right, bottom-left) as x, y."""
        import torch

        dw, dh = int(self.distortion_scale * (width // 2)), int(self.distortion_scale * (height // 2))
        rand = lambda lo, hi: torch.randint(lo, hi, (n,), generator=gen, device=device)
        corners = [
            (rand(0, dw + 1), rand(0, dh + 1)),
            (rand(width - dw - 1, width), rand(0, dh + 1)),
            (rand(width - dw - 1, width), rand(height - dh - 1, height)),
            (rand(0, dw + 1), rand(height - dh - 1, height)),
        ]
        return {"end": torch.stack([torch.stack(c, 1) for c in corners], 1)}

    def apply(self, x, params):
        import torch

        from dataworth.augment.warp import perspective_coeffs, warp_perspective

        n, _, h, w = x.shape
        start = torch.tensor([[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]], device=x.device).expand(n, 4, 2)
        return warp_perspective(x, perspective_coeffs(start, params["end"]), self.interpolation)

    def transform(self, x, gen):
        return self.apply(x, self.draw(x.shape[0], gen, x.device, *x.shape[-2:]))


class ResizedCrop(OpSpec):
    """RandomResizedCrop to the image's own size: a box of area fraction in `scale` and aspect ratio
    (log-uniform) in `ratio`, up to 10 tries per image then the central crop, as torchvision draws
    it; bilinear resize as Pillow enlarges."""

    op: Literal["resized_crop"]
    scale: tuple[float, float] = Field(default=(0.08, 1.0), description="[low, high] fraction of the image area")
    ratio: tuple[float, float] = Field(default=(3 / 4, 4 / 3), description="[low, high] aspect ratio (width / height), drawn log-uniform")
    modalities: ClassVar[tuple[str, ...]] = (IMAGE,)
    draw_p_first: ClassVar[bool] = True

    @model_validator(mode="after")
    def _ranges(self):
        for name, (lo, hi) in (("scale", self.scale), ("ratio", self.ratio)):
            if not 0 < lo <= hi:
                raise ValueError(f"{name} must be [low, high] with 0 < low <= high (got [{lo}, {hi}])")
        if self.scale[1] > 1:
            raise ValueError(f"scale high must be at most 1: a crop never exceeds the image (got {self.scale[1]})")
        return self

    def draw(self, n: int, gen, device, height: int, width: int, tries: int = 10) -> dict:
        import math

        import torch

        area = height * width
        u = lambda: torch.rand(n, tries, generator=gen, device=device, dtype=torch.float64)
        target = area * (self.scale[0] + (self.scale[1] - self.scale[0]) * u())
        lo, hi = math.log(self.ratio[0]), math.log(self.ratio[1])
        aspect = torch.exp(lo + (hi - lo) * u())
        w = torch.round(torch.sqrt(target * aspect))
        h = torch.round(torch.sqrt(target / aspect))
        ok = (w > 0) & (w <= width) & (h > 0) & (h <= height)
        first = ok.long().argmax(dim=1, keepdim=True)  # the first try that fits
        w, h = w.gather(1, first)[:, 0], h.gather(1, first)[:, 0]
        # torchvision's fallback when no try fits: the central crop of the allowed aspect ratio.
        in_ratio = width / height
        fw, fh = ((width, round(width / min(self.ratio))) if in_ratio < min(self.ratio) else
                  (round(height * max(self.ratio)), height) if in_ratio > max(self.ratio) else (width, height))
        found = ok.any(dim=1)
        w, h = torch.where(found, w, float(fw)), torch.where(found, h, float(fh))
        top = torch.floor(torch.rand(n, generator=gen, device=device, dtype=torch.float64) * (height - h + 1))
        left = torch.floor(torch.rand(n, generator=gen, device=device, dtype=torch.float64) * (width - w + 1))
        top = torch.where(found, top, torch.div(height - h, 2, rounding_mode="floor"))
        left = torch.where(found, left, torch.div(width - w, 2, rounding_mode="floor"))
        return {"top": top, "left": left, "height": h, "width": w}

    def apply(self, x, params):
        from dataworth.augment.warp import resized_crop

        return resized_crop(x, params["top"], params["left"], params["height"], params["width"])

    def transform(self, x, gen):
        return self.apply(x, self.draw(x.shape[0], gen, x.device, *x.shape[-2:]))


class PixelOp(OpSpec):
    """An op on 0..255 pixel values: it needs a dataset that stores pixels."""

    modalities: ClassVar[tuple[str, ...]] = (IMAGE,)
    needs_pixels: ClassVar[bool] = True
    draw_p_first: ClassVar[bool] = True


class ColorJitter(PixelOp):
    """torchvision ColorJitter with probability p (0.8, as SimCLR): brightness, contrast and
    saturation factors uniform in [max(0, 1 - v), 1 + v], a hue shift uniform in [-hue, hue],
    applied in a random order drawn per image."""

    op: Literal["color_jitter"]
    brightness: float = Field(default=0.4, ge=0, description="factor uniform in [max(0, 1 - v), 1 + v]; 0 = off")
    contrast: float = Field(default=0.4, ge=0, description="factor uniform in [max(0, 1 - v), 1 + v]; 0 = off")
    saturation: float = Field(default=0.4, ge=0, description="factor uniform in [max(0, 1 - v), 1 + v]; 0 = off")
    hue: float = Field(default=0.1, ge=0, le=0.5, description="hue shift uniform in [-hue, hue] of a turn; 0 = off")
    p: float = Field(default=0.8, ge=0, le=1, description="probability that an image is jittered")

    def draw(self, n: int, gen, device) -> dict:
        import torch

        def factor(v):
            u = torch.rand(n, generator=gen, device=device, dtype=torch.float64)
            low = max(0.0, 1 - v)
            return low + (1 + v - low) * u

        order = torch.rand(n, 4, generator=gen, device=device).argsort(dim=1)  # a random permutation per image
        return {"order": order, "brightness": factor(self.brightness), "contrast": factor(self.contrast),
                "saturation": factor(self.saturation),
                "hue": (2 * torch.rand(n, generator=gen, device=device, dtype=torch.float64) - 1) * self.hue}

    def apply(self, x, params):
        import dataworth.augment.pixels as pixels

        adjust = [
            lambda s, i: pixels.brightness(s, params["brightness"][i]) if self.brightness > 0 else s,
            lambda s, i: pixels.contrast(s, params["contrast"][i]) if self.contrast > 0 else s,
            lambda s, i: pixels.saturation(s, params["saturation"][i]) if self.saturation > 0 else s,
            lambda s, i: pixels.adjust_hue(s, params["hue"][i]) if self.hue > 0 else s,
        ]
        for position in range(4):  # each image's k-th adjustment, all images at once
            x = pixels.apply_by_group(x, params["order"][:, position], adjust)
        return x

    def transform(self, x, gen):
        return self.apply(x, self.draw(x.shape[0], gen, x.device))


class Grayscale(PixelOp):
    """RandomGrayscale: Pillow's grey level in every channel, with probability p (0.2 by default)."""

    op: Literal["grayscale"]
    p: float = Field(default=0.2, ge=0, le=1, description="probability that an image turns grey")

    def transform(self, x, gen):
        from dataworth.augment.pixels import grayscale

        return grayscale(x)


class Solarize(PixelOp):
    """RandomSolarize: values at or above `threshold` become 255 - value, with probability p."""

    op: Literal["solarize"]
    threshold: float = Field(default=128, ge=0, le=256, description="pixel values at or above it are inverted")
    p: float = Field(default=0.2, ge=0, le=1, description="probability that an image is solarized")

    def transform(self, x, gen):
        import torch

        from dataworth.augment.pixels import solarize

        return solarize(x, torch.full((x.shape[0],), float(self.threshold), device=x.device))


class GaussianBlur(OpSpec):
    """torchvision GaussianBlur with probability p: sigma uniform in [sigma_min, sigma_max] per image,
    `kernel_size` taps (odd), reflect padding. Works on standardised data as well as on pixels."""

    op: Literal["gaussian_blur"]
    kernel_size: int = Field(default=3, gt=0, description="taps of the kernel (odd)")
    sigma_min: float = Field(default=0.1, gt=0, description="smallest standard deviation, in pixels")
    sigma_max: float = Field(default=2.0, gt=0, description="largest standard deviation, in pixels")
    p: float = Field(default=0.5, ge=0, le=1, description="probability that an image is blurred")
    modalities: ClassVar[tuple[str, ...]] = (IMAGE,)
    draw_p_first: ClassVar[bool] = True

    @model_validator(mode="after")
    def _valid(self):
        if self.kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd (got {self.kernel_size})")
        if self.sigma_min > self.sigma_max:
            raise ValueError(f"sigma_min ({self.sigma_min}) must not exceed sigma_max ({self.sigma_max})")
        return self

    def size_problem(self, height, width):
        # Reflect padding of kernel_size // 2 pixels needs more pixels than that on each side.
        if self.kernel_size // 2 >= min(height, width):
            return (f"kernel_size: {self.kernel_size} is too large for {height}x{width} images; "
                    f"allowed: odd, up to {2 * min(height, width) - 1}")
        return None

    def transform(self, x, gen):
        import torch

        from dataworth.augment.pixels import gaussian_blur

        if problem := self.size_problem(*x.shape[-2:]):
            raise ValueError(f"gaussian_blur.{problem}")
        u = torch.rand(x.shape[0], generator=gen, device=x.device, dtype=torch.float64)
        sigma = self.sigma_min + (self.sigma_max - self.sigma_min) * u
        return gaussian_blur(x, self.kernel_size, sigma)


IMAGE_OPS = {"hflip": HFlip, "vflip": VFlip, "perspective": Perspective, "resized_crop": ResizedCrop,
             "color_jitter": ColorJitter, "grayscale": Grayscale, "solarize": Solarize, "gaussian_blur": GaussianBlur}
