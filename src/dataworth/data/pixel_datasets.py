"""Datasets read from their publishers' files under a data root: CIFAR-10/100, CINIC-10,
MNIST, Fashion-MNIST, EMNIST, SVHN, any image folder and any .npz.

They store pixels (uint8 (N, C, H, W)); the prepared cache (cache.py) holds the arrays and the
training pool's per-channel mean and std. `root` is execution-only: it is in no run id, which
holds the dataset's settings and the sha256 of its arrays instead. The in-distribution test set
(`test`, the dataset's own test split by default) and the shifted one (`ood`) are references
(sources.py), e.g. `cifar10:test` or `cifar10c:fog@3`.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

import numpy as np
from pydantic import Field, field_validator, model_validator

from dataworth.data.readers import DataFileError
from dataworth.data.sources import EMNIST_SPLITS, Ref, parse_ref
from dataworth.data.spec import IMAGE, DatasetSpec

_ROOT = Field(default=None, description="folder holding the dataset files; DATAWORTH_DATA wins when set. "
                                        "Execution-only: not part of any run id")
_OOD = Field(description="the shifted test set, a reference <source>:<part>[@<option>], e.g. cifar10c:fog@3")
_TEST = Field(default=None, description="the in-distribution test set (a reference); default: the dataset's own test split")


# Fixed normalisations a pixel dataset may use instead of its pool's statistics, in pixel units
# (0..255): CIFAR-10's training-set channel means and stds, as Geiping et al.'s config/data/CINIC10.yaml
# carries them over to CINIC-10 (0.4914672374725342, ... and 0.24703224003314972, ... times 255).
NORMALIZATIONS: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "cifar10": (tuple(255 * m for m in (0.4914672374725342, 0.4822617471218109, 0.4467701315879822)),
                tuple(255 * s for s in (0.24703224003314972, 0.24348513782024384, 0.26158785820007324))),
}


def first_of_identical(x: np.ndarray) -> np.ndarray:
    """Indices of the first image of each set of identical images (same pixels), in order."""
    rows = np.ascontiguousarray(x).reshape(len(x), -1)
    _, first = np.unique(rows.view(np.dtype((np.void, rows.shape[1]))).ravel(), return_index=True)
    return np.sort(first)


class PixelDatasetSpec(DatasetSpec):
    """A dataset read from files: training pool from `train_refs()`, test and ood sets by reference."""

    modality: ClassVar[str] = IMAGE
    stores_pixels: ClassVar[bool] = True
    official: ClassVar[str]
    ood_description: ClassVar[str] = (
        "the set `ood` names, a reference to dataset files such as `cifar10:test` or `cifar10c:fog@3` "
        "(see \"Image datasets from their files\")"
    )
    root: str | None = _ROOT
    test: str | None = _TEST
    ood: str = _OOD
    normalize: Literal["pool", "cifar10"] = Field(
        default="pool", description="per-channel mean and std the network's input is normalised with: the "
        "training pool's (pool), or CIFAR-10's training set's (cifar10; Geiping et al. carry them over to CINIC-10)")

    @field_validator("test", "ood")
    @classmethod
    def _reference(cls, value):
        if value is not None:
            parse_ref(value)  # ValueError names what is allowed
        return value

    def train_refs(self) -> list[Ref]:
        raise NotImplementedError

    def own_test(self) -> str:
        raise NotImplementedError

    def test_ref(self) -> Ref | None:
        """The in-distribution test set; None where `finish_pool` holds it out of the pool."""
        return parse_ref(self.test or self.own_test())

    def finish_pool(self, x, y) -> tuple:
        """The training pool from the concatenated `train_refs` (x, y), plus, where the spec holds
        its test set out of the pool, that test set (x_test, y_test)."""
        return x, y

    def held_out_description(self) -> str:
        raise NotImplementedError

    def ood_ref(self) -> Ref:
        return parse_ref(self.ood)

    def data_root(self) -> Path:
        from dataworth.data.sources import data_root

        return data_root(self.root)

    def prepared(self) -> dict:
        """The prepared dataset's meta (sizes, sha256, mean/std, where its arrays are); prepares
        it first if needed. Raises DataFileError naming a missing or malformed file."""
        from dataworth.data.cache import prepare_pixel_dataset

        return prepare_pixel_dataset(self, self.data_root())

    def identity(self) -> dict:
        # `normalize` enters run ids only when set: the ids from before it existed stay as they were.
        left_out = {"root"} | ({"normalize"} if self.normalize == "pool" else set())
        return {**self.model_dump(exclude=left_out), "sha256": self.prepared()["sha256"]}

    def normalize_problem(self) -> str | None:
        """Why `normalize` does not fit the prepared images (a fixed set has one value per channel)."""
        if self.normalize == "pool":
            return None
        channels, expected = self.prepared()["sample_shape"][0], len(NORMALIZATIONS[self.normalize][0])
        if channels == expected:
            return None
        return (f"dataset.normalize: {self.normalize} holds statistics for {expected}-channel images; this dataset's "
                f"have {channels}; allowed: pool")

    def train_pool_size(self) -> int:
        return self.prepared()["sizes"]["train"]

    def build(self):
        from dataworth.data.cache import load_arrays

        return load_arrays(self.prepared())


class Cifar10Spec(PixelDatasetSpec):
    name: Literal["cifar10"]
    official: ClassVar[str] = "CIFAR-10"

    def train_refs(self):
        return [parse_ref("cifar10:train")]

    def own_test(self):
        return "cifar10:test"


class Cifar100Spec(PixelDatasetSpec):
    name: Literal["cifar100"]
    labels: Literal["fine", "coarse"] = Field(default="fine", description="100 fine classes or 20 coarse superclasses")
    official: ClassVar[str] = "CIFAR-100"

    def train_refs(self):
        return [parse_ref(f"cifar100:train@{self.labels}")]

    def own_test(self):
        return f"cifar100:test@{self.labels}"


class Cinic10Spec(PixelDatasetSpec):
    """The pool of Geiping et al. (2022): CINIC-10 train + valid (180,000 images), optionally
    without its images taken from CIFAR-10, so that CIFAR-10 is a clean shifted test set."""

    name: Literal["cinic10"]
    pool: Literal["train+valid", "train", "all"] = Field(
        default="train+valid",
        description="the CINIC-10 splits of the pool; all = train + valid + test, with `holdout` images held out "
        "as the test set (Geiping et al.'s pool, with exclude_cifar10 and deduplicate: 193,523 images)",
    )
    exclude_cifar10: bool = Field(default=False, description="leave out the images CINIC-10 took from CIFAR-10 "
                                                             "(file names starting cifar10-)")
    deduplicate: bool = Field(default=False, description="keep one of each set of identical images (same pixels)")
    holdout: int = Field(default=10000, gt=0, description="pool all: images held out of the pool as the test set "
                                                          "(a fixed seeded draw)")
    ood: str = Field(default="cifar10:test", description=_OOD.description)
    official: ClassVar[str] = "CINIC-10"

    @model_validator(mode="after")
    def _test_not_in_pool(self):
        if self.pool == "all" and self.test is not None:
            raise ValueError("pool all holds every CINIC-10 split; its test set is held out of the pool "
                             "(dataset.holdout), so leave dataset.test unset")
        return self

    def train_refs(self):
        option = "@no-cifar10" if self.exclude_cifar10 else ""
        splits = ("train", "valid", "test") if self.pool == "all" else self.pool.split("+")
        return [parse_ref(f"cinic10:{split}{option}") for split in splits]

    def own_test(self):
        return "cinic10:test"

    def test_ref(self):
        return None if self.pool == "all" else super().test_ref()

    def finish_pool(self, x, y):
        if self.deduplicate:
            keep = first_of_identical(x)
            x, y = x[keep], y[keep]
        if self.pool != "all":
            return x, y
        if self.holdout >= len(y):
            raise DataFileError(f"dataset.holdout: {self.holdout} test images but the pool has only {len(y)}")
        # A fixed draw (seed 0), whatever the study: the same test set for every run.
        order = np.random.default_rng(0).permutation(len(y))
        train, test = np.sort(order[: -self.holdout]), np.sort(order[-self.holdout :])
        return x[train], y[train], x[test], y[test]

    def held_out_description(self):
        return f"{self.holdout} images held out of CINIC-10 train+valid+test (seed 0)"


class _IdxSpec(PixelDatasetSpec):
    def train_refs(self):
        return [parse_ref(f"{self.name}:train")]

    def own_test(self):
        return f"{self.name}:test"


class MnistSpec(_IdxSpec):
    name: Literal["mnist"]
    official: ClassVar[str] = "MNIST"


class FashionMnistSpec(_IdxSpec):
    name: Literal["fashion_mnist"]
    official: ClassVar[str] = "Fashion-MNIST"


class EmnistSpec(PixelDatasetSpec):
    name: Literal["emnist"]
    split: Literal[EMNIST_SPLITS] = Field(default="balanced", description="the EMNIST split (its file names say it)")
    official: ClassVar[str] = "EMNIST"

    def train_refs(self):
        return [parse_ref(f"emnist:{self.split}-train")]

    def own_test(self):
        return f"emnist:{self.split}-test"


class SvhnSpec(PixelDatasetSpec):
    name: Literal["svhn"]
    official: ClassVar[str] = "SVHN"

    def train_refs(self):
        return [parse_ref("svhn:train")]

    def own_test(self):
        return "svhn:test"


class _OwnFilesSpec(PixelDatasetSpec):
    """Your own data: `train` is a path under the data root; `test` must be given (a reference)."""

    source: ClassVar[str]
    train: str = Field(description="path under the data root")
    test: str = Field(description="the in-distribution test set, e.g. folder:<path> or npz:<path>")

    @field_validator("train")
    @classmethod
    def _train_path(cls, value):
        parse_ref(f"{cls.source}:{value}")
        return value

    def train_refs(self):
        return [parse_ref(f"{self.source}:{self.train}")]


class ImageFolderSpec(_OwnFilesSpec):
    name: Literal["image_folder"]
    source: ClassVar[str] = "folder"
    official: ClassVar[str] = "an image folder"


class NpzSpec(_OwnFilesSpec):
    name: Literal["npz"]
    source: ClassVar[str] = "npz"
    official: ClassVar[str] = "a .npz file"


PIXEL_DATASET_SPECS: dict[str, type[PixelDatasetSpec]] = {
    spec.model_fields["name"].annotation.__args__[0]: spec
    for spec in (Cifar10Spec, Cifar100Spec, Cinic10Spec, MnistSpec, FashionMnistSpec, EmnistSpec, SvhnSpec,
                 ImageFolderSpec, NpzSpec)
}
