"""The paper's image augmentations (issue 17) against a per-image Pillow reference.

The reference below is written here, from torchvision's PIL code path (`transforms/autoaugment.py`
`_apply_op`, `functional.affine`'s inverse matrix, RandomPerspective, RandomResizedCrop,
ColorJitter, RandomGrayscale, RandomSolarize): Pillow's ImageOps, ImageEnhance, Image.transform
and Image.rotate on uint8 images, one image at a time. Images are "real-looking": smooth
gradients, a disc and a rectangle with hard edges, and pixel noise.

Tolerances: every colour and histogram op is exact. NEAREST affine warps (shear, translate,
rotate) are exact except where a source point falls within rounding of a pixel border (Pillow
accumulates coordinates by repeated addition; we multiply): at most 0.2% of pixels. BILINEAR
ops differ by less than one grey level: Pillow blends in double and truncates to uint8; we blend
in float32 (grid_sample), untruncated for perspective and resized crop, truncated in the
policies, which then agree with Pillow on at least 99% of values.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image, ImageEnhance, ImageOps
from scipy import stats

from dataworth.augment import build_policy
from dataworth.augment.image_ops import ColorJitter, Perspective, ResizedCrop
from dataworth.augment.policies import (CIFAR10_POLICY, AutoAugment, RandAugment, TrivialAugment,
                                        augmentation_space, magnitudes)

AFFINE = {"ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate"}


def gen(seed: int, device="cpu") -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed)


def real_images(n: int, size: int = 32, seed: int = 0) -> np.ndarray:
    """(n, size, size, 3) uint8: two-colour gradients, a hard-edged disc and rectangle, noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    out = []
    for _ in range(n):
        img = np.stack([rng.uniform(0, 255) * (1 - xx / size) + rng.uniform(0, 255) * yy / size for _ in range(3)], -1)
        cy, cx, r = rng.uniform(0, size), rng.uniform(0, size), rng.uniform(3, size / 3)
        img[(yy - cy) ** 2 + (xx - cx) ** 2 < r**2] = rng.uniform(0, 255, 3)
        y0, x0 = rng.integers(0, size - 8, 2)
        img[y0 : y0 + 8, x0 : x0 + 6] = rng.uniform(0, 255, 3)
        img += rng.normal(0, 12, img.shape)
        out.append(np.clip(np.round(img), 0, 255).astype(np.uint8))
    return np.stack(out)


def as_batch(images: np.ndarray) -> torch.Tensor:
    """uint8 (N, H, W, C) -> float32 (N, C, H, W) in 0..255, as pixel datasets reach the policy."""
    return torch.tensor(images).permute(0, 3, 1, 2).float()


def as_images(batch: torch.Tensor) -> np.ndarray:
    return batch.permute(0, 2, 3, 1).cpu().numpy()


# --- the Pillow reference -------------------------------------------------------------------------


def inverse_affine(center, angle, translate, scale, shear) -> list[float]:
    """torchvision.transforms.functional._get_inverse_affine_matrix, in plain Python."""
    rot, sx, sy = math.radians(angle), math.radians(shear[0]), math.radians(shear[1])
    (cx, cy), (tx, ty) = center, translate
    a = math.cos(rot - sy) / math.cos(sy)
    b = -math.cos(rot - sy) * math.tan(sx) / math.cos(sy) - math.sin(rot)
    c = math.sin(rot - sy) / math.cos(sy)
    d = -math.sin(rot - sy) * math.tan(sx) / math.cos(sy) + math.cos(rot)
    m = [v / scale for v in (d, -b, 0.0, -c, a, 0.0)]
    m[2] += m[0] * (-cx - tx) + m[1] * (-cy - ty) + cx
    m[5] += m[3] * (-cx - tx) + m[4] * (-cy - ty) + cy
    return m


