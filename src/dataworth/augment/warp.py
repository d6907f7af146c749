"""Per-sample geometric warps with Pillow's sampling rules, batched.

Pillow's `Image.transform` maps each output pixel's centre (x + 0.5, y + 0.5) through the
inverse transform to a source point; NEAREST takes the source pixel containing that point
(outside the image: the fill), BILINEAR blends the four pixels around it, clamped at the edge,
and fills only where the point lies outside the image. torchvision's PIL path (which its
TrivialAugment, RandAugment, AutoAugment and RandomPerspective run with) uses exactly this, so
we compute the same source points, in float64, one coefficient set per sample.
"""

from __future__ import annotations

import torch

INTERPOLATIONS = ("nearest", "bilinear")


def _grid(h: int, w: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Output pixel centres (H, W) in Pillow's convention."""
    ys = torch.arange(h, device=device, dtype=torch.float64) + 0.5
    xs = torch.arange(w, device=device, dtype=torch.float64) + 0.5
    return xs[None, :].expand(h, w), ys[:, None].expand(h, w)


def sample(x: torch.Tensor, src_x: torch.Tensor, src_y: torch.Tensor, interpolation: str,
           quantize: bool = False, stays_inside: bool = False) -> torch.Tensor:
    """Resample x (N, C, H, W) at source points (N, H', W') with Pillow's rules, fill 0 outside.

    Nearest takes the pixel containing the point; bilinear is one `grid_sample` (align_corners=False
    puts pixel i's centre at i + 0.5, as Pillow does) with its neighbours clamped at the edge
    ('border'), as Pillow does; the fill applies where the point lies outside the image, Pillow's
    test for both. `quantize` truncates bilinear results to whole numbers as Pillow does on uint8
    images (pixel data); `stays_inside` skips the fill where no point can leave the image (a
    resized crop)."""
    import torch.nn.functional as F

    if interpolation not in INTERPOLATIONS:
        raise ValueError(f"interpolation {interpolation!r}; allowed: {', '.join(INTERPOLATIONS)}")
    h, w = x.shape[-2:]
    if interpolation == "nearest":
        # Pillow's floor of the float64 point picks the pixel; a point outside the image reads a
        # one-pixel zero border (the fill), so one gather does it all, with no mask (35-42% less
        # CPU than grid_sample on a grid of pixel centres; docs/benchmarks.md).
        n, c = x.shape[:2]
        col = torch.floor(src_x).clamp_(-1, w).add_(1)
        index = torch.floor(src_y).clamp_(-1, h).add_(1).mul_(w + 2).add_(col).long()
        border = F.pad(x, (1, 1, 1, 1)).view(n, c, (h + 2) * (w + 2))
        out_h, out_w = src_x.shape[-2:]
        return border.gather(2, index.view(n, 1, out_h * out_w).expand(n, c, out_h * out_w)).view(n, c, out_h, out_w)
    grid = torch.stack([(src_x * (2.0 / w) - 1.0).to(x.dtype), (src_y * (2.0 / h) - 1.0).to(x.dtype)], dim=-1)
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    if quantize:
        out = torch.floor(out)  # Pillow truncates; the blend is never negative
    if stays_inside:
        return out
    inside = (src_x >= 0) & (src_x < w) & (src_y >= 0) & (src_y < h)
    return out.mul_(inside[:, None])  # the fill, 0 (a broadcast product is vectorised; masked_fill is not)


def warp_affine(x: torch.Tensor, matrix: torch.Tensor, interpolation: str, quantize: bool = False) -> torch.Tensor:
    """Pillow's AFFINE transform: matrix (N, 6) = (a, b, c, d, e, f) maps an output point (u, v)
    to the source point (a u + b v + c, d u + e v + f)."""
    n, _, h, w = x.shape
    u = torch.arange(w, device=x.device, dtype=torch.float64)[None, :] + 0.5  # (1, W)
    v = torch.arange(h, device=x.device, dtype=torch.float64)[:, None] + 0.5  # (H, 1)
    m = matrix.to(x.device, torch.float64).view(n, 6, 1, 1)
    # Products per row and per column, then (a u + b v) + c: the order that agrees with Pillow's
    # accumulated coordinates on points near pixel borders (a 135-degree rotation has many).
    src_x = (m[:, 0] * u + m[:, 1] * v) + m[:, 2]
    src_y = (m[:, 3] * u + m[:, 4] * v) + m[:, 5]
    return sample(x, src_x, src_y, interpolation, quantize)


def warp_perspective(x: torch.Tensor, coeffs: torch.Tensor, interpolation: str, quantize: bool = False) -> torch.Tensor:
    """Pillow's PERSPECTIVE transform with coefficients (N, 8): source point
    ((a u + b v + c) / (g u + h v + 1), (d u + e v + f) / (g u + h v + 1))."""
    n, _, h, w = x.shape
    u, v = _grid(h, w, x.device)
    k = coeffs.to(x.device, torch.float64).view(n, 8, 1, 1)
    den = k[:, 6] * u + k[:, 7] * v + 1
    src_x = (k[:, 0] * u + k[:, 1] * v + k[:, 2]) / den
    src_y = (k[:, 3] * u + k[:, 4] * v + k[:, 5]) / den
    return sample(x, src_x, src_y, interpolation, quantize)


# --- inverse matrices, as torchvision hands them to Pillow -----------------------------------------


def op_matrices(op: dict[str, torch.Tensor], m: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """The inverse matrices (N, 6), as torchvision hands them to Pillow, of a batch whose images
    each get one of its affine ops: `op` maps ShearX, ShearY, TranslateX, TranslateY and Rotate to
    (N,) masks of the images that get it, `m` holds their magnitudes. One pass over the batch:
    - ShearX / ShearY: F.affine with shear degrees(atan(m)) about the corner (0, 0), whose inverse
      is (1, tan(s), 0, 0, 1, 0) / (1, 0, 0, tan(s), 1, 0);
    - TranslateX / TranslateY: F.affine by whole pixels, the source point (u - dx, v - dy);
    - Rotate: `Image.rotate(m)`, counter-clockwise about the centre (w/2, h/2), Pillow's own
      matrix with its cosines and sines rounded to 15 decimals."""
    m = m.to(torch.float64)
    tan = torch.tan(torch.deg2rad(torch.rad2deg(torch.atan(m))))
    angle = -torch.deg2rad(m)
    cos, sin = torch.round(torch.cos(angle), decimals=15), torch.round(torch.sin(angle), decimals=15)
    cx, cy = w / 2.0, h / 2.0
    shift = -torch.trunc(m)
    rotate = op["Rotate"]
    a = torch.where(rotate, cos, 1.0)
    b = torch.where(op["ShearX"], tan, torch.where(rotate, sin, 0.0))
    c = torch.where(op["TranslateX"], shift, torch.where(rotate, cos * -cx + sin * -cy + cx, 0.0))
    d = torch.where(op["ShearY"], tan, torch.where(rotate, -sin, 0.0))
    f = torch.where(op["TranslateY"], shift, torch.where(rotate, -sin * -cx + cos * -cy + cy, 0.0))
    return torch.stack([a, b, c, d, a, f], 1)


def perspective_coeffs(start: torch.Tensor, end: torch.Tensor) -> torch.Tensor:
    """torchvision's _get_perspective_coeffs, batched: the 8 coefficients (float32, as it returns
    them) that map each output corner `end` (N, 4, 2) back to the input corner `start`."""
    n = end.shape[0]
    a = torch.zeros(n, 8, 8, dtype=torch.float64, device=end.device)
    e, s = end.to(torch.float64), start.to(torch.float64)
    a[:, 0::2, 0], a[:, 0::2, 1], a[:, 0::2, 2] = e[:, :, 0], e[:, :, 1], 1.0
    a[:, 1::2, 3], a[:, 1::2, 4], a[:, 1::2, 5] = e[:, :, 0], e[:, :, 1], 1.0
    a[:, 0::2, 6], a[:, 0::2, 7] = -s[:, :, 0] * e[:, :, 0], -s[:, :, 0] * e[:, :, 1]
    a[:, 1::2, 6], a[:, 1::2, 7] = -s[:, :, 1] * e[:, :, 0], -s[:, :, 1] * e[:, :, 1]
    b = s.reshape(n, 8)
    return torch.linalg.solve(a, b).to(torch.float32)


def resized_crop(x: torch.Tensor, top, left, height, width) -> torch.Tensor:
    """Crop boxes (per sample, whole pixels) resized back to the image size with bilinear
    interpolation as Pillow's `resize` does when enlarging: the triangle filter over the crop,
    clamped at the crop's edges. (A crop never exceeds the image, so nothing is shrunk.)"""
    n, _, h, w = x.shape
    col = lambda t: t.to(x.device, torch.float64).view(n, 1)
    top, left, height, width = col(top), col(left), col(height), col(width)
    centres = lambda size: torch.arange(size, device=x.device, dtype=torch.float64)[None, :] + 0.5
    # Source centre of each output column / row in crop coordinates, clamped to the crop's first
    # and last pixel centres (separable: computed per column and per row, broadcast once).
    cx = left + (centres(w) * width / w).clamp(min=0.5).minimum(width - 0.5)  # (n, w)
    cy = top + (centres(h) * height / h).clamp(min=0.5).minimum(height - 0.5)  # (n, h)
    return sample(x, cx[:, None, :].expand(n, h, w), cy[:, :, None].expand(n, h, w), "bilinear", stays_inside=True)


# --- pixel maps: ops that only move pixels (flips, crops), a chain of them as one gather ----------
#
# Such an op says, per image, which input row each output row reads and which input column each
# output column reads ((N, H) and (N, W) integer maps, -1 for the fill). A run of them composes
# into one map, so flip + crop (the paper's baseline recipe) costs one gather over the batch
# instead of a pad, a gather and a masked flip (about half the CPU time; docs/benchmarks.md).


def identity_map(n: int, size: int, device) -> torch.Tensor:
    return torch.arange(size, device=device).expand(n, size)


def padded_index(index: torch.Tensor, size: int, mode: str) -> torch.Tensor:
    """Which pixel of an image `size` long a position `index` of it padded as torchvision pads
    reads: constant: -1 (the fill) outside 0..size-1; edge: the nearest edge pixel; reflect:
    mirrored about the edge pixel; symmetric: mirrored including it (one reflection: the ops
    refuse a padding larger than the image)."""
    if mode == "constant":
        return torch.where((index >= 0) & (index < size), index, -1)
    if mode == "edge":
        return index.clamp(0, size - 1)
    if mode == "reflect":
        index = index.abs()
        return torch.where(index >= size, 2 * (size - 1) - index, index)
    index = torch.where(index < 0, -index - 1, index)  # symmetric
    return torch.where(index >= size, 2 * size - 1 - index, index)


def _follow(inner: torch.Tensor, outer: torch.Tensor) -> torch.Tensor:
    """inner[outer] per image (reading through two maps), the fill (-1) kept."""
    return torch.where(outer >= 0, inner.gather(1, outer.clamp(min=0)), -1)


def remap_chain(x: torch.Tensor, ops: list, gen: torch.Generator) -> torch.Tensor:
    """Apply pixel-moving ops (each with `pixel_map`) in order, as one gather. Their maps are drawn
    in op order, so the generator sees the draws the ops would make one after another."""
    n, c, h, w = x.shape
    if n == 0:
        return x
    maps = [op.pixel_map(n, gen, x.device, h, w) for op in ops]
    rows, cols = maps[-1]
    for inner_rows, inner_cols in reversed(maps[:-1]):  # output -> last op's input -> ... -> x
        rows, cols = _follow(inner_rows, rows), _follow(inner_cols, cols)
    index = (rows.clamp(min=0) * w)[:, :, None] + cols.clamp(min=0)[:, None, :]
    out = x.reshape(n, c, h * w).gather(2, index.view(n, 1, h * w).expand(n, c, h * w)).view(n, c, h, w)
    if any(op.may_fill for op in ops):
        inside = (rows >= 0).to(x.dtype)[:, :, None] * (cols >= 0).to(x.dtype)[:, None, :]
        out.mul_(inside[:, None])  # the fill, 0
    return out
