"""Colour and histogram ops on pixel batches, with Pillow's arithmetic, per sample.

Pixel images arrive as float32 (N, C, H, W) in 0..255 units, before normalisation (see
`OpSpec.needs_pixels`). Each function reproduces what Pillow computes on a uint8 image (the
reference torchvision's TrivialAugment / RandAugment / AutoAugment use on PIL images): blends
truncate as `Image.blend` does, the smoothing filter rounds as `ImageFilter.SMOOTH` does, the
grey level is Pillow's integer `L` conversion, and histograms have 256 bins. Their outputs are
whole numbers in 0..255, so a chain of them equals the chain of Pillow calls.

Per-sample parameters are (N,) tensors; nothing loops over samples.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _per_sample(values: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return values.to(device=x.device).view(-1, *([1] * (x.dim() - 1)))


def grey(x: torch.Tensor) -> torch.Tensor:
    """Pillow's RGB -> L conversion, (19595 R + 38470 G + 7471 B + 2^15) >> 16, as (N, 1, H, W).

    In float32 the sums stay below 2^24, so whole-number inputs give exactly Pillow's integers."""
    if x.shape[1] == 1:
        return x
    r, g, b = x[:, 0:1], x[:, 1:2], x[:, 2:3]
    return torch.floor((r * 19595 + g * 38470 + b * 7471 + 32768) / 65536)