def pil_op(img: Image.Image, name: str, m: float, resample=Image.NEAREST) -> Image.Image:
    """torchvision's `_apply_op` on a PIL image (fill 0)."""
    w, h = img.size

    def affine(center, translate, shear):
        return img.transform((w, h), Image.AFFINE, inverse_affine(center, 0.0, translate, 1.0, shear), resample,
                             fillcolor=0)

    ops = {
        "Identity": lambda: img,
        "ShearX": lambda: affine((0, 0), (0, 0), (math.degrees(math.atan(m)), 0.0)),
        "ShearY": lambda: affine((0, 0), (0, 0), (0.0, math.degrees(math.atan(m)))),
        "TranslateX": lambda: affine((w * 0.5, h * 0.5), (int(m), 0), (0.0, 0.0)),
        "TranslateY": lambda: affine((w * 0.5, h * 0.5), (0, int(m)), (0.0, 0.0)),
        "Rotate": lambda: img.rotate(m, resample, fillcolor=0),
        "Brightness": lambda: ImageEnhance.Brightness(img).enhance(1.0 + m),
        "Color": lambda: ImageEnhance.Color(img).enhance(1.0 + m),
        "Contrast": lambda: ImageEnhance.Contrast(img).enhance(1.0 + m),
        "Sharpness": lambda: ImageEnhance.Sharpness(img).enhance(1.0 + m),
        "Posterize": lambda: ImageOps.posterize(img, int(m)),
        "Solarize": lambda: ImageOps.solarize(img, m),
        "AutoContrast": lambda: ImageOps.autocontrast(img),
        "Equalize": lambda: ImageOps.equalize(img),
        "Invert": lambda: ImageOps.invert(img),
    }
    return ops[name]()


# torchvision's magnitude bins, written out from autoaugment.py (TrivialAugmentWide, 31 bins).
def wide_magnitude(name: str, b: int) -> float:
    top = {"ShearX": 0.99, "ShearY": 0.99, "TranslateX": 32.0, "TranslateY": 32.0, "Rotate": 135.0,
           "Brightness": 0.99, "Color": 0.99, "Contrast": 0.99, "Sharpness": 0.99}
    if name in top:
        return float(torch.linspace(0.0, top[name], 31)[b])
    if name == "Posterize":
        return float(8 - round(b / 5))  # 8 - round(b / ((31 - 1) / 6))
    if name == "Solarize":
        return float(torch.linspace(255.0, 0.0, 31)[b])
    return 0.0


def compare(ours: np.ndarray, ref: np.ndarray, name: str, bilinear: bool = False):
    """Exact for colour/histogram ops; the stated tolerance for affine ones."""
    ours, ref = ours.astype(np.int64), ref.astype(np.int64)
    if name in AFFINE and bilinear:
        assert np.abs(ours - ref).max() <= 1 and (ours != ref).mean() <= 0.01, name
    elif name in AFFINE:
        assert (ours != ref).any(axis=-1).mean() <= 0.002, name
    else:
        np.testing.assert_array_equal(ours, ref, err_msg=name)


# --- each op at fixed magnitudes ------------------------------------------------------------------

IMAGES = real_images(12)
WIDE = [name for name, _, _ in augmentation_space("wide", 31, 32, 32)]


@pytest.mark.parametrize("name", WIDE)
def test_each_trivial_augment_op_at_fixed_magnitudes_matches_pillow(name):
    policy, k, x = TrivialAugment(op="trivial_augment"), WIDE.index(name), as_batch(IMAGES)
    n = len(IMAGES)
    for b in (1, 7, 20, 30):
        for sign in (0, 1):
            params = {"kind": torch.full((n,), k), "bin": torch.full((n,), b), "sign": torch.full((n,), sign)}
            ours = as_images(policy.apply(x, params))
            signed = name in AFFINE or name in ("Brightness", "Color", "Contrast", "Sharpness")
            m = wide_magnitude(name, b) * (-1 if signed and sign == 1 else 1)
            ref = np.stack([np.array(pil_op(Image.fromarray(im), name, m)) for im in IMAGES])
            compare(ours, ref, name)
            assert ours.dtype == np.float32 and np.all(ours == np.round(ours))  # whole 0..255 values


@pytest.mark.parametrize("name", sorted(AFFINE))
def test_affine_ops_with_bilinear_interpolation_match_pillow(name):
    policy, k, x = TrivialAugment(op="trivial_augment", interpolation="bilinear"), WIDE.index(name), as_batch(IMAGES)
    n = len(IMAGES)
    params = {"kind": torch.full((n,), k), "bin": torch.full((n,), 13), "sign": torch.full((n,), 1)}
    ref = np.stack([np.array(pil_op(Image.fromarray(im), name, -wide_magnitude(name, 13), Image.BILINEAR))
                    for im in IMAGES])
    compare(as_images(policy.apply(x, params)), ref, name, bilinear=True)


