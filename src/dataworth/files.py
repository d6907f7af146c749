"""Atomic writes: a killed job never leaves a file that looks complete."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


def _file_mode() -> int:
    """What open() would give a new file under this process's umask (mkstemp's own is 0600)."""
    return 0o666 & ~_umask()


@contextlib.contextmanager
def atomic_path(path: str | Path):
    """Yield a temporary path in the target's folder; rename it onto `path` only on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        # Results are shared with colleagues on a cluster: readable like any other new file.
        os.chmod(tmp, _file_mode())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def keep_aside(path: Path, aside: Path) -> None:
    """Keep the current `path` (if any) at `aside` until `put_back` or `drop_aside`: a hard link,
    so no copy and the same mtime. For outputs Snakemake deletes before the job that remakes them."""
    aside.unlink(missing_ok=True)
    if path.exists():
        aside.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(path, aside)
        except OSError:  # a file system without hard links
            shutil.copy2(path, aside)


def put_back(path: Path, aside: Path) -> bool:
    """Put the kept file back if `path` is gone (the job that remakes it failed); True if it did.
    It keeps its old mtime, so Snakemake still sees it as outdated and remakes it next time."""
    restored = aside.exists() and not path.exists()
    if restored:
        os.replace(aside, path)
    aside.unlink(missing_ok=True)
    return restored


def write_text_atomic(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


@contextlib.contextmanager
def atomic_folder(path: str | Path):
    """Yield an empty folder beside `path`; on success it replaces `path` whole (no stale files)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield staging
        staging.chmod(0o777 & ~_umask())  # like mkdir (mkdtemp's own is 0700)
        old = staging.with_name(staging.name + ".old")
        if path.exists():
            os.replace(path, old)
        os.replace(staging, path)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


# ---------------------------------------------------------------------------------------------
# Cheap validity checks of the files runs write: a truncated or overwritten file is found when the
# workflow plans (so its stage runs again) and named when something reads it (no traceback).

PARQUET_MAGIC = b"PAR1"  # a Parquet file starts and ends with it
ZIP_LOCAL_HEADER = b"PK\x03\x04"  # torch.save writes a zip archive
ZIP_END_OF_DIRECTORY = b"PK\x05\x06"  # in its last 22 bytes (plus a comment of at most 64 KiB)


class CorruptFile(ValueError):
    """A result file that exists but cannot be what it claims to be (truncated, overwritten)."""


def _head_and_tail(path: Path, tail: int) -> tuple[bytes, bytes, int]:
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(4)
        f.seek(max(0, size - tail))
        return head, f.read(), size


def file_problem(path: str | Path) -> str | None:
    """Why `path` is not a complete file of its kind (Parquet, torch .pt, JSON), or None if it looks
    complete. Reads a few bytes: the formats' start and end markers (and a small JSON whole)."""
    path = Path(path)
    if path.suffix == ".parquet":
        head, tail, size = _head_and_tail(path, 4)
        if size < 12 or head != PARQUET_MAGIC or tail != PARQUET_MAGIC:
            return "not a complete Parquet file (truncated or overwritten)"
    elif path.suffix == ".pt":
        head, tail, size = _head_and_tail(path, 22 + 65536)
        if head != ZIP_LOCAL_HEADER or ZIP_END_OF_DIRECTORY not in tail:
            return "not a complete torch file (truncated or overwritten)"
    elif path.suffix == ".json":
        import json

        try:
            json.loads(path.read_bytes())
        except ValueError:
            return "not valid JSON (truncated or overwritten)"
    return None


def load_torch(path: str | Path, map_location="cpu"):
    """torch.load with weights_only=True (never arbitrary code), its failure as one CorruptFile
    naming the file (torch's own message would advise turning weights_only off: never do that)."""
    import torch

    problem = file_problem(path)
    if problem is None:
        try:
            return torch.load(path, map_location=map_location, weights_only=True)
        except Exception as exc:  # pickle, zip and tensor errors: the file is not what we wrote
            problem = f"unreadable ({type(exc).__name__})"
    raise CorruptFile(f"{path}: {problem}; delete it and run snakemake to make it again")
