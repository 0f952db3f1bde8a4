"""Worker coroutines: controller-runtime's worker contract around one reconcile.

    key = get()                      # blocks; ShutDown ends the worker
    try:   result = reconcile(key)   # any exception is logged and retried
    finally: done(key)               # always, so a key is never stuck processing

Outcome → queue action (controller-runtime `reconcileHandler`):

- exception → `add_rate_limited(key)`; result label `error` (and a panic count)
- `Result(retry=True, retry_after=s)` → `add_rate_limited(key, min_delay=s)`;
  label `error`: the reconciler reports a failure it handled itself
- `Result(requeue_after=s)` → `forget(key)`, `add_after(key, s)` with timer slack (up
  to 1/32 of `s`, at most 1 s, so checks due close together share one wake-up of the
  loop: see the queue's "Timer slack"); label `requeue_after`
- `Result()` → `forget(key)`; label `success`

A reconcile cancelled from outside (leadership lost, shutdown deadline) puts
its key back before `done`, so the source is not forgotten: the next leader
term processes it again.

The rate-limited and delayed adds are made before `done`, so a key re-added
meanwhile is handled by the queue's dedup rather than by us. A worker stops
taking work once the queue is shutting down: the key in hand is finished, the
rest stays queued (graceful shutdown means "finish in-flight", not "drain all").
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import attrs
import structlog

from controller.runtime import metrics
from controller.runtime.keys import ObjectKey
from controller.runtime.workqueue import ShutDown, WorkQueue

log = structlog.get_logger(__name__)

Key = ObjectKey

#: a scheduled requeue may come up to this fraction of its delay later, and at most
#: MAX_SCHEDULE_SLACK seconds (a 1m interval's checks land on a 1 s grid)
SCHEDULE_SLACK_FRACTION = 1 / 32
MAX_SCHEDULE_SLACK = 1.0


@attrs.frozen
class Result:
    """What a reconcile asks of the queue; `Result()` means "done, forget the key"."""

    #: reconcile again after this many seconds (the schedule), backoff reset
    requeue_after: float | None = None
    #: a failure: retry with the key's exponential backoff (overrides requeue_after)
    retry: bool = False
    #: the least delay for that retry, e.g. an origin's Retry-After
    retry_after: float | None = None


Reconcile = Callable[[Key], Awaitable[Result]]


async def run_worker(*, queue: WorkQueue[Key], reconcile: Reconcile, controller: str) -> None:
    """Process keys until the queue shuts down."""
    series = _Series(controller)
    # read at scrape time: keys handed out and not done are the workers at work
    metrics.ACTIVE_WORKERS.labels(controller=controller).set_function(lambda: queue.processing)
    while not queue.shutting_down:
        try:
            key = await queue.get()
        except ShutDown:
            return
        try:
            await _process(queue=queue, reconcile=reconcile, series=series, key=key)
        finally:
            queue.done(key)


class _Series:
    """One worker's metric children, looked up once rather than on every reconcile."""

    def __init__(self, controller: str) -> None:
        self.time = metrics.RECONCILE_TIME.labels(controller=controller)
        self.errors = metrics.RECONCILE_ERRORS.labels(controller=controller)
        self.panics = metrics.RECONCILE_PANICS.labels(controller=controller)
        self.total = {
            result: metrics.RECONCILE_TOTAL.labels(controller=controller, result=result)
            for result in ("error", "requeue_after", "success")
        }


async def _process(
    *, queue: WorkQueue[Key], reconcile: Reconcile, series: _Series, key: Key
) -> None:
    started = time.monotonic()
    try:
        result = await reconcile(key)
    except asyncio.CancelledError:
        queue.add(key)
        raise
    except Exception:
        log.exception("reconcile crashed", namespace=key.namespace, name=key.name)
        series.panics.inc()
        series.errors.inc()
        series.total["error"].inc()
        queue.add_rate_limited(key)
        return
    finally:
        series.time.observe(time.monotonic() - started)
    if result.retry:
        series.errors.inc()
        series.total["error"].inc()
        queue.add_rate_limited(key, result.retry_after)
    elif result.requeue_after is not None and result.requeue_after > 0:
        series.total["requeue_after"].inc()
        queue.forget(key)
        slack = min(MAX_SCHEDULE_SLACK, result.requeue_after * SCHEDULE_SLACK_FRACTION)
        queue.add_after(key, result.requeue_after, slack=slack)
    else:
        series.total["success"].inc()
        queue.forget(key)