def test_the_magnitude_tables_are_torchvisions():
    wide = augmentation_space("wide", 31, 32, 32)
    table = {name: mags for name, mags, _ in wide}
    assert [name for name, _, _ in wide] == ["Identity", "ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate",
                                             "Brightness", "Color", "Contrast", "Sharpness", "Posterize", "Solarize",
                                             "AutoContrast", "Equalize"]
    assert table["Rotate"][20].item() == pytest.approx(90.0) and table["Rotate"][30].item() == pytest.approx(135.0)
    assert table["TranslateX"][30].item() == 32.0 and table["ShearX"][30].item() == pytest.approx(0.99)
    assert sorted(set(table["Posterize"].int().tolist())) == [2, 3, 4, 5, 6, 7, 8]
    assert table["Solarize"][0].item() == 255.0 and table["Solarize"][30].item() == 0.0
    standard = {name: mags for name, mags, _ in augmentation_space("standard", 31, 32, 32)}
    assert standard["TranslateX"][30].item() == pytest.approx(150 / 331 * 32)
    assert standard["Rotate"][9].item() == pytest.approx(9.0) and standard["Posterize"][30].item() == 4
    auto = [name for name, _, _ in augmentation_space("auto", 10, 32, 32)]
    assert "Identity" not in auto and "Invert" in auto and len(CIFAR10_POLICY) == 25
    # signs: negative where the op is symmetric and the sign draw is 1; never for the others
    kinds = torch.tensor([WIDE.index("Rotate"), WIDE.index("Solarize")])
    assert magnitudes(wide, kinds, torch.tensor([30, 30]), torch.tensor([1, 1])).tolist() == [-135.0, 0.0]


def test_auto_augment_sub_policies_match_pillow_step_by_step():
    policy, x = AutoAugment(op="auto_augment"), as_batch(IMAGES[:4])
    mags = {name: m for name, m, _ in augmentation_space("auto", 10, 32, 32)}
    for sub, steps in enumerate(CIFAR10_POLICY):
        params = {"sub_policy": torch.full((4,), sub), "prob": torch.zeros(4, 2), "sign": torch.zeros(4, 2, dtype=torch.long)}
        ours = as_images(policy.apply(x, params))
        refs = []
        for im in IMAGES[:4]:
            img = Image.fromarray(im)
            for name, p, b in steps:  # torchvision applies a step when rand <= p: a draw of 0 passes every p
                signed = name in AFFINE or name in ("Brightness", "Color", "Contrast", "Sharpness")
                m = 0.0 if b is None else float(mags[name][b]) * (-1 if signed else 1)  # sign draw 0: negative
                img = pil_op(img, name, m)
            refs.append(np.array(img))
        compare(ours, np.stack(refs), "Rotate" if any(n in AFFINE for n, _, _ in steps) else "exact")


@pytest.mark.parametrize("make", [
    lambda: TrivialAugment(op="trivial_augment"),
    lambda: RandAugment(op="rand_augment", num_ops=2, magnitude=9),
    lambda: AutoAugment(op="auto_augment"),
])
def test_policies_with_random_draws_match_pillow_image_by_image(make):
    policy, images = make(), real_images(96, seed=1)
    x = as_batch(images)
    params = policy.draw(len(images), gen(5), "cpu", 32, 32)
    ours = as_images(policy.apply(x, params))
    refs = []
    for i, im in enumerate(images):
        img = Image.fromarray(im)
        for name, m in _steps(policy, params, i):
            img = pil_op(img, name, m)
        refs.append(np.array(img))
    mismatched = (ours.astype(int) != np.stack(refs)).any(axis=-1).mean()
    assert mismatched <= 0.002  # only affine coordinate ties (see the module docstring)


def _steps(policy, params, i):
    """The (op name, signed magnitude) sequence image i gets, read from the draws as torchvision would."""
    def signed(space, k, b, sign):
        name, mags, is_signed = space[k]
        m = 0.0 if mags is None else float(mags[b])
        return name, -m if is_signed and sign == 1 else m

    if isinstance(policy, TrivialAugment):
        space = augmentation_space("wide", 31, 32, 32)
        return [signed(space, int(params["kind"][i]), int(params["bin"][i]), int(params["sign"][i]))]
    if isinstance(policy, RandAugment):
        space = augmentation_space("standard", 31, 32, 32)
        return [signed(space, int(params["kind"][i, r]), policy.magnitude, int(params["sign"][i, r])) for r in range(2)]
    space = augmentation_space("auto", 10, 32, 32)
    names = [name for name, _, _ in space]
    out = []
    for step, (name, p, b) in enumerate(CIFAR10_POLICY[int(params["sub_policy"][i])]):
        if float(params["prob"][i, step]) <= p:  # AutoAugment negates on a sign draw of 0
            out.append(signed(space, names.index(name), b or 0, 1 - int(params["sign"][i, step])))
    return out


