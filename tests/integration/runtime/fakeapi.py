"""A small Kubernetes API server for the runtime's tests (aiohttp, real sockets).

It implements exactly the contract the reflector and the leader elector rely
on, which kmock does not emulate: resourceVersions, paginated LIST with the
list's resourceVersion, WATCH from a resourceVersion (410 Gone when it is
older than the compaction point), BOOKMARK events, `timeoutSeconds`, and
merge patches whose `metadata.resourceVersion` is a precondition (409).
Faults are injected per request kind; every request is logged with its time.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

Obj = dict[str, Any]


def merge(target: Obj, patch: Obj) -> Obj:
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict) and isinstance(target.get(key), dict):
            merge(target[key], value)
        else:
            target[key] = copy.deepcopy(value)
    return target


def status(code: int, reason: str, message: str = "") -> web.Response:
    body = {
        "kind": "Status",
        "apiVersion": "v1",
        "status": "Failure",
        "code": code,
        "reason": reason,
        "message": message or reason,
    }
    return web.json_response(body, status=code)


class FakeApi:
    def __init__(self) -> None:
        self.objects: dict[tuple[str, str, str], Obj] = {}
        self.history: list[tuple[int, str, str, Obj]] = []  # (rv, plural, type, object)
        self.compacted = 0
        self._rv = itertools.count(1)
        self.rv = 0
        self.requests: list[tuple[float, str, str, dict[str, str]]] = []
        self.faults: dict[str, list[int]] = {}  # kind -> statuses for the next requests
        self.watch_scripts: list[str] = []  # next watches: "close" | "gone"
        self._watchers: set[asyncio.Queue[Obj | None]] = set()
        self.url = ""

    # state -----------------------------------------------------------------
    def _next_rv(self) -> str:
        self.rv = next(self._rv)
        return str(self.rv)

    def _emit(self, plural: str, kind: str, obj: Obj) -> None:
        event_obj = copy.deepcopy(obj)
        self.history.append((self.rv, plural, kind, event_obj))
        for queue in self._watchers:
            queue.put_nowait({"plural": plural, "type": kind, "object": event_obj})

    def create(self, plural: str, obj: Obj) -> Obj:
        meta = obj.setdefault("metadata", {})
        key = (plural, meta.get("namespace", ""), meta["name"])
        if key in self.objects:
            raise KeyError(key)
        meta.update(
            resourceVersion=self._next_rv(),
            uid=str(uuid.uuid4()),
            generation=1,
            creationTimestamp=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        )
        self.objects[key] = obj
        self._emit(plural, "ADDED", obj)
        return obj

    def patch(self, plural: str, namespace: str, name: str, patch: Obj) -> Obj:
        obj = self.objects[(plural, namespace, name)]
        spec_before = copy.deepcopy(obj.get("spec"))
        patch = copy.deepcopy(patch)
        patch.get("metadata", {}).pop("resourceVersion", None)
        merge(obj, patch)
        obj["metadata"]["resourceVersion"] = self._next_rv()
        if obj.get("spec") != spec_before:
            obj["metadata"]["generation"] = obj["metadata"].get("generation", 1) + 1
        self._emit(plural, "MODIFIED", obj)
        return obj

    def delete(self, plural: str, namespace: str, name: str) -> None:
        obj = self.objects.pop((plural, namespace, name))
        obj["metadata"]["resourceVersion"] = self._next_rv()
        self._emit(plural, "DELETED", obj)

    def compact(self) -> None:
        """Forget history: watches from any older resourceVersion get 410 Gone."""
        self.compacted = self.rv
        self.history.clear()

    def bookmark(self) -> None:
        self._next_rv()
        for queue in self._watchers:
            queue.put_nowait(
                {
                    "plural": "*",
                    "type": "BOOKMARK",
                    "object": {"metadata": {"resourceVersion": str(self.rv)}},
                }
            )

    def count(self, kind: str, plural: str | None = None) -> int:
        return sum(
            1 for _, k, path, _ in self.requests if k == kind and (plural is None or plural in path)
        )

    def last_params(self, kind: str) -> dict[str, str]:
        return [p for _, k, _, p in self.requests if k == kind][-1]

    # HTTP ------------------------------------------------------------------
    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/version{slash:/?}", self._version)
        for prefix in ("/apis/{group}/{version}", "/api/{version}"):
            app.router.add_route("*", prefix + "/{plural}", self._collection)
            app.router.add_route("*", prefix + "/namespaces/{ns}/{plural}", self._collection)
            app.router.add_route("*", prefix + "/namespaces/{ns}/{plural}/{name}", self._item)
        return app

    async def _version(self, request: web.Request) -> web.Response:
        return web.json_response({"major": "1", "minor": "33", "gitVersion": "v1.33.0"})

    def _log(self, kind: str, request: web.Request) -> web.Response | None:
        self.requests.append(
            (asyncio.get_running_loop().time(), kind, request.path, dict(request.query))
        )
        statuses = self.faults.get(kind)
        if statuses:
            code = statuses.pop(0)
            return status(
                code,
                {401: "Unauthorized", 403: "Forbidden", 410: "Expired"}.get(code, "InternalError"),
            )
        return None

    async def _collection(self, request: web.Request) -> web.StreamResponse:
        plural, ns = request.match_info["plural"], request.match_info.get("ns")
        if request.method == "POST":
            if (fault := self._log("create", request)) is not None:
                return fault
            body = await request.json()
            body.setdefault("metadata", {}).setdefault("namespace", ns or "")
            try:
                return web.json_response(self.create(plural, body), status=201)
            except KeyError:
                return status(409, "AlreadyExists")
        if request.query.get("watch") == "true":
            return await self._watch(request, plural, ns)
        if (fault := self._log("list", request)) is not None:
            return fault
        items = [
            o
            for (p, n, _), o in sorted(self.objects.items())
            if p == plural and (ns is None or n == ns)
        ]
        start = int(request.query.get("continue") or 0)
        limit = int(request.query.get("limit") or len(items) or 1)
        page = items[start : start + limit]
        meta: Obj = {"resourceVersion": str(self.rv)}
        if start + limit < len(items):
            meta["continue"] = str(start + limit)
        return web.json_response({"kind": "List", "metadata": meta, "items": page})

    async def _item(self, request: web.Request) -> web.Response:
        key = (request.match_info["plural"], request.match_info["ns"], request.match_info["name"])
        kind = {"GET": "get", "PATCH": "patch", "DELETE": "delete"}[request.method]
        if (fault := self._log(kind, request)) is not None:
            return fault
        if key not in self.objects:
            return status(404, "NotFound")
        if kind == "get":
            return web.json_response(self.objects[key])
        if kind == "delete":
            self.delete(*key)
            return web.json_response({"kind": "Status", "status": "Success"})
        body = await request.json()
        wanted = body.get("metadata", {}).get("resourceVersion")
        if wanted is not None and wanted != self.objects[key]["metadata"]["resourceVersion"]:
            return status(409, "Conflict")
        return web.json_response(self.patch(*key, body))

    async def _watch(self, request: web.Request, plural: str, ns: str | None) -> web.StreamResponse:
        if (fault := self._log("watch", request)) is not None:
            return fault
        script = self.watch_scripts.pop(0) if self.watch_scripts else ""
        since = int(request.query.get("resourceVersion") or 0)
        response = web.StreamResponse()
        await response.prepare(request)

        async def send(event: Obj) -> None:
            await response.write(json.dumps(event).encode() + b"\n")

        if script == "gone" or since < self.compacted:
            await send(
                {"type": "ERROR", "object": {"kind": "Status", "code": 410, "reason": "Expired"}}
            )
            return response
        if script == "close":
            return response
        queue: asyncio.Queue[Obj | None] = asyncio.Queue()
        self._watchers.add(queue)
        try:
            for rv, p, kind, obj in list(self.history):
                if (
                    rv > since
                    and p == plural
                    and (ns is None or obj["metadata"].get("namespace") == ns)
                ):
                    await send({"type": kind, "object": obj})
            timeout = float(request.query.get("timeoutSeconds") or 3600)
            async with asyncio.timeout(timeout):
                async for event in _drain(queue):
                    if event["plural"] in (plural, "*") and (
                        ns is None or event["object"]["metadata"].get("namespace", ns) == ns
                    ):
                        await send({"type": event["type"], "object": event["object"]})
        except (TimeoutError, ConnectionResetError):
            pass
        finally:
            self._watchers.discard(queue)
        return response

    def close_watches(self) -> None:
        """End every open watch stream (as a server timeout would)."""
        for queue in self._watchers:
            queue.put_nowait(None)


async def _drain(queue: asyncio.Queue[Obj | None]) -> AsyncIterator[Obj]:
    while (event := await queue.get()) is not None:
        yield event


def kubeconfig(url: str) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "fake", "cluster": {"server": url}}],
        "users": [{"name": "fake", "user": {"token": "test-token"}}],
        "contexts": [
            {"name": "fake", "context": {"cluster": "fake", "user": "fake", "namespace": "default"}}
        ],
        "current-context": "fake",
    }
