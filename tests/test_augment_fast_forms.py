"""The faster forms of the image ops (issue 17 speed) pick the same values as NumPy does.

The ops are compared with Pillow in test_augment_image.py; here the pieces rewritten for speed
(histograms by bincount, nearest sampling, flips and crops as composed pixel maps, hue on fractional values)
are checked on small batches against NumPy indexing and hand-built cases."""

from __future__ import annotations

import numpy as np
import torch

import dataworth.augment.pixels as pixels
import dataworth.augment.warp as warp


def pixel_batch(n=6, seed=0, size=8):
    x = torch.randint(0, 256, (n, 3, size, size), generator=torch.Generator().manual_seed(seed)).float()
    x[0] = 7.0  # one flat image: autocontrast and equalize leave it as it is
    x[1, :, :, :4] = 0.0
    return x


def test_histograms_count_each_rows_values_as_numpy_does():
    values = torch.randint(0, 256, (5, 40), generator=torch.Generator().manual_seed(3))
    expected = np.stack([np.bincount(row, minlength=256) for row in values.numpy()])
    assert np.array_equal(pixels._histograms(values).numpy(), expected)


def test_nearest_sampling_and_crop_windows_index_as_numpy_does():
    x = pixel_batch(4, seed=4)
    n, c, h, w = x.shape
    # Source points inside and outside the image, and whole pixel borders (floor picks the pixel).
    src_x = torch.rand(n, h, w, dtype=torch.float64, generator=torch.Generator().manual_seed(5)) * 12 - 2
    src_x[:, 0, :4] = torch.tensor([-1.0, 0.0, 7.0, 8.0], dtype=torch.float64)
    src_y = torch.rand(n, h, w, dtype=torch.float64, generator=torch.Generator().manual_seed(6)) * 12 - 2
    out = warp.sample(x, src_x, src_y, "nearest").numpy()
    xs, ys, xn = np.floor(src_x.numpy()).astype(int), np.floor(src_y.numpy()).astype(int), x.numpy()
    for i in range(n):
        for yy in range(h):
            for xx in range(w):
                sx, sy = xs[i, yy, xx], ys[i, yy, xx]
                inside = 0 <= sx < w and 0 <= sy < h
                assert np.array_equal(out[i, :, yy, xx], xn[i, :, sy, sx] if inside else np.zeros(c))


def test_pixel_maps_read_the_padded_image_as_numpy_pads_it():
    # padded_index against np.pad for each mode, at positions before, inside and after the image.
    line = np.arange(7) * 10
    for mode in ("constant", "edge", "reflect", "symmetric"):
        padded = np.pad(line, 4, mode=mode, **({"constant_values": -1} if mode == "constant" else {}))
        index = warp.padded_index(torch.arange(-4, 11), 7, mode).numpy()
        assert np.array_equal(np.where(index >= 0, line[index.clip(0)], -1), padded), mode


class _Shift:
    """A pixel-moving op with a fixed map: rows and columns shifted by (dy, dx), zeros let in."""
    moves_pixels_only, may_fill = True, True

    def __init__(self, dy, dx):
        self.dy, self.dx = dy, dx

    def pixel_map(self, n, gen, device, h, w):
        rows = warp.padded_index(torch.arange(h).expand(n, h) - torch.tensor(self.dy)[:, None], h, "constant")
        cols = warp.padded_index(torch.arange(w).expand(n, w) - torch.tensor(self.dx)[:, None], w, "constant")
        return rows, cols


def test_a_chain_of_pixel_maps_is_the_ops_applied_one_after_another():
    x = pixel_batch(3, seed=8)
    first, second = _Shift([1, -2, 0], [2, 0, -3]), _Shift([-3, 1, 0], [1, 1, 8])

    def by_hand(images, op):
        out = np.zeros_like(images)
        for i in range(len(images)):
            for yy in range(8):
                for xx in range(8):
                    sy, sx = yy - op.dy[i], xx - op.dx[i]
                    if 0 <= sy < 8 and 0 <= sx < 8:
                        out[i, :, yy, xx] = images[i, :, sy, sx]
        return out

    chained = warp.remap_chain(x, [first, second], None).numpy()
    assert np.array_equal(chained, by_hand(by_hand(x.numpy(), first), second))


def test_hue_on_fractional_values_keeps_grey_pixels_at_their_value():
    # A bilinear resize leaves fractional values: a grey pixel keeps its exact value (not rounded).
    x = torch.full((1, 3, 2, 2), 100.25)
    x[0, 0, 0, 0] = 180.5  # one coloured pixel
    out = pixels.adjust_hue(x, torch.tensor([0.1], dtype=torch.float64))
    assert torch.equal(out[0, :, 1, 1], torch.full((3,), 100.25))
    assert not torch.equal(out[0, :, 0, 0], x[0, :, 0, 0])
