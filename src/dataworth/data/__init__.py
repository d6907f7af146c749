"""Datasets, nested subsets and the prepared-data file every run of a study reads."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dataworth.data.datasets import DATASET_SPECS
from dataworth.data.subsets import nested_subset, stratified_order

SPLITS = ("train", "test", "ood")

__all__ = ["DATASET_SPECS", "Dataset", "load_dataset", "nested_subset", "prepare_dataset", "stratified_order"]


def _content_hash(arrays: dict[str, np.ndarray]) -> str:
    digest = hashlib.sha256()
    for key in sorted(arrays):
        digest.update(key.encode())
        digest.update(np.ascontiguousarray(arrays[key]).tobytes())
    return digest.hexdigest()


def prepare_dataset(config: dict, out: str | Path) -> dict:
    """Build the dataset described by `config` and write it atomically to `out` (.pt)."""
    import torch

    from dataworth.files import atomic_path

    spec = DATASET_SPECS[config["name"]].model_validate(config)
    arrays = spec.build()
    meta = {
        "config": spec.model_dump(),
        "modality": spec.modality,
        "num_classes": int(arrays["y_train"].max()) + 1,
        "sample_shape": list(arrays["x_train"].shape[1:]),
        "sizes": {s: int(len(arrays[f"y_{s}"])) for s in SPLITS},
        "ood": spec.ood_description,
        "sha256": _content_hash(arrays),
    }
    with atomic_path(out) as tmp:
        torch.save({"meta": meta, **{k: torch.from_numpy(v) for k, v in arrays.items()}}, tmp)
    return meta


@dataclass
class Dataset:
    meta: dict
    x: dict  # split -> tensor on the device
    y: dict

    @property
    def num_classes(self) -> int:
        return self.meta["num_classes"]

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return tuple(self.meta["sample_shape"])


# The last dataset loaded, per process: a job that trains or evaluates a pack of runs reads and
# moves the data to the device once. Its tensors are never modified in place (subsets and
# augmentations make new ones), so sharing them between runs is safe.
_LOADED: dict[tuple, Dataset] = {}


def load_dataset(path: str | Path, device="cpu") -> Dataset:
    """Load a prepared dataset with every split already on `device` (no loader in the hot path)."""
    import torch

    from dataworth.files import load_torch

    path = Path(path).resolve()
    key = (str(path), path.stat().st_mtime_ns, str(torch.device(device)))
    if key not in _LOADED:
        blob = load_torch(path)
        x = {s: blob[f"x_{s}"].to(device) for s in SPLITS}
        y = {s: blob[f"y_{s}"].to(device) for s in SPLITS}
        _LOADED.clear()
        _LOADED[key] = Dataset(meta=blob["meta"], x=x, y=y)
    return _LOADED[key]
