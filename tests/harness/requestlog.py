"""The emulator's request log: what the controller asked the API server, in order.

Tests assert on behaviour visible at the API ("the second reconcile wrote
nothing", "status was patched once", "the lease was renewed with a
precondition"), so every request is kept with its RBAC verb, resource,
namespace, name, subresource, query, body and the HTTP status answered
(None while a watch stream is still open). kmock keeps its own raw request
list too; this one is flat and typed so assertions read plainly.
"""

from __future__ import annotations

import time
from typing import Any

import attrs
from kmock._internal import rendering

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def verb_of(request: rendering.Request) -> str | None:
    """The RBAC verb of a request: get, list, watch, create, update, patch, delete, ..."""
    if request.resource is None:
        return None
    method = str(request.method.value if request.method else "").upper()
    if method == "GET":
        if request.params.get("watch") in ("true", "1"):
            return "watch"
        return "get" if request.name else "list"
    return {
        "POST": "create",
        "PUT": "update",
        "PATCH": "patch",
        "DELETE": "delete" if request.name else "deletecollection",
    }.get(method)


@attrs.define
class LoggedRequest:
    method: str
    path: str
    verb: str | None
    group: str | None
    version: str | None
    resource: str | None  # the plural, e.g. "externalsources"
    namespace: str | None
    name: str | None
    subresource: str | None
    params: dict[str, str]
    content_type: str
    body: Any
    time: float
    status: int | None = None

    @property
    def is_write(self) -> bool:
        return self.method in WRITE_METHODS


@attrs.define
class RequestLog:
    entries: list[LoggedRequest] = attrs.field(factory=list)

    def record(self, request: rendering.Request) -> LoggedRequest:
        res = request.resource
        entry = LoggedRequest(
            method=str(request.method.value if request.method else "").upper(),
            path=request.url.path,
            verb=verb_of(request),
            group=res.group if res else None,
            version=res.version if res else None,
            resource=res.plural if res else None,
            namespace=request.namespace,
            name=request.name,
            subresource=request.subresource,
            params=dict(request.params),
            content_type=request.headers.get("Content-Type", ""),
            body=request.data,
            time=time.monotonic(),
        )
        self.entries.append(entry)
        return entry

    def writes(self) -> list[LoggedRequest]:
        return [e for e in self.entries if e.is_write]

    def of(self, verb: str, resource: str | None) -> list[LoggedRequest]:
        return [e for e in self.entries if e.verb == verb and resource in (None, e.resource)]

    def clear(self) -> None:
        self.entries.clear()
