"""The Kubernetes API emulator every controller test talks to: kmock's emulator, made strict.

kmock 0.8's `KubernetesEmulator` gives us the HTTP plumbing we keep: request
parsing into resource/namespace/name/subresource, discovery documents, Status
error rendering, and its DSL for scripted reactions (`emulator[...] << 409`),
which is how faults are injected. What it lacks is the API-server contract a
controller depends on (resourceVersions, generation, the status subresource,
preconditions, selectors, schema validation, watch-from-resourceVersion), so
this subclass:

* replaces kmock's state handling: `_handle` skips kmock's "mutate before
  reacting" step and our fallback handlers run the `Store` pipeline instead.
  User reactions (injected faults) have priority over the fallbacks, so an
  injected 409 or 500 leaves the state untouched, like a real failed write;
* adds PUT (kmock maps none), the `/version/`, `/api/`, `/apis/` trailing-slash
  paths kr8s requests, and a `/version` of 1.33 (kr8s warns outside 1.28-1.35);
* serves the built-ins the controller touches (Secrets, ConfigMaps, core and
  events.k8s.io Events, Leases) and any CRD given to `install_crd()`;
* records every request in `requests` (`writes()` for the mutating ones,
  `requests_of(verb, resource)` to count one kind);
* lets tests script the next WATCH requests (`script_watches()`: 410, an
  immediate close, or silence) and take every injected fault and script back
  (`clear_faults()`), so a test can model an outage that ends.

Patch types: a JSON patch (list body) is RFC 6902; merge patches are RFC 7386;
strategic merge patches are refused with 415 for custom resources (as the
server does) and treated as merge patches for built-ins; server-side apply
(`application/apply-patch+yaml`) is treated as a merge patch that creates a
missing object; there is no field ownership (managedFields) nor conflicts.
Built-ins are not schema-validated; namespaces need not exist; `dryRun` and
list `resourceVersion`/`resourceVersionMatch` parameters are ignored (a list is
always served from the latest state; continue tokens are not snapshots).

Private kmock API used (kmock is pinned to 0.8): `KubernetesEmulator._handle`,
the `_serve_*` fallback methods it registers in `__attrs_post_init__`,
`KubernetesScaffold._serve_apis/_serve_api/_serve_server_version`,
`rendering.Request` fields, `Root._payloads` (the reactions, to withdraw
injected faults), and `Request._raw_request` (to notice a client
that went away during a watch). Core v1 Namespaces are not served: kmock's
path parser fails on `/api/v1/namespaces`.
"""

from __future__ import annotations

import functools
import json
import pathlib
from collections.abc import Callable
from typing import Any

import aiohttp.web
import attrs
import kmock
import yaml
from kmock._internal import apps, rendering
from typing_extensions import override

from tests.harness.faults import fault_matcher, fault_response
from tests.harness.requestlog import LoggedRequest, RequestLog
from tests.harness.resources import BUILTINS, ResourceType, from_crd
from tests.harness.selectors import Selector, SelectorError
from tests.harness.store import Store, api_error, json_patch, merge_patch, not_found
from tests.harness.watching import WatchHub

Obj = dict[str, Any]
KUBERNETES_VERSION = {
    "major": "1",
    "minor": "33",
    "gitVersion": "v1.33.0",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2025-04-23T00:00:00Z",
    "goVersion": "go1.24.2",
    "compiler": "gc",
    "platform": "linux/amd64",
}
_JSON_PATCH = "application/json-patch+json"
_APPLY_PATCH = "application/apply-patch+yaml"
_STRATEGIC_PATCH = "application/strategic-merge-patch+json"


