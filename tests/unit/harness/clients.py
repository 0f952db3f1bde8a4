"""What the emulator's tests do with kr8s: Widget objects and raw WATCH streams.

The controller builds its informers on `api.call_api(..., stream=True)`, so
the watch tests read streams the same way instead of kr8s's `watch()`.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
from kr8s.asyncio import Api
from kr8s.asyncio.objects import APIObject, new_class

Widget: type[APIObject] = new_class(
    "Widget", version="example.com/v1", namespaced=True, plural="widgets"
)
ExternalSource: type[APIObject] = new_class(
    "ExternalSource",
    version="source.flux.oddkin.co/v1alpha1",
    namespaced=True,
    plural="externalsources",
)
ExternalArtifact: type[APIObject] = new_class(
    "ExternalArtifact",
    version="source.toolkit.fluxcd.io/v1",
    namespaced=True,
    plural="externalartifacts",
)
Lease: type[APIObject] = new_class(
    "Lease", version="coordination.k8s.io/v1", namespaced=True, plural="leases"
)


def widget(name: str, *, labels: dict[str, str] | None = None, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "example.com/v1",
        "kind": "Widget",
        "metadata": {"name": name, "namespace": "default", "labels": labels or {}},
        "spec": {"color": "red", **spec},
    }


async def make_widget(api: Api, name: str, **kwargs: Any) -> APIObject:
    obj = Widget(widget(name, **kwargs), api=api)
    await obj.create()
    return obj


async def read_watch(
    api: Api,
    params: dict[str, str],
    *,
    count: int | None = None,
    url: str = "widgets",
    version: str = "example.com/v1",
) -> list[dict[str, Any]]:
    """Events of one WATCH request: the first `count`, or all until the server ends it."""
    events: list[dict[str, Any]] = []
    async with api.call_api(
        "GET",
        version=version,
        namespace="default",
        url=url,
        params={"watch": "true", **params},
        stream=True,
        timeout=httpx.Timeout(10.0, read=600.0),
    ) as response:
        async for line in response.aiter_lines():
            if line.strip():
                events.append(json.loads(line))
            if count is not None and len(events) >= count:
                break
    return events


def summary(events: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(type, name-or-resourceVersion) per event, for compact assertions."""
    out = []
    for event in events:
        meta = event["object"].get("metadata", {})
        label = meta.get("name") or meta.get("resourceVersion") or str(event["object"].get("code"))
        out.append((event["type"], label))
    return out