# --- flips, crops, perspective, the view recipe -----------------------------------------------------


def test_flips_are_pillows_mirror_and_flip():
    x = as_batch(IMAGES)
    h = as_images(build_policy([{"op": "hflip", "p": 1.0}])(x, gen(0)))
    v = as_images(build_policy([{"op": "vflip", "p": 1.0}])(x, gen(0)))
    np.testing.assert_array_equal(h, np.stack([np.array(ImageOps.mirror(Image.fromarray(im))) for im in IMAGES]))
    np.testing.assert_array_equal(v, np.stack([np.array(ImageOps.flip(Image.fromarray(im))) for im in IMAGES]))


@pytest.mark.parametrize("mode, numpy_mode", [("constant", "constant"), ("edge", "edge"), ("reflect", "reflect"),
                                              ("symmetric", "symmetric")])
def test_crop_is_a_window_of_the_image_padded_as_torchvision_pads(mode, numpy_mode):
    images = real_images(40, size=12, seed=2)
    out = as_images(build_policy([{"op": "crop", "padding": 3, "padding_mode": mode}])(as_batch(images), gen(0)))
    offsets = set()
    for im, o in zip(images, out):
        padded = np.pad(im, ((3, 3), (3, 3), (0, 0)), mode=numpy_mode)
        hits = [(dy, dx) for dy in range(7) for dx in range(7) if np.array_equal(padded[dy : dy + 12, dx : dx + 12], o)]
        assert hits, "the crop is not a window of the padded image"
        offsets.add(hits[0])
    assert len(offsets) > 20  # offsets drawn per image


def test_adding_padding_mode_to_crop_changes_no_existing_run_id():
    from dataworth.study import load_study

    spec = {"study": "ids", "dataset": {"name": "digits"},
            "augmentations": {"none": [], "fcc": [{"op": "flip"}, {"op": "crop", "padding": 2}, {"op": "cutout", "size": 4}]},
            "grid": {"n_train": [100], "augmentation": ["none", "fcc"], "model": [{"name": "cnn2d", "width": 8}],
                     "seed": [0]},
            "train": {"steps": 10}}
    # The ids these runs had before issue 17 (computed on main at dc92d41).
    assert {r["augmentation"]["name"]: r["run_id"] for r in load_study(spec).runs} == {
        "none": "f32c9376e395", "fcc": "e770f3844d52"}
    spec["augmentations"]["fcc"][1]["padding_mode"] = "reflect"
    assert {r["augmentation"]["name"]: r["run_id"] for r in load_study(spec).runs}["fcc"] != "e770f3844d52"


@pytest.mark.parametrize("interpolation", ["nearest", "bilinear"])
def test_perspective_matches_pillow_with_torchvisions_coefficients(interpolation):
    op = Perspective(op="perspective", interpolation=interpolation)
    images = real_images(24, seed=3)
    params = op.draw(len(images), gen(1), "cpu", 32, 32)
    ours = as_images(op.apply(as_batch(images), params))
    start = [[0, 0], [31, 0], [31, 31], [0, 31]]
    refs = []
    for i, im in enumerate(images):
        end = params["end"][i].tolist()
        a = np.array([row for p1, p2 in zip(end, start) for row in (
            [p1[0], p1[1], 1, 0, 0, 0, -p2[0] * p1[0], -p2[0] * p1[1]],
            [0, 0, 0, p1[0], p1[1], 1, -p2[1] * p1[0], -p2[1] * p1[1]])], dtype=np.float64)
        coeffs = np.linalg.lstsq(a, np.array(start, np.float64).reshape(8), rcond=None)[0].astype(np.float32)
        resample = Image.NEAREST if interpolation == "nearest" else Image.BILINEAR
        refs.append(np.array(Image.fromarray(im).transform((32, 32), Image.PERSPECTIVE, coeffs.tolist(), resample,
                                                           fillcolor=0)))
    ref = np.stack(refs).astype(np.float32)
    if interpolation == "nearest":
        np.testing.assert_array_equal(ours, ref)
    else:  # float32 blend vs Pillow's double blend, truncated
        assert np.all((ours - ref > -1e-3) & (ours - ref < 1))
    corners = params["end"]
    assert corners[:, 0].max() <= 8 and corners[:, 2].min() >= 31 - 8 - 1  # distortion 0.5 of half the side


