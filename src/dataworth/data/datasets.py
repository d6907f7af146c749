"""Datasets, all offline: generated (mnist1d, synthetic, synthetic_images), bundled with a dependency
(digits), or read from the standard files their publishers distribute (pixel_datasets.py: CIFAR, CINIC-10, ...).

Each dataset spec builds six arrays once per study: the training pool (from which nested
subsets are drawn), a fixed test set, and a fixed out-of-distribution (OOD) test set, a
documented corruption of the test set. Signals are stored as (N, 1, L) float32, images as
(N, 1, H, W) float32, both standardised with the training pool's statistics; labels int64.
Datasets read from files store pixels instead (`stores_pixels`): uint8 (N, C, H, W), normalised
on the device per batch (see `Dataset.model_input`).
"""

from __future__ import annotations

from typing import ClassVar, Literal

import numpy as np
from pydantic import Field

from dataworth.data.pixel_datasets import PIXEL_DATASET_SPECS
from dataworth.data.spec import IMAGE, SIGNAL, DatasetSpec

__all__ = ["DATASET_SPECS", "IMAGE", "SIGNAL", "DatasetSpec"]

def _correlated_noise(rng: np.random.Generator, shape: tuple, scale: float, length_scale: float) -> np.ndarray:
    """Gaussian noise smoothed along the last axis with a Gaussian kernel, rescaled to std `scale`."""
    white = rng.standard_normal(shape)
    radius = int(3 * length_scale)
    t = np.arange(-radius, radius + 1)
    kernel = np.exp(-0.5 * (t / length_scale) ** 2)
    kernel /= np.sqrt((kernel**2).sum())
    smooth = np.apply_along_axis(lambda row: np.convolve(row, kernel, mode="same"), -1, white)
    return scale * smooth


