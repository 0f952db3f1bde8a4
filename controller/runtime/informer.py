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
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import attrs
import httpx
import kr8s
import structlog

from controller.resources import Resource
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


def _status_code(exc: kr8s.ServerError) -> int | None:
    response = getattr(exc, "response", None)
    return getattr(response, "status_code", None)


class Informer:
    """Keeps a cache of one resource in sync and tells handlers what changed."""

    def __init__(
        self,
        *,
        api: Any,
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
                    error=type(exc).__name__,
                    status=_status_code(exc) if isinstance(exc, kr8s.ServerError) else None,
                )
            await self._backoff.wait()

    def _progress(self) -> None:
        self.last_progress = asyncio.get_running_loop().time()

    def _base_params(self) -> dict[str, str]:
        return {"labelSelector": self._selector} if self._selector else {}

    async def _list(self) -> None:
        items: dict[ObjectKey, RawObject] = {}
        params = {**self._base_params(), "limit": str(self._timings.page_size)}
        timeout = httpx.Timeout(
            self._timings.request_timeout, connect=self._timings.connect_timeout
        )
        while True:
            try:
                async with self._api.call_api(
                    "GET",
                    version=self.resource.version,
                    namespace=self._namespace,
                    url=self.resource.plural,
                    params=params,
                    timeout=timeout,
                ) as response:
                    body = response.json()
            except kr8s.ServerError as exc:
                if _status_code(exc) == 410:
                    raise Gone from exc
                raise
            for obj in body.get("items") or ():
                items[key_of(obj)] = obj
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
        timeout = httpx.Timeout(
            self._timings.request_timeout,
            connect=self._timings.connect_timeout,
            read=server_timeout + self._timings.read_timeout_margin,
        )
        inactivity = asyncio.timeout(None)
        try:
            async with (
                self._api.call_api(
                    "GET",
                    version=self.resource.version,
                    namespace=self._namespace,
                    url=self.resource.plural,
                    params=params,
                    timeout=timeout,
                    stream=True,
                ) as response,
                inactivity,
            ):
                self._rearm(inactivity)
                async for line in response.aiter_lines():
                    if line.strip():
                        self._rearm(inactivity)
                        self._handle_event(json.loads(line))
                        self._progress()
        except kr8s.ServerError as exc:
            if _status_code(exc) == 410:
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


def all_synced(informers: Sequence[Informer]) -> bool:
    return all(informer.has_synced for informer in informers)
