"""A Kubernetes API server for the controller's integration tests (real sockets).

It extends the runtime tests' `FakeApi` (resourceVersions, paginated LIST,
WATCH from a resourceVersion, bookmarks, 410, resourceVersion preconditions)
with the API-server semantics the reconciler depends on:

* the status subresource: a PATCH of the object ignores `status`, a PATCH of
  `/status` changes only `status`; `metadata.generation` moves on spec changes only;
* deletion with finalizers: DELETE sets `deletionTimestamp`, the object goes
  once a patch empties `metadata.finalizers`;
* schema validation: a create or patch whose result violates the CRD's
  openAPIV3Schema is rejected with 422 naming the field, for our CRD and for
  Flux's real ExternalArtifact CRD;
* a write log (`writes()`), so a test can assert that nothing was written.
"""

from __future__ import annotations

import copy
import datetime
import pathlib
from typing import Any

import jsonschema
import yaml
from aiohttp import web

from controller.api.crd import load_crd
from tests.integration.runtime.fakeapi import FakeApi, merge, status

Obj = dict[str, Any]
FLUX_CRD = (
    pathlib.Path(__file__).resolve().parents[3]
    / "shared"
    / "flux"
    / "externalartifacts.source.toolkit.fluxcd.io.yaml"
)
WRITE_KINDS = ("create", "patch", "delete")


def _structural(schema: Any) -> Any:
    """OpenAPI v3 structural schema → JSON Schema (drop x-kubernetes-* and formats jsonschema
    would not check the same way)."""
    if isinstance(schema, dict):
        out = {k: _structural(v) for k, v in schema.items() if not k.startswith("x-kubernetes")}
        if schema.get("x-kubernetes-int-or-string"):
            out.pop("type", None)
        if out.get("nullable"):
            out.pop("nullable")
            if "type" in out:
                out["type"] = [out["type"], "null"]
        return out
    if isinstance(schema, list):
        return [_structural(v) for v in schema]
    return schema


class ApiServer(FakeApi):
    def __init__(self) -> None:
        super().__init__()
        self.schemas: dict[str, Any] = {}
        for crd in (load_crd(), yaml.safe_load(FLUX_CRD.read_text())):
            schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
            self.schemas[crd["spec"]["names"]["plural"]] = _structural(schema)

    # semantics ------------------------------------------------------------
    def validate(self, plural: str, obj: Obj) -> str | None:
        schema = self.schemas.get(plural)
        if schema is None:
            return None
        error = jsonschema.exceptions.best_match(
            jsonschema.Draft7Validator(schema).iter_errors(obj)
        )
        if error is None:
            return None
        field = ".".join(str(p) for p in error.absolute_path) or "<root>"
        return f"{field}: {error.message}"

    def create(self, plural: str, obj: Obj) -> Obj:
        obj.pop("status", None)
        return super().create(plural, obj)

    def patch_object(
        self, plural: str, namespace: str, name: str, patch: Obj, *, subresource: str | None
    ) -> Obj:
        current = self.objects[(plural, namespace, name)]
        patch = copy.deepcopy(patch)
        if subresource == "status":
            patch = {"status": patch.get("status")}
        else:
            patch.pop("status", None)
        candidate = merge(copy.deepcopy(current), patch)
        candidate["metadata"].pop("resourceVersion", None)
        if problem := self.validate(plural, candidate):
            raise ValueError(problem)
        obj = self.patch(plural, namespace, name, patch)
        meta = obj["metadata"]
        if meta.get("deletionTimestamp") and not meta.get("finalizers"):
            super().delete(plural, namespace, name)
        return obj

    def delete(self, plural: str, namespace: str, name: str) -> None:
        obj = self.objects[(plural, namespace, name)]
        if obj["metadata"].get("finalizers"):
            if not obj["metadata"].get("deletionTimestamp"):
                now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
                self.patch(plural, namespace, name, {"metadata": {"deletionTimestamp": now}})
            return
        super().delete(plural, namespace, name)

    def writes(self) -> list[tuple[str, str]]:
        return [(kind, path) for _, kind, path, _ in self.requests if kind in WRITE_KINDS]

    def get(self, plural: str, namespace: str, name: str) -> Obj | None:
        """A snapshot of the stored object (later writes do not change it)."""
        return copy.deepcopy(self.objects.get((plural, namespace, name)))

    # HTTP -----------------------------------------------------------------
    def app(self) -> web.Application:
        app = super().app()
        for prefix in ("/apis/{group}/{version}", "/api/{version}"):
            app.router.add_route(
                "*", prefix + "/namespaces/{ns}/{plural}/{name}/{sub}", self._subresource
            )
        return app

    async def _collection(self, request: web.Request) -> web.StreamResponse:
        if request.method == "POST":
            body = await request.json()
            body.setdefault("metadata", {}).setdefault("namespace", request.match_info["ns"])
            if problem := self.validate(request.match_info["plural"], body):
                self._log("create", request)
                return status(422, "Invalid", problem)
        return await super()._collection(request)

    async def _item(self, request: web.Request) -> web.Response:
        if request.method != "PATCH":
            return await super()._item(request)
        return await self._patch(request, subresource=None)

    async def _subresource(self, request: web.Request) -> web.Response:
        return await self._patch(request, subresource=request.match_info["sub"])

    async def _patch(self, request: web.Request, *, subresource: str | None) -> web.Response:
        key = (request.match_info["plural"], request.match_info["ns"], request.match_info["name"])
        if (fault := self._log("patch", request)) is not None:
            return fault
        if key not in self.objects:
            return status(404, "NotFound")
        body = await request.json()
        wanted = body.get("metadata", {}).get("resourceVersion")
        if wanted is not None and wanted != self.objects[key]["metadata"]["resourceVersion"]:
            return status(409, "Conflict")
        try:
            return web.json_response(self.patch_object(*key, body, subresource=subresource))
        except ValueError as exc:
            return status(422, "Invalid", str(exc))
