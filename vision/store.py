"""Versioned, locked, self-checking folders: the one way vision's stores (the catalog index, caches) are written.

A store folder holds numbered versions and a pointer to the current one::

    index/
      CURRENT            {"format": ..., "version": "v000003", "parts": {"catalog.npz": {"sha256", "size"}, ...}}
      v000002/           the previous version, kept so a reader that started before the switch can finish
      v000003/           catalog.json, catalog.npz, vectors.faiss
      .lock              taken around every read-modify-write

A writer fills a temporary folder, fsyncs it, renames it to the next version number and then replaces
``CURRENT`` in one ``os.replace``: a crash at any point leaves the previous version current and loadable. A
reader takes ``CURRENT``, checks every part's size and sha256 against it before trusting any byte, and names the
version a stray part belongs to when parts of two versions were mixed.

Example::

    store = VersionedStore("index/", error=DedupError, what="catalog index")
    with store.lock():                      # read-modify-write: no second writer in between
        folder = store.current_folder()     # verified; None for an empty store
        store.commit(lambda tmp: write_parts(tmp))
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Callable, Iterator

import filelock

from vision.fileio import _fsync_folder, atomic_write_text, sha256_file

POINTER = "CURRENT"
FORMAT = "vision.store/1"
LOCK_NAME = ".lock"
LOCK_TIMEOUT_S = 600.0
_VERSION = re.compile(r"v(\d{6,})")
MAX_RECORD_BYTES = 1 << 20  # a JSON record of a store: far more than any vision writes
KEEP_VERSIONS = 2  # the current one and its predecessor (a reader that loaded the old pointer still finds it)


class StoreError(ValueError):
    """A store that cannot be read or written as asked; each store raises its own subclass (``error=``)."""


@contextlib.contextmanager
def file_lock(path: str | os.PathLike, what: str, error: type[Exception] = StoreError,
              timeout: float = LOCK_TIMEOUT_S) -> Iterator[None]:
    """Hold an inter-process lock on ``path`` (a ``.lock`` file, created if needed) for a read-modify-write."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = filelock.FileLock(str(path), timeout=timeout)
    try:
        lock.acquire()
    except filelock.Timeout:
        raise error(f"{path}: another process has held the lock on this {what} for {timeout:g} s; wait for it "
                    "to finish and run again") from None
    try:
        yield
    finally:
        lock.release()


def read_record(path: Path, what: str, error: type[Exception] = StoreError) -> dict:
    """A small JSON object vision wrote (``CURRENT``, ``catalog.json``, ...): its size bounded before it is read,
    and anything else than a JSON object an ``error`` naming the file and ``what`` it should be."""
    try:
        size = path.stat().st_size
        if size > MAX_RECORD_BYTES:
            raise error(f"{path}: {size} bytes, far more than {what}; not written by vision")
        record = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise error(f"{path}: missing; {what} is needed here: build it again") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise error(f"{path}: not a valid {what} ({type(e).__name__}: {e}); restore it from a backup or build it "
                    "again") from None
    if not isinstance(record, dict):
        raise error(f"{path}: {what} must be a JSON object, got {type(record).__name__}")
    return record


def part_record(path: Path) -> dict:
    return {"sha256": sha256_file(path), "size": path.stat().st_size}