def _standardise(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    mean, std = arrays["x_train"].mean(), arrays["x_train"].std()
    out = dict(arrays)
    for key in ("x_train", "x_test", "x_ood"):
        out[key] = ((arrays[key] - mean) / std).astype(np.float32)
    for key in ("y_train", "y_test", "y_ood"):
        out[key] = arrays[key].astype(np.int64)
    return out


class Mnist1dSpec(DatasetSpec):
    name: Literal["mnist1d"]
    train_pool: int = Field(default=4000, gt=0, description="training samples generated (grid sizes <= this)")
    test_size: int = Field(default=1000, gt=0, description="fixed test set size (the OOD set has the same size)")
    seed: int = Field(default=42, ge=0, description="generator seed: fixes the data for the whole study")

    modality: ClassVar[str] = SIGNAL
    ood_description: ClassVar[str] = (
        "mnist1d test set plus correlated Gaussian noise (std 0.5 of the data std, length scale 2 samples) "
        "and i.i.d. Gaussian noise (std 0.1), drawn once from a fixed seed"
    )

    def train_pool_size(self) -> int:
        return self.train_pool

    def build(self) -> dict[str, np.ndarray]:
        # make_dataset directly: get_dataset would try to download the reference pickle first.
        from mnist1d.data import get_dataset_args, make_dataset

        total = self.train_pool + self.test_size
        args = get_dataset_args()
        # make_dataset draws num_samples // 10 per class; ask for enough, then cut.
        args.num_samples = int(np.ceil(total / 10) * 10)
        args.train_split = 1.0
        args.seed = self.seed
        data = make_dataset(args)
        x, y = data["x"][:total], data["y"][:total]
        x_test = x[self.train_pool:]
        rng = np.random.default_rng([self.seed, 1])
        x_ood = x_test + _correlated_noise(rng, x_test.shape, 0.5 * x.std(), 2.0) + 0.1 * x.std() * rng.standard_normal(x_test.shape)
        arrays = {
            "x_train": x[: self.train_pool, None, :],
            "y_train": y[: self.train_pool],
            "x_test": x_test[:, None, :],
            "y_test": y[self.train_pool:],
            "x_ood": x_ood[:, None, :],
            "y_ood": y[self.train_pool:],
        }
        return _standardise(arrays)


class DigitsSpec(DatasetSpec):
    name: Literal["digits"]
    test_size: int = Field(default=497, gt=0, lt=1797, description="held out from the 1797 images (stratified)")
    seed: int = Field(default=0, ge=0, description="seed of the fixed train/test split")

    modality: ClassVar[str] = IMAGE
    ood_description: ClassVar[str] = (
        "digits test set shifted one pixel right and down (zero fill) plus Gaussian noise of std 0.5 "
        "(in standardised units), drawn once from a fixed seed"
    )

    def train_pool_size(self) -> int:
        return 1797 - self.test_size

    def build(self) -> dict[str, np.ndarray]:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split

        bunch = load_digits()
        x = bunch.images.astype(np.float64)[:, None, :, :]
        y = bunch.target
        x_train, x_test, y_train, y_test = train_test_split(
            x, y, test_size=self.test_size, stratify=y, random_state=self.seed
        )
        shifted = np.zeros_like(x_test)
        shifted[:, :, 1:, 1:] = x_test[:, :, :-1, :-1]
        rng = np.random.default_rng([self.seed, 1])
        x_ood = shifted + 0.5 * x_train.std() * rng.standard_normal(x_test.shape)
        arrays = {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test, "x_ood": x_ood, "y_ood": y_test}
        return _standardise(arrays)


class SyntheticSpec(DatasetSpec):
    """Tiny and fast, for tests: noisy copies of random smooth class templates."""

    name: Literal["synthetic"]
    train_pool: int = Field(default=512, gt=0, description="training samples generated (grid sizes <= this)")
    test_size: int = Field(default=256, gt=0, description="fixed test set size (the OOD set has the same size)")
    num_classes: int = Field(default=4, ge=2, description="classes, one template each")
    length: int = Field(default=32, ge=8, description="signal length")
    noise: float = Field(default=0.8, ge=0, description="std of the i.i.d. noise added to each sample")
    seed: int = Field(default=0, ge=0, description="generator seed: fixes the data for the whole study")

    modality: ClassVar[str] = SIGNAL
    ood_description: ClassVar[str] = "synthetic test set with its noise std doubled"

    def train_pool_size(self) -> int:
        return self.train_pool

    def build(self) -> dict[str, np.ndarray]:
        rng = np.random.default_rng(self.seed)
        templates = _correlated_noise(rng, (self.num_classes, self.length), 1.0, 3.0)
        total = self.train_pool + self.test_size
        y = np.arange(total) % self.num_classes
        rng.shuffle(y)
        shifts = rng.integers(-2, 3, size=total)
        clean = np.stack([np.roll(templates[c], s) for c, s in zip(y, shifts)])
        x = clean + self.noise * rng.standard_normal(clean.shape)
        test = slice(self.train_pool, None)
        x_ood = clean[test] + 2 * self.noise * rng.standard_normal(clean[test].shape)
        arrays = {
            "x_train": x[: self.train_pool, None],
            "y_train": y[: self.train_pool],
            "x_test": x[test, None],
            "y_test": y[test],
            "x_ood": x_ood[:, None],
            "y_ood": y[test],
        }
        return _standardise(arrays)


class SyntheticImagesSpec(DatasetSpec):
    """Tiny image data shaped like CIFAR (3x32x32 by default), for tests and the GPU check: noisy,
    randomly shifted copies of random blocky class templates. No download, built in a moment."""

    name: Literal["synthetic_images"]
    train_pool: int = Field(default=1024, gt=0, description="training samples generated (grid sizes <= this)")
    test_size: int = Field(default=256, gt=0, description="fixed test set size (the OOD set has the same size)")
    num_classes: int = Field(default=10, ge=2, description="classes, one template each")
    channels: int = Field(default=3, ge=1, description="colour channels")
    size: int = Field(default=32, ge=8, description="height and width in pixels")
    noise: float = Field(default=0.8, ge=0, description="std of the i.i.d. noise added to each pixel")
    seed: int = Field(default=0, ge=0, description="generator seed: fixes the data for the whole study")

    modality: ClassVar[str] = IMAGE
    ood_description: ClassVar[str] = "synthetic image test set with its noise std doubled"

    def train_pool_size(self) -> int:
        return self.train_pool

    def build(self) -> dict[str, np.ndarray]:
        rng = np.random.default_rng(self.seed)
        # 4x4 blocks of colour per class, upsampled: structure a convolution can learn quickly.
        coarse = rng.standard_normal((self.num_classes, self.channels, 4, 4))
        block = -(-self.size // 4)
        templates = np.kron(coarse, np.ones((1, 1, block, block)))[:, :, : self.size, : self.size]
        total = self.train_pool + self.test_size
        y = np.arange(total) % self.num_classes
        rng.shuffle(y)
        shifts = rng.integers(-2, 3, size=(total, 2))
        clean = np.stack([np.roll(templates[c], tuple(s), axis=(1, 2)) for c, s in zip(y, shifts)])
        x = clean + self.noise * rng.standard_normal(clean.shape)
        test = slice(self.train_pool, None)
        x_ood = clean[test] + 2 * self.noise * rng.standard_normal(clean[test].shape)
        arrays = {
            "x_train": x[: self.train_pool],
            "y_train": y[: self.train_pool],
            "x_test": x[test],
            "y_test": y[test],
            "x_ood": x_ood,
            "y_ood": y[test],
        }
        return _standardise(arrays)


DATASET_SPECS: dict[str, type[DatasetSpec]] = {
    "mnist1d": Mnist1dSpec,
    "digits": DigitsSpec,
    "synthetic": SyntheticSpec,
    "synthetic_images": SyntheticImagesSpec,
    **PIXEL_DATASET_SPECS,  # read from their publishers' files (pixel_datasets.py)
}
