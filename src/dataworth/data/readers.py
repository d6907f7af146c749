"""Readers for the standard files image datasets are published as; no torchvision.

Every reader returns ``(x, y)``: uint8 images (N, C, H, W) and int64 labels, read exactly as the
publisher stored them. A file that is missing or not in its format raises `DataFileError`, one
line naming the file and what was expected (the caller adds the dataset's layout).

    CIFAR-10 / -100   pickled batches (dict with b'data' (N, 3072) uint8 and b'labels', or
                      b'fine_labels' / b'coarse_labels'), in a folder or in the .tar.gz archive
    CINIC-10          <split>/<class>/<name>.png, 32x32; names starting `cifar10-` come from CIFAR-10
    CIFAR-10-C        <corruption>.npy (5 x n, 32, 32, 3) uint8, severities 1..5 stacked; labels.npy
    MNIST & co.       idx files (magic 0x0803 images, 0x0801 labels), plain or .gz
    SVHN              MATLAB v5 .mat with X (32, 32, 3, N) and y (N, 1), label 10 = digit 0
    image folders     <root>/<class>/<image> (PNG, JPEG), classes in sorted order
    .npz              x (N, H, W) or (N, C, H, W) uint8 and y (N,)
"""

from __future__ import annotations

import gzip
import hashlib
import os
import pickle
import tarfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


class DataFileError(ValueError):
    """A dataset file that is missing or not in its publisher's format (a one-line message)."""