def blend(x: torch.Tensor, degenerate: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """`Image.blend(degenerate, x, factor)`: degenerate + factor * (x - degenerate), in float32,
    truncated and clipped to 0..255 (what ImageEnhance.* do)."""
    f = _per_sample(factor.to(torch.float32), x)
    return torch.floor((degenerate + f * (x - degenerate)).clamp(0, 255))


def brightness(x, factor):
    return blend(x, torch.zeros_like(x), factor)


def saturation(x, factor):
    """ImageEnhance.Color: blend with the grey image (a no-op on one-channel images)."""
    return blend(x, grey(x).expand_as(x), factor)


def contrast(x, factor):
    """ImageEnhance.Contrast: blend with the mean grey level rounded to a whole number."""
    mean = grey(x).to(torch.float64).mean(dim=(1, 2, 3), keepdim=True)
    level = torch.floor(mean + 0.5).to(x.dtype)
    return blend(x, level.expand_as(x), factor)


def smooth(x):
    """ImageFilter.SMOOTH: (3x3 sum + 4 x centre) / 13, rounded; Pillow leaves the one-pixel border
    as it was. On whole numbers the sum is exact and never lands on a half, so rounding this exact
    quotient gives Pillow's result (which sums float products)."""
    rows = x[..., :-2, :] + x[..., 1:-1, :] + x[..., 2:, :]
    box = rows[..., :-2] + rows[..., 1:-1] + rows[..., 2:]
    inner = torch.floor((box + 4 * x[..., 1:-1, 1:-1]) / 13 + 0.5).clamp(0, 255)
    result = x.clone()
    result[..., 1:-1, 1:-1] = inner
    return result


def sharpness(x, factor):
    """ImageEnhance.Sharpness: blend with the smoothed image."""
    return blend(x, smooth(x), factor)


def posterize(x, bits):
    """ImageOps.posterize: keep the top `bits` bits of each value."""
    step = _per_sample(torch.pow(2.0, 8 - bits.to(torch.float64)).to(x.dtype), x)
    return torch.floor(x / step) * step


def solarize(x, threshold):
    """ImageOps.solarize: values at or above the threshold become 255 - value."""
    t = _per_sample(threshold.to(x.dtype), x)
    return torch.where(x >= t, 255 - x, x)


def invert(x):
    return 255 - x


def autocontrast(x):
    """ImageOps.autocontrast (cutoff 0), per channel: stretch [min, max] to [0, 255]. Like Pillow,
    a 256-entry lookup table per channel, computed in float64 as Pillow's Python does
    (int(v * scale + offset)), then looked up by each pixel's value."""
    n, c, h, w = x.shape
    values = x.round().clamp(0, 255).long().reshape(n * c, h * w)
    lo = values.amin(dim=1, keepdim=True).to(torch.float64)
    hi = values.amax(dim=1, keepdim=True).to(torch.float64)
    flat = hi <= lo
    # A true division (a Python scalar over a tensor would be computed as 255 * (1 / span)).
    scale = torch.full_like(hi, 255.0) / torch.where(flat, torch.ones_like(hi), hi - lo)
    offset = -lo * scale
    levels = torch.arange(256, device=x.device, dtype=torch.float64)[None, :]
    lut = torch.floor(levels * scale + offset).clamp(0, 255)  # int() of a value >= 0 for levels >= lo
    lut = torch.where(flat, levels, lut).to(x.dtype)
    return lut.gather(1, values).view(n, c, h, w)


def equalize(x):
    """ImageOps.equalize, per channel: Pillow's cumulative-histogram lookup table over 256 bins
    (step = (pixels - count of the top value) // 255; identity when step is 0 or one value)."""
    n, c, h, w = x.shape
    values = x.round().clamp(0, 255).long().reshape(n * c, h * w)
    hist = _histograms(values)
    top = values.amax(dim=1, keepdim=True)
    step = (h * w - hist.gather(1, top)) // 255  # (n*c, 1)
    distinct = (hist > 0).sum(dim=1, keepdim=True)
    before = hist.cumsum(dim=1) - hist  # pixels strictly below each value
    safe_step = step.clamp(min=1)
    lut = ((safe_step // 2 + before) // safe_step).clamp(max=255)
    identity = (step == 0) | (distinct <= 1)
    lut = torch.where(identity, torch.arange(256, device=x.device)[None, :], lut)
    return lut.gather(1, values).view(n, c, h, w).to(x.dtype)


def _histograms(values: torch.Tensor) -> torch.Tensor:
    """(rows, 256) counts of each row's values 0..255: one bincount over (row, value) offsets
    (several times faster on a CPU than scatter_add)."""
    rows = torch.arange(values.shape[0], device=values.device)[:, None] * 256
    return torch.bincount((rows + values).view(-1), minlength=values.shape[0] * 256).view(-1, 256)


def grayscale(x):
    """`convert("L")`, repeated over the image's channels (RandomGrayscale keeps the channel count)."""
    return grey(x).expand_as(x).contiguous()


def adjust_hue(x, shift):
    """torchvision's adjust_hue on PIL images: RGB -> HSV (Pillow's integer HSV), add
    round-toward-zero(shift * 255) to the hue byte modulo 256, HSV -> RGB. `shift` in [-0.5, 0.5]."""
    if x.shape[1] == 1:
        return x
    hue, sat, val = _rgb_to_hsv(x)
    delta = _per_sample(torch.trunc(shift.to(torch.float64) * 255).to(x.dtype), hue)
    hue = hue + delta  # in -255..510: modulo 256 without remainder's slow CPU path
    hue = hue - 256.0 * torch.floor(hue / 256.0)
    return _hsv_to_rgb(hue, sat, val)


def _rgb_to_hsv(x):
    """Pillow's rgb2hsv: hue, saturation and value bytes (as floats) of whole-number RGB.

    Float32 wherever C computes in float (or the values are whole numbers), float64 only where C
    promotes to double; each branch's operands are selected before dividing, so the work is two
    divisions and one double expression per pixel. Checked on all 2^24 colours against the
    branch-by-branch form it replaced (and _hsv_to_rgb on all 2^24 HSV bytes): identical."""
    r, g, b = x[:, 0], x[:, 1], x[:, 2]
    maxc = torch.maximum(r, torch.maximum(g, b))
    minc = torch.minimum(r, torch.minimum(g, b))
    span = maxc - minc
    # 0/1 masks from signs (exact for any values, also the fractional ones a bilinear resize
    # leaves; torch.where and comparisons are several times slower on a CPU).
    chromatic = torch.sign(span)  # 0 on grey pixels (hue and saturation 0), else 1
    cr = span + (1.0 - chromatic)
    s = cr / (maxc + (1.0 - torch.sign(maxc)))  # maxc == 0 only on grey pixels
    # C: r max: h = bc - gc; g max: h = 2.0 + rc - bc; b max: h = 4.0 + gc - rc, with
    # xc = (maxc - x) / cr in float. As (base + first - second) in double: exact before the one
    # rounding to float, which is what float arithmetic (r max) and the double expressions give.
    r_max = 1.0 + torch.sign(r - maxc)  # 1 where r is the largest
    g_max = (1.0 + torch.sign(g - maxc)) * (1.0 - r_max)  # 1 where g is, and r is not
    b_max = 1.0 - r_max - g_max
    first = (maxc - (r_max * b + g_max * r + b_max * g)) / cr
    second = (maxc - (r_max * g + g_max * b + b_max * r)) / cr
    base = (2.0 * g_max + 4.0 * b_max).to(torch.float64)
    h = (base + first.to(torch.float64) - second.to(torch.float64)).to(torch.float32)
    # C: h = fmod(h / 6.0 + 1.0, 1.0) in double (the argument is in [1, 2): frac is fmod), stored in a float.
    h = torch.frac(h.to(torch.float64) / 6.0 + 1.0).to(torch.float32)
    hue = torch.floor(h.to(torch.float64) * 255.0).clamp(0, 255).to(x.dtype) * chromatic
    sat = torch.floor(s.to(torch.float64) * 255.0).clamp(0, 255).to(x.dtype) * chromatic
    return hue, sat, maxc


def _hsv_to_rgb(hue, sat, val):
    """Pillow's hsv2rgb on bytes."""
    # C: f and fs are floats computed in double; round() rounds halves away from zero.
    h6 = hue.to(torch.float64) * 6.0 / 255.0
    i = torch.floor(h6)
    f = (h6 - i).to(torch.float32).to(torch.float64)
    fs = (sat.to(torch.float64) / 255.0).to(torch.float32).to(torch.float64)
    v64 = val.to(torch.float64)
    half_up = lambda t: torch.floor(t + 0.5).clamp(0, 255).to(val.dtype)
    p = half_up(v64 * (1.0 - fs))
    q = half_up(v64 * (1.0 - fs * f))
    t = half_up(v64 * (1.0 - fs * (1.0 - f)))
    v = val
    # i is 0..6 (hue 255 gives 6, Pillow's sector 0): i mod 6 without remainder's slow CPU path.
    sector = (i - 6.0 * torch.floor(i / 6.0)).to(val.dtype)
    # Pillow's switch on the sector, (r, g, b) = 0: (v, t, p), 1: (q, v, p), 2: (p, v, t),
    # 3: (p, q, v), 4: (t, p, v), 5: (v, p, q): sums of candidates times 0/1 masks (exact on whole
    # numbers; torch.where and a gather over stacked candidates cost several times more on a CPU).
    s0, s1, s2, s3, s4, s5 = (_is(sector, k) for k in range(6))
    red = v * (s0 + s5) + q * s1 + p * (s2 + s3) + t * s4
    green = t * s0 + v * (s1 + s2) + q * s3 + p * (s4 + s5)
    blue = p * (s0 + s1) + t * s2 + v * (s3 + s4) + q * s5
    rgb = torch.stack([red, green, blue], dim=1)
    # Achromatic pixels (saturation 0) are grey at the value (p, q and t are v rounded).
    grey_pixel = (1.0 - torch.sign(sat))[:, None]
    return rgb * (1.0 - grey_pixel) + v[:, None] * grey_pixel


def _is(values, k: float):
    """1.0 where the whole-number `values` equal k, else 0.0 (a float mask without a bool pass)."""
    return (1.0 - (values - k).abs()).clamp_(min=0.0)


def gaussian_blur(x, kernel_size: int, sigma: torch.Tensor):
    """torchvision's gaussian_blur with a per-sample sigma: a normalised Gaussian of `kernel_size`
    taps, reflect padding, separable. Not rounded: it also serves standardised data."""
    n, c, h, w = x.shape
    half = (kernel_size - 1) * 0.5
    taps = torch.linspace(-half, half, kernel_size, device=x.device, dtype=x.dtype)
    weights = torch.exp(-0.5 * (taps[None, :] / sigma.to(x.device, x.dtype)[:, None]) ** 2)
    weights = weights / weights.sum(dim=1, keepdim=True)  # (n, k)
    pad = kernel_size // 2
    planes = F.pad(x, (pad, pad, pad, pad), mode="reflect").reshape(1, n * c, h + 2 * pad, w + 2 * pad)
    per_plane = weights.repeat_interleave(c, dim=0)  # one kernel per (sample, channel) plane
    rows = F.conv2d(planes, per_plane.view(n * c, 1, 1, kernel_size), groups=n * c)
    both = F.conv2d(rows, per_plane.view(n * c, 1, kernel_size, 1), groups=n * c)
    return both.view(n, c, h, w)


def apply_where(x: torch.Tensor, mask: torch.Tensor, fn) -> torch.Tensor:
    """`fn` applied to the samples where `mask` holds (fn(subset, index) -> subset), the rest kept."""
    return apply_by_group(x, mask.long(), [None, fn])


def apply_by_group(x: torch.Tensor, group: torch.Tensor, fns: list) -> torch.Tensor:
    """Image i becomes fns[group[i]](images of its group, their indices)[its row]; None keeps it.

    The batch is sorted by group once, each group's images are a contiguous slice (no copy), and
    one scatter puts the results back: three batch-sized copies and one host sync (the group
    sizes), whatever the number of groups, and no loop over images."""
    order = torch.argsort(group, stable=True)
    counts = torch.bincount(group, minlength=len(fns)).tolist()
    if counts[0] == len(group) and fns[0] is None:
        return x
    ordered = x.index_select(0, order)  # a fresh tensor: each group's slice is overwritten in place
    start = 0
    for fn, count in zip(fns, counts):
        if count and fn is not None:
            ordered[start : start + count] = fn(ordered[start : start + count], order[start : start + count])
        start += count
    back = torch.empty_like(order)
    back[order] = torch.arange(len(order), device=order.device)
    return ordered.index_select(0, back)