def test_resized_crop_matches_pillow_crop_and_resize_and_draws_in_range():
    op = ResizedCrop(op="resized_crop")
    images = real_images(24, seed=4)
    params = op.draw(len(images), gen(2), "cpu", 32, 32)
    ours = as_images(op.apply(as_batch(images), params))
    ref = np.stack([np.array(Image.fromarray(im).crop((
        int(params["left"][i]), int(params["top"][i]), int(params["left"][i] + params["width"][i]),
        int(params["top"][i] + params["height"][i]))).resize((32, 32), Image.BILINEAR)) for i, im in enumerate(images)])
    assert np.abs(ours - ref).max() <= 1.0  # Pillow resizes in fixed point, rounding twice
    many = op.draw(4000, gen(3), "cpu", 32, 32)
    area = many["height"] * many["width"] / 1024
    assert area.min() >= 0.05 and area.max() <= 1.0 and area.std() > 0.2
    assert (many["top"] + many["height"]).max() <= 32 and (many["left"] + many["width"]).max() <= 32


def test_color_jitter_applies_pillows_adjustments_in_the_drawn_order():
    op = ColorJitter(op="color_jitter", brightness=0.4, contrast=0.4, saturation=0.4, hue=0.1)
    images = real_images(24, seed=5)
    params = op.draw(len(images), gen(4), "cpu")
    ours = as_images(op.apply(as_batch(images), params))
    refs = []
    for i, im in enumerate(images):
        img = Image.fromarray(im)
        for which in params["order"][i].tolist():
            if which == 0:
                img = ImageEnhance.Brightness(img).enhance(float(params["brightness"][i]))
            elif which == 1:
                img = ImageEnhance.Contrast(img).enhance(float(params["contrast"][i]))
            elif which == 2:
                img = ImageEnhance.Color(img).enhance(float(params["saturation"][i]))
            else:  # torchvision's adjust_hue on PIL: shift the HSV hue byte, wrapping
                h, s, v = img.convert("HSV").split()
                shifted = (np.array(h).astype(np.int64) + int(float(params["hue"][i]) * 255)) % 256
                img = Image.merge("HSV", (Image.fromarray(shifted.astype(np.uint8), "L"), s, v)).convert("RGB")
        refs.append(np.array(img))
    np.testing.assert_array_equal(ours, np.stack(refs))
    assert len({tuple(o) for o in params["order"].tolist()}) > 10  # orders drawn per image


def test_grayscale_and_solarize_are_pillows():
    x = as_batch(IMAGES)
    grey = as_images(build_policy([{"op": "grayscale", "p": 1.0}])(x, gen(0)))
    ref = np.stack([np.array(Image.fromarray(im).convert("L").convert("RGB")) for im in IMAGES])
    np.testing.assert_array_equal(grey, ref)
    sol = as_images(build_policy([{"op": "solarize", "threshold": 128, "p": 1.0}])(x, gen(0)))
    np.testing.assert_array_equal(sol, np.stack([np.array(ImageOps.solarize(Image.fromarray(im), 128)) for im in IMAGES]))


def test_gaussian_blur_matches_a_numpy_reference_per_image():
    from dataworth.augment.pixels import gaussian_blur

    x = as_batch(IMAGES[:6])
    sigma = torch.tensor([0.1, 0.5, 0.9, 1.3, 1.7, 2.0], dtype=torch.float64)
    ours = gaussian_blur(x, 5, sigma).numpy()
    for i in range(6):
        t = np.linspace(-2, 2, 5)
        k = np.exp(-0.5 * (t / sigma[i].item()) ** 2)
        k /= k.sum()
        padded = np.pad(x[i].numpy().astype(np.float64), ((0, 0), (2, 2), (2, 2)), mode="reflect")
        ref = sum(k[a] * k[b] * padded[:, a : a + 32, b : b + 32] for a in range(5) for b in range(5))
        np.testing.assert_allclose(ours[i], ref, atol=1e-3)


# --- distributions, probabilities, seeds ------------------------------------------------------------


def chi_square_uniform(values: torch.Tensor, k: int) -> float:
    counts = torch.bincount(values.flatten(), minlength=k).numpy()
    return stats.chisquare(counts).pvalue


