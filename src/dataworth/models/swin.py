"""A small Swin Transformer for 32x32 images, as Geiping et al. (2022) train it in fig. 3b.

Their config `swinv2` (patch 2, embed_dim 128, depths [4, 4], heads [4, 4], window 4, MLP ratio
4, no drop path) is built by their `construct_model`, whose `"swin" in name` branch comes before
the `"swinv2"` one: the network they trained is the Swin (V1) Transformer of Liu et al. (2021) with
that config. This module builds that network: patch embedding + LayerNorm, stages of blocks with
(shifted) window attention and a learned relative-position bias, patch merging between stages,
a final LayerNorm, average pooling over tokens and a Linear head. `width` is embed_dim.
"""

from __future__ import annotations

import torch
from torch import nn

from dataworth.models.base import Classifier


def window_partition(x: torch.Tensor, w: int) -> torch.Tensor:
    """(B, H, W, C) -> (B * windows, w * w, C)."""
    b, h, wd, c = x.shape
    x = x.view(b, h // w, w, wd // w, w, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, w * w, c)


def window_reverse(windows: torch.Tensor, w: int, h: int, wd: int) -> torch.Tensor:
    b = windows.shape[0] // ((h // w) * (wd // w))
    x = windows.view(b, h // w, wd // w, w, w, -1).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(b, h, wd, -1)


class WindowAttention(nn.Module):
    def __init__(self, dim: int, window: int, heads: int):
        super().__init__()
        self.heads, self.scale = heads, (dim // heads) ** -0.5
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window - 1) ** 2, heads))
        coords = torch.stack(torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")).flatten(1)
        rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (window - 1)
        self.register_buffer("relative_position_index", rel[:, :, 0] * (2 * window - 1) + rel[:, :, 1])
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        bw, n, c = x.shape
        q, k, v = self.qkv(x).reshape(bw, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        attn = (q * self.scale) @ k.transpose(-2, -1)
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)].view(n, n, -1)
        attn = attn + bias.permute(2, 0, 1).unsqueeze(0)
        if mask is not None:
            nw = mask.shape[0]
            attn = attn.view(bw // nw, nw, self.heads, n, n) + mask[None, :, None]
            attn = attn.view(-1, self.heads, n, n)
        x = (attn.softmax(dim=-1) @ v).transpose(1, 2).reshape(bw, n, c)
        return self.proj(x)


class SwinBlock(nn.Module):
    def __init__(self, dim: int, resolution: int, heads: int, window: int, shift: int, mlp_ratio: float):
        super().__init__()
        if resolution <= window:  # a window covers the whole map: nothing to shift
            window, shift = resolution, 0
        self.resolution, self.window, self.shift = resolution, window, shift
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, window, heads)
        self.norm2 = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))
        mask = None
        if shift > 0:
            # Tokens that the cyclic shift brings together from opposite borders must not attend.
            region = torch.zeros(1, resolution, resolution, 1)
            cuts = (slice(0, -window), slice(-window, -shift), slice(-shift, None))
            for i, (hs, ws) in enumerate((hs, ws) for hs in cuts for ws in cuts):
                region[:, hs, ws, :] = i
            ids = window_partition(region, window).squeeze(-1)
            mask = (ids[:, None, :] - ids[:, :, None]).ne(0).float() * -100.0
        self.register_buffer("attn_mask", mask)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        r, w = self.resolution, self.window
        h = self.norm1(x).view(b, r, r, c)
        if self.shift:
            h = torch.roll(h, (-self.shift, -self.shift), dims=(1, 2))
        h = window_reverse(self.attn(window_partition(h, w), self.attn_mask), w, r, r)
        if self.shift:
            h = torch.roll(h, (self.shift, self.shift), dims=(1, 2))
        x = x + h.reshape(b, n, c)
        return x + self.mlp(self.norm2(x))


class PatchMerging(nn.Module):
    """2x2 neighbouring tokens -> one token of twice the channels."""

    def __init__(self, dim: int, resolution: int):
        super().__init__()
        self.resolution = resolution
        self.norm = nn.LayerNorm(4 * dim)
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, c = x.shape
        r = self.resolution
        x = x.view(b, r, r, c)
        x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], -1)
        return self.reduction(self.norm(x.view(b, -1, 4 * c)))


class SwinEncoder(nn.Module):
    def __init__(self, in_channels: int, image_size: int, embed_dim: int, depths=(4, 4), heads=(4, 4),
                 window: int = 4, patch: int = 2, mlp_ratio: float = 4.0):
        super().__init__()
        self.patch_embed = nn.Conv2d(in_channels, embed_dim, patch, stride=patch)
        self.patch_norm = nn.LayerNorm(embed_dim)
        layers: list[nn.Module] = []
        dim, resolution = embed_dim, image_size // patch
        for stage, (depth, h) in enumerate(zip(depths, heads)):
            layers += [SwinBlock(dim, resolution, h, window, 0 if i % 2 == 0 else window // 2, mlp_ratio)
                       for i in range(depth)]
            if stage < len(depths) - 1:
                layers.append(PatchMerging(dim, resolution))
                dim, resolution = 2 * dim, resolution // 2
        self.layers = nn.Sequential(*layers)
        self.norm = nn.LayerNorm(dim)
        self.out_dim = dim
        self.apply(self._init)

    @staticmethod
    def _init(m: nn.Module) -> None:  # Swin's initialisation
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.constant_(m.bias, 0)
        elif isinstance(m, nn.LayerNorm):
            nn.init.constant_(m.weight, 1.0)
            nn.init.constant_(m.bias, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_norm(self.patch_embed(x).flatten(2).transpose(1, 2))
        return self.norm(self.layers(x)).mean(dim=1)


def swin_input_problem(sample_shape: tuple[int, ...], patch: int = 2, window: int = 4, stages: int = 2) -> str | None:
    """Why Swin cannot take images of this shape (square, divisible into windows at every stage)."""
    _, h, w = sample_shape
    if h != w:
        return f"needs square images, not {h}x{w}"
    r = h // patch
    for stage in range(stages):
        if h % patch or (r > window and r % window) or (stage < stages - 1 and r % 2):
            return f"needs an image side that patch {patch}, window {window} and {stages - 1} patch merging(s) divide; {h} does not"
        r //= 2
    return None


class Swin(Classifier):
    def __init__(self, in_channels: int, image_size: int, embed_dim: int, num_classes: int):
        encoder = SwinEncoder(in_channels, image_size, embed_dim)
        super().__init__(encoder, encoder.out_dim, num_classes)
        SwinEncoder._init(self.head)
