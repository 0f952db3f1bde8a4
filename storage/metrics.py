"""Storage metrics, recorded in one place by wrapping any backend.

`InstrumentedBackend` delegates every operation to the real backend and
records `externalsource_storage_operations_total{backend,operation,outcome}`
and `externalsource_storage_operation_duration_seconds{backend,operation}`.
Wrapping (done by `storage.factory.create_backend`) means a new backend gets
its metrics for free and cannot forget one.

Outcomes: `success`, `not_found` (`open` of an absent key; `stat` answering
None is a success), `aborted` (the reader of an `open` stream stopped early,
e.g. a consumer disconnected) and `error`. For `open` the duration is the time to the
first chunk — the latency a consumer waits before bytes flow, independent of
how slowly that consumer then reads; the outcome is recorded when the stream
ends.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable
from typing import IO, TypeVar

from prometheus_client import Counter, Histogram

from storage.backend import ObjectInfo, StorageBackend

STORAGE_OPERATIONS = Counter(
    "externalsource_storage_operations_total",
    "Storage backend operations by backend, operation (put, open, stat, list, delete)"
    " and outcome (success, not_found, aborted, error).",
    ["backend", "operation", "outcome"],
)
STORAGE_OPERATION_DURATION = Histogram(
    "externalsource_storage_operation_duration_seconds",
    "Duration of storage backend operations (for open: time to the first chunk).",
    ["backend", "operation"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)

T = TypeVar("T")


class InstrumentedBackend(StorageBackend):
    """A backend that records metrics around another backend's operations."""

    def __init__(self, inner: StorageBackend) -> None:
        self.inner = inner
        self.name = inner.name
        self.persistent = inner.persistent
        self.shared = inner.shared

    def _record(self, operation: str, outcome: str) -> None:
        STORAGE_OPERATIONS.labels(self.name, operation, outcome).inc()

    def _observe(self, operation: str, started: float) -> None:
        elapsed = time.perf_counter() - started
        STORAGE_OPERATION_DURATION.labels(self.name, operation).observe(elapsed)

    async def _measure(self, operation: str, call: Awaitable[T]) -> T:
        started = time.perf_counter()
        try:
            result = await call
        except BaseException:
            self._record(operation, "error")
            raise
        finally:
            self._observe(operation, started)
        self._record(operation, "success")
        return result

    async def put(self, key: str, source: IO[bytes]) -> int:
        return await self._measure("put", self.inner.put(key, source))

    async def open(self, key: str) -> AsyncIterator[bytes]:
        started = time.perf_counter()
        first = True
        outcome = "error"
        stream = self.inner.open(key)
        try:
            async for chunk in stream:
                if first:
                    self._observe("open", started)
                    first = False
                yield chunk
            outcome = "success"
        except KeyError:
            outcome = "not_found"
            raise
        except (GeneratorExit, asyncio.CancelledError):
            outcome = "aborted"
            raise
        finally:
            if first:
                self._observe("open", started)
            self._record("open", outcome)
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                await aclose()

    async def stat(self, key: str) -> ObjectInfo | None:
        return await self._measure("stat", self.inner.stat(key))

    async def list(self, prefix: str) -> list[ObjectInfo]:
        return await self._measure("list", self.inner.list(prefix))

    async def delete(self, key: str) -> None:
        await self._measure("delete", self.inner.delete(key))

    async def aclose(self) -> None:
        await self.inner.aclose()
