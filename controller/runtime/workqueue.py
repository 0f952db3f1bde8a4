"""The workqueue between the informers and the workers: client-go's contract, on asyncio.

Guarantees (each has its own test in tests/unit/runtime/test_workqueue.py):

1. **Dedup while queued.** A key is in the queue at most once; adding a key
   that is already waiting to be processed is a no-op.
2. **Never two workers on one key.** A key handed out by `get` is
   "processing" until `done`; it is not handed out again before that.
3. **Re-add while processing runs once more.** Adding a processing key marks
   it dirty; `done` puts it back in the queue, once, however many adds came.
4. **FIFO.** Keys are handed out in the order they became ready.
5. **`add_after` keeps the earliest deadline.** A key waiting for a delay is
   waiting once; a later deadline for it is dropped, an earlier one wins.
   Waiting is independent of being queued (client-go's classic behaviour): a
   due key is `add`ed, so the normal dedup applies. With `slack`, the deadline
   may move later by up to `slack` seconds, onto a grid shared by every key
   (see "Timer slack" below).
6. **Rate-limited retries.** `add_rate_limited(key, min_delay)` waits for the
   longest of the limiter's delay and `min_delay` (a server's Retry-After);
   `forget` resets the key's backoff, `num_requeues` reports it.
7. **Shutdown.** After `shutdown()` adds are ignored, pending delays are
   cancelled, waiting getters wake up, and `get` still hands out what is
   queued, raising `ShutDown` once the queue is empty. `shutdown_with_drain()`
   also waits until every processing key is `done`.

Timer slack: at 1,000 sources on a 1m interval a check is due every 60 ms, and
on an idle VM waking the event loop costs more CPU than the check's own HTTP
request (docs/benchmarks.md, "CPU per check"). So the
schedule's requeues are not exact: `add_after(key, delay, slack=s)` rounds the
deadline up to a multiple of the largest power of two not above `s`, and all
keys due in one slot share one timer and become ready in one loop iteration —
the idea of Linux's timer slack. Retries (`add_rate_limited`) stay exact.

State is client-go's: `queue` (FIFO of keys), `dirty` (keys that need
processing) and `processing` (handed out, not `done`). Invariant: every key in
`queue` is in `dirty` and not in `processing`. The queue is single-loop and
synchronous except `get`, so no lock is needed: there is no `await` between
checking and changing the state.
"""

from __future__ import annotations

import asyncio
import collections
import math
from collections.abc import Hashable
from typing import Generic, TypeVar

from controller.runtime.metrics import QueueMetrics
from controller.runtime.ratelimit import RateLimiter

K = TypeVar("K", bound=Hashable)


class ShutDown(Exception):
    """`get` on a queue that is shut down and empty."""


