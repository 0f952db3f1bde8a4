"""Progress conditions of a change path, written only when the change path runs long.

A user watching `kubectl get exs` should see `Fetching`/`ExecutingHooks`/`Storing`
while a slow fetch or hook runs; a quick change should not pay a status write
for it (docs/architecture.md, "Writes per source"). So the phases are only
recorded, and a writer task waits `delay` after the first phase before it
writes the current phase; a later phase is written when it, too, is still
under way `delay` after it started. Leaving the context
stops the writer and waits for a write in flight, so the reconcile's final
status write always comes after every progress write.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Self

import structlog

from controller.runtime.client import ApiError

log = structlog.get_logger(__name__)


class ProgressReport:
    """Collects phases; writes them with `write(phase)` once `delay` has passed."""

    def __init__(self, *, delay: float, write: Callable[[str], Awaitable[None]]) -> None:
        self._delay = delay
        self._write = write
        self._phase: str | None = None
        self._written: str | None = None
        # made by the first phase: the fast path, which has none, builds nothing
        self._changed: asyncio.Event | None = None
        self._lock: asyncio.Lock | None = None
        self._closed = False
        self._task: asyncio.Task[None] | None = None

    def phase(self, name: str) -> None:
        """A phase of the change path starts now (the writer starts with the first one, so
        the fast path, which has no phase, costs no task)."""
        self._phase = name
        if self._changed is None or self._lock is None:
            self._changed, self._lock = asyncio.Event(), asyncio.Lock()
        self._changed.set()
        if self._task is None and not self._closed:
            self._task = asyncio.create_task(self._run(self._changed, self._lock))

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._closed = True
        if self._lock is not None:
            async with self._lock:  # a write in flight finishes before the final write
                pass
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self, changed: asyncio.Event, lock: asyncio.Lock) -> None:
        await asyncio.sleep(self._delay)
        while not self._closed:
            changed.clear()
            phase = self._phase
            if phase is not None and phase != self._written:
                async with lock:
                    if self._closed:
                        return
                    try:
                        await self._write(phase)
                        self._written = phase
                    except ApiError as exc:  # progress is best effort
                        log.info("progress not written", error=exc.message)
            await changed.wait()
            await asyncio.sleep(self._delay)  # a later phase is shown if it lasts as long
