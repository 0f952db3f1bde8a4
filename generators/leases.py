"""A bounded LRU of shared, expensive clients handed out by lease.

The HTTP generator keeps one aiohttp session per TLS configuration, the s3
generator one aiobotocore client per endpoint and credentials: building them
costs handshakes and memory, so sources that share a configuration share one.
The pool holds at most `limit`; the least recently used is evicted, but a
client still leased by a fetch in flight is closed only when its last user is
done (closing it under a running request would fail that fetch). Closing is
shielded from cancellation, so a cancelled reconcile never leaks a client.
"""

from __future__ import annotations

import contextlib
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Generic, TypeVar

import anyio
import attrs

V = TypeVar("V")
Close = Callable[[], Awaitable[None]]


@attrs.define
class _Entry(Generic[V]):
    value: V
    close: Close
    users: int = 0
    evicted: bool = False


class LeasePool(Generic[V]):
    """`lease(key, create)` yields the pooled value for `key`, creating it when missing."""

    def __init__(self, *, limit: int) -> None:
        self._limit = limit
        self._entries: OrderedDict[str, _Entry[V]] = OrderedDict()
        self._lock = anyio.Lock()

    @contextlib.asynccontextmanager
    async def lease(
        self, key: str, create: Callable[[], Awaitable[tuple[V, Close]]]
    ) -> AsyncIterator[V]:
        entry = self._entries.get(key)
        if entry is not None:  # the common case needs no lock: no await between look and use
            self._entries.move_to_end(key)
            entry.users += 1
        else:
            entry = await self._create(key, create)
        try:
            yield entry.value
        finally:
            entry.users -= 1
            if entry.evicted and entry.users == 0:
                await _close(entry)

    async def _create(
        self, key: str, create: Callable[[], Awaitable[tuple[V, Close]]]
    ) -> _Entry[V]:
        """The entry for `key`, created under the lock (one creation per key at a time)."""
        async with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                value, close = await create()
                entry = _Entry(value, close)
                self._entries[key] = entry
                while len(self._entries) > self._limit:
                    _, oldest = self._entries.popitem(last=False)
                    oldest.evicted = True
                    if oldest.users == 0:
                        await _close(oldest)
            else:
                self._entries.move_to_end(key)
            entry.users += 1
            return entry

    async def aclose(self) -> None:
        """Close every pooled value (those still leased when their users are done)."""
        async with self._lock:
            entries = list(self._entries.values())
            self._entries.clear()
            for entry in entries:
                entry.evicted = True
                if entry.users == 0:
                    await _close(entry)

    def __len__(self) -> int:
        return len(self._entries)


async def _close(entry: _Entry[V]) -> None:
    with anyio.CancelScope(shield=True):
        await entry.close()
