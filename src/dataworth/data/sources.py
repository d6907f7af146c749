"""The published image datasets a data root can hold, and references to their parts.

A *source* is one publisher's dataset in its standard files under the data root (CIFAR-10,
CINIC-10, ...); a *part* is one split of it (`train`, `test`, a CIFAR-10-C corruption, a
folder). A study names the sets it uses by reference, ``<source>:<part>[@<option>]``:

    cifar10:train   cifar10:test              cifar100:test   cifar100:test@coarse
    cinic10:train   cinic10:valid@no-cifar10  cinic10:test
    cifar10c:fog@3  (a corruption at severity 1..5)
    mnist:test   fashion_mnist:test   emnist:balanced-test   svhn:test
    folder:<path under the root>   npz:<path under the root>

A dataset uses them for its in-distribution test set (`test`) and its shifted test set (`ood`);
`eval.test_sets` names any number of further sets with them (evaluate/test_sets.py, which also
takes `cifar10c:all@<severity>`: the mean over the 19 corruptions).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import dataworth.data.readers as readers
from dataworth.data.readers import DataFileError

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
CIFAR10C_CORRUPTIONS = (
    "brightness", "contrast", "defocus_blur", "elastic_transform", "fog", "frost", "gaussian_blur",
    "gaussian_noise", "glass_blur", "impulse_noise", "jpeg_compression", "motion_blur", "pixelate",
    "saturate", "shot_noise", "snow", "spatter", "speckle_noise", "zoom_blur",
)
EMNIST_SPLITS = ("balanced", "byclass", "bymerge", "digits", "letters", "mnist")


@dataclass(frozen=True)
class Ref:
    """A parsed reference `<source>:<part>[@<option>]`."""

    source: str
    part: str
    option: str | None = None

    def __str__(self) -> str:
        return f"{self.source}:{self.part}" + (f"@{self.option}" if self.option else "")


class Source:
    key: str
    official: str
    layout: str  # where the files go under the root, as shown to users
    parts: tuple[str, ...] = ()  # fixed parts; empty where any part name is allowed
    options: tuple[str, ...] = ()  # allowed @options
    published: dict[str, int] = {}  # the publisher's image counts, shown by `dataworth data verify`

    def paths(self, root: Path, part: str) -> list[Path]:
        """The files and folders a part is read from (for the cache's fingerprint); raises if missing."""
        raise NotImplementedError

    def read(self, root: Path, part: str) -> dict[str, np.ndarray]:
        """The part's arrays: x (N, C, H, W) uint8, y int64, and any extras the options select from."""
        raise NotImplementedError

    def select(self, arrays: dict[str, np.ndarray], option: str | None) -> tuple[np.ndarray, np.ndarray]:
        return arrays["x"], arrays["y"]

    def check_part(self, part: str, option: str | None) -> str | None:
        """Why a reference to this source is malformed (None if it is fine)."""
        if self.parts and part not in self.parts:
            return f"{self.key} has parts {', '.join(self.parts)}, not {part!r}"
        if option is not None and option not in self.options:
            allowed = ", ".join(f"@{o}" for o in self.options) or "none"
            return f"{self.key} takes options {allowed}, not @{option}"
        return None

    def missing_message(self, root: Path, error: Exception) -> str:
        return (f"{self.official}: {error}; expected layout: {self.layout} under the data root {root}; "
                f"check with `dataworth data verify --root {root}`")


def _existing(*paths: Path) -> Path:
    for path in paths:
        if path.exists():
            return path
    raise DataFileError(f"{' or '.join(map(str, paths))}: not found")


class Cifar(Source):
    options = ("fine", "coarse")

    def __init__(self, key, official, folder, archive, md5, train, test, label_keys, published):
        self.key, self.official, self.folder, self.archive, self.md5 = key, official, folder, archive, md5
        self.members = {"train": [f"{folder}/{m}" for m in train], "test": [f"{folder}/{test}"]}
        self.label_keys, self.published, self.parts = label_keys, published, ("train", "test")
        self.options = tuple(label_keys) if len(label_keys) > 1 else ()
        self.layout = f"{folder}/{{{','.join(train + [test])}}} (the extracted archive) or {archive}"

    def paths(self, root, part):
        source = _existing(root / self.folder, root / self.archive)
        return [source / m.split("/", 1)[1] for m in self.members[part]] if source.is_dir() else [source]

    def read(self, root, part):
        source = _existing(root / self.folder, root / self.archive)
        base, md5 = (root, None) if source.is_dir() else (source, self.md5)
        x, ys = readers.read_cifar(base, self.members[part], tuple(self.label_keys.values()), md5)
        # The first label kind is `y`; CIFAR-100's coarse labels ride along as y_coarse.
        return {"x": x, "y": ys[0], **{f"y_{o}": y for o, y in list(zip(self.label_keys, ys))[1:]}}

    def select(self, arrays, option):
        if option is None or option == next(iter(self.label_keys)):
            return arrays["x"], arrays["y"]
        return arrays["x"], arrays[f"y_{option}"]


class Cinic10(Source):
    key, official = "cinic10", "CINIC-10"
    folder = "cinic-10"
    layout = "cinic-10/{train,valid,test}/<class>/*.png (CINIC-10.tar.gz extracted into a folder cinic-10)"
    parts = ("train", "valid", "test")
    options = ("no-cifar10",)
    published = {"train": 90000, "valid": 90000, "test": 90000}

    def paths(self, root, part):
        folder = root / self.folder / part
        return [folder / c for c in readers.class_folders(folder)]

    def read(self, root, part):
        x, y, names = readers.read_image_folder(root / self.folder / part, list(CIFAR10_CLASSES), mode="RGB")
        return {"x": x, "y": y, "from_cifar10": np.array([n.startswith("cifar10-") for n in names])}

    def select(self, arrays, option):
        if option == "no-cifar10":
            keep = ~arrays["from_cifar10"]
            return arrays["x"][keep], arrays["y"][keep]
        return arrays["x"], arrays["y"]


class Cifar10C(Source):
    key, official = "cifar10c", "CIFAR-10-C"
    folder = "CIFAR-10-C"
    layout = "CIFAR-10-C/<corruption>.npy (5 severities x 10,000 images) and CIFAR-10-C/labels.npy"
    parts = CIFAR10C_CORRUPTIONS
    options = ("1", "2", "3", "4", "5")
    published = {c: 50000 for c in CIFAR10C_CORRUPTIONS}

    def paths(self, root, part):
        return [_existing(root / self.folder / f"{part}.npy"), _existing(root / self.folder / "labels.npy")]

    def read(self, root, part):
        x, y = readers.read_cifar10c(root / self.folder, part)
        return {"x": x, "y": y}

    def select(self, arrays, option):
        n = len(arrays["y"]) // 5
        rows = slice((int(option) - 1) * n, int(option) * n)
        return arrays["x"][rows], arrays["y"][rows]

    def check_part(self, part, option):
        problem = super().check_part(part, option)
        return problem or (None if option else "cifar10c needs a severity: cifar10c:<corruption>@<1..5>")


class Idx(Source):
    parts = ("train", "test")

    def __init__(self, key, official, folder, published, prefix="", transpose=False, label_offset=0):
        self.key, self.official, self.folder, self.published = key, official, folder, published
        self.prefix, self.transpose, self.label_offset = prefix, transpose, label_offset
        self.layout = (f"{folder}/{prefix}{{train,t10k}}-{{images-idx3,labels-idx1}}-ubyte[.gz]"
                       if not prefix else f"{folder}/{prefix}{{train,test}}-{{images-idx3,labels-idx1}}-ubyte[.gz]")

    def _files(self, root, part):
        stem = part if self.prefix or part == "train" else "t10k"
        folder = root / self.folder
        return (readers.find_idx(folder, f"{self.prefix}{stem}-images-idx3-ubyte"),
                readers.find_idx(folder, f"{self.prefix}{stem}-labels-idx1-ubyte"))

    def paths(self, root, part):
        return list(self._files(root, part))

    def read(self, root, part):
        x, y = readers.read_idx_pair(*self._files(root, part), transpose=self.transpose)
        return {"x": x, "y": y - self.label_offset}


class Emnist(Source):
    """EMNIST: one idx source per split; its parts are `<split>-train` and `<split>-test`."""

    key, official, folder = "emnist", "EMNIST", "emnist"
    layout = "emnist/emnist-<split>-{train,test}-{images-idx3,labels-idx1}-ubyte[.gz] (<split>: " + ", ".join(EMNIST_SPLITS) + ")"
    parts = tuple(f"{s}-{p}" for s in EMNIST_SPLITS for p in ("train", "test"))
    published = {}

    def _idx(self, part):
        split, which = part.rsplit("-", 1)
        # EMNIST stores images transposed; letters are labelled 1..26 (made 0..25 here).
        return Idx("emnist", self.official, self.folder, {}, prefix=f"emnist-{split}-", transpose=True,
                   label_offset=1 if split == "letters" else 0), which

    def paths(self, root, part):
        idx, which = self._idx(part)
        return idx.paths(root, which)

    def read(self, root, part):
        idx, which = self._idx(part)
        return idx.read(root, which)


class Svhn(Source):
    key, official, folder = "svhn", "SVHN (cropped digits)", "svhn"
    layout = "svhn/{train,test}_32x32.mat"
    parts = ("train", "test")
    published = {"train": 73257, "test": 26032}

    def paths(self, root, part):
        return [_existing(root / self.folder / f"{part}_32x32.mat")]

    def read(self, root, part):
        x, y = readers.read_svhn_mat(root / self.folder / f"{part}_32x32.mat")
        return {"x": x, "y": y}


class Folder(Source):
    key, official = "folder", "an image folder"
    layout = "<path>/<class>/<image>.png|.jpg (classes in sorted order)"
    published = {}

    def paths(self, root, part):
        folder = root / part
        return [folder / c for c in readers.class_folders(folder)]

    def read(self, root, part):
        x, y, _ = readers.read_image_folder(root / part)
        return {"x": x, "y": y}


class Npz(Source):
    key, official = "npz", "a .npz file"
    layout = "<path>.npz with x uint8 (N, H, W) or (N, C, H, W) and y (N,)"
    published = {}

    def paths(self, root, part):
        return [_existing(root / part)]

    def read(self, root, part):
        x, y = readers.read_npz(root / part)
        return {"x": x, "y": y}


SOURCES: dict[str, Source] = {
    s.key: s for s in (
        Cifar("cifar10", "CIFAR-10 (python version)", "cifar-10-batches-py", "cifar-10-python.tar.gz",
              "c58f30108f718f92721af3b95e74349a", [f"data_batch_{i}" for i in range(1, 6)], "test_batch",
              {None: b"labels"}, {"train": 50000, "test": 10000}),
        Cifar("cifar100", "CIFAR-100 (python version)", "cifar-100-python", "cifar-100-python.tar.gz",
              "eb9058c3a382ffc7106e4002c42a8d85", ["train"], "test",
              {"fine": b"fine_labels", "coarse": b"coarse_labels"}, {"train": 50000, "test": 10000}),
        Cinic10(),
        Cifar10C(),
        Idx("mnist", "MNIST", "mnist", {"train": 60000, "test": 10000}),
        Idx("fashion_mnist", "Fashion-MNIST", "fashion-mnist", {"train": 60000, "test": 10000}),
        Emnist(),
        Svhn(),
        Folder(),
        Npz(),
    )
}

_REF = re.compile(r"^(?P<source>[a-z0-9_]+):(?P<part>[^@]+)(@(?P<option>[^@]+))?$")


def parse_ref(text: str) -> Ref:
    """A reference `<source>:<part>[@<option>]`; ValueError with what is allowed."""
    m = _REF.match(text)
    if not m:
        raise ValueError(f"{text!r} is not a test-set reference <source>:<part>[@<option>] (e.g. cifar10:test, "
                         "cifar10c:fog@3, cinic10:test, folder:<path>)")
    source = SOURCES.get(m["source"])
    if source is None:
        raise ValueError(f"unknown source {m['source']!r} in {text!r}; allowed: {', '.join(SOURCES)}")
    problem = source.check_part(m["part"], m["option"])
    if problem:
        raise ValueError(f"{text!r}: {problem}")
    if source.key in ("folder", "npz") and (Path(m["part"]).is_absolute() or ".." in Path(m["part"]).parts):
        raise ValueError(f"{text!r}: the path must be relative to the data root, without '..'")
    return Ref(source.key, m["part"], m["option"])


# ---------------------------------------------------------------------------------------------
# The data root


def data_root(study_root: str | None) -> Path:
    """DATAWORTH_DATA when set (as DATAWORTH_SLURM_* win over the study), else `dataset.root`."""
    root = os.environ.get("DATAWORTH_DATA") or study_root
    if not root:
        raise DataFileError("no data root: set dataset.root in the study or the environment variable DATAWORTH_DATA "
                            "to the folder holding the dataset files (`dataworth data list` shows the layout)")
    path = Path(root).expanduser().resolve()
    if not path.is_dir():
        given = "DATAWORTH_DATA" if os.environ.get("DATAWORTH_DATA") else "dataset.root"
        raise DataFileError(f"the data root {path} ({given}) is not a folder; `dataworth data list --root <folder>` "
                            "shows where each dataset's files go")
    return path


def cache_root(root: Path) -> Path:
    """Prepared arrays: DATAWORTH_CACHE when set (a read-only shared data root), else <root>/.dataworth-cache."""
    return Path(os.environ.get("DATAWORTH_CACHE") or root / ".dataworth-cache").expanduser().resolve()


def fingerprint(root: Path, paths: list[Path]) -> list:
    """What tells a part's files changed: each file's size and mtime, each folder's entries and
    mtime. Paths are relative to the root: the same files mounted elsewhere (a cluster's compute
    nodes) or moved with their cache keep their prepared parts."""
    out = []
    for path in paths:
        st = path.stat()
        name = str(path.relative_to(root))
        if path.is_dir():
            out.append([name, len(os.listdir(path)), st.st_mtime_ns])
        else:
            out.append([name, st.st_size, st.st_mtime_ns])
    return out
