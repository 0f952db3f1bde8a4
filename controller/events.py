"""Kubernetes Events (and optionally Flux notification-controller events), off the reconcile's path.

Shaped after client-go's EventBroadcaster: recording is a plain synchronous
call that puts the event in a bounded queue and returns; a sender task owned
by the recorder's lifetime (`async with recorder:`) writes it to the API
server, and a second one POSTs it to `--events-addr`, so a slow or failing
API server or notification-controller never slows, blocks or fails a
reconcile. A full queue drops the event (counted in
`externalsource_events_total{outcome="queue_full"}`, logged once per burst).
Before a write, `controller.event_correlator` aggregates repeats into one
Event (`count`, `lastTimestamp`) and applies client-go's per-object spam
filter. Transient API errors are retried a few times with backoff; any other
failure is logged and counted, never raised.

Events yield to reconciles: while the controller has reconciles queued or
running (`busy`), a Kubernetes Event waits, up to `EventLimits.defer` seconds
after it was recorded, before it is written. An Event costs the API server
about as much as a status write, so a cold start of 1,000 new sources that
wrote its 1,000 NewArtifact Events as they came took a tenth longer to get
every source Ready (docs/benchmarks.md); now the Events follow the status
writes. A quiet controller writes an Event at once; notification-controller
POSTs (`--events-addr`) do not wait (they cost the API server nothing).

What is said, and when (docs/architecture.md, "Events"):

* `normal(obj, ...)`: every call is recorded (then aggregated/filtered). It
  leaves the Warning memory alone: a new artifact does not make a standing
  warning repeat.
* `warning(obj, ...)`: a failure. Each distinct (reason, message) is recorded
  once per object per failure episode, however often the reconcile retries;
  a different failure is recorded (up to 16 distinct ones are remembered per
  episode). `resolved(obj)` ends the episode: call it when a reconcile
  succeeds, so the same failure coming back later is recorded again.
* `standing_warning(obj, ..., active=...)`: a lasting state of the spec
  (e.g. TLS verification disabled). Recorded once while `active` and the
  message stay the same; `resolved()` does not touch it; `active=False`
  forgets it, so turning the state on again is recorded again.
* `forget(obj)`: the object was deleted; all memory about it goes, so memory
  stays bounded by the number of live objects (and the correlator's LRU).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import time
from collections import OrderedDict
from collections.abc import Callable
from types import TracebackType
from typing import Any, Final, Protocol, Self

import aiohttp
import attrs
import structlog
from prometheus_client import Counter

from controller.api.names import EVENTS, REVISION_ANNOTATION
from controller.event_correlator import EventCorrelator, EventKey, ObjectRef, Write
from controller.runtime.client import ApiError

log = structlog.get_logger(__name__)

COMPONENT: Final = "externalsource-controller"
_MAX_FAILURES_REMEMBERED: Final = 16
_DROP_REPORT_EVERY: Final = 10.0

EVENTS_TOTAL = Counter(
    "externalsource_events_total",
    "Events by sink (kubernetes, notification) and outcome: created, aggregated (the count of "
    "an earlier Event raised), sent, queue_full, rate_limited (per-object spam filter), "
    "failed, abandoned (still queued at shutdown).",
    ["sink", "outcome"],
)

JSON = dict[str, Any]


class EventClient(Protocol):
    """The two calls the recorder makes on the Kubernetes API client."""

    async def create(self, resource: Any, namespace: str, body: JSON) -> JSON: ...

    async def patch(self, resource: Any, namespace: str, name: str, patch: JSON) -> JSON: ...


@attrs.frozen
class EventLimits:
    """Bounds of the recorder; the defaults are client-go's where it has one."""

    queue_size: int = 4096
    """Events waiting to be sent, per sink, before new ones are dropped."""
    burst: int = 25
    """Writes about one object the spam filter lets through at once."""
    refill_seconds: float = 300.0
    """Seconds until the spam filter gives one write back."""
    window: float = 3600.0
    """A repeat within this many seconds of the previous one raises that Event's count."""
    max_entries: int = 4096
    """Aggregated Events and spam-filter buckets remembered (least recently used go first)."""
    tries: int = 3
    """Attempts per write on transient API errors."""
    retry_delay: float = 1.0
    """Delay before the second attempt; doubled for each further one."""
    request_timeout: float = 10.0
    """Deadline of one API write or notification POST."""
    defer: float = 10.0
    """Longest wait of a Kubernetes Event for the controller to be idle (status writes first)."""
    defer_poll: float = 0.05
    """How often a waiting Event looks again whether the controller is idle."""


