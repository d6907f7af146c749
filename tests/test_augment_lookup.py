"""The faster forms of the image ops (issue 17 speed) compute what the op-by-op functions do.

Those functions are compared with Pillow in test_augment_image.py; here the one-pass table lookup
of the automatic policies, the gather-based nearest warp and crop windows, and the hue arithmetic
are checked against them (and against NumPy) on small batches."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import dataworth.augment.pixels as pixels
import dataworth.augment.warp as warp
from dataworth.augment.policies import augmentation_space, apply_ops


def pixel_batch(n=6, seed=0, size=8):
    x = torch.randint(0, 256, (n, 3, size, size), generator=torch.Generator().manual_seed(seed)).float()
    x[0] = 7.0  # one flat image: autocontrast and equalize leave it as it is
    x[1, :, :, :4] = 0.0
    return x


@pytest.mark.parametrize("name, magnitude, reference", [
    ("Brightness", 0.4, lambda x, m: pixels.brightness(x, 1.0 + m)),
    ("Contrast", -0.7, lambda x, m: pixels.contrast(x, 1.0 + m)),
    ("Posterize", 3.0, lambda x, m: pixels.posterize(x, torch.trunc(m))),
    ("Solarize", 100.0, lambda x, m: pixels.solarize(x, m)),
    ("AutoContrast", 0.0, lambda x, m: pixels.autocontrast(x)),
    ("Equalize", 0.0, lambda x, m: pixels.equalize(x)),
    ("Invert", 0.0, lambda x, m: pixels.invert(x)),
])
def test_each_lookup_op_equals_its_function(name, magnitude, reference):
    x = pixel_batch()
    mags = torch.full((len(x),), magnitude, dtype=torch.float64)
    out = pixels.lookup_ops(x, torch.zeros(len(x), dtype=torch.long), mags, (name,))
    assert torch.equal(out, reference(x, mags))


def test_mixed_lookup_ops_equal_op_by_op_and_fractional_inputs_take_the_functions():
    space = augmentation_space("wide", 31, 8, 8)
    names = [n for n, _, _ in space]
    kinds = torch.tensor([names.index(n) for n in ("Brightness", "Equalize", "Posterize", "AutoContrast",
                                                   "Solarize", "Contrast", "Identity", "Color")])
    mags = torch.tensor([0.5, 0.0, 4.0, 0.0, 77.0, 0.3, 0.0, -0.4], dtype=torch.float64)
    for x in (pixel_batch(8, seed=1), pixel_batch(8, seed=2) + 0.25):  # whole numbers, then fractional
        out = apply_ops(x, space, kinds, mags, "nearest")
        expected = torch.stack([
            pixels.brightness(x[0:1], 1.0 + mags[0:1])[0], pixels.equalize(x[1:2])[0],
            pixels.posterize(x[2:3], mags[2:3])[0], pixels.autocontrast(x[3:4])[0],
            pixels.solarize(x[4:5], mags[4:5])[0], pixels.contrast(x[5:6], 1.0 + mags[5:6])[0], x[6],
            pixels.saturation(x[7:8], 1.0 + mags[7:8])[0]])
        assert torch.equal(out, expected)


def test_histograms_count_each_rows_values_as_numpy_does():
    values = torch.randint(0, 256, (5, 40), generator=torch.Generator().manual_seed(3))
    expected = np.stack([np.bincount(row, minlength=256) for row in values.numpy()])
    assert np.array_equal(pixels._histograms(values).numpy(), expected)


def test_nearest_gather_and_crop_windows_index_as_numpy_does():
    x = pixel_batch(4, seed=4)
    n, c, h, w = x.shape
    # Source points inside and outside the image, and whole pixel borders (floor picks the pixel).
    src_x = torch.rand(n, h, w, dtype=torch.float64, generator=torch.Generator().manual_seed(5)) * 12 - 2
    src_x[:, 0, :4] = torch.tensor([-1.0, 0.0, 7.0, 8.0], dtype=torch.float64)
    src_y = torch.rand(n, h, w, dtype=torch.float64, generator=torch.Generator().manual_seed(6)) * 12 - 2
    out = warp._nearest(x, src_x, src_y).numpy()
    xs, ys, xn = np.floor(src_x.numpy()).astype(int), np.floor(src_y.numpy()).astype(int), x.numpy()
    for i in range(n):
        for yy in range(h):
            for xx in range(w):
                sx, sy = xs[i, yy, xx], ys[i, yy, xx]
                inside = 0 <= sx < w and 0 <= sy < h
                assert np.array_equal(out[i, :, yy, xx], xn[i, :, sy, sx] if inside else np.zeros(c))
    padded = warp.pad(x, 2, "constant")
    top, left = torch.tensor([0, 4, 1, 2]), torch.tensor([3, 0, 4, 2])
    cut = warp.windows(padded, top, left, h, w).numpy()
    for i in range(n):
        assert np.array_equal(cut[i], padded.numpy()[i, :, top[i]:top[i] + h, left[i]:left[i] + w])


def test_hue_on_fractional_values_keeps_grey_pixels_at_their_value():
    # A bilinear resize leaves fractional values: a grey pixel keeps its exact value (not rounded).
    x = torch.full((1, 3, 2, 2), 100.25)
    x[0, 0, 0, 0] = 180.5  # one coloured pixel
    out = pixels.adjust_hue(x, torch.tensor([0.1], dtype=torch.float64))
    assert torch.equal(out[0, :, 1, 1], torch.full((3,), 100.25))
    assert not torch.equal(out[0, :, 0, 0], x[0, :, 0, 0])