def md5sum(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_md5(path: Path, expected: str) -> None:
    got = md5sum(path)
    if got != expected:
        raise DataFileError(f"{path}: md5 {got} but the published archive has {expected} (a partial or other download?)")


def _labels_array(values, path, count: int) -> np.ndarray:
    y = np.asarray(values, dtype=np.int64).reshape(-1)
    if len(y) != count:
        raise DataFileError(f"{path}: {count} images but {len(y)} labels; the counts must match")
    return y


# ---------------------------------------------------------------------------------------------
# CIFAR-10 / CIFAR-100 (python version)


def decode_cifar_batch(raw: bytes, where: str, label_keys: tuple[bytes, ...]) -> tuple[np.ndarray, list[np.ndarray]]:
    """One pickled CIFAR batch: images (N, 3, 32, 32) uint8 and the labels stored under each of `label_keys`."""
    try:
        batch = pickle.loads(raw, encoding="bytes")
    except Exception as exc:  # noqa: BLE001  (any unpickling failure means: not a CIFAR batch)
        raise DataFileError(f"{where}: not a pickled CIFAR batch ({type(exc).__name__}: {exc})") from None
    if not isinstance(batch, dict) or any(key not in batch for key in (b"data", *label_keys)):
        keys = sorted(k.decode() if isinstance(k, bytes) else str(k) for k in batch) if isinstance(batch, dict) else []
        wanted = ", ".join(repr(k) for k in (b"data", *label_keys))
        raise DataFileError(f"{where}: a CIFAR batch is a dict with {wanted}; found keys {keys}")
    data = np.asarray(batch[b"data"])
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise DataFileError(f"{where}: b'data' must be uint8 (N, 3072); found {data.dtype} {data.shape}")
    return data.reshape(-1, 3, 32, 32), [_labels_array(batch[key], where, len(data)) for key in label_keys]


def read_cifar(source: Path, members: list[str], label_keys: tuple[bytes, ...] = (b"labels",), md5: str | None = None):
    """Concatenated CIFAR batches `members` (paths inside the extracted folder's parent, e.g.
    `cifar-10-batches-py/data_batch_1`) from the extracted folder's parent directory or from the
    .tar.gz archive `source` (whose md5 is checked against `md5` when given). Returns x and one
    label array per key in `label_keys`."""
    source = Path(source)
    parts = []
    if source.is_dir():
        for member in members:
            path = source / member
            if not path.is_file():
                raise DataFileError(f"{path}: file not found")
            parts.append(decode_cifar_batch(path.read_bytes(), str(path), label_keys))
    else:
        if not source.is_file():
            raise DataFileError(f"{source}: file not found")
        if md5:
            check_md5(source, md5)
        try:
            with tarfile.open(source, "r:gz") as tar:
                for member in members:
                    try:
                        raw = tar.extractfile(member).read()
                    except KeyError:
                        raise DataFileError(f"{source}: the archive has no {member}") from None
                    parts.append(decode_cifar_batch(raw, f"{source}:{member}", label_keys))
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise DataFileError(f"{source}: not a readable .tar.gz archive ({exc})") from None
    ys = [np.concatenate([p[1][i] for p in parts]) for i in range(len(label_keys))]
    return np.concatenate([p[0] for p in parts]), ys


# ---------------------------------------------------------------------------------------------
# Image folders: CINIC-10 and any <root>/<class>/<image> folder


def class_folders(root: Path) -> list[str]:
    if not root.is_dir():
        raise DataFileError(f"{root}: folder not found")
    classes = sorted(entry.name for entry in os.scandir(root) if entry.is_dir() and not entry.name.startswith("."))
    if not classes:
        raise DataFileError(f"{root}: no class folders (expected {root}/<class>/<image>)")
    return classes


def _image_files(folder: Path) -> list[str]:
    return sorted(e.name for e in os.scandir(folder) if e.is_file() and e.name.lower().endswith(IMAGE_SUFFIXES))


def _decode_image(path: Path, mode: str | None) -> np.ndarray | str:
    """The image converted to `mode`; with mode None, only its own mode (header only)."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            return image.mode if mode is None else np.asarray(image.convert(mode))
    except Exception as exc:  # noqa: BLE001  (Pillow raises many types for a broken file)
        raise DataFileError(f"{path}: not a readable image ({type(exc).__name__})") from None


def read_image_folder(root: Path, classes: list[str] | None = None, mode: str | None = None, threads: int = 8):
    """Every image of `root/<class>/` with the class's index in `classes` (default: the sorted
    class folders) as label. Returns x (N, C, H, W) uint8, y, and each image's file name.

    `mode` is Pillow's: "RGB" or "L"; by default "L" when every image is greyscale, else "RGB"
    (CINIC-10 mixes in a few greyscale ImageNet images, which become RGB). All images must have
    one size.
    """
    root = Path(root)
    found = class_folders(root)
    classes = found if classes is None else classes
    unknown = sorted(set(found) - set(classes))
    if unknown:
        raise DataFileError(f"{root}: class folders {unknown} are not among the expected classes {classes}")
    paths, labels, names = [], [], []
    for label, cls in enumerate(classes):
        if not (root / cls).is_dir():
            continue
        for name in _image_files(root / cls):
            paths.append(root / cls / name)
            labels.append(label)
            names.append(name)
    if not paths:
        raise DataFileError(f"{root}: no PNG or JPEG images under its class folders")
    if mode is None:
        with ThreadPoolExecutor(threads) as pool:
            modes = set(pool.map(lambda p: _decode_image(p, None), paths))
        mode = "L" if modes <= {"L", "1"} else "RGB"
    # Pillow decodes outside the GIL: threads read a large folder several times faster.
    with ThreadPoolExecutor(threads) as pool:
        images = list(pool.map(lambda p: _decode_image(p, mode), paths))
    shape = images[0].shape
    for path, image in zip(paths, images):
        if image.shape != shape:
            raise DataFileError(f"{path}: {image.shape[1]}x{image.shape[0]} pixels but the other images are "
                                f"{shape[1]}x{shape[0]}; all images of a dataset need one size")
    x = np.stack(images)
    x = x[:, None] if x.ndim == 3 else x.transpose(0, 3, 1, 2)
    return np.ascontiguousarray(x), np.asarray(labels, dtype=np.int64), names


# ---------------------------------------------------------------------------------------------
# CIFAR-10-C


def read_cifar10c(folder: Path, corruption: str, severity: int | None = None):
    """`<corruption>.npy` (5 x n images, severity 1 first) with `labels.npy`; one severity or all."""
    folder = Path(folder)
    path, labels_path = folder / f"{corruption}.npy", folder / "labels.npy"
    for p in (path, labels_path):
        if not p.is_file():
            raise DataFileError(f"{p}: file not found")
    try:
        x = np.load(path, mmap_mode="r")
        y = np.load(labels_path)
    except ValueError as exc:
        raise DataFileError(f"{path}: not a NumPy .npy file ({exc})") from None
    if x.dtype != np.uint8 or x.ndim != 4 or x.shape[3] != 3 or len(x) % 5:
        raise DataFileError(f"{path}: must be uint8 (5 x n, 32, 32, 3), severities 1..5 stacked; found {x.dtype} {x.shape}")
    if len(y) != len(x):
        raise DataFileError(f"{labels_path}: {len(y)} labels but {path.name} has {len(x)} images; the counts must match")
    if severity is not None:
        n = len(x) // 5
        rows = slice((severity - 1) * n, severity * n)
        x, y = x[rows], y[rows]
    return np.ascontiguousarray(np.asarray(x).transpose(0, 3, 1, 2)), y.astype(np.int64)


# ---------------------------------------------------------------------------------------------
# idx (MNIST, Fashion-MNIST, EMNIST)


def find_idx(folder: Path, stem: str) -> Path:
    """`folder/stem` or `folder/stem.gz`, whichever exists."""
    for name in (stem, stem + ".gz"):
        if (Path(folder) / name).is_file():
            return Path(folder) / name
    raise DataFileError(f"{Path(folder) / stem}[.gz]: file not found")


def read_idx(path: Path) -> np.ndarray:
    """An idx file of unsigned bytes (magic 0x00 0x00 0x08 <dims>), plain or gzipped."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as exc:
        raise DataFileError(f"{path}: not readable ({exc})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08 or raw[3] == 0:
        raise DataFileError(f"{path}: not an idx file of unsigned bytes (magic 0x0000 08 <dims>; found {raw[:4].hex()})")
    ndim = raw[3]
    dims = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    body = raw[4 + 4 * ndim :]
    expected = int(np.prod(dims))
    if len(body) != expected:
        raise DataFileError(f"{path}: header says {dims} = {expected} bytes of data but the file holds {len(body)}")
    return np.frombuffer(body, dtype=np.uint8).reshape(dims)


def read_idx_pair(images: Path, labels: Path, transpose: bool = False):
    x, y = read_idx(images), read_idx(labels)
    if x.ndim != 3:
        raise DataFileError(f"{images}: an idx image file has 3 dimensions (N, H, W); found {x.shape}")
    if y.ndim != 1 or len(y) != len(x):
        raise DataFileError(f"{labels}: {y.shape} labels for {len(x)} images in {Path(images).name}; the counts must match")
    if transpose:  # EMNIST stores each image transposed
        x = x.transpose(0, 2, 1)
    return np.ascontiguousarray(x[:, None]), y.astype(np.int64)


# ---------------------------------------------------------------------------------------------
# SVHN and .npz


def read_svhn_mat(path: Path):
    """SVHN's cropped-digit .mat: X (32, 32, 3, N), y (N, 1) with 10 for the digit 0."""
    from scipy.io import loadmat

    path = Path(path)
    if not path.is_file():
        raise DataFileError(f"{path}: file not found")
    try:
        mat = loadmat(path)
    except Exception as exc:  # noqa: BLE001  (scipy raises several types for a non-.mat file)
        raise DataFileError(f"{path}: not a MATLAB .mat file ({exc})") from None
    if "X" not in mat or "y" not in mat:
        raise DataFileError(f"{path}: needs variables X and y; found {sorted(k for k in mat if not k.startswith('__'))}")
    x, y = mat["X"], mat["y"].reshape(-1)
    if x.dtype != np.uint8 or x.ndim != 4 or x.shape[2] != 3:
        raise DataFileError(f"{path}: X must be uint8 (32, 32, 3, N); found {x.dtype} {x.shape}")
    y = _labels_array(y, path, x.shape[3])
    if y.min() < 1 or y.max() > 10:
        raise DataFileError(f"{path}: SVHN labels are 1..10 (10 = digit 0); found {y.min()}..{y.max()}")
    return np.ascontiguousarray(x.transpose(3, 2, 0, 1)), y % 10


def read_npz(path: Path):
    """Your own data: `x` uint8 (N, H, W) or (N, C, H, W) and integer `y` (N,) labels 0..K-1."""
    path = Path(path)
    if not path.is_file():
        raise DataFileError(f"{path}: file not found")
    try:
        with np.load(path) as npz:
            if "x" not in npz or "y" not in npz:
                raise DataFileError(f"{path}: needs arrays x and y; found {sorted(npz.files)}")
            x, y = npz["x"], npz["y"]
    except (ValueError, OSError) as exc:
        raise DataFileError(f"{path}: not a NumPy .npz file ({exc})") from None
    if x.dtype != np.uint8 or x.ndim not in (3, 4):
        raise DataFileError(f"{path}: x must be uint8 (N, H, W) or (N, C, H, W); found {x.dtype} {x.shape}")
    if not np.issubdtype(y.dtype, np.integer) or (len(y) and y.min() < 0):
        raise DataFileError(f"{path}: y must be integer labels 0..K-1; found {y.dtype}")
    y = _labels_array(y, path, len(x))
    return np.ascontiguousarray(x[:, None] if x.ndim == 3 else x), y
