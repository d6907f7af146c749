"""Tiny dataset fixtures written in their publishers' exact on-disk formats.

Each writer puts a few dozen random images under a data root, laid out as the real download is,
and returns what a reader must give back: {part: (x uint8 (N, C, H, W), y int64)}. Shared by the
data, augmentation and paper-study tests; no real dataset enters the repository.
"""

from __future__ import annotations

import gzip
import pickle
import tarfile
from pathlib import Path

import numpy as np

from dataworth.data.sources import CIFAR10_CLASSES


def _images(rng, n: int, channels: int = 3, size: int = 32) -> np.ndarray:
    return rng.integers(0, 256, size=(n, channels, size, size), dtype=np.uint8)


def _labels(rng, n: int, classes: int) -> np.ndarray:
    y = np.arange(n) % classes
    rng.shuffle(y)
    return y.astype(np.int64)


def _pickle_batch(x: np.ndarray, labels: dict[bytes, np.ndarray]) -> bytes:
    # As published: b'data' is (N, 3072) uint8 in channel-major (R plane, G, B) order; labels are
    # lists of ints; the file is a protocol-2 pickle (written by Python 2).
    batch = {b"batch_label": b"fixture", b"data": x.reshape(len(x), -1),
             b"filenames": [f"img_{i}.png".encode() for i in range(len(x))]}
    batch.update({k: [int(v) for v in y] for k, y in labels.items()})
    return pickle.dumps(batch, protocol=2)


def _tar_folder(root: Path, folder: str, archive: str) -> Path:
    path = root / archive
    with tarfile.open(path, "w:gz") as tar:
        tar.add(root / folder, arcname=folder)
    return path


def write_cifar10(root: Path, per_batch: int = 6, n_test: int = 10, seed: int = 0, archive: bool = False):
    """cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta}; with `archive`, only
    cifar-10-python.tar.gz holding that folder."""
    import shutil

    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    xs, ys = [], []
    for i in range(1, 6):
        x, y = _images(rng, per_batch), _labels(rng, per_batch, 10)
        (folder / f"data_batch_{i}").write_bytes(_pickle_batch(x, {b"labels": y}))
        xs.append(x), ys.append(y)
    x_test, y_test = _images(rng, n_test), _labels(rng, n_test, 10)
    (folder / "test_batch").write_bytes(_pickle_batch(x_test, {b"labels": y_test}))
    (folder / "batches.meta").write_bytes(pickle.dumps({b"label_names": [c.encode() for c in CIFAR10_CLASSES]}, 2))
    if archive:
        _tar_folder(root, folder.name, "cifar-10-python.tar.gz")
        shutil.rmtree(folder)
    return {"train": (np.concatenate(xs), np.concatenate(ys)), "test": (x_test, y_test)}


def write_cifar100(root: Path, n_train: int = 40, n_test: int = 20, seed: int = 1, archive: bool = False):
    """cifar-100-python/{train, test} with fine (0..99) and coarse (0..19) labels; returns
    {part: (x, y_fine, y_coarse)}."""
    import shutil

    rng = np.random.default_rng(seed)
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    out = {}
    for part, n in (("train", n_train), ("test", n_test)):
        x, fine = _images(rng, n), _labels(rng, n, 100)
        coarse = fine // 5
        (folder / part).write_bytes(_pickle_batch(x, {b"fine_labels": fine, b"coarse_labels": coarse}))
        out[part] = (x, fine, coarse)
    if archive:
        _tar_folder(root, folder.name, "cifar-100-python.tar.gz")
        shutil.rmtree(folder)
    return out


def _write_png(path: Path, image: np.ndarray) -> None:
    from PIL import Image

    array = image[0] if image.shape[0] == 1 else image.transpose(1, 2, 0)
    Image.fromarray(array).save(path)


def write_cinic10(root: Path, per_class: dict[str, int] | None = None, from_cifar10: int = 1, seed: int = 2,
                  grey: int = 0):
    """cinic-10/{train,valid,test}/<class>/*.png, 32x32 RGB. Per class and split, the first
    `from_cifar10` images are named cifar10-<split>-<i>.png (taken from CIFAR-10), the others
    n<synset>_<i>.png (ImageNet); the last `grey` images of each class are greyscale PNGs (CINIC-10
    has some), read back as RGB. Returns {split: (x, y, from_cifar10 mask)} in the readers' order
    (class by class, file names sorted)."""
    rng = np.random.default_rng(seed)
    per_class = per_class or {"train": 3, "valid": 2, "test": 2}
    out = {}
    for split, n in per_class.items():
        xs, ys, masks = [], [], []
        for label, cls in enumerate(CIFAR10_CLASSES):
            folder = root / "cinic-10" / split / cls
            folder.mkdir(parents=True)
            items = []
            for i in range(n):
                name = f"cifar10-{split}-{label * 100 + i}.png" if i < from_cifar10 else f"n0{label}000{i}_{i}.png"
                image = _images(rng, 1)[0]
                if i >= n - grey:
                    image = np.repeat(_images(rng, 1, channels=1), 3, axis=1)[0]
                    _write_png(folder / name, image[:1])
                else:
                    _write_png(folder / name, image)
                items.append((name, image))
            for name, image in sorted(items):
                xs.append(image), ys.append(label), masks.append(name.startswith("cifar10-"))
        out[split] = (np.stack(xs), np.asarray(ys, dtype=np.int64), np.asarray(masks))
    return out


