"""The `filesystem` backend: artifacts as files under `--storage-path` (a PVC in production).

Writes are atomic so that the artifact server never serves a half-written
file and a crash never leaves one behind under a real key: the bytes go to a
hidden temp file in the destination directory (same filesystem, so the rename
is atomic), which is fsynced, renamed over the key, and the directory is
fsynced so the rename itself survives a power loss. Temp files are invisible
to `list`/`stat`/`open` (their names start with `.tmp-`, which no valid key
segment produced by `storage.naming` does).

Keys are checked by `naming.check_key` and the resolved path must stay under
the root (a symlink planted inside the root cannot redirect a key outside).
Reads of such a key answer "not found" (the artifact server then says 404,
never 500, and reveals nothing about the target); writes raise `ValueError`.
Blocking file I/O runs in worker threads: a whole put in one thread call,
reads one chunk per call so a slow consumer never pins a thread.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import pathlib
import tempfile
from collections.abc import AsyncIterator
from stat import S_ISREG
from typing import IO

import anyio.to_thread

from storage.backend import ObjectInfo, StorageBackend, StorageError
from storage.naming import check_key

CHUNK_SIZE = 1024 * 1024
TEMP_PREFIX = ".tmp-"


def _fsync_dir(directory: pathlib.Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_atomically(path: pathlib.Path, source: IO[bytes]) -> int:
    for _attempt in range(3):  # a concurrent delete may prune the empty parent meanwhile
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd, tmp_name = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=path.parent)
            break
        except FileNotFoundError:
            continue
    else:
        raise FileNotFoundError(f"directory {path.parent} keeps disappearing")
    written = 0
    try:
        with os.fdopen(fd, "wb") as out:
            while chunk := source.read(CHUNK_SIZE):
                out.write(chunk)
                written += len(chunk)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp_name, 0o644)
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise
    _fsync_dir(path.parent)
    return written


def _info(key: str, st: os.stat_result) -> ObjectInfo:
    modified = datetime.datetime.fromtimestamp(st.st_mtime, datetime.UTC)
    return ObjectInfo(key=key, size=st.st_size, modified=modified)


class FilesystemBackend(StorageBackend):
    """Files under `root`; keys map to relative paths."""

    name = "filesystem"
    persistent = True

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self._root = pathlib.Path(root).resolve()

    @property
    def root(self) -> pathlib.Path:
        return self._root

    def _path(self, key: str) -> pathlib.Path:
        check_key(key)
        if any(segment.startswith(TEMP_PREFIX) for segment in key.split("/")):
            raise ValueError(f"invalid storage key {key!r}: reserved '{TEMP_PREFIX}' prefix")
        return self._root.joinpath(*key.split("/"))

    def _confined(self, path: pathlib.Path) -> pathlib.Path:
        """`path` if it resolves under the root (symlinks followed); runs in a worker thread."""
        if not path.resolve().is_relative_to(self._root):
            raise ValueError(f"storage path {path} resolves outside the storage root")
        return path

    def _error(self, operation: str, key: str, exc: OSError) -> StorageError:
        detail = exc.strerror or str(exc) or type(exc).__name__
        return StorageError(f"filesystem storage: {operation} {key!r} failed: {detail}")

    async def put(self, key: str, source: IO[bytes]) -> int:
        path = self._path(key)
        try:
            return await anyio.to_thread.run_sync(
                lambda: _write_atomically(self._confined(path), source)
            )
        except OSError as exc:
            raise self._error("write of", key, exc) from exc

    async def open(self, key: str) -> AsyncIterator[bytes]:
        path = self._path(key)
        try:
            handle = await anyio.to_thread.run_sync(lambda: self._confined(path).open("rb"))
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError, ValueError):
            # ValueError: the path escapes the root through a symlink; for a reader
            # that key does not exist
            raise KeyError(key) from None
        except OSError as exc:
            raise self._error("read of", key, exc) from exc
        try:
            while chunk := await anyio.to_thread.run_sync(handle.read, CHUNK_SIZE):
                yield chunk
        finally:
            handle.close()

    async def stat(self, key: str) -> ObjectInfo | None:
        path = self._path(key)
        try:
            st = await anyio.to_thread.run_sync(lambda: self._confined(path).stat())
        except (FileNotFoundError, NotADirectoryError, ValueError):
            return None  # ValueError: escapes the root through a symlink
        except OSError as exc:
            raise self._error("stat of", key, exc) from exc
        return _info(key, st) if S_ISREG(st.st_mode) else None

    def _walk(self, prefix: str) -> list[ObjectInfo]:
        directory = prefix.rpartition("/")[0]
        start = self._root.joinpath(*directory.split("/")) if directory else self._root
        found: list[ObjectInfo] = []
        for dirpath, dirnames, filenames in os.walk(start):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith(TEMP_PREFIX))
            relative = pathlib.Path(dirpath).relative_to(self._root).as_posix()
            for filename in sorted(filenames):
                if filename.startswith(TEMP_PREFIX):
                    continue
                key = filename if relative == "." else f"{relative}/{filename}"
                if not key.startswith(prefix):
                    continue
                with contextlib.suppress(FileNotFoundError):  # deleted while walking
                    found.append(_info(key, os.stat(os.path.join(dirpath, filename))))
        return found

    async def list(self, prefix: str) -> list[ObjectInfo]:
        try:
            return await anyio.to_thread.run_sync(self._walk, prefix)
        except OSError as exc:
            raise self._error("listing of", prefix, exc) from exc

    def _unlink(self, path: pathlib.Path) -> None:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        # prune now-empty parents so deleted sources leave no directories behind
        parent = path.parent
        while parent != self._root:
            try:
                parent.rmdir()
            except OSError:
                break
            parent = parent.parent

    async def delete(self, key: str) -> None:
        path = self._path(key)
        try:
            await anyio.to_thread.run_sync(lambda: self._unlink(self._confined(path)))
        except OSError as exc:
            raise self._error("delete of", key, exc) from exc
