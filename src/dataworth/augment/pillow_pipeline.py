"""The per-image Pillow pipeline a user would otherwise run in a DataLoader: `dataworth bench`'s
baseline for the batched image ops.

Each image goes tensor -> PIL (uint8) -> the op (torchvision's PIL code path: ImageOps,
ImageEnhance, Image.transform) -> float tensor, with Python's `random` for the draws. It does
the work of torchvision's transforms without importing torchvision (which does not import beside
our CPU torch build). Not the tests' reference: tests/test_augment_image.py has its own.
"""

from __future__ import annotations

import math
import random

import numpy as np
import torch
from PIL import Image, ImageEnhance, ImageFilter, ImageOps

from dataworth.augment.policies import CIFAR10_POLICY, augmentation_space


def _affine(img, matrix, resample):
    return img.transform(img.size, Image.AFFINE, matrix, resample, fillcolor=0)


def pil_op(img: Image.Image, name: str, m: float, resample=Image.NEAREST) -> Image.Image:
    w, h = img.size
    if name == "ShearX":
        return _affine(img, (1, math.tan(math.atan(m)), 0, 0, 1, 0), resample)
    if name == "ShearY":
        return _affine(img, (1, 0, 0, math.tan(math.atan(m)), 1, 0), resample)
    if name == "TranslateX":
        return _affine(img, (1, 0, -int(m), 0, 1, 0), resample)
    if name == "TranslateY":
        return _affine(img, (1, 0, 0, 0, 1, -int(m)), resample)
    if name == "Rotate":
        return img.rotate(m, resample, fillcolor=0)
    enhance = {"Brightness": ImageEnhance.Brightness, "Color": ImageEnhance.Color,
               "Contrast": ImageEnhance.Contrast, "Sharpness": ImageEnhance.Sharpness}
    if name in enhance:
        return enhance[name](img).enhance(1.0 + m)
    if name == "Posterize":
        return ImageOps.posterize(img, int(m))
    if name == "Solarize":
        return ImageOps.solarize(img, m)
    if name == "AutoContrast":
        return ImageOps.autocontrast(img)
    if name == "Equalize":
        return ImageOps.equalize(img)
    if name == "Invert":
        return ImageOps.invert(img)
    return img


def _signed(space, k, b, rng):
    name, mags, signed = space[k]
    m = 0.0 if mags is None else float(mags[b])
    return name, -m if signed and rng.random() < 0.5 else m


def trivial_augment(img, rng):
    space = augmentation_space("wide", 31, img.size[1], img.size[0])
    return pil_op(img, *_signed(space, rng.randrange(len(space)), rng.randrange(31), rng))


def rand_augment(img, rng, num_ops=2, magnitude=9):
    space = augmentation_space("standard", 31, img.size[1], img.size[0])
    for _ in range(num_ops):
        img = pil_op(img, *_signed(space, rng.randrange(len(space)), magnitude, rng))
    return img


def auto_augment(img, rng):
    space = augmentation_space("auto", 10, img.size[1], img.size[0])
    names = [name for name, _, _ in space]
    for name, p, b in CIFAR10_POLICY[rng.randrange(len(CIFAR10_POLICY))]:
        if rng.random() <= p:
            img = pil_op(img, *_signed(space, names.index(name), b or 0, rng))
    return img


def flip_crop(img, rng, padding=4):
    if rng.random() < 0.5:
        img = ImageOps.mirror(img)
    padded = ImageOps.expand(img, padding, fill=0)
    dx, dy = rng.randint(0, 2 * padding), rng.randint(0, 2 * padding)
    return padded.crop((dx, dy, dx + img.size[0], dy + img.size[1]))


def perspective(img, rng, distortion=0.5):
    if rng.random() >= 0.5:
        return img
    w, h = img.size
    dw, dh = int(distortion * (w // 2)), int(distortion * (h // 2))
    end = [(rng.randint(0, dw), rng.randint(0, dh)), (rng.randint(w - dw - 1, w - 1), rng.randint(0, dh)),
           (rng.randint(w - dw - 1, w - 1), rng.randint(h - dh - 1, h - 1)), (rng.randint(0, dw), rng.randint(h - dh - 1, h - 1))]
    start = [(0, 0), (w - 1, 0), (w - 1, h - 1), (0, h - 1)]
    a = np.array([row for (x, y), (u, v) in zip(end, start) for row in (
        [x, y, 1, 0, 0, 0, -u * x, -u * y], [0, 0, 0, x, y, 1, -v * x, -v * y])], dtype=np.float64)
    coeffs = np.linalg.solve(a, np.array(start, np.float64).reshape(8)).astype(np.float32)
    return img.transform(img.size, Image.PERSPECTIVE, coeffs.tolist(), Image.BILINEAR, fillcolor=0)


def ssl_view(img, rng):
    """SimCLR/BYOL's view: resized crop, flip, colour jitter (p 0.8), grayscale (p 0.2), blur, solarize."""
    w, h = img.size
    for _ in range(10):
        area = w * h * rng.uniform(0.08, 1.0)
        ratio = math.exp(rng.uniform(math.log(3 / 4), math.log(4 / 3)))
        cw, ch = round(math.sqrt(area * ratio)), round(math.sqrt(area / ratio))
        if 0 < cw <= w and 0 < ch <= h:
            left, top = rng.randint(0, w - cw), rng.randint(0, h - ch)
            break
    else:
        left, top, cw, ch = 0, 0, w, h
    img = img.crop((left, top, left + cw, top + ch)).resize((w, h), Image.BILINEAR)
    if rng.random() < 0.5:
        img = ImageOps.mirror(img)
    if rng.random() < 0.8:
        adjust = [lambda i: ImageEnhance.Brightness(i).enhance(rng.uniform(0.6, 1.4)),
                  lambda i: ImageEnhance.Contrast(i).enhance(rng.uniform(0.6, 1.4)),
                  lambda i: ImageEnhance.Color(i).enhance(rng.uniform(0.6, 1.4)),
                  lambda i: _hue(i, rng.uniform(-0.1, 0.1))]
        rng.shuffle(adjust)
        for fn in adjust:
            img = fn(img)
    if rng.random() < 0.2:
        img = img.convert("L").convert("RGB")
    if rng.random() < 0.5:
        img = img.filter(ImageFilter.GaussianBlur(rng.uniform(0.1, 2.0)))
    if rng.random() < 0.2:
        img = ImageOps.solarize(img, 128)
    return img


def _hue(img, shift):
    h, s, v = img.convert("HSV").split()
    shifted = (np.asarray(h, dtype=np.int64) + int(shift * 255)) % 256
    return Image.merge("HSV", (Image.fromarray(shifted.astype(np.uint8), "L"), s, v)).convert("RGB")


PIPELINES = {"trivial_augment": trivial_augment, "rand_augment": rand_augment, "auto_augment": auto_augment,
             "flip_crop": flip_crop, "perspective": perspective, "ssl_view": ssl_view}


def run_per_image(name: str, x: torch.Tensor, rng: random.Random) -> torch.Tensor:
    """The pipeline on each image of a float 0..255 (N, C, H, W) batch, as a DataLoader would."""
    transform = PIPELINES[name]
    out = []
    for image in x:
        img = Image.fromarray(image.permute(1, 2, 0).to(torch.uint8).numpy())
        out.append(torch.from_numpy(np.asarray(transform(img, rng), dtype=np.float32)).permute(2, 0, 1))
    return torch.stack(out)