class VersionedStore:
    """A folder of versions with an atomically switched ``CURRENT`` pointer; see the module docstring."""

    def __init__(self, folder: str | os.PathLike, error: type[Exception] = StoreError, what: str = "store"):
        self.folder, self.error, self.what = Path(folder), error, what
        self._held = 0

    # --- locking
    @contextlib.contextmanager
    def lock(self, timeout: float = LOCK_TIMEOUT_S) -> Iterator[None]:
        """Hold the store's lock (re-entrant within this object) around a read-modify-write."""
        if self._held:
            self._held += 1
            try:
                yield
            finally:
                self._held -= 1
            return
        with file_lock(self.folder / LOCK_NAME, self.what, self.error, timeout):
            self._held = 1
            try:
                yield
            finally:
                self._held = 0

    # --- reading
    def pointer(self) -> dict | None:
        """The parsed ``CURRENT`` record, None when the folder holds no version yet."""
        path = self.folder / POINTER
        if not path.is_file():
            return None
        record = read_record(path, "version record", self.error)
        if record.get("format") != FORMAT:
            raise self.error(f"{path}: field 'format' must be {FORMAT!r}")
        version, parts = record.get("version"), record.get("parts")
        if not isinstance(version, str) or not _VERSION.fullmatch(version):
            raise self.error(f"{path}: field 'version' must be a name like 'v000001', got {version!r}")
        if not isinstance(parts, dict) or not parts:
            raise self.error(f"{path}: field 'parts' must map part names to their sha256 and size")
        for name, part in parts.items():
            if (not isinstance(name, str) or Path(name).name != name or name.startswith(".")
                    or not isinstance(part, dict) or not isinstance(part.get("sha256"), str)
                    or not isinstance(part.get("size"), int) or isinstance(part.get("size"), bool)):
                raise self.error(f"{path}: field 'parts.{name}' must be a plain file name with 'sha256' and 'size'")
        return record

    def current_folder(self, verify: bool = True) -> Path | None:
        """The folder of the current version, every part checked against ``CURRENT`` (``verify``); None if empty."""
        record = self.pointer()
        if record is None:
            return None
        folder = self.folder / record["version"]
        if verify:
            for name, expected in record["parts"].items():
                self._verify_part(folder / name, expected, record["version"])
        return folder

    def _verify_part(self, path: Path, expected: dict, version: str) -> None:
        if not path.is_file():
            raise self.error(f"{path}: part of {self.what} version {version} is missing; the {self.what} was "
                             "damaged outside vision: restore it or build it again")
        size = path.stat().st_size
        digest = sha256_file(path) if size == expected["size"] else None
        if digest == expected["sha256"]:
            return
        origin = self._version_holding(path.name, size, digest)
        where = f" (it is {path.name} of version {origin})" if origin else ""
        raise self.error(f"{path}: does not match the record of {self.what} version {version} "
                         f"({size} bytes, sha256 {digest or 'not computed'}; recorded {expected['size']} bytes, "
                         f"sha256 {expected['sha256']}){where}: parts of two versions or an edited file; "
                         f"restore it or build the {self.what} again")

    def _version_holding(self, name: str, size: int, digest: str | None) -> str | None:
        for other in self.versions():
            record_path = self.folder / other / ".record.json"
            try:
                part = json.loads(record_path.read_text(encoding="utf-8"))["parts"][name]
            except (OSError, ValueError, KeyError, TypeError):
                continue
            if part.get("size") == size and (digest or sha256_file(self.folder / other / name)) == part.get("sha256"):
                return other
        return None

    def versions(self) -> list[str]:
        if not self.folder.is_dir():
            return []
        names = [p.name for p in self.folder.iterdir() if p.is_dir() and _VERSION.fullmatch(p.name)]
        return sorted(names, key=lambda n: int(n[1:]))

    # --- writing (hold self.lock() around the read that this write is based on)
    def commit(self, write: Callable[[Path], None], meta: dict | None = None) -> Path:
        """Call ``write(tmp_folder)`` to fill a new version, then make it current atomically; return its folder.

        Takes the lock when the caller does not hold it; hold it yourself around the read the write is based on."""
        with self.lock():
            return self._commit(write, meta)

    def _commit(self, write: Callable[[Path], None], meta: dict | None) -> Path:
        self._remove_dead_temps()
        tmp = Path(tempfile.mkdtemp(prefix=f".new.{os.getpid()}.", dir=self.folder))
        try:
            write(tmp)
            parts = {}
            for path in sorted(tmp.iterdir()):
                if not path.is_file() or path.name.startswith("."):
                    raise self.error(f"{path}: a {self.what} version holds plain files only")
                with open(path, "rb") as f:
                    os.fsync(f.fileno())
                parts[path.name] = part_record(path)
            if not parts:
                raise self.error(f"a {self.what} version needs at least one part")
            existing = self.versions()
            version = f"v{(int(existing[-1][1:]) + 1 if existing else 1):06d}"
            record = {"format": FORMAT, "version": version, "parts": parts, **(meta or {})}
            (tmp / ".record.json").write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
            _fsync_folder(tmp)
            os.replace(tmp, self.folder / version)
            _fsync_folder(self.folder)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        atomic_write_text(self.folder / POINTER, json.dumps(record, indent=1) + "\n")  # the commit point
        self._prune(keep_from=version)
        return self.folder / version

    def _prune(self, keep_from: str) -> None:
        """Remove versions older than ``keep_from`` but its last ``KEEP_VERSIONS - 1`` predecessors."""
        older = [v for v in self.versions() if int(v[1:]) < int(keep_from[1:])]
        for name in older[:len(older) - (KEEP_VERSIONS - 1)]:
            shutil.rmtree(self.folder / name, ignore_errors=True)

    def _remove_dead_temps(self) -> None:
        from vision.fileio import _process_alive

        for path in self.folder.glob(".new.*"):
            m = re.fullmatch(r"\.new\.(\d+)\..+", path.name)
            if m and not _process_alive(int(m[1])):
                shutil.rmtree(path, ignore_errors=True)
