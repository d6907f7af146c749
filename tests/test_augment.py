"""Batched augmentation: per-sample random parameters, reproducible from the seed, exact ops."""

from __future__ import annotations

import pytest
import torch

from dataworth.augment import build_policy
from dataworth.augment.ops import OP_SPECS


def gen(seed: int) -> torch.Generator:
    g = torch.Generator()
    g.manual_seed(seed)
    return g


def signals(n=64, length=40):
    return torch.randn(n, 1, length, generator=gen(123))


def images(n=64, size=8):
    return torch.randn(n, 1, size, size, generator=gen(321))


SIGNAL_OPS = [
    [{"op": "shift", "max_shift": 5}],
    [{"op": "scale", "min": 0.5, "max": 1.5}],
    [{"op": "noise", "std": 0.3}],
    [{"op": "correlated_noise", "std": 0.3, "length_scale": 2.0}],
]
IMAGE_OPS = [
    [{"op": "flip"}],
    [{"op": "crop", "padding": 2}],
    [{"op": "cutout", "size": 3}],
    [{"op": "noise", "std": 0.3}],
    [{"op": "flip"}, {"op": "crop", "padding": 1}, {"op": "cutout", "size": 2}],
]


@pytest.mark.parametrize("ops, make", [(o, signals) for o in SIGNAL_OPS] + [(o, images) for o in IMAGE_OPS])
def test_same_seed_same_draws_other_seed_other_draws(ops, make):
    policy, x = build_policy(ops), make()
    a, b, c = policy(x, gen(0)), policy(x, gen(0)), policy(x, gen(1))
    assert a.shape == x.shape and a.dtype == x.dtype
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


@pytest.mark.parametrize("ops, make", [(o, signals) for o in SIGNAL_OPS] + [(o, images) for o in IMAGE_OPS])
def test_parameters_are_drawn_per_sample(ops, make):
    # The same sample repeated across the batch must come out differently.
    x = make(n=1).expand(32, *make(n=1).shape[1:]).contiguous()
    out = build_policy(ops)(x, gen(0))
    distinct = {tuple(row.flatten().tolist()) for row in out}
    # A flip alone has two outcomes; every other op draws a continuum or many values.
    assert len(distinct) == 2 if ops == [{"op": "flip"}] else len(distinct) > 8


def test_none_policy_is_the_identity():
    x = signals()
    assert build_policy([])(x, gen(0)) is x


def test_p_zero_leaves_samples_unchanged_and_p_selects_a_fraction():
    x = signals(n=2000)
    assert torch.equal(build_policy([{"op": "noise", "std": 1.0, "p": 0.0}])(x, gen(0)), x)
    out = build_policy([{"op": "noise", "std": 1.0, "p": 0.3}])(x, gen(0))
    changed = (out != x).flatten(1).any(1).float().mean().item()
    assert 0.25 < changed < 0.35


def test_shift_is_a_zero_filled_translation_within_range():
    x = torch.arange(1, 11, dtype=torch.float32).repeat(200, 1, 1)  # every row 1..10
    out = build_policy([{"op": "shift", "max_shift": 3}])(x, gen(0))
    seen = set()
    for row in out[:, 0]:
        nonzero = row[row != 0]
        # A translation keeps a contiguous run of consecutive values and fills the rest with zeros.
        assert torch.equal(nonzero, torch.arange(nonzero[0].item(), nonzero[0].item() + len(nonzero)))
        first = int(torch.nonzero(row)[0])
        shift = first - (int(nonzero[0].item()) - 1)
        assert -3 <= shift <= 3
        seen.add(shift)
    assert seen == {-3, -2, -1, 0, 1, 2, 3}


def test_scale_stays_in_range():
    x = torch.ones(500, 1, 5)
    out = build_policy([{"op": "scale", "min": 0.5, "max": 2.0}])(x, gen(0))
    factors = out[:, 0, 0]
    assert torch.allclose(out, factors[:, None, None].expand_as(out))
    assert factors.min() >= 0.5 and factors.max() <= 2.0 and factors.std() > 0.3


def test_noise_has_the_requested_std():
    x = torch.zeros(400, 1, 50)
    out = build_policy([{"op": "noise", "std": 0.5}])(x, gen(0))
    assert abs(out.std().item() - 0.5) < 0.01
    out = build_policy([{"op": "correlated_noise", "std": 0.5, "length_scale": 3.0}])(x, gen(0))
    assert abs(out.std().item() - 0.5) < 0.03
    # Correlated: neighbouring time steps move together, unlike i.i.d. noise.
    lag1 = torch.corrcoef(torch.stack([out[:, 0, :-1].flatten(), out[:, 0, 1:].flatten()]))[0, 1]
    assert lag1 > 0.8


def test_flip_mirrors_about_half_of_the_images():
    x = images(n=1000)
    out = build_policy([{"op": "flip"}])(x, gen(0))
    flipped = (out == x.flip(-1)).flatten(1).all(1)
    kept = (out == x).flatten(1).all(1)
    assert torch.all(flipped ^ kept)
    assert 0.45 < flipped.float().mean().item() < 0.55


def test_crop_is_a_window_of_the_zero_padded_image():
    x = torch.arange(1, 17, dtype=torch.float32).view(1, 1, 4, 4).repeat(300, 1, 1, 1)
    out = build_policy([{"op": "crop", "padding": 1}])(x, gen(0))
    padded = torch.nn.functional.pad(x[0], (1, 1, 1, 1))
    windows = {(dy, dx): padded[:, dy : dy + 4, dx : dx + 4] for dy in range(3) for dx in range(3)}
    used = set()
    for img in out:
        match = [k for k, w in windows.items() if torch.equal(w, img)]
        assert match, "crop output is not a window of the padded image"
        used.add(match[0])
    assert len(used) == 9


def test_cutout_zeroes_a_square_of_at_most_size_squared_pixels():
    x = torch.ones(500, 1, 8, 8)
    out = build_policy([{"op": "cutout", "size": 3}])(x, gen(0))
    holes = (out == 0).flatten(1).sum(1)
    assert holes.max() == 9 and holes.min() >= 1 and (holes == 9).float().mean() > 0.3


def test_every_op_is_documented_with_its_modalities():
    for name, spec in OP_SPECS.items():
        assert spec.__doc__ and spec.modalities, name
