"""The prepared cache: the publishers' files converted once into memory-mappable uint8 arrays.

    <cache>/parts/<source>/<part>-<fingerprint>/      one split as read from its files: x.npy
                                                      (N, C, H, W) uint8, y.npy, extras, part.json
    <cache>/datasets/<name>-<sha256[:16]>/            a study's dataset composed from parts:
                                                      x_/y_{train,test,ood}.npy and meta.json
    <cache>/index/<key>.json                          (dataset settings + its parts' fingerprints)
                                                      -> which datasets/ folder, and its meta

The cache is `<data root>/.dataworth-cache` or `DATAWORTH_CACHE`. Every folder and file is written
atomically, so studies on one root share it safely; a part is re-read only when its files
change (size, mtime, folder entries), and reading CINIC-10's 270,000 PNGs happens once. A
dataset's `sha256` hashes its composed arrays: run ids use it, not the root or the fingerprints,
so one study on a laptop and on a cluster has the same run ids.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np

from dataworth.data.readers import DataFileError
from dataworth.data.sources import SOURCES, Ref, cache_root, fingerprint

SPLITS = ("train", "test", "ood")


def content_hash(arrays: dict[str, np.ndarray]) -> str:
    """sha256 over the arrays' names and bytes, in sorted name order."""
    digest = hashlib.sha256()
    for key in sorted(arrays):
        digest.update(key.encode())
        digest.update(np.ascontiguousarray(arrays[key]).tobytes())
    return digest.hexdigest()


def _short(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:16]


def part_paths(root: Path, source_key: str, part: str) -> list[Path]:
    """The files a part reads; a missing one is a DataFileError naming the layout and `verify`."""
    source = SOURCES[source_key]
    try:
        return source.paths(root, part)
    except (DataFileError, FileNotFoundError) as exc:
        raise DataFileError(source.missing_message(root, exc)) from None


def part_dir(root: Path, source_key: str, part: str) -> Path:
    key = _short(fingerprint(root, part_paths(root, source_key, part)))
    return cache_root(root) / "parts" / source_key / f"{part.replace('/', '__')}-{key}"


def prepare_part(root: Path, source_key: str, part: str, log=None) -> Path:
    """The part's cache folder, read from the original files first if it is not there yet."""
    from dataworth.files import atomic_folder, write_text_atomic

    folder = part_dir(root, source_key, part)
    if (folder / "part.json").exists():
        return folder
    source = SOURCES[source_key]
    if log:
        log(f"reading {source.official} {part} from its files under {root} (once; cached in {folder.parent})")
    try:
        arrays = source.read(root, part)
    except DataFileError as exc:
        raise DataFileError(source.missing_message(root, exc)) from None
    with atomic_folder(folder) as tmp:
        for name, array in arrays.items():
            np.save(tmp / f"{name}.npy", array)
        info = {"source": source_key, "part": part, "count": int(len(arrays["y"])),
                "shape": list(arrays["x"].shape[1:]), "sha256": content_hash(arrays)}
        write_text_atomic(tmp / "part.json", json.dumps(info, indent=2) + "\n")
    return folder


def load_part(root: Path, source_key: str, part: str, log=None) -> dict[str, np.ndarray]:
    folder = prepare_part(root, source_key, part, log)
    return {p.stem: np.load(p, mmap_mode="r") for p in folder.glob("*.npy")}


def read_ref(root: Path, ref: Ref, log=None) -> tuple[np.ndarray, np.ndarray]:
    """The images and labels a reference names, from the cache."""
    return SOURCES[ref.source].select(load_part(root, ref.source, ref.part, log), ref.option)


