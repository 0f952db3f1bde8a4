"""WATCH streams: from a resourceVersion, filtered, with bookmarks, timeouts and 410 Gone.

This is the part of the API server an informer lives on, so it follows the
server's contract rather than kmock's "replay everything, forever":

* no `resourceVersion` (or "0"): ADDED for every current object, then changes;
  `resourceVersion=N`: only changes after N (from the store's history), or a
  single `ERROR` event with a 410 `Expired` Status when N was compacted away;
* label/field selectors and the URL's namespace/name filter events; an object
  that starts or stops matching is sent as ADDED or DELETED, as the server does;
* `allowWatchBookmarks=true`: a BOOKMARK with the current resourceVersion every
  `bookmark_interval` seconds and whenever a test calls `bookmark()`;
* `timeoutSeconds`: the server ends the stream cleanly after that long;
* tests can end every open stream (`close_all()`) or make them fail with 410
  (`close_all(gone=True)`), the two ways a real watch stops;
* tests can script the next watch requests (`script()`): "gone" answers with
  one 410 ERROR event and ends, "close" ends the stream right after the
  headers (a server that keeps dropping watches), "silent" sends nothing at
  all (no events, no bookmarks) until the client leaves or `timeoutSeconds`.
  A script counts down per matching request (`times=None`: until `unscript()`),
  so a test can tell one 410 from an always-410 server.

All timing uses the event loop's clock, so looptime can fast-forward it.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
from collections.abc import AsyncIterator, Callable
from typing import Any

import attrs

from tests.harness.resources import ResourceType
from tests.harness.selectors import Selector
from tests.harness.store import Event, Store

Obj = dict[str, Any]
_CLIENT_CHECK = 1.0  # how often an idle stream checks that its client is still connected
# Deadlines this close count as reached: under looptime's integer clock a deadline can sit one
# tick past the reading the clock settles on, and a timer that short fires without the clock
# moving (asyncio treats it as due), so the stream spun forever one tick before its timeout.
_CLOCK_SLACK = 0.001


def gone_event(rv: str, compacted: int) -> Obj:
    return {
        "type": "ERROR",
        "object": {
            "apiVersion": "v1",
            "kind": "Status",
            "metadata": {},
            "status": "Failure",
            "message": f"too old resource version: {rv} ({compacted})",
            "reason": "Expired",
            "code": 410,
        },
    }


WATCH_SCRIPTS = ("gone", "close", "silent")


@attrs.define(eq=False)
class _Script:
    action: str
    resource: str | None  # a plural or plural.group; None: every resource
    remaining: int | None  # None: until unscript()

    def matches(self, rtype: ResourceType) -> bool:
        return self.resource is None or self.resource in (rtype.plural, rtype.qualified)


@attrs.define(eq=False)
class _Watcher:
    wake: asyncio.Event = attrs.field(factory=asyncio.Event)
    bookmark: bool = False
    close: str | None = None  # "close" | "gone"


def translate(event: Event, selector: Selector) -> Obj | None:
    """The event this watch sees, if any (selector transitions become ADDED/DELETED)."""
    matches_now = selector(event.object)
    matched_before = event.old is not None and selector(event.old)
    if event.type == "MODIFIED" and matches_now != matched_before:
        if matches_now:
            return {"type": "ADDED", "object": copy.deepcopy(event.object)}
        gone = copy.deepcopy(event.old) or {}
        gone.setdefault("metadata", {})["resourceVersion"] = str(event.rv)
        return {"type": "DELETED", "object": gone}
    if not matches_now:
        return None
    return {"type": event.type, "object": copy.deepcopy(event.object)}


@attrs.define
class WatchHub:
    """Every open watch stream of one emulator, and the knobs tests turn on them."""

    store: Store
    bookmark_interval: float = 60.0
    _watchers: set[_Watcher] = attrs.field(factory=set)
    _scripts: list[_Script] = attrs.field(factory=list)

    def __attrs_post_init__(self) -> None:
        self.store.listeners.append(self._wake_all)

    @property
    def open_streams(self) -> int:
        return len(self._watchers)

    def _wake_all(self) -> None:
        for watcher in self._watchers:
            watcher.wake.set()

    def bookmark(self) -> None:
        """Send a BOOKMARK now on every stream that asked for bookmarks."""
        for watcher in self._watchers:
            watcher.bookmark = True
        self._wake_all()

    def close_all(self, *, gone: bool = False) -> int:
        """End every open stream (cleanly, or with a 410 ERROR event); returns how many."""
        for watcher in self._watchers:
            watcher.close = "gone" if gone else "close"
        self._wake_all()
        return len(self._watchers)

    def script(self, action: str, *, resource: str | None, times: int | None) -> None:
        """Make the next `times` watches of `resource` (None: all) behave as `action`."""
        if action not in WATCH_SCRIPTS:
            raise ValueError(f"unknown watch script {action!r}; one of {WATCH_SCRIPTS}")
        self._scripts.append(_Script(action=action, resource=resource, remaining=times))

    def unscript(self) -> None:
        """Forget every pending watch script: watches behave normally again."""
        self._scripts.clear()

    def _take_script(self, rtype: ResourceType) -> str | None:
        for script in self._scripts:
            if script.matches(rtype) and script.remaining != 0:
                if script.remaining is not None:
                    script.remaining -= 1
                return script.action
        return None

    async def stream(
        self,
        rtype: ResourceType,
        selector: Selector,
        *,
        since: str,
        bookmarks: bool,
        timeout: float | None,
        disconnected: Callable[[], bool],
    ) -> AsyncIterator[Obj | bytes]:
        yield b""  # send the headers now, as the server does before any event
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout if timeout else None
        next_bookmark = loop.time() + self.bookmark_interval if bookmarks else None
        watcher = _Watcher()
        self._watchers.add(watcher)
        try:
            scripted = self._take_script(rtype)
            if scripted == "gone":
                yield gone_event(since or str(self.store.rv), self.store.rv)
                return
            if scripted == "close":
                return
            silent = scripted == "silent"
            if silent:
                next_bookmark = None
            if since in ("", "0"):
                cursor = self.store.rv
                for obj in [] if silent else self.store.select(rtype, selector):
                    yield {"type": "ADDED", "object": obj}
            elif not since.isdigit():
                yield _bad_rv(since)
                return
            elif int(since) < self.store.compacted:
                yield gone_event(since, self.store.compacted)
                return
            else:
                cursor = int(since)
            while True:
                watcher.wake.clear()
                for event in self.store.events_after(cursor):
                    cursor = event.rv
                    seen = translate(event, selector) if event.resource == rtype.key else None
                    if seen is not None and not silent:
                        yield seen
                if watcher.close == "gone":
                    yield gone_event(str(cursor), self.store.rv)
                    return
                if watcher.close == "close":
                    return
                now = loop.time()
                due = now + _CLOCK_SLACK
                if next_bookmark is not None and (watcher.bookmark or due >= next_bookmark):
                    watcher.bookmark = False
                    next_bookmark = now + self.bookmark_interval
                    yield _bookmark(rtype, self.store.rv)
                    continue
                if deadline is not None and due >= deadline:
                    return
                if disconnected():
                    return
                waits = [_CLIENT_CHECK]
                waits += [t - now for t in (deadline, next_bookmark) if t is not None]
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(max(0.0, min(waits))):
                        await watcher.wake.wait()
        finally:
            self._watchers.discard(watcher)


def _bookmark(rtype: ResourceType, rv: int) -> Obj:
    return {
        "type": "BOOKMARK",
        "object": {
            "apiVersion": rtype.api_version,
            "kind": rtype.kind,
            "metadata": {"resourceVersion": str(rv)},
        },
    }


def _bad_rv(rv: str) -> Obj:
    return {
        "type": "ERROR",
        "object": {
            "apiVersion": "v1",
            "kind": "Status",
            "metadata": {},
            "status": "Failure",
            "message": f'invalid resource version "{rv}"',
            "reason": "BadRequest",
            "code": 400,
        },
    }
