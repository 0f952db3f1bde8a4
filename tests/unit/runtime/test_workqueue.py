"""Each guarantee listed in controller/runtime/workqueue.py's docstring, under fake loop time."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from controller.runtime.ratelimit import ItemExponentialLimiter, MaxOfLimiter
from controller.runtime.workqueue import ShutDown, WorkQueue

pytestmark = pytest.mark.looptime

_names = itertools.count()


def make_queue(*, base: float = 1.0, cap: float = 300.0) -> WorkQueue[str]:
    limiter = MaxOfLimiter([ItemExponentialLimiter(base=base, cap=cap, jitter=0.0)])
    return WorkQueue(limiter=limiter, name=f"test-{next(_names)}")


async def drain_ready(queue: WorkQueue[str]) -> list[str]:
    """Keys handed out right now (processing them and marking them done)."""
    got = []
    while len(queue):
        key = await queue.get()
        got.append(key)
        queue.done(key)
    return got


async def test_dedup_while_queued() -> None:
    queue = make_queue()
    for _ in range(5):
        queue.add("a")
    queue.add("b")
    assert len(queue) == 2
    assert await drain_ready(queue) == ["a", "b"]


async def test_fifo_order() -> None:
    queue = make_queue()
    for key in ["c", "a", "b"]:
        queue.add(key)
    assert await drain_ready(queue) == ["c", "a", "b"]


async def test_processing_key_is_not_handed_out_again_before_done() -> None:
    queue = make_queue()
    queue.add("a")
    first = await queue.get()
    queue.add("a")
    assert len(queue) == 0
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(10):
            await queue.get()
    queue.done(first)
    assert await queue.get() == "a"


async def test_many_readds_while_processing_run_once_more() -> None:
    queue = make_queue()
    queue.add("a")
    key = await queue.get()
    for _ in range(10):
        queue.add("a")
    queue.done(key)
    assert await drain_ready(queue) == ["a"]
    assert len(queue) == 0


async def test_eight_workers_never_touch_one_key_at_once(looptime: float) -> None:
    queue = make_queue()
    in_flight: set[str] = set()
    runs: dict[str, int] = {}
    overlaps: list[str] = []

    async def worker() -> None:
        while True:
            try:
                key = await queue.get()
            except ShutDown:
                return
            if key in in_flight:
                overlaps.append(key)
            in_flight.add(key)
            await asyncio.sleep(0.1)
            runs[key] = runs.get(key, 0) + 1
            in_flight.discard(key)
            queue.done(key)

    async def producer() -> None:
        for i in range(400):
            queue.add(f"k{i % 5}")
            await asyncio.sleep(0.01)

    workers = [asyncio.create_task(worker()) for _ in range(8)]
    await producer()
    await asyncio.sleep(1)
    await queue.shutdown_with_drain()
    await asyncio.gather(*workers)
    assert overlaps == []
    assert set(runs) == {f"k{i}" for i in range(5)}
    # each key was re-added while processing and ran again after `done`
    assert all(count >= 10 for count in runs.values())


async def test_add_after_fires_after_the_delay() -> None:
    queue = make_queue()
    loop = asyncio.get_running_loop()
    start = loop.time()
    queue.add_after("a", 5)
    assert len(queue) == 0
    assert await queue.get() == "a"
    assert loop.time() - start == pytest.approx(5)


async def test_add_after_keeps_the_earliest_deadline() -> None:
    queue = make_queue()
    loop = asyncio.get_running_loop()
    start = loop.time()
    queue.add_after("a", 10)
    queue.add_after("a", 3)
    queue.add_after("a", 7)
    assert await queue.get() == "a"
    assert loop.time() - start == pytest.approx(3)
    queue.done("a")
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(20):
            await queue.get()


async def test_add_after_with_slack_puts_keys_due_close_together_in_one_slot() -> None:
    queue = make_queue()
    loop = asyncio.get_running_loop()
    await asyncio.sleep(0.3)
    queue.add_after("a", 60, slack=1.0)  # due at 60.3, may wait until 61.3
    await asyncio.sleep(0.4)
    queue.add_after("b", 60, slack=1.0)  # due at 60.7
    queue.add_after("exact", 60)  # no slack: due at 60.7 exactly
    assert await queue.get() == "exact"
    assert loop.time() == pytest.approx(60.7)
    assert len(queue) == 0
    assert await queue.get() == "a"
    # both became ready at the same instant, on the 1 s grid, neither early
    assert loop.time() == pytest.approx(61.0)
    assert len(queue) == 1
    assert await queue.get() == "b"


async def test_add_after_with_slack_still_keeps_the_earliest_deadline() -> None:
    queue = make_queue()
    loop = asyncio.get_running_loop()
    queue.add_after("a", 60, slack=1.0)
    queue.add_after("a", 5.5, slack=0.25)  # moves "a" to an earlier slot
    assert await queue.get() == "a"
    assert loop.time() == pytest.approx(5.5)
    queue.done("a")
    with pytest.raises(TimeoutError):  # the later slot no longer holds it
        async with asyncio.timeout(120):
            await queue.get()


async def test_due_key_already_queued_is_deduplicated() -> None:
    queue = make_queue()
    queue.add("a")
    queue.add_after("a", 1)
    await asyncio.sleep(2)
    assert await drain_ready(queue) == ["a"]


async def test_add_rate_limited_backs_off_exponentially_and_forget_resets() -> None:
    queue = make_queue(base=1.0, cap=300.0)
    loop = asyncio.get_running_loop()
    delays = []
    for _ in range(4):
        start = loop.time()
        queue.add_rate_limited("a")
        key = await queue.get()
        delays.append(round(loop.time() - start, 6))
        queue.done(key)
    assert delays == [1, 2, 4, 8]
    assert queue.num_requeues("a") == 4
    queue.forget("a")
    assert queue.num_requeues("a") == 0
    start = loop.time()
    queue.add_rate_limited("a")
    await queue.get()
    assert loop.time() - start == pytest.approx(1)


async def test_add_rate_limited_honours_a_longer_min_delay() -> None:
    queue = make_queue(base=1.0)
    loop = asyncio.get_running_loop()
    start = loop.time()
    queue.add_rate_limited("a", min_delay=42)
    await queue.get()
    assert loop.time() - start == pytest.approx(42)


async def test_shutdown_ignores_adds_and_cancels_delays() -> None:
    queue = make_queue()
    queue.add_after("late", 5)
    queue.shutdown()
    queue.add("a")
    queue.add_after("b", 1)
    queue.add_rate_limited("c")
    await asyncio.sleep(10)
    assert len(queue) == 0
    with pytest.raises(ShutDown):
        await queue.get()


async def test_get_after_shutdown_drains_queued_keys_then_reports_shutdown() -> None:
    queue = make_queue()
    queue.add("a")
    queue.add("b")
    queue.shutdown()
    assert await queue.get() == "a"
    assert await queue.get() == "b"
    with pytest.raises(ShutDown):
        await queue.get()


async def test_shutdown_wakes_waiting_getters() -> None:
    queue = make_queue()
    getters = [asyncio.create_task(queue.get()) for _ in range(3)]
    await asyncio.sleep(1)
    queue.shutdown()
    results = await asyncio.gather(*getters, return_exceptions=True)
    assert all(isinstance(r, ShutDown) for r in results)


async def test_shutdown_with_drain_waits_for_processing_keys() -> None:
    queue = make_queue()
    loop = asyncio.get_running_loop()
    queue.add("a")
    key = await queue.get()
    loop.call_later(7, queue.done, key)
    start = loop.time()
    await queue.shutdown_with_drain()
    assert loop.time() - start == pytest.approx(7)


async def test_cancelled_getter_does_not_swallow_a_key() -> None:
    queue = make_queue()
    cancelled = asyncio.create_task(queue.get())
    waiting = asyncio.create_task(queue.get())
    await asyncio.sleep(0)
    queue.add("a")
    cancelled.cancel()
    assert await waiting == "a"
    with pytest.raises(asyncio.CancelledError):
        await cancelled