@attrs.define(kw_only=True)
class Emulator(kmock.KubernetesEmulator):
    """A stateful Kubernetes API server in-process; serve it with `kmock.Server(emulator)`."""

    store: Store = attrs.field(factory=Store, init=False)
    types: dict[str, ResourceType] = attrs.field(factory=dict, init=False)
    log: RequestLog = attrs.field(factory=RequestLog, init=False)
    hub: WatchHub = attrs.field(init=False)
    _faults: list[object] = attrs.field(factory=list, init=False)  # kmock reactions

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self.hub = WatchHub(self.store)
        self.fallback["get /version/"] << self._serve_server_version
        self.fallback["get /api/"] << self._serve_api
        self.fallback["get /apis/"] << self._serve_apis
        self.fallback[kmock.method.PUT] << self._serve_replace
        for rtype in BUILTINS:
            self.add_resource(rtype)

    # registration -----------------------------------------------------------
    def add_resource(self, rtype: ResourceType) -> ResourceType:
        """Serve a resource type (and list it in discovery)."""
        self.types[rtype.key] = rtype
        self.resources[rtype.key] = kmock.ResourceInfo(
            kind=rtype.kind,
            singular=rtype.singular or rtype.kind.lower(),
            namespaced=rtype.namespaced,
            shortnames=set(rtype.short_names),
            categories=set(rtype.categories),
            subresources={"status"} if rtype.status_subresource else set(),
            verbs={"create", "delete", "get", "list", "patch", "update", "watch"},
        )
        return rtype

    def install_crd(self, crd: Obj | str | pathlib.Path) -> list[ResourceType]:
        """Register a CustomResourceDefinition (a dict, or a YAML file of one or more CRDs)."""
        if isinstance(crd, dict):
            docs = [crd]
        else:
            docs = [d for d in yaml.safe_load_all(pathlib.Path(crd).read_text()) if d]
        installed = []
        for doc in docs:
            if doc.get("kind") != "CustomResourceDefinition":
                continue
            compiled = _compile_crd(json.dumps(doc, sort_keys=True))
            installed += [self.add_resource(rtype) for rtype in compiled]
        return installed

    def resource_type(self, ref: str) -> ResourceType:
        """Look a served type up by key (`example.com/v1/widgets`), plural or `plural.group`."""
        if ref in self.types:
            return self.types[ref]
        found = [t for t in self.types.values() if ref in (t.plural, t.qualified)]
        if len(found) != 1:
            raise KeyError(f"{ref!r} matches {len(found)} served resource types")
        return found[0]

    # direct state access for tests ------------------------------------------
    def get_object(self, ref: str, namespace: str | None, name: str) -> Obj | None:
        """The stored object (a copy), or None."""
        return self.store.get(self.resource_type(ref), namespace, name)

    def list_objects(self, ref: str, namespace: str | None = None) -> list[Obj]:
        """Stored objects of a type (copies), optionally of one namespace."""
        return self.store.select(self.resource_type(ref), Selector(namespace=namespace))

    def create_object(self, ref: str, obj: Obj) -> Obj:
        """Create an object as a client would (stamped, defaulted, validated), without HTTP."""
        namespace = (obj.get("metadata") or {}).get("namespace")
        return self.store.create(self.resource_type(ref), namespace, obj)

    def patch_object(
        self,
        ref: str,
        namespace: str | None,
        name: str,
        patch: Obj | list[Any],
        *,
        subresource: str | None = None,
    ) -> Obj:
        """Patch as another client would (a user editing the spec, ...), without HTTP.

        A dict is a merge patch, a list a JSON patch; watchers see the change.
        """
        rtype = self.resource_type(ref)
        change = _change_for(patch, rtype, name)
        return self.store.update(rtype, namespace, name, change=change, subresource=subresource)

    def delete_object(self, ref: str, namespace: str | None, name: str) -> Obj:
        """Delete as another client would (finalizers respected), without HTTP."""
        return self.store.delete(self.resource_type(ref), namespace, name)

    # watches and history ----------------------------------------------------
    @property
    def bookmark_interval(self) -> float:
        """Seconds between BOOKMARK events on watches that allow them (default 60, as kube)."""
        return self.hub.bookmark_interval

    @bookmark_interval.setter
    def bookmark_interval(self, value: float) -> None:
        self.hub.bookmark_interval = value

    def bookmark(self) -> None:
        """Send a BOOKMARK (current resourceVersion) now on every watch that allows them."""
        self.hub.bookmark()

    def close_watches(self, *, gone: bool = False) -> int:
        """End every open watch stream; with `gone=True` each first gets a 410 ERROR event."""
        return self.hub.close_all(gone=gone)

    def compact(self) -> int:
        """Forget history: watches from an older resourceVersion now get 410 Gone."""
        return self.store.compact()

    @property
    def resource_version(self) -> int:
        return self.store.rv

    # request log and faults -------------------------------------------------
    @property
    def requests(self) -> list[LoggedRequest]:
        return list(self.log.entries)

    def writes(self) -> list[LoggedRequest]:
        """Mutating requests (POST/PUT/PATCH/DELETE) so far, injected failures included."""
        return self.log.writes()

    def requests_of(self, verb: str, resource: str | None = None) -> list[LoggedRequest]:
        """Logged requests with this RBAC verb (get, list, watch, ...), optionally of one plural."""
        return self.log.of(verb, resource)

    def clear_log(self) -> None:
        self.log.clear()

    def inject_error(
        self,
        status: int,
        *,
        verb: str | None = None,
        resource: str | None = None,
        namespace: str | None = None,
        name: str | None = None,
        subresource: str | None = None,
        times: int | None = 1,
        reason: str | None = None,
        message: str | None = None,
        retry_after: int | None = None,
    ) -> None:
        """Answer the next `times` matching requests (None: all) with a Status error.

        `verb` is the RBAC verb (get, list, watch, create, patch, update, delete);
        `resource` a plural or `plural.group`. The state is not touched.
        """
        matches = fault_matcher(
            verb=verb, resource=resource, namespace=namespace, name=name, subresource=subresource
        )
        response = fault_response(status, reason=reason, message=message, retry_after=retry_after)
        view = self[matches] if times is None else self[matches][:times]
        self._faults.append(view << response)

    def script_watches(
        self, action: str, *, resource: str | None = None, times: int | None = 1
    ) -> None:
        """The next `times` WATCH requests (None: all) of `resource` get "gone" (a 410
        ERROR event), "close" (an empty stream) or "silent" (no events nor bookmarks)."""
        self.hub.script(action, resource=resource, times=times)

    def clear_faults(self) -> None:
        """Withdraw every injected error and watch script: the outage is over."""
        faults = {id(fault) for fault in self._faults}
        self._payloads[:] = [p for p in self._payloads if id(p) not in faults]
        self._faults.clear()
        self.hub.unscript()

    # the HTTP side ----------------------------------------------------------
    @override
    async def _handle(self, request: rendering.Request) -> aiohttp.web.StreamResponse:
        entry = self.log.record(request)
        try:
            # Skip KubernetesEmulator._handle (it mutates kmock's own store before any reaction).
            response = await apps.RawHandler._handle(self, request)
        except kmock.KubernetesError as exc:
            entry.status = exc.status
            raise
        except Exception:
            entry.status = 500
            raise
        entry.status = response.status
        return response

    @override
    async def _serve_server_version(self, request: rendering.Request) -> rendering.Payload:
        return dict(KUBERNETES_VERSION)

    def _rtype(self, request: rendering.Request) -> ResourceType:
        res = request.resource
        rtype = self.types.get(f"{res.group}/{res.version}/{res.plural}" if res else "")
        if rtype is None and res is not None and res.group == "":
            rtype = self.types.get(f"v1/{res.plural}")
        if rtype is None:
            raise api_error(404, "NotFound", "the server could not find the requested resource")
        if request.subresource not in (None, "status") or (
            request.subresource == "status" and not rtype.status_subresource
        ):
            raise api_error(404, "NotFound", "the server could not find the requested resource")
        return rtype

    def _selector(self, request: rendering.Request, rtype: ResourceType) -> Selector:
        try:
            return Selector.parse(
                label_selector=request.params.get("labelSelector", ""),
                field_selector=request.params.get("fieldSelector", ""),
                namespace=request.namespace if rtype.namespaced else None,
                name=request.name,
            )
        except SelectorError as exc:
            raise api_error(400, "BadRequest", str(exc)) from exc

    @override
    async def _serve_list(self, request: rendering.Request) -> rendering.Payload:
        if request.resource is not None and request.resource.plural is None:
            # `/apis/group/` and `/apis/group/version/` (kr8s adds the slash): discovery.
            if request.resource.version is None:
                return await self._serve_group(request)
            return await self._serve_version(request)
        rtype = self._rtype(request)
        items, meta = self.store.page(
            rtype,
            self._selector(request, rtype),
            limit=int(request.params.get("limit") or 0),
            token=request.params.get("continue", ""),
        )
        return {
            "apiVersion": rtype.api_version,
            "kind": f"{rtype.kind}List",
            "metadata": meta,
            "items": items,
        }

    @override
    async def _serve_watch(  # type: ignore[override]  # a Response: headers + stream
        self, request: rendering.Request
    ) -> rendering.Payload:
        rtype = self._rtype(request)
        params = request.params
        timeout = params.get("timeoutSeconds")

        def disconnected() -> bool:
            raw = request._raw_request
            transport = raw.transport if raw is not None else None
            return transport is None or transport.is_closing()

        events = self.hub.stream(
            rtype,
            self._selector(request, rtype),
            since=params.get("resourceVersion", ""),
            bookmarks=params.get("allowWatchBookmarks") == "true",
            timeout=float(timeout) if timeout else None,
            disconnected=disconnected,
        )
        return rendering.Response(headers={"Content-Type": "application/json"}, payload=events)

    @override
    async def _serve_fetch(self, request: rendering.Request) -> rendering.Payload:
        rtype = self._rtype(request)
        obj = self.store.get(rtype, request.namespace, request.name or "")
        if obj is None:
            raise not_found(rtype, request.name or "")
        return obj

    @override
    async def _serve_create(self, request: rendering.Request) -> rendering.Payload:
        rtype = self._rtype(request)
        obj = self.store.create(rtype, request.namespace, request.data)
        return rendering.Response(status=201, payload=obj)

    @override
    async def _serve_update(self, request: rendering.Request) -> rendering.Payload:
        rtype = self._rtype(request)
        content_type = request.headers.get("Content-Type", "").split(";")[0].strip()
        body = request.data
        if body is None and request.text:
            body = yaml.safe_load(request.text)  # apply patches may be YAML
        name = request.name or ""
        if content_type == _STRATEGIC_PATCH and rtype.schema is not None:
            raise api_error(
                415, "UnsupportedMediaType", "strategic merge patch is not supported for CRDs"
            )
        if content_type == _JSON_PATCH and not isinstance(body, list):
            raise api_error(400, "BadRequest", "a JSON patch must be a list of operations")
        change = _change_for(body, rtype, name)
        if content_type == _APPLY_PATCH and self.store.get(rtype, request.namespace, name) is None:
            return self.store.create(rtype, request.namespace, body)  # SSA creates, too
        return self.store.update(
            rtype, request.namespace, name, change=change, subresource=request.subresource
        )

    async def _serve_replace(self, request: rendering.Request) -> rendering.Payload:
        if request.resource is None or request.name is None:
            raise api_error(405, "MethodNotAllowed", "PUT needs an object URL")
        rtype = self._rtype(request)
        body = request.data
        if not isinstance(body, dict):
            raise api_error(400, "BadRequest", "the body of the request was not an object")
        return self.store.update(
            rtype,
            request.namespace,
            request.name,
            change=lambda old: body,
            subresource=request.subresource,
        )

    @override
    async def _serve_delete(self, request: rendering.Request) -> rendering.Payload:
        rtype = self._rtype(request)
        options = request.data if isinstance(request.data, dict) else None
        return self.store.delete(rtype, request.namespace, request.name or "", options=options)


def _change_for(patch: Any, rtype: ResourceType, name: str) -> Callable[[Obj], Obj]:
    """A list body is a JSON patch, a dict a merge patch (merge, strategic, apply)."""
    if isinstance(patch, list):
        return lambda old: json_patch(old, patch, rtype, name)
    if isinstance(patch, dict):
        return lambda old: merge_patch(old, patch)
    raise api_error(400, "BadRequest", "the patch is not a JSON object or a JSON patch")


@functools.lru_cache(maxsize=32)
def _compile_crd(crd_json: str) -> tuple[ResourceType, ...]:
    """CEL compilation is slow (~0.1 s a CRD); tests install the same CRDs again and again."""
    return tuple(from_crd(json.loads(crd_json)))