@attrs.frozen
class _Pending:
    """One recorded occurrence, captured when it was recorded."""

    involved: JSON
    type: str
    reason: str
    message: str
    revision: str | None
    timestamp: str
    recorded_at: float
    """The event loop's clock when it was recorded."""

    @property
    def ref(self) -> ObjectRef:
        i = self.involved
        return (str(i["kind"]), str(i["namespace"]), str(i["name"]), str(i.get("uid") or ""))

    @property
    def key(self) -> EventKey:
        return (self.ref, self.type, self.reason, self.message)


class _Outbox:
    """A bounded queue for one sink that drops (and counts) when full."""

    def __init__(self, sink: str, size: int) -> None:
        self.sink = sink
        self.queue: asyncio.Queue[_Pending] = asyncio.Queue(maxsize=size)
        self._dropped = 0
        self._last_report = -_DROP_REPORT_EVERY

    def put(self, pending: _Pending) -> bool:
        """Queue it; False when the queue is full and it was dropped (counted; a summary is
        logged at most every `_DROP_REPORT_EVERY` seconds, however long the pressure lasts)."""
        try:
            self.queue.put_nowait(pending)
        except asyncio.QueueFull:
            EVENTS_TOTAL.labels(self.sink, "queue_full").inc()
            self._dropped += 1
            now = time.monotonic()
            if now - self._last_report >= _DROP_REPORT_EVERY:
                log.warning("events queue full; dropping events", sink=self.sink,
                            dropped=self._dropped)  # fmt: skip
                self._last_report, self._dropped = now, 0
            return False
        return True

    def abandon(self) -> None:
        """Count what is still queued as never sent, and empty the queue."""
        while not self.queue.empty():
            self.queue.get_nowait()
            self.queue.task_done()
            EVENTS_TOTAL.labels(self.sink, "abandoned").inc()


