"""The `memory` backend: artifacts in a dict, for development, tests and single-replica demos.

Nothing survives a restart. That is acceptable only because the controller
rebuilds a missing artifact on its next reconcile (docs/architecture.md, step
6), and it is loud about it: constructing the backend logs a warning, because
consumers get 404s between a restart and the rebuild. Values are immutable `bytes`, so
a reader streaming an object is never affected by a concurrent put or delete.
"""

from __future__ import annotations

import bisect
import datetime
from collections.abc import AsyncIterator
from typing import IO

import anyio.to_thread
import structlog

from storage.backend import ObjectInfo, StorageBackend, StorageError
from storage.naming import check_key

log = structlog.get_logger(__name__)

CHUNK_SIZE = 1024 * 1024


def _read_all(source: IO[bytes]) -> bytes:
    buffer = bytearray()
    while chunk := source.read(CHUNK_SIZE):
        buffer += chunk
    return bytes(buffer)


#: bodies up to this size are read on the event loop (they are in memory or the page cache)
_INLINE_READ = 256 * 1024


def _remaining(source: IO[bytes]) -> float:
    """Bytes left in a seekable `source` (infinity when it cannot tell)."""
    try:
        start = source.tell()
        end = source.seek(0, 2)
        source.seek(start)
    except (OSError, ValueError, AttributeError):
        return float("inf")
    return end - start


class MemoryBackend(StorageBackend):
    """In-process storage; `persistent` is False."""

    name = "memory"
    persistent = False

    def __init__(self) -> None:
        self._objects: dict[str, tuple[bytes, datetime.datetime]] = {}
        #: every key, sorted: GC lists one source's few keys after every publish, and a scan
        #: of every stored key made a cold start of N sources O(N^2); a bisect is O(log N)
        self._keys: list[str] = []
        log.warning(
            "memory storage backend: artifacts are NOT persistent and vanish on restart"
            " (they are rebuilt on the next reconcile; consumers get 404 until then);"
            " use --storage-backend=filesystem or s3 for durable storage",
            backend=self.name,
        )

    async def put(self, key: str, source: IO[bytes]) -> int:
        check_key(key)
        # Read fully before publishing: a source that fails mid-read leaves nothing behind.
        try:
            if _remaining(source) <= _INLINE_READ:
                data = _read_all(source)  # small: cheaper than a thread hand-off
            else:
                data = await anyio.to_thread.run_sync(_read_all, source)
        except OSError as exc:
            raise StorageError(f"memory storage: write of {key!r} failed: {exc}") from exc
        if key not in self._objects:
            bisect.insort(self._keys, key)
        self._objects[key] = (data, datetime.datetime.now(datetime.UTC))
        return len(data)

    async def open(self, key: str) -> AsyncIterator[bytes]:
        check_key(key)
        entry = self._objects.get(key)
        if entry is None:
            raise KeyError(key)
        data = memoryview(entry[0])
        for start in range(0, len(data), CHUNK_SIZE):
            yield bytes(data[start : start + CHUNK_SIZE])

    async def stat(self, key: str) -> ObjectInfo | None:
        check_key(key)
        entry = self._objects.get(key)
        if entry is None:
            return None
        return ObjectInfo(key=key, size=len(entry[0]), modified=entry[1])

    async def list(self, prefix: str) -> list[ObjectInfo]:
        keys, found = self._keys, []
        index = bisect.bisect_left(keys, prefix)
        while index < len(keys) and keys[index].startswith(prefix):
            data, modified = self._objects[keys[index]]
            found.append(ObjectInfo(key=keys[index], size=len(data), modified=modified))
            index += 1
        return found

    async def delete(self, key: str) -> None:
        check_key(key)
        if self._objects.pop(key, None) is not None:
            del self._keys[bisect.bisect_left(self._keys, key)]