def test_trivial_augment_draws_ops_bins_and_signs_uniformly_per_image():
    params = TrivialAugment(op="trivial_augment").draw(28_000, gen(11), "cpu", 32, 32)
    assert chi_square_uniform(params["kind"], 14) > 0.001
    assert chi_square_uniform(params["bin"], 31) > 0.001
    assert chi_square_uniform(params["sign"], 2) > 0.001
    # independent of each other: the (op, sign) table has no structure
    table = np.zeros((14, 2))
    np.add.at(table, (params["kind"].numpy(), params["sign"].numpy()), 1)
    assert stats.chi2_contingency(table).pvalue > 0.001


def test_auto_augment_applies_each_step_with_its_probability():
    policy = AutoAugment(op="auto_augment")
    params = policy.draw(20_000, gen(12), "cpu", 32, 32)
    sub = params["sub_policy"].numpy()
    assert chi_square_uniform(params["sub_policy"], 25) > 0.001
    chosen = np.bincount(sub, minlength=25)
    for step, (_, _, applies) in enumerate(policy.steps(params, 32, 32, "cpu")):
        applied = np.bincount(sub, weights=applies.numpy(), minlength=25)
        for s, steps in enumerate(CIFAR10_POLICY):
            p = steps[step][1]
            if p == 0.0:
                assert applied[s] == 0
            else:
                assert stats.binomtest(int(applied[s]), int(chosen[s]), p).pvalue > 0.0005, (s, step)


def test_rand_augment_draws_ops_uniformly_for_every_round():
    params = RandAugment(op="rand_augment", num_ops=3).draw(14_000, gen(13), "cpu", 32, 32)
    for r in range(3):
        assert chi_square_uniform(params["kind"][:, r], 14) > 0.001


@pytest.mark.parametrize("op", [{"op": "hflip", "p": 0.3}, {"op": "grayscale", "p": 0.3},
                                {"op": "perspective", "p": 0.3}, {"op": "trivial_augment", "p": 0.3}])
def test_p_is_drawn_per_image(op):
    images = real_images(1, seed=6)
    x = as_batch(images).expand(2000, -1, -1, -1).contiguous()
    changed = (build_policy([op])(x, gen(0)) != x).flatten(1).any(1).float()
    # trivial_augment's identity (and ops that leave this image as it is) make "changed" a lower bound
    if op["op"] == "trivial_augment":
        assert 0.2 < changed.mean().item() < 0.31
    else:
        assert stats.binomtest(int(changed.sum()), 2000, 0.3).pvalue > 0.001


POLICIES = [
    [{"op": "trivial_augment"}, {"op": "crop", "padding": 4}, {"op": "hflip"}],
    [{"op": "rand_augment"}], [{"op": "auto_augment"}], [{"op": "perspective"}],
    [{"op": "resized_crop"}, {"op": "color_jitter"}, {"op": "grayscale"}, {"op": "gaussian_blur"}, {"op": "solarize"}],
]


@pytest.mark.parametrize("ops", POLICIES)
def test_same_seed_same_batch_on_cpu(ops):
    x = as_batch(real_images(64, seed=7))
    policy = build_policy(ops)
    a, b, c = policy(x, gen(0)), policy(x, gen(0)), policy(x, gen(1))
    assert a.shape == x.shape and a.dtype == torch.float32
    assert torch.equal(a, b) and not torch.equal(a, c)


# On CUDA the same-seed check runs in `make gpu-check` (part 3: every paper policy on the device).


# --- validation --------------------------------------------------------------------------------------


def _study(dataset: str, ops: list[dict]) -> dict:
    model = {"digits": "cnn2d", "mnist1d": "cnn1d"}[dataset]
    return {"study": "v", "dataset": {"name": dataset}, "augmentations": {"none": [], "strong": ops},
            "grid": {"n_train": [100], "augmentation": ["none", "strong"], "model": [{"name": model, "width": 8}],
                     "seed": [0]},
            "train": {"steps": 10}}


def test_image_ops_are_rejected_on_signal_data_naming_the_op_and_modality():
    from dataworth.study import StudyError, load_study

    with pytest.raises(StudyError) as err:
        load_study(_study("mnist1d", [{"op": "perspective"}]))
    message = str(err.value)
    assert "augmentations.strong[0].op: 'perspective' does not apply to signal1d data (mnist1d)" in message


