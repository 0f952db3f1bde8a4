"""A small typed door to the Kubernetes API for the reconciler's reads and writes.

kr8s carries transport and auth; this module adds what a controller needs on
top and kr8s lacks: one call per operation (kr8s's `Class.get` polls a LIST for
two seconds on "not found"), explicit HTTP status handling instead of kr8s's
raise-and-reauthenticate path (a 403 on an Event must not tear down the shared
session), and an `ApiError` that says whether a retry can help. Objects are
plain dicts: the reconciler converts the ExternalSource with cattrs and builds
child objects itself.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import attrs
import httpx
import kr8s

JSON = dict[str, Any]


@attrs.frozen
class Resource:
    """Where a kind lives in the API: `version` is kr8s's "group/version" (or "v1")."""

    version: str
    plural: str
    kind: str


EXTERNAL_SOURCES = Resource("source.flux.oddkin.co/v1alpha1", "externalsources", "ExternalSource")
EXTERNAL_ARTIFACTS = Resource(
    "source.toolkit.fluxcd.io/v1", "externalartifacts", "ExternalArtifact"
)
SECRETS = Resource("v1", "secrets", "Secret")
EVENTS = Resource("v1", "events", "Event")

MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"


class ApiError(Exception):
    """A Kubernetes API call failed. 5xx, 429, 409 and transport errors are transient."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status

    @property
    def transient(self) -> bool:
        return self.status is None or self.status >= 500 or self.status in (409, 429)

    @property
    def conflict(self) -> bool:
        return self.status == 409


class KubeClient:
    """CRUD on namespaced resources through one kr8s `Api` (with timeouts set by its builder)."""

    def __init__(self, api: Any) -> None:
        self._api = api

    async def get(self, resource: Resource, namespace: str, name: str) -> JSON | None:
        """The object, or None when it does not exist."""
        return await self._call("GET", resource, namespace, name, missing_ok=True)

    async def create(self, resource: Resource, namespace: str, body: JSON) -> JSON:
        result = await self._call("POST", resource, namespace, "", body=body)
        assert result is not None
        return result

    async def patch(
        self,
        resource: Resource,
        namespace: str,
        name: str,
        patch: JSON | list[JSON],
        *,
        subresource: str | None = None,
    ) -> JSON:
        """Merge patch for a dict, JSON patch (RFC 6902) for a list."""
        content_type = JSON_PATCH if isinstance(patch, list) else MERGE_PATCH
        path = f"{name}/{subresource}" if subresource else name
        result = await self._call(
            "PATCH", resource, namespace, path, body=patch, content_type=content_type
        )
        assert result is not None
        return result

    async def delete(self, resource: Resource, namespace: str, name: str) -> None:
        """Delete; an object that is already gone is not an error."""
        await self._call("DELETE", resource, namespace, name, missing_ok=True)

    async def _call(
        self,
        method: str,
        resource: Resource,
        namespace: str,
        name: str,
        *,
        body: Any = None,
        content_type: str = "application/json",
        missing_ok: bool = False,
    ) -> JSON | None:
        url = f"{resource.plural}/{name}" if name else resource.plural
        kwargs: dict[str, Any] = {}
        if body is not None:
            kwargs["content"] = json.dumps(body, separators=(",", ":"))
            kwargs["headers"] = {"Content-Type": content_type}
        what = f"{method} {resource.kind} {namespace}/{name or '-'}"
        try:
            async with self._api.call_api(
                method,
                version=resource.version,
                namespace=namespace,
                url=url,
                raise_for_status=False,
                **kwargs,
            ) as response:
                status = response.status_code
                if status == 404 and missing_ok:
                    return None
                if status >= 400:
                    raise ApiError(f"{what}: {_status_message(response)}", status=status)
                data: JSON = response.json()
                return data
        except (httpx.TransportError, kr8s.APITimeoutError) as exc:
            raise ApiError(f"{what}: {type(exc).__name__}") from exc


def _status_message(response: httpx.Response) -> str:
    """The API server's Status message (never the request body), trimmed for logs."""
    try:
        payload = response.json()
    except ValueError:
        return f"HTTP {response.status_code}"
    if isinstance(payload, Mapping) and payload.get("message"):
        return f"HTTP {response.status_code}: {str(payload['message'])[:300]}"
    return f"HTTP {response.status_code}"
