"""A list-then-watch informer on kr8s's transport, with a local cache and event handlers.

Why not kr8s's `watch()`: it sends no `allowWatchBookmarks` or
`timeoutSeconds`, disables the client timeout (a half-open connection hangs
forever), does not expose the list's resourceVersion, and answers 410 Gone by
re-watching from the same stale version in a hot loop. This informer follows
client-go's reflector instead:

1. LIST in pages (`limit=500` + `continue`) and take the list's
   `resourceVersion`; the cache is replaced and handlers see the difference
   (adds, updates of changed objects, deletes of vanished ones).
2. WATCH from that version with bookmarks and a server `timeoutSeconds` drawn
   from [5, 10] min; the client read timeout is above it, and an inactivity
   timeout (70 s, bookmarks come every minute) catches silent streams.
3. Each event advances the resourceVersion; BOOKMARK only advances it. A
   stream the server ends normally is resumed from the last version.
4. 410 Gone (as an ERROR event or an HTTP status) relists, immediately the
   first time; a second 410 without a healthy watch in between goes through
   the backoff, so an always-410 server cannot drive a loop.
5. Every failure (transport, timeout, 5xx, 4xx, garbage) waits on a jittered
   exponential backoff (0.8 s → 30 s, reset after 2 min healthy). A stream that
   closes within `min_healthy_watch` counts as a failure too: no hot loops, ever.

The informer never dies of an error; it keeps trying and reports progress
(`last_progress`) for /healthz. Handlers are synchronous and cheap (they
enqueue keys); one that raises is logged and the others still run.

The cache holds what the controller reads, not whole objects: `managedFields`
and kubectl's last-applied annotation (often larger than the rest of the
object) are dropped as objects arrive, and the cached copy shares its keys and
short strings ("True", reasons, the namespace) with every other cached object
(`sys.intern`): a decoded object carries its own copy of each, about half of
its memory (6.5 → 3.4 KiB for a Ready source; docs/benchmarks.md). Requests
go through the one client door (`controller.runtime.client`), each informer on
its own connection pool.
"""

from __future__ import annotations

import asyncio
import random
import sys
from collections.abc import Callable
from typing import Any, Protocol

import aiohttp
import attrs
import structlog

from controller.api.names import Resource
from controller.runtime.client import ApiError, KubeClient
from controller.runtime.keys import ObjectKey, key_of
from controller.runtime.ratelimit import ReconnectBackoff

log = structlog.get_logger(__name__)

RawObject = dict[str, Any]


class EventHandler(Protocol):
    def on_add(self, obj: RawObject) -> None: ...

    def on_update(self, old: RawObject, new: RawObject) -> None: ...

    def on_delete(self, obj: RawObject) -> None: ...


@attrs.frozen
class WatchTimings:
    """client-go's reflector timings plus kopf's inactivity timeout (seconds)."""

    watch_timeout_min: float = 300.0
    watch_timeout_max: float = 600.0
    read_timeout_margin: float = 30.0
    inactivity_timeout: float = 70.0
    min_healthy_watch: float = 5.0
    request_timeout: float = 60.0
    connect_timeout: float = 10.0
    page_size: int = 500
    backoff_initial: float = 0.8
    backoff_cap: float = 30.0
    backoff_reset_after: float = 120.0


class Gone(Exception):
    """The resourceVersion is too old (410): relist."""


class WatchError(Exception):
    """An ERROR event other than 410."""