def test_pixel_ops_are_rejected_on_standardised_datasets_naming_op_policy_and_dataset():
    from dataworth.study import StudyError, load_study

    with pytest.raises(StudyError) as err:
        load_study(_study("digits", [{"op": "hflip"}, {"op": "trivial_augment"}, {"op": "color_jitter"}]))
    message = str(err.value)
    assert "augmentations.strong[1].op: 'trivial_augment' acts on 0..255 pixel values, but digits" in message
    assert "augmentations.strong[2].op: 'color_jitter'" in message and "strong[0]" not in message
    # geometric ops are fine on standardised images
    load_study(_study("digits", [{"op": "hflip"}, {"op": "perspective"}, {"op": "resized_crop"},
                                 {"op": "crop", "padding": 2, "padding_mode": "reflect"}, {"op": "gaussian_blur"}]))


@pytest.mark.parametrize("op, words", [
    ({"op": "rand_augment", "magnitude": 31}, "magnitude 31 must be below num_magnitude_bins"),
    ({"op": "gaussian_blur", "kernel_size": 4}, "kernel_size must be odd"),
    ({"op": "resized_crop", "scale": [0.5, 0.2]}, "scale must be [low, high]"),
    ({"op": "crop", "padding": 2, "padding_mode": "wrap"}, "padding_mode"),
])
def test_bad_op_settings_are_one_line_errors(op, words):
    from dataworth.study import StudyError, load_study

    with pytest.raises(StudyError) as err:
        load_study(_study("digits", [op]))
    assert words in str(err.value)


# --- augment-preview ---------------------------------------------------------------------------------


def test_preview_grid_shows_each_image_its_policy_draws_and_each_op(tmp_path):
    from dataworth.augment.preview import preview_grid
    from dataworth.study import StudySpec

    ops = StudySpec.model_validate(_study("digits", [{"op": "trivial_augment"}, {"op": "hflip"}])).augmentations["strong"]
    images = real_images(3, seed=8)
    grid = np.array(preview_grid(as_batch(images), list(ops), stores_pixels=True, draws=2, cell=64, gap=2))
    # columns: image, 2 policy draws, trivial_augment alone, hflip alone; 3 rows under a 14-pixel label band
    assert grid.shape == (14 + 3 * 66, 5 * 66, 3)
    first = Image.fromarray(images[1]).resize((64, 64), Image.NEAREST)
    np.testing.assert_array_equal(grid[14 + 66 : 14 + 66 + 64, 0:64], np.array(first))
    mirrored = Image.fromarray(images[1][:, ::-1].copy()).resize((64, 64), Image.NEAREST)
    np.testing.assert_array_equal(grid[14 + 66 : 14 + 66 + 64, 4 * 66 : 4 * 66 + 64], np.array(mirrored))


def test_augment_preview_command_writes_a_png_per_policy(tmp_path, capsys):
    import yaml

    from dataworth.cli import main

    study = tmp_path / "study.yaml"
    study.write_text(yaml.safe_dump(_study("digits", [{"op": "hflip"}, {"op": "perspective"}])))
    main(["augment-preview", str(study), "--out", str(tmp_path / "prev"), "--images", "4"])
    assert sorted(p.name for p in (tmp_path / "prev").iterdir()) == ["none.png", "strong.png"]
    assert Image.open(tmp_path / "prev" / "strong.png").size == (7 * 74, 14 + 4 * 74)  # image, 4 draws, 2 ops
    with pytest.raises(SystemExit) as err:
        main(["augment-preview", str(study), "--policy", "nope", "--out", str(tmp_path / "prev")])
    assert "unknown policy 'nope'; allowed: none, strong" in str(err.value)


@pytest.mark.parametrize("shape", [(6, 1, 8, 8), (6, 3, 24, 40), (0, 3, 32, 32)])
def test_every_image_op_keeps_shape_and_dtype_on_grey_non_square_and_empty_batches(shape):
    from dataworth.augment.ops import IMAGE, OP_SPECS

    required = {"crop": {"padding": 2, "padding_mode": "symmetric"}, "cutout": {"size": 3}, "noise": {"std": 1.0}}
    x = torch.randint(0, 256, shape, generator=gen(9)).float()
    for name, spec in OP_SPECS.items():
        if IMAGE in spec.modalities:
            out = build_policy([{"op": name, "p": 1.0, **required.get(name, {})}])(x, gen(0))
            assert out.shape == x.shape and out.dtype == x.dtype, name