def write_cifar10c(root: Path, corruptions=("fog", "gaussian_noise"), n: int = 8, seed: int = 3):
    """CIFAR-10-C/<corruption>.npy (5 n, 32, 32, 3) uint8, severity 1 first, and labels.npy (5 n,)
    (the same n labels repeated per severity, as published). Returns {corruption: (x (5n, 3, 32, 32), y)}."""
    rng = np.random.default_rng(seed)
    folder = root / "CIFAR-10-C"
    folder.mkdir(parents=True)
    labels = np.tile(rng.integers(0, 10, size=n), 5).astype(np.uint8)
    np.save(folder / "labels.npy", labels)
    out = {}
    for corruption in corruptions:
        x_hwc = rng.integers(0, 256, size=(5 * n, 32, 32, 3), dtype=np.uint8)
        np.save(folder / f"{corruption}.npy", x_hwc)
        out[corruption] = (x_hwc.transpose(0, 3, 1, 2), labels.astype(np.int64))
    return out


def idx_bytes(array: np.ndarray) -> bytes:
    """An idx file of unsigned bytes: magic 0x00 0x00 0x08 <ndim>, big-endian dims, the data."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def write_idx_dataset(root: Path, folder: str = "mnist", prefix: str = "", names=("train", "t10k"),
                      n: tuple[int, int] = (30, 10), size: int = 28, gz: bool = True, seed: int = 4,
                      classes: int = 10, first_label: int = 0):
    """<folder>/<prefix>{train,t10k}-images-idx3-ubyte[.gz] and -labels-idx1-ubyte[.gz] (MNIST's
    names; EMNIST's are emnist-<split>-{train,test}-...). Returns {train|test: (x (N, 1, H, W), y)}
    as stored (no EMNIST transpose)."""
    rng = np.random.default_rng(seed)
    (root / folder).mkdir(parents=True, exist_ok=True)
    out = {}
    for part, stem, count in zip(("train", "test"), names, n):
        x = rng.integers(0, 256, size=(count, size, size), dtype=np.uint8)
        y = (_labels(rng, count, classes) + first_label).astype(np.uint8)
        for kind, array in (("images-idx3", x), ("labels-idx1", y)):
            path = root / folder / f"{prefix}{stem}-{kind}-ubyte"
            data = idx_bytes(array)
            if gz:
                with gzip.open(str(path) + ".gz", "wb") as f:
                    f.write(data)
            else:
                path.write_bytes(data)
        out[part] = (x[:, None], y.astype(np.int64))
    return out


def write_svhn(root: Path, n: tuple[int, int] = (20, 10), seed: int = 5):
    """svhn/{train,test}_32x32.mat (MATLAB v5): X (32, 32, 3, N) uint8, y (N, 1) with 10 for the digit 0.
    Returns {part: (x (N, 3, 32, 32), y 0..9)}."""
    from scipy.io import savemat

    rng = np.random.default_rng(seed)
    (root / "svhn").mkdir(parents=True)
    out = {}
    for part, count in zip(("train", "test"), n):
        x, digit = _images(rng, count), _labels(rng, count, 10)
        stored = np.where(digit == 0, 10, digit).astype(np.uint8)[:, None]
        savemat(root / "svhn" / f"{part}_32x32.mat", {"X": x.transpose(2, 3, 1, 0), "y": stored}, format="5")
        out[part] = (x, digit)
    return out


def write_image_folder(root: Path, path: str, classes=("cat", "dog", "emu"), per_class: int = 4, size: int = 16,
                       grey: bool = False, seed: int = 6):
    """<path>/<class>/<i>.png, classes in sorted order. Returns (x, y)."""
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for label, cls in enumerate(sorted(classes)):
        (root / path / cls).mkdir(parents=True)
        for i in range(per_class):
            image = _images(rng, 1, channels=1 if grey else 3, size=size)[0]
            _write_png(root / path / cls / f"{i:03d}.png", image)
            xs.append(image), ys.append(label)
    return np.stack(xs), np.asarray(ys, dtype=np.int64)


def write_npz(root: Path, path: str, n: int = 24, shape=(3, 16, 16), classes: int = 3, seed: int = 7):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, size=(n, *shape), dtype=np.uint8)
    y = _labels(rng, n, classes)
    (root / path).parent.mkdir(parents=True, exist_ok=True)
    np.savez(root / path, x=x, y=y)
    return (x[:, None] if x.ndim == 3 else x), y