class Informer:
    """Keeps a cache of one resource in sync and tells handlers what changed."""

    def __init__(
        self,
        *,
        api: KubeClient,
        resource: Resource,
        namespace: str | None = None,
        label_selector: str = "",
        timings: WatchTimings | None = None,
        rnd: Callable[[], float] = random.random,
    ) -> None:
        self._api = api
        self.resource = resource
        self._namespace = namespace
        self._selector = label_selector
        self._timings = timings or WatchTimings()
        self._rnd = rnd
        self._cache: dict[ObjectKey, RawObject] = {}
        self._handlers: list[EventHandler] = []
        self._synced = asyncio.Event()
        self._backoff = ReconnectBackoff(
            initial=self._timings.backoff_initial,
            cap=self._timings.backoff_cap,
            reset_after=self._timings.backoff_reset_after,
            rnd=rnd,
        )
        self.resource_version: str | None = None
        self.last_progress: float | None = None

    @property
    def name(self) -> str:
        return self.resource.plural

    @property
    def has_synced(self) -> bool:
        return self._synced.is_set()

    async def wait_synced(self) -> None:
        await self._synced.wait()

    def add_handler(self, handler: EventHandler) -> None:
        self._handlers.append(handler)

    def get(self, key: ObjectKey | tuple[str, str]) -> RawObject | None:
        return self._cache.get(ObjectKey(*key))

    def list(self) -> list[RawObject]:
        return list(self._cache.values())

    async def run(self) -> None:
        """List and watch forever."""
        relist = True
        last_was_gone = False
        while True:
            self._progress()
            started = asyncio.get_running_loop().time()
            try:
                if relist:
                    await self._list()
                    relist = False
                await self._watch()
                if asyncio.get_running_loop().time() - started >= self._timings.min_healthy_watch:
                    last_was_gone = False
                    continue  # a normal end (server timeout, inactivity): resume at once
                log.debug("watch closed early; backing off", resource=self.name)
            except Gone:
                relist = True
                if not last_was_gone:
                    last_was_gone = True
                    log.info("resourceVersion expired; relisting", resource=self.name)
                    continue
                log.warning("resourceVersion expired again; backing off", resource=self.name)
            except Exception as exc:  # an informer must outlive any error; it backs off
                log.warning(
                    "list/watch failed; backing off",
                    resource=self.name,
                    error=exc.message if isinstance(exc, ApiError) else type(exc).__name__,
                )
            await self._backoff.wait()

    def _progress(self) -> None:
        self.last_progress = asyncio.get_running_loop().time()

    def _base_params(self) -> dict[str, str]:
        return {"labelSelector": self._selector} if self._selector else {}

    async def _list(self) -> None:
        items: dict[ObjectKey, RawObject] = {}
        params = {**self._base_params(), "limit": str(self._timings.page_size)}
        timeout = aiohttp.ClientTimeout(
            total=self._timings.request_timeout, connect=self._timings.connect_timeout
        )
        while True:
            try:
                body = await self._api.list(
                    self.resource, namespace=self._namespace, params=params, timeout=timeout
                )
            except ApiError as exc:
                if exc.status == 410:
                    raise Gone from exc
                raise
            for obj in body.get("items") or ():
                items[key_of(obj)] = _trim(obj)
            token = (body.get("metadata") or {}).get("continue")
            if not token:
                break
            params["continue"] = token
        self.resource_version = (body.get("metadata") or {}).get("resourceVersion")
        self._replace(items)
        self._synced.set()
        self._progress()

    def _replace(self, items: dict[ObjectKey, RawObject]) -> None:
        old, self._cache = self._cache, items
        for key, obj in items.items():
            previous = old.get(key)
            if previous is None:
                self._dispatch("on_add", obj)
            elif _rv(previous) != _rv(obj):
                self._dispatch("on_update", previous, obj)
        for key, obj in old.items():
            if key not in items:
                self._dispatch("on_delete", obj)

    async def _watch(self) -> None:
        """One watch request, until the server ends it or it goes silent."""
        server_timeout = round(
            self._timings.watch_timeout_min
            + self._rnd() * (self._timings.watch_timeout_max - self._timings.watch_timeout_min)
        )
        params = {
            **self._base_params(),
            "watch": "true",
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(server_timeout),
        }
        if self.resource_version:
            params["resourceVersion"] = self.resource_version
        timeout = aiohttp.ClientTimeout(
            connect=self._timings.connect_timeout,
            sock_read=server_timeout + self._timings.read_timeout_margin,
        )
        inactivity = asyncio.timeout(None)
        try:
            async with (
                self._api.watch(
                    self.resource, namespace=self._namespace, params=params, timeout=timeout
                ) as events,
                inactivity,
            ):
                self._rearm(inactivity)
                async for event in events:
                    self._rearm(inactivity)
                    self._handle_event(event)
                    self._progress()
        except ApiError as exc:
            if exc.status == 410:
                raise Gone from exc
            raise
        except TimeoutError:
            if not inactivity.expired():
                raise
            log.debug("watch inactive; reconnecting", resource=self.name)

    def _rearm(self, inactivity: asyncio.Timeout) -> None:
        now = asyncio.get_running_loop().time()
        inactivity.reschedule(now + self._timings.inactivity_timeout)

    def _handle_event(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        obj = event.get("object") or {}
        if kind == "ERROR":
            if obj.get("code") == 410:
                raise Gone
            raise WatchError(f"watch error {obj.get('code')}: {obj.get('reason')}")
        rv = _rv(obj)
        if kind == "BOOKMARK":
            if rv:
                self.resource_version = rv
            return
        key = key_of(obj)
        if kind in ("ADDED", "MODIFIED"):
            obj = _trim(obj)
            previous = self._cache.get(key)
            self._cache[key] = obj
            if previous is None:
                self._dispatch("on_add", obj)
            else:
                self._dispatch("on_update", previous, obj)
        elif kind == "DELETED":
            previous = self._cache.pop(key, None)
            self._dispatch("on_delete", previous or obj)
        else:
            log.warning("unknown watch event type", resource=self.name, type=kind)
        if rv:
            self.resource_version = rv

    def _dispatch(self, method: str, *objs: RawObject) -> None:
        for handler in self._handlers:
            try:
                getattr(handler, method)(*objs)
            except Exception:
                log.exception("event handler failed", resource=self.name, handler=method)


def _rv(obj: RawObject) -> str | None:
    rv: str | None = (obj.get("metadata") or {}).get("resourceVersion")
    return rv


_DROPPED_ANNOTATION = "kubectl.kubernetes.io/last-applied-configuration"


#: string values up to this length are shared between cached objects
_SHARED_MAX = 32


def _shared(value: Any) -> Any:
    """`value` rebuilt with interned keys and short strings (equal, smaller in the cache)."""
    if type(value) is dict:
        return {sys.intern(k): _shared(v) for k, v in value.items()}
    if type(value) is list:
        return [_shared(v) for v in value]
    if type(value) is str and len(value) <= _SHARED_MAX:
        return sys.intern(value)
    return value


def _trim(obj: RawObject) -> RawObject:
    """Drop what the controller never reads (and that dominates an object's size), and
    share strings with the rest of the cache."""
    meta = obj.get("metadata")
    if isinstance(meta, dict):
        meta.pop("managedFields", None)
        annotations = meta.get("annotations")
        if annotations and _DROPPED_ANNOTATION in annotations:
            annotations.pop(_DROPPED_ANNOTATION)
            if not annotations:
                meta.pop("annotations")
    shared: RawObject = _shared(obj)
    return shared