class WorkQueue(Generic[K]):
    """A rate-limiting, delaying, deduplicating work queue of hashable keys."""

    def __init__(self, *, limiter: RateLimiter, name: str, controller: str | None = None) -> None:
        self._limiter = limiter
        self._queue: collections.deque[K] = collections.deque()
        self._dirty: set[K] = set()
        # client-go's depth: keys added and not yet handed out (queued, or re-added while
        # processing), i.e. the dirty set
        self._metrics = QueueMetrics(
            name=name, controller=controller or name, depth=lambda: len(self._dirty)
        )
        self._processing: set[K] = set()
        #: key -> its deadline; deadline -> (the one timer of that slot, its keys in order)
        self._waiting: dict[K, float] = {}
        self._slots: dict[float, tuple[asyncio.TimerHandle, dict[K, None]]] = {}
        self._getters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._drained: asyncio.Event | None = None
        self._shutting_down = False

    def __len__(self) -> int:
        """Keys queued and ready (not processing, not waiting for a delay)."""
        return len(self._queue)

    @property
    def shutting_down(self) -> bool:
        return self._shutting_down

    @property
    def processing(self) -> int:
        return len(self._processing)

    @property
    def busy(self) -> bool:
        """Keys are ready or being processed (delayed keys do not count)."""
        return bool(self._queue or self._processing)

    def add(self, key: K) -> None:
        if self._shutting_down or key in self._dirty:
            return
        self._dirty.add(key)
        self._metrics.added(key)
        if key in self._processing:
            return  # `done` re-queues it: never two workers on one key
        self._queue.append(key)
        self._wake_one()

    def add_after(self, key: K, delay: float, *, slack: float = 0.0) -> None:
        """Add `key` once `delay` seconds have passed (up to `slack` seconds later)."""
        if self._shutting_down:
            return
        self._metrics.retried()
        if delay <= 0:
            self.add(key)
            return
        loop = asyncio.get_running_loop()
        ready_at = _on_grid(loop.time() + delay, slack)
        current = self._waiting.get(key)
        if current is not None:
            if current <= ready_at:
                return
            self._leave_slot(key, current)
        self._waiting[key] = ready_at
        slot = self._slots.get(ready_at)
        if slot is None:
            slot = (loop.call_at(ready_at, self._fire, ready_at), {})
            self._slots[ready_at] = slot
        slot[1][key] = None

    def add_rate_limited(self, key: K, min_delay: float | None = None) -> None:
        self.add_after(key, max(self._limiter.when(key), min_delay or 0.0))

    def forget(self, key: K) -> None:
        self._limiter.forget(key)

    def num_requeues(self, key: K) -> int:
        return self._limiter.num_requeues(key)

    async def get(self) -> K:
        """The next key, now marked processing; raises `ShutDown` when done for good."""
        while not self._queue:
            if self._shutting_down:
                raise ShutDown
            getter = asyncio.get_running_loop().create_future()
            self._getters.append(getter)
            try:
                await getter
            except asyncio.CancelledError:
                if getter.done() and not getter.cancelled():
                    self._wake_one()  # we were woken for an item we will not take
                elif getter in self._getters:  # `_wake_one` may have dropped it already
                    self._getters.remove(getter)
                raise
        key = self._queue.popleft()
        self._processing.add(key)
        self._dirty.discard(key)
        self._metrics.got(key)
        return key

    def done(self, key: K) -> None:
        self._processing.discard(key)
        self._metrics.done(key)
        if key in self._dirty:
            self._queue.append(key)
            self._wake_one()
        elif not self._processing and self._drained is not None:
            self._drained.set()

    def shutdown(self) -> None:
        self._shutting_down = True
        for handle, _ in self._slots.values():
            handle.cancel()
        self._slots.clear()
        self._waiting.clear()
        while self._getters:
            getter = self._getters.popleft()
            if not getter.done():
                getter.set_result(None)

    async def shutdown_with_drain(self) -> None:
        """Shut down, then wait until every processing key is `done`."""
        self.shutdown()
        if not self._processing:
            return
        if self._drained is None:
            self._drained = asyncio.Event()
        await self._drained.wait()

    def _fire(self, ready_at: float) -> None:
        _, keys = self._slots.pop(ready_at)
        for key in keys:
            del self._waiting[key]
            self.add(key)

    def _leave_slot(self, key: K, ready_at: float) -> None:
        handle, keys = self._slots[ready_at]
        del keys[key]
        if not keys:
            handle.cancel()
            del self._slots[ready_at]

    def _wake_one(self) -> None:
        while self._getters:
            getter = self._getters.popleft()
            if not getter.done():
                getter.set_result(None)
                return


def _on_grid(ready_at: float, slack: float) -> float:
    """`ready_at` rounded up to a multiple of the largest power of two ≤ `slack` (exact
    multiples of a power of two, so keys in one slot get the very same float)."""
    if slack <= 0:
        return ready_at
    grid = 2.0 ** math.floor(math.log2(slack))
    return math.ceil(ready_at / grid) * grid
