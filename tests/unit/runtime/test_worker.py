"""The worker contract: what each reconcile outcome does to the queue (fake loop time)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from prometheus_client import REGISTRY
from structlog.testing import capture_logs

from controller.runtime.keys import ObjectKey
from controller.runtime.ratelimit import ItemExponentialLimiter
from controller.runtime.worker import Key, Result, run_worker
from controller.runtime.workqueue import WorkQueue

pytestmark = pytest.mark.looptime

KEY = ObjectKey("ns", "a")
_names = itertools.count()


@contextlib.asynccontextmanager
async def worker(
    reconcile: Callable[[Key], Awaitable[Result]], controller: str
) -> AsyncIterator[WorkQueue[Key]]:
    queue: WorkQueue[Key] = WorkQueue(
        limiter=ItemExponentialLimiter(base=1, cap=60, jitter=0), name=controller
    )
    task = asyncio.create_task(run_worker(queue=queue, reconcile=reconcile, controller=controller))
    try:
        yield queue
    finally:
        queue.shutdown()
        await asyncio.wait_for(task, 5)


def runs_at(times: list[float]) -> Callable[[Key], Awaitable[Result]]:
    async def reconcile(key: Key) -> Result:
        times.append(asyncio.get_running_loop().time())
        return Result()

    return reconcile


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_success_forgets_the_key() -> None:
    outcomes = iter([Result(retry=True), Result(retry=True), Result()])

    async def reconcile(key: Key) -> Result:
        return next(outcomes)

    name = f"w{next(_names)}"
    async with worker(reconcile, name) as queue:
        queue.add(KEY)
        await asyncio.sleep(10)
        assert queue.num_requeues(KEY) == 0
    assert metric("controller_runtime_reconcile_total", controller=name, result="error") == 2
    assert metric("controller_runtime_reconcile_total", controller=name, result="success") == 1


async def test_retry_backs_off_exponentially_and_honours_retry_after() -> None:
    times: list[float] = []
    outcomes = iter(
        [Result(retry=True), Result(retry=True), Result(retry=True, retry_after=30), Result()]
    )

    async def reconcile(key: Key) -> Result:
        times.append(asyncio.get_running_loop().time())
        return next(outcomes)

    async with worker(reconcile, f"w{next(_names)}") as queue:
        queue.add(KEY)
        await asyncio.sleep(60)
    gaps = [round(b - a, 6) for a, b in itertools.pairwise(times)]
    assert gaps == [1, 2, 30]


async def test_requeue_after_schedules_the_next_run_and_resets_backoff() -> None:
    times: list[float] = []
    outcomes = iter([Result(retry=True), Result(requeue_after=20), Result(retry=True), Result()])

    async def reconcile(key: Key) -> Result:
        times.append(asyncio.get_running_loop().time())
        return next(outcomes)

    async with worker(reconcile, f"w{next(_names)}") as queue:
        queue.add(KEY)
        await asyncio.sleep(60)
    gaps = [round(b - a, 6) for a, b in itertools.pairwise(times)]
    assert gaps == [1, 20, 1]  # the retry after requeue_after starts from the base again


async def test_scheduled_runs_of_keys_due_close_together_share_one_wake_up() -> None:
    """The schedule's requeues get timer slack (at most 1 s for a 1m interval): checks due
    within the same second run together, none before its interval."""
    times: dict[str, list[float]] = {"a": [], "b": []}

    async def reconcile(key: Key) -> Result:
        times[key.name].append(asyncio.get_running_loop().time())
        return Result(requeue_after=60)

    async with worker(reconcile, f"w{next(_names)}") as queue:
        await asyncio.sleep(0.2)
        queue.add(ObjectKey("ns", "a"))
        await asyncio.sleep(0.5)
        queue.add(ObjectKey("ns", "b"))
        await asyncio.sleep(70)
    (a0, a1), (b0, b1) = times["a"], times["b"]
    assert a1 == pytest.approx(b1)  # one slot
    assert 60 <= a1 - a0 <= 61
    assert 60 <= b1 - b0 <= 61


async def test_a_crashing_reconcile_is_logged_retried_and_the_worker_survives() -> None:
    calls: list[float] = []

    async def reconcile(key: Key) -> Result:
        calls.append(asyncio.get_running_loop().time())
        if len(calls) < 3:
            raise RuntimeError("boom")
        return Result()

    name = f"w{next(_names)}"
    with capture_logs() as logs:
        async with worker(reconcile, name) as queue:
            queue.add(KEY)
            await asyncio.sleep(10)
            assert queue.processing == 0
            queue.add(ObjectKey("ns", "b"))
            await asyncio.sleep(1)
    assert len(calls) == 4
    crashes = [entry for entry in logs if entry["event"] == "reconcile crashed"]
    assert len(crashes) == 2
    assert crashes[0]["exc_info"] is True
    assert metric("controller_runtime_reconcile_errors_total", controller=name) == 2


async def test_the_worker_stops_taking_keys_once_the_queue_shuts_down() -> None:
    times: list[float] = []
    async with worker(runs_at(times), f"w{next(_names)}") as queue:
        queue.add(ObjectKey("ns", "a"))
        await asyncio.sleep(1)
        queue.shutdown()
        queue.add(ObjectKey("ns", "b"))
    assert len(times) == 1


async def test_active_workers_and_queue_depth_are_read_when_scraped() -> None:
    release = asyncio.Event()

    async def reconcile(key: Key) -> Result:
        await release.wait()
        return Result()

    name = f"w{next(_names)}"
    async with worker(reconcile, name) as queue:
        queue.add(KEY)
        await asyncio.sleep(1)
        queue.add(KEY)  # re-added while processing: counted in depth, like client-go
        queue.add(ObjectKey("ns", "b"))  # waits: one worker only
        assert metric("controller_runtime_active_workers", controller=name) == 1
        depth = {"name": name, "controller": name}
        assert REGISTRY.get_sample_value("workqueue_depth", depth) == 2
        release.set()
        await asyncio.sleep(1)
        assert metric("controller_runtime_active_workers", controller=name) == 0
        assert REGISTRY.get_sample_value("workqueue_depth", depth) == 0
