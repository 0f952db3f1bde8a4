"""The storage backend contract (memory, filesystem, s3 implement it).

Keys are relative slash-separated paths such as
``externalsource/<ns>/<name>/<hex>.tar.gz``; a backend never sees anything
else. Writes take a readable binary file (the packaged artifact spooled to
disk) so that no backend needs the whole artifact in memory; reads are
async byte-chunk iterators so the artifact server can stream.
"""

from __future__ import annotations

import abc
import datetime
from collections.abc import AsyncIterator
from typing import IO

import attrs

from storage import reasons


@attrs.frozen
class ObjectInfo:
    key: str
    size: int
    modified: datetime.datetime


class StorageError(Exception):
    """A storage operation failed. `transient` decides retry vs. stall."""

    #: hooks and storage never ask for a particular delay (the error protocol has the field)
    retry_after: float | None = None

    def __init__(
        self, message: str, *, reason: str = reasons.OPERATION_FAILED, transient: bool = True
    ) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason
        self.transient = transient


class StorageBackend(abc.ABC):
    #: value of --storage-backend that selects this backend
    name: str = ""
    #: whether artifacts survive a process restart
    persistent: bool = True
    #: whether every replica sees the same objects (then any replica serves any download)
    shared: bool = False

    @abc.abstractmethod
    async def put(self, key: str, source: IO[bytes]) -> int:
        """Store the rest of `source` under `key` atomically; return bytes written."""

    @abc.abstractmethod
    def open(self, key: str) -> AsyncIterator[bytes]:
        """Stream the object's bytes; raises `KeyError` if it does not exist."""

    @abc.abstractmethod
    async def stat(self, key: str) -> ObjectInfo | None:
        """Size and modification time, or None when absent."""

    @abc.abstractmethod
    async def list(self, prefix: str) -> list[ObjectInfo]:
        """All objects whose key starts with `prefix`."""

    @abc.abstractmethod
    async def delete(self, key: str) -> None:
        """Delete `key`; deleting an absent key is not an error."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook with a no-op default
        """Release clients and connections."""
