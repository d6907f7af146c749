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

    One `grid_sample` (align_corners=False puts pixel i's centre at i + 0.5, as Pillow does):
    nearest takes the pixel containing the point (they differ only for a point exactly on a
    pixel border); bilinear clamps its neighbours at the edge ('border'), as Pillow does; the
    fill applies where the point lies outside the image, Pillow's test for both. `quantize`
    truncates bilinear results to whole numbers as Pillow does on uint8 images (pixel data);
    `stays_inside` skips the fill where no point can leave the image (a resized crop)."""
    import torch.nn.functional as F

    if interpolation not in INTERPOLATIONS:
        raise ValueError(f"interpolation {interpolation!r}; allowed: {', '.join(INTERPOLATIONS)}")
    h, w = x.shape[-2:]
    if interpolation == "nearest":
        # Pick the pixel in float64 (Pillow's floor) and hand grid_sample its centre: a float32
        # grid would move points lying just below a pixel border onto it. A pixel outside the
        # image reads grid_sample's zero padding: Pillow's fill, with no mask.
        gx = (torch.floor(src_x) + 0.5) * (2.0 / w) - 1.0
        gy = (torch.floor(src_y) + 0.5) * (2.0 / h) - 1.0
        grid = torch.stack([gx.to(x.dtype), gy.to(x.dtype)], dim=-1)
        return F.grid_sample(x, grid, mode="nearest", padding_mode="zeros", align_corners=False)
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


def identity_matrix(n: int, device) -> torch.Tensor:
    m = torch.zeros(n, 6, dtype=torch.float64, device=device)
    m[:, 0] = m[:, 4] = 1.0
    return m


def shear_matrix(m: torch.Tensor, axis: str) -> torch.Tensor:
    """torchvision's ShearX/ShearY: F.affine with shear degrees(atan(m)) about the corner (0, 0).
    Its inverse matrix is (1, tan(s), 0, 0, 1, 0) for x and (1, 0, 0, tan(s), 1, 0) for y."""
    t = torch.tan(torch.deg2rad(torch.rad2deg(torch.atan(m.to(torch.float64)))))
    out = identity_matrix(len(m), m.device)
    out[:, 1 if axis == "x" else 3] = t
    return out


def translate_matrix(dx: torch.Tensor, dy: torch.Tensor) -> torch.Tensor:
    """F.affine with translate [dx, dy] whole pixels: the source point is (u - dx, v - dy)."""
    out = identity_matrix(len(dx), dx.device)
    out[:, 2], out[:, 5] = -dx.to(torch.float64), -dy.to(torch.float64)
    return out


def rotate_matrix(degrees: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """`Image.rotate(degrees)` (counter-clockwise about the centre (w/2, h/2)): Pillow's own
    matrix, its cosines and sines rounded to 15 decimals."""
    angle = -torch.deg2rad(degrees.to(torch.float64))
    cos, sin = torch.round(torch.cos(angle), decimals=15), torch.round(torch.sin(angle), decimals=15)
    cx, cy = w / 2.0, h / 2.0
    out = torch.stack([cos, sin, torch.zeros_like(cos), -sin, cos, torch.zeros_like(cos)], 1)
    out[:, 2] = cos * -cx + sin * -cy + cx
    out[:, 5] = -sin * -cx + cos * -cy + cy
    return out


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


def windows(padded: torch.Tensor, top: torch.Tensor, left: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """padded[i, :, top[i] : top[i] + h, left[i] : left[i] + w] for every image i.

    One gather over each flattened padded image with a per-image index of its window: about half
    the time of cutting the batch by offset (sort, one slice per offset and axis, unsort) on a CPU."""
    n, c, hp, wp = padded.shape
    rows = top.view(n, 1, 1) + torch.arange(h, device=padded.device).view(1, h, 1)
    cols = left.view(n, 1, 1) + torch.arange(w, device=padded.device).view(1, 1, w)
    index = (rows * wp + cols).view(n, 1, h * w).expand(n, c, h * w)
    return padded.reshape(n, c, hp * wp).gather(2, index).view(n, c, h, w)


def pad(x: torch.Tensor, padding: int, mode: str) -> torch.Tensor:
    """torchvision's padding modes: constant (0), edge, reflect (no repeated edge), symmetric."""
    import torch.nn.functional as F

    if mode == "constant":
        return F.pad(x, (padding,) * 4)
    if mode == "edge":
        return F.pad(x, (padding,) * 4, mode="replicate")
    if mode == "reflect":
        return F.pad(x, (padding,) * 4, mode="reflect")
    # symmetric: reflect including the edge pixel (index -1 -> 0, -2 -> 1, ...)
    h, w = x.shape[-2:]
    rows = torch.arange(-padding, h + padding, device=x.device)
    cols = torch.arange(-padding, w + padding, device=x.device)
    mirror = lambda i, size: torch.where(i < 0, -i - 1, torch.where(i >= size, 2 * size - i - 1, i))
    return x[:, :, mirror(rows, h)][:, :, :, mirror(cols, w)]

