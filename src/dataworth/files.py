"""Atomic writes: a killed job never leaves a file that looks complete."""

from __future__ import annotations

import contextlib
import errno
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
    except BaseException as exc:
        # torch.save reports a full disk as a RuntimeError ("unexpected pos ..."): name it, and the
        # file, as the OSError it is (checked before the partial file goes and frees the space).
        disk_full = isinstance(exc, RuntimeError) and _no_space_left(path.parent)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if disk_full:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path)) from exc
        raise


def _no_space_left(folder: Path) -> bool:
    try:
        return os.statvfs(folder).f_bavail == 0
    except OSError:
        return False


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