def channel_stats(x: np.ndarray, chunk: int = 8192) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of uint8 images (N, C, H, W), in pixel units, in float64 chunks
    (a float copy of CINIC-10's pool would take 4 GB)."""
    total = np.zeros(x.shape[1])
    squares = np.zeros(x.shape[1])
    for start in range(0, len(x), chunk):
        block = np.asarray(x[start : start + chunk], dtype=np.float64)
        total += block.sum(axis=(0, 2, 3))
        squares += (block**2).sum(axis=(0, 2, 3))
    count = len(x) * x.shape[2] * x.shape[3]
    mean = total / count
    std = np.sqrt(np.maximum(squares / count - mean**2, 0.0))
    return mean.tolist(), np.maximum(std, 1e-6).tolist()


# One resolution per process and setting: a job builds its Study more than once.
_RESOLVED: dict[str, dict] = {}


def prepare_pixel_dataset(spec, root: Path, log=None) -> dict:
    """Compose `spec`'s train/test/ood arrays from cached parts (preparing what is missing) and
    return the dataset's meta, with `arrays_dir` the folder of its .npy files."""
    train_refs, test_ref, ood_ref = spec.train_refs(), spec.test_ref(), spec.ood_ref()
    refs = [*train_refs, *([test_ref] if test_ref else []), ood_ref]  # no test_ref: held out from the pool
    settings = spec.model_dump(exclude={"root", "normalize"})  # the same arrays however they are normalised
    parts = list(dict.fromkeys((r.source, r.part) for r in refs))  # the pool's first: its error comes first
    index_key = _short({"settings": settings, "parts": [fingerprint(root, part_paths(root, *p)) for p in parts]})
    if index_key in _RESOLVED:
        return _RESOLVED[index_key]
    cache = cache_root(root)
    index = cache / "index" / f"{index_key}.json"
    if index.exists():
        meta = json.loads(index.read_text())
        meta["arrays_dir"] = str(cache / "datasets" / meta["folder"])
        if Path(meta["arrays_dir"], "meta.json").exists():
            _RESOLVED[index_key] = meta
            return meta

    log = log or (lambda msg: print(f"dataworth: {msg}", file=sys.stderr, flush=True))
    train = [read_ref(root, r, log) for r in train_refs]
    pool = spec.finish_pool(np.concatenate([x for x, _ in train]), np.concatenate([y for _, y in train]))
    arrays = {"x_train": pool[0], "y_train": pool[1]}
    if test_ref is None:  # the pool's spec held the test set out of it
        arrays["x_test"], arrays["y_test"] = pool[2], pool[3]
    else:
        arrays["x_test"], arrays["y_test"] = read_ref(root, test_ref, log)
    arrays["x_ood"], arrays["y_ood"] = read_ref(root, ood_ref, log)
    arrays = {k: np.ascontiguousarray(v, dtype=np.int64 if k[0] == "y" else np.uint8) for k, v in arrays.items()}
    test_name = str(test_ref) if test_ref else spec.held_out_description()
    _check_compatible(arrays, {"test": test_name, "ood": str(ood_ref)}, train_refs)

    mean, std = channel_stats(arrays["x_train"])
    sha = content_hash(arrays)
    meta = {
        "config": settings,
        "modality": spec.modality,
        "stores_pixels": True,
        "num_classes": int(arrays["y_train"].max()) + 1,
        "sample_shape": list(arrays["x_train"].shape[1:]),
        "sizes": {s: int(len(arrays[f"y_{s}"])) for s in SPLITS},
        "test": test_name,
        "ood": f"{ood_ref} ({SOURCES[ood_ref.source].official})",
        "sets": {"train": [str(r) for r in train_refs], "test": test_name, "ood": str(ood_ref)},
        "mean": mean,
        "std": std,
        "sha256": sha,
        "folder": f"{spec.name}-{sha[:16]}",
    }
    from dataworth.files import atomic_folder, write_text_atomic

    folder = cache / "datasets" / meta["folder"]
    if not (folder / "meta.json").exists():
        with atomic_folder(folder) as tmp:
            for name, array in arrays.items():
                np.save(tmp / f"{name}.npy", array)
            write_text_atomic(tmp / "meta.json", json.dumps(meta, indent=2) + "\n")
    write_text_atomic(index, json.dumps(meta, indent=2) + "\n")
    meta["arrays_dir"] = str(folder)
    _RESOLVED[index_key] = meta
    return meta


def _check_compatible(arrays: dict, names: dict[str, str], train_refs: list[Ref]) -> None:
    shape = arrays["x_train"].shape[1:]
    num_classes = int(arrays["y_train"].max()) + 1
    for split, ref in names.items():
        if arrays[f"x_{split}"].shape[1:] != shape:
            raise DataFileError(f"dataset.{split}: {ref} has images of shape {arrays[f'x_{split}'].shape[1:]} but the "
                                f"training pool ({', '.join(map(str, train_refs))}) has {shape}; they must match")
        if len(arrays[f"y_{split}"]) == 0:
            raise DataFileError(f"dataset.{split}: {ref} holds no images")
        top = int(arrays[f"y_{split}"].max())
        if top >= num_classes:
            raise DataFileError(f"dataset.{split}: {ref} has label {top} but the training pool has {num_classes} "
                                f"classes (0..{num_classes - 1}); a test set needs the training pool's classes")


def load_arrays(meta: dict) -> dict[str, np.ndarray]:
    """The composed dataset's arrays (read whole: one sequential read per split)."""
    folder = Path(meta["arrays_dir"])
    if not (folder / "meta.json").exists():
        raise DataFileError(f"{folder}: the prepared arrays of {meta['config']['name']} are not there (another "
                            "machine's cache?); set DATAWORTH_DATA to the data root and rerun `snakemake`, or run "
                            "`dataworth data prepare`")
    return {f"{k}_{s}": np.load(folder / f"{k}_{s}.npy") for s in SPLITS for k in ("x", "y")}
