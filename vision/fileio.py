"""Crash-safe file writing and content hashing shared by checkpoints, weights and manifests."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import tempfile
import time
from pathlib import Path
from typing import Iterator

# a temporary file untouched this long belongs to a dead writer whatever its pid says (pid reuse, another host)
STALE_TEMP_AGE_S = 24 * 3600


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` in one ``os.replace``.

    A crash or exception mid-write leaves the previous file untouched and no partial file behind; the
    temporary file of a killed writer (``.<name>.<pid>.<random>.tmp``) is removed by the next write of
    ``path`` once its writer is gone. The file and then its folder are fsynced, so the rename survives a
    power cut.

    Example::

        with atomic_path("weights/model.safetensors") as tmp:
            save_file(state_dict, tmp)
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temps(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        # mkstemp creates 0600; keep the mode of the file being replaced, else the usual 0644
        os.chmod(tmp, path.stat().st_mode & 0o777 if path.exists() else 0o644)
        os.replace(tmp, path)
        _fsync_folder(path.parent)
    finally:
        tmp.unlink(missing_ok=True)


def _fsync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable: the new directory entry is only on disk once the folder is synced."""
    if os.name == "nt":  # folders cannot be opened for fsync there; NTFS journals the rename
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError as e:
        if e.errno not in (errno.EINVAL, errno.ENOTSUP):  # filesystems that cannot sync a folder say so
            raise
    finally:
        os.close(fd)


def _remove_stale_temps(path: Path) -> None:
    """Remove temporary files that killed writers of ``path`` left behind, never a live writer's."""
    prefix, suffix = f".{path.name}.", ".tmp"
    with os.scandir(path.parent) as entries:
        names = [e.name for e in entries if e.name.startswith(prefix) and e.name.endswith(suffix)]
    for name in names:
        # "<pid>.<random>" from atomic_path, or the 8 random characters of an older version's mkstemp
        middle = name[len(prefix):-len(suffix)]
        owner = re.fullmatch(r"(\d+)\.[a-z0-9_]{8}", middle)
        if not owner and not re.fullmatch(r"[a-z0-9_]{8}", middle):
            continue  # a temporary file of another path whose name starts like this one
        try:
            age = time.time() - os.stat(path.parent / name).st_mtime
        except FileNotFoundError:
            continue
        if age > STALE_TEMP_AGE_S or (owner and not _process_alive(int(owner[1]))):
            with contextlib.suppress(FileNotFoundError):  # another writer may be cleaning up too
                os.unlink(path.parent / name)


def _process_alive(pid: int) -> bool:
    if pid <= 0 or os.name == "nt":  # os.kill would signal a group, or on Windows terminate the process
        return True
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def atomic_write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()
