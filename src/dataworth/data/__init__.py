"""Datasets, nested subsets and the prepared-data file every run of a study reads."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from dataworth.data.cache import content_hash as _content_hash
from dataworth.data.cache import load_arrays
from dataworth.data.datasets import DATASET_SPECS
from dataworth.data.readers import DataFileError
from dataworth.data.subsets import nested_subset, stratified_order

SPLITS = ("train", "test", "ood")

__all__ = ["DATASET_SPECS", "DataFileError", "Dataset", "load_dataset", "nested_subset", "prepare_dataset",
           "stratified_order"]


def prepare_dataset(config: dict, out: str | Path) -> dict:
    """Build the dataset described by `config` and write it atomically to `out` (.pt).

    A dataset that stores pixels is prepared in the shared cache under its data root; `out` is
    then a small pointer (its meta, with the folder of its memory-mappable arrays)."""
    import torch

    from dataworth.files import atomic_path

    spec = DATASET_SPECS[config["name"]].model_validate(config)
    if spec.stores_pixels:
        meta = with_normalization(spec.prepared(), spec.normalize)
        with atomic_path(out) as tmp:
            torch.save({"meta": meta}, tmp)
        return meta
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
    x: dict  # split -> tensor on the device (uint8 pixels where stores_pixels)
    y: dict
    _scale: tuple = field(default=(), repr=False)  # pixels: per-channel (mean, std) on the device

    @property
    def num_classes(self) -> int:
        return self.meta["num_classes"]

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return tuple(self.meta["sample_shape"])

    @property
    def stores_pixels(self) -> bool:
        return bool(self.meta.get("stores_pixels"))

    # -- what the network sees. A pixel dataset keeps uint8 on the device (4x less memory than
    # float); a batch becomes float pixels (0..255), is augmented in pixel units, and is
    # normalised here with the training pool's per-channel mean and std. Other datasets are
    # stored standardised: these are then the identity.

    def model_input(self, x_pixels):
        """A float batch in pixel units (after augmentation) -> the network's input."""
        if not self.stores_pixels:
            return x_pixels
        mean, std = self._scale
        return (x_pixels - mean) / std

    def eval_input(self, x):
        """An un-augmented batch as stored -> the network's input."""
        return self.model_input(x.float()) if self.stores_pixels else x

    def training_policy(self, policy):
        """Wraps an augmentation policy so that it sees float pixels and the network normalised input."""
        if not self.stores_pixels:
            return policy
        return lambda batch, gen: self.model_input(policy(batch.float(), gen))

    def for_evaluation(self, network):
        """`network` taking stored batches (forward and `features`), for evaluating a trained run."""
        if not self.stores_pixels:
            return network
        from dataworth.data.pixels import StoredInput

        return StoredInput(network, self)


def with_normalization(meta: dict, normalize: str) -> dict:
    """The prepared dataset's meta with the mean and std its network input is normalised with:
    the pool's (as prepared) or a fixed set (pixel_datasets.NORMALIZATIONS)."""
    if normalize == "pool":
        return meta
    from dataworth.data.pixel_datasets import NORMALIZATIONS

    mean, std = NORMALIZATIONS[normalize]
    return {**meta, "normalize": normalize, "mean": list(mean), "std": list(std)}


def _arrays_here(meta: dict) -> dict:
    """The pointer's meta, or, where its arrays are not on this machine (results prepared elsewhere
    and pulled) and DATAWORTH_DATA names a root here, the same dataset prepared under that root."""
    if Path(meta["arrays_dir"], "meta.json").exists() or not os.environ.get("DATAWORTH_DATA"):
        return meta  # load_arrays names what is missing
    spec = DATASET_SPECS[meta["config"]["name"]].model_validate(meta["config"])
    here = spec.prepared()
    if here["sha256"] != meta["sha256"]:
        raise DataFileError(f"the dataset files under {spec.data_root()} hold other images than the ones this "
                            f"study was prepared with (sha256 {here['sha256'][:12]}, not {meta['sha256'][:12]})")
    return with_normalization(here, meta.get("normalize", "pool"))


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
        scale = ()
        if blob["meta"].get("stores_pixels"):  # a pointer into the prepared cache
            blob["meta"] = _arrays_here(blob["meta"])
            blob.update({k: torch.from_numpy(v) for k, v in load_arrays(blob["meta"]).items()})
            channels = (-1, 1, 1)
            scale = tuple(torch.tensor(blob["meta"][k], dtype=torch.float32, device=device).view(channels)
                          for k in ("mean", "std"))
        x = {s: blob[f"x_{s}"].to(device) for s in SPLITS}
        y = {s: blob[f"y_{s}"].to(device) for s in SPLITS}
        _LOADED.clear()
        _LOADED[key] = Dataset(meta=blob["meta"], x=x, y=y, _scale=scale)
    return _LOADED[key]