class EventRecorder:
    """Records Events without waiting; `async with recorder:` runs the senders."""

    def __init__(
        self,
        kube: EventClient,
        *,
        events_addr: str = "",
        instance: str = COMPONENT,
        limits: EventLimits = EventLimits(),
        busy: Callable[[], bool] | None = None,
    ) -> None:
        self._kube = kube
        self._busy = busy
        self._events_addr = events_addr
        self._instance = instance
        self._limits = limits
        self._correlator = EventCorrelator(
            burst=limits.burst,
            refill_seconds=limits.refill_seconds,
            window=limits.window,
            max_entries=limits.max_entries,
        )
        self._kubernetes = _Outbox("kubernetes", limits.queue_size)
        self._notification = _Outbox("notification", limits.queue_size) if events_addr else None
        self._failures: dict[tuple[str, str, str], OrderedDict[tuple[str, str], None]] = {}
        self._standing: dict[tuple[str, str, str], dict[str, str]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._session: aiohttp.ClientSession | None = None
        self._closed = False

    # recording (synchronous, never raises for API reasons) ---------------------------
    def normal(
        self,
        obj: JSON,
        *,
        reason: str,
        message: str,
        revision: str | None = None,
        notification_only: bool = False,
    ) -> None:
        """Record a Normal event (with Flux's revision annotation when given); with
        `notification_only`, for `--events-addr` only, not as a Kubernetes Event."""
        self._record(
            obj,
            type_="Normal",
            reason=reason,
            message=message,
            revision=revision,
            kubernetes=not notification_only,
        )

    def warning(self, obj: JSON, *, reason: str, message: str) -> None:
        """Record a failure, unless this (reason, message) was said since the last `resolved`."""
        said = self._failures.setdefault(_key(obj), OrderedDict())
        if (reason, message) in said:
            return
        if self._record(obj, type_="Warning", reason=reason, message=message, revision=None):
            said[(reason, message)] = None
            while len(said) > _MAX_FAILURES_REMEMBERED:
                said.popitem(last=False)

    def resolved(self, obj: JSON) -> None:
        """The object's failure is over: a failure from now on is recorded even if it repeats."""
        self._failures.pop(_key(obj), None)

    def standing_warning(self, obj: JSON, *, reason: str, message: str, active: bool) -> None:
        """Record a lasting state once while it holds; `active=False` ends it."""
        standing = self._standing.setdefault(_key(obj), {})
        if not active:
            standing.pop(reason, None)
            if not standing:
                del self._standing[_key(obj)]
            return
        if standing.get(reason) == message:
            return
        if self._record(obj, type_="Warning", reason=reason, message=message, revision=None):
            standing[reason] = message

    def forget(self, obj: JSON) -> None:
        """The object is gone: drop its warning memory, aggregation and spam-filter state."""
        key = _key(obj)
        self._failures.pop(key, None)
        self._standing.pop(key, None)
        meta = obj["metadata"]
        ref = (str(obj.get("kind")), meta["namespace"], meta["name"], str(meta.get("uid") or ""))
        self._correlator.forget(ref)

    # lifetime ------------------------------------------------------------------------
    async def __aenter__(self) -> Self:
        self._tasks.append(asyncio.create_task(self._send_kubernetes(), name="events-kubernetes"))
        if self._notification is not None:
            self._tasks.append(
                asyncio.create_task(self._send_notifications(), name="events-notification")
            )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self, *, timeout: float = 5.0) -> None:
        """Stop recording, send what is queued for up to `timeout` seconds, then stop."""
        self._closed = True
        outboxes = [o for o in (self._kubernetes, self._notification) if o is not None]
        if self._tasks:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    for outbox in outboxes:
                        await outbox.queue.join()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        for outbox in outboxes:
            outbox.abandon()
        if self._session is not None:
            await self._session.close()
            self._session = None

    # internals -----------------------------------------------------------------------
    def _record(
        self,
        obj: JSON,
        *,
        type_: str,
        reason: str,
        message: str,
        revision: str | None,
        kubernetes: bool = True,
    ) -> bool:
        """Queue the event for every sink; False when no sink took it."""
        meta = obj["metadata"]
        pending = _Pending(
            involved={
                "apiVersion": obj.get("apiVersion"),
                "kind": obj.get("kind"),
                "name": meta["name"],
                "namespace": meta["namespace"],
                "uid": meta.get("uid"),
                "resourceVersion": meta.get("resourceVersion"),
            },
            type=type_,
            reason=reason,
            message=message,
            revision=revision,
            timestamp=datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            recorded_at=asyncio.get_running_loop().time(),
        )
        queued = False
        for outbox in (self._kubernetes if kubernetes else None, self._notification):
            if outbox is None:
                continue
            if self._closed:
                EVENTS_TOTAL.labels(outbox.sink, "abandoned").inc()
            else:
                queued = outbox.put(pending) or queued
        return queued

    async def _send_kubernetes(self) -> None:
        loop = asyncio.get_running_loop()
        queue = self._kubernetes.queue
        while True:
            pending = await queue.get()
            try:
                await self._after_reconciles(pending)
                write = self._correlator.observe(
                    pending.key,
                    object_name=pending.involved["name"],
                    timestamp=pending.timestamp,
                    now=loop.time(),
                )
                if write is None:
                    EVENTS_TOTAL.labels("kubernetes", "rate_limited").inc()
                else:
                    await self._write(pending, write)
            except asyncio.CancelledError:  # shutdown while this one was being written
                EVENTS_TOTAL.labels("kubernetes", "abandoned").inc()
                raise
            except Exception:  # the sender outlives any bug in one event
                log.exception("event not recorded", reason=pending.reason)
                EVENTS_TOTAL.labels("kubernetes", "failed").inc()
            finally:
                queue.task_done()

    async def _after_reconciles(self, pending: _Pending) -> None:
        """Wait while reconciles are queued or running, at most `defer` after recording."""
        if self._busy is None:
            return
        deadline = pending.recorded_at + self._limits.defer
        loop = asyncio.get_running_loop()
        while not self._closed and self._busy():
            left = deadline - loop.time()
            if left <= 0:
                return
            await asyncio.sleep(min(self._limits.defer_poll, left))

    async def _write(self, pending: _Pending, write: Write) -> None:
        """Create or patch the Event; 404 on a patch creates, 409 on a create patches."""
        observation = write.observation
        namespace = pending.involved["namespace"]
        create = write.create
        attempt = 0
        for _ in range(self._limits.tries + 2):  # +2: one switch each way
            try:
                async with asyncio.timeout(self._limits.request_timeout):
                    if create:
                        await self._kube.create(EVENTS, namespace, self._body(pending, write))
                    else:
                        patch = {
                            "count": observation.count,
                            "lastTimestamp": observation.last_timestamp,
                        }
                        await self._kube.patch(EVENTS, namespace, observation.name, patch)
            except ApiError as exc:
                if exc.status == (409 if create else 404):  # it exists after all / it expired
                    create = not create
                    continue
                attempt += 1
                if not exc.transient or attempt >= self._limits.tries:
                    _not_recorded(pending, exc.message)
                    return
                delay = self._backoff(attempt, retry_after=exc.retry_after)
            except TimeoutError:
                attempt += 1
                if attempt >= self._limits.tries:
                    _not_recorded(pending, "timed out")
                    return
                delay = self._backoff(attempt, retry_after=None)
            else:
                observation.exists = True
                outcome = "created" if create else "aggregated"
                EVENTS_TOTAL.labels("kubernetes", outcome).inc()
                return
            await asyncio.sleep(delay)
        _not_recorded(pending, "the Event kept appearing and disappearing")

    def _backoff(self, attempt: int, *, retry_after: float | None) -> float:
        """`retry_delay` doubled per attempt; the server's Retry-After when longer (up to 60 s)."""
        delay = self._limits.retry_delay * 2.0 ** (attempt - 1)
        return max(delay, min(retry_after or 0.0, 60.0))

    def _body(self, pending: _Pending, write: Write) -> JSON:
        observation = write.observation
        annotations = {REVISION_ANNOTATION: pending.revision} if pending.revision else {}
        return {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                "name": observation.name,
                "namespace": pending.involved["namespace"],
                "annotations": annotations,
            },
            "involvedObject": pending.involved,
            "reason": pending.reason,
            "message": pending.message,
            "type": pending.type,
            "source": {"component": COMPONENT},
            "reportingComponent": COMPONENT,
            "reportingInstance": self._instance,
            "firstTimestamp": observation.first_timestamp,
            "lastTimestamp": observation.last_timestamp,
            "count": observation.count,
        }

    async def _send_notifications(self) -> None:
        assert self._notification is not None
        queue = self._notification.queue
        while True:
            pending = await queue.get()
            try:
                await self._post(pending)
            except asyncio.CancelledError:
                EVENTS_TOTAL.labels("notification", "abandoned").inc()
                raise
            except Exception:  # the sender outlives any bug in one event
                log.exception("event not forwarded", reason=pending.reason)
                EVENTS_TOTAL.labels("notification", "failed").inc()
            finally:
                queue.task_done()

    async def _post(self, pending: _Pending) -> None:
        """POST in the format Flux's notification-controller accepts (fluxcd/pkg runtime/events)."""
        payload = {
            "involvedObject": pending.involved,
            "severity": "info" if pending.type == "Normal" else "error",
            "timestamp": pending.timestamp,
            "message": pending.message,
            "reason": pending.reason,
            "metadata": {"revision": pending.revision} if pending.revision else {},
            "reportingController": COMPONENT,
            "reportingInstance": self._instance,
        }
        if self._session is None:
            timeout = aiohttp.ClientTimeout(total=self._limits.request_timeout)
            self._session = aiohttp.ClientSession(timeout=timeout)
        try:
            async with self._session.post(self._events_addr, json=payload) as resp:
                if resp.status >= 400:
                    log.warning("event not forwarded", status=resp.status, reason=pending.reason)
                    EVENTS_TOTAL.labels("notification", "failed").inc()
                    return
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning("event not forwarded", error=type(exc).__name__, reason=pending.reason)
            EVENTS_TOTAL.labels("notification", "failed").inc()
            return
        EVENTS_TOTAL.labels("notification", "sent").inc()


def _not_recorded(pending: _Pending, error: str) -> None:
    log.warning("event not recorded", reason=pending.reason, error=error)
    EVENTS_TOTAL.labels("kubernetes", "failed").inc()


def _key(obj: JSON) -> tuple[str, str, str]:
    meta = obj["metadata"]
    return (str(obj.get("kind")), meta["namespace"], meta["name"])
