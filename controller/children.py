"""The ExternalArtifact we publish for each ExternalSource (docs/architecture.md, step 14).

Same name and namespace as the source, controlled by it through an
ownerReference (so Kubernetes garbage-collects it too), `spec.sourceRef` with
all four fields (`flux trace` needs them), status written through `/status`.
An ExternalArtifact of that name that another owner controls is never
touched: that is a conflict the user must resolve.

The current object is read from the ExternalArtifact informer's cache, not
with a GET, and a write happens only when something differs: a reconcile that
republishes the same revision writes nothing, and the fast path uses the same
check to repair a child someone deleted or edited. The cache may lag behind
our own create by a watch event: a 409 on create falls back to one GET.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from controller import conditions as cond
from controller.api import names, reasons
from controller.patches import merge_diff
from controller.runtime.client import ApiError, KubeClient
from controller.runtime.keys import ObjectKey

JSON = dict[str, Any]
Lookup = Callable[[ObjectKey], JSON | None]


class ArtifactConflictError(Exception):
    """An ExternalArtifact of our name that another owner controls (transient: it may go)."""

    reason = reasons.ARTIFACT_CONFLICT
    transient = True
    retry_after: float | None = None

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def controlled_by(child: Mapping[str, Any], owner: Mapping[str, Any]) -> bool:
    uid = owner["metadata"].get("uid")
    return any(
        ref.get("controller") and ref.get("uid") == uid
        for ref in child.get("metadata", {}).get("ownerReferences") or ()
    )


def desired_metadata(source: Mapping[str, Any]) -> JSON:
    meta = source["metadata"]
    labels = {names.MANAGED_BY_LABEL: names.MANAGED_BY}
    if shard := (meta.get("labels") or {}).get(names.SHARD_LABEL):
        labels[names.SHARD_LABEL] = shard
    return {
        "labels": labels,
        "ownerReferences": [
            {
                "apiVersion": names.API_VERSION,
                "kind": names.KIND,
                "name": meta["name"],
                "uid": meta.get("uid"),
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ],
    }


def desired_spec(source: Mapping[str, Any]) -> JSON:
    meta = source["metadata"]
    return {
        "sourceRef": {
            "apiVersion": names.API_VERSION,
            "kind": names.KIND,
            "name": meta["name"],
            "namespace": meta["namespace"],
        }
    }


class ExternalArtifactSync:
    """Create, repair, mark and delete the ExternalArtifact of a source."""

    def __init__(self, kube: KubeClient, lookup: Lookup) -> None:
        self._kube = kube
        self._lookup = lookup
        #: per source: the (child, source) resourceVersions and the artifact last found in
        #: order, so a fast-path check of unchanged objects skips building the wanted state
        self._verified: dict[ObjectKey, tuple[tuple[Any, Any], Mapping[str, Any]]] = {}

    async def sync(self, source: JSON, artifact: Mapping[str, Any]) -> JSON:
        """Make the object and its status publish `artifact`; return the object."""
        key = ObjectKey(source["metadata"]["namespace"], source["metadata"]["name"])
        cached = self._lookup(key)
        if cached is not None:
            versions = (
                cached["metadata"].get("resourceVersion"),
                source["metadata"].get("resourceVersion"),
            )
            verified = self._verified.get(key)
            if verified is not None and verified[0] == versions and verified[1] == artifact:
                return cached  # neither object changed since it was found in order
            if _publishes(cached, source, artifact):
                self._verified[key] = (versions, artifact)  # replaced, never edited in place
                return cached  # the fast path's check: nothing to repair, nothing to build
        ea = await self._object(source)
        status = ea.get("status") or {}
        conditions = cond.set_condition(
            status.get("conditions") or [],
            type_=reasons.READY,
            status=reasons.TRUE,
            reason=reasons.SUCCEEDED,
            message=f"stored artifact for revision '{artifact['revision']}'",
            generation=ea["metadata"].get("generation", 1),
        )
        return await self._write_status(
            ea, {**status, "artifact": dict(artifact), "conditions": conditions}
        )

    async def mark_failed(self, source: JSON, *, reason: str, message: str) -> None:
        """Ready=False with the real reason; `status.artifact` stays (consumers keep using it)."""
        meta = source["metadata"]
        ea = self._lookup(ObjectKey(meta["namespace"], meta["name"]))
        if ea is None or not controlled_by(ea, source):
            return
        status = ea.get("status") or {}
        conditions = cond.set_condition(
            status.get("conditions") or [],
            type_=reasons.READY,
            status=reasons.FALSE,
            reason=reason,
            message=message,
            generation=ea["metadata"].get("generation", 1),
        )
        await self._write_status(ea, {**status, "conditions": conditions})

    def forget(self, key: ObjectKey) -> None:
        """The source is gone: drop what was remembered about its child."""
        self._verified.pop(key, None)

    async def delete(self, source: JSON) -> None:
        meta = source["metadata"]
        self.forget(ObjectKey(meta["namespace"], meta["name"]))
        ea = self._lookup(ObjectKey(meta["namespace"], meta["name"]))
        if ea is None:
            ea = await self._kube.get(names.EXTERNAL_ARTIFACTS, meta["namespace"], meta["name"])
        if ea is not None and controlled_by(ea, source):
            await self._kube.delete(names.EXTERNAL_ARTIFACTS, meta["namespace"], meta["name"])

    async def _object(self, source: JSON) -> JSON:
        """The child as wanted: created, or repaired when someone changed what we own."""
        meta = source["metadata"]
        namespace, name = meta["namespace"], meta["name"]
        want_meta, want_spec = desired_metadata(source), desired_spec(source)
        ea = self._lookup(ObjectKey(namespace, name))
        if ea is None:
            ea = await self._create(source, want_meta, want_spec)
        if not controlled_by(ea, source):
            raise ArtifactConflictError(
                f"ExternalArtifact '{namespace}/{name}' exists and is not controlled by this "
                "ExternalSource; delete or rename it"
            )
        if _drifted(ea, want_meta, want_spec):
            labels = dict(ea["metadata"].get("labels") or {}) | want_meta["labels"]
            ea = await self._kube.patch(
                names.EXTERNAL_ARTIFACTS,
                namespace,
                name,
                {
                    "metadata": {"labels": labels, "ownerReferences": want_meta["ownerReferences"]},
                    "spec": want_spec,
                },
            )
        return ea

    async def _create(self, source: JSON, want_meta: JSON, want_spec: JSON) -> JSON:
        meta = source["metadata"]
        body = {
            "apiVersion": names.EXTERNAL_ARTIFACT_API_VERSION,
            "kind": names.EXTERNAL_ARTIFACT_KIND,
            "metadata": {"name": meta["name"], "namespace": meta["namespace"], **want_meta},
            "spec": want_spec,
        }
        try:
            return await self._kube.create(names.EXTERNAL_ARTIFACTS, meta["namespace"], body)
        except ApiError as exc:
            if exc.status != 409:
                raise
        existing = await self._kube.get(names.EXTERNAL_ARTIFACTS, meta["namespace"], meta["name"])
        if existing is None:  # deleted again in between: the next reconcile creates it
            raise ApiError(
                f"ExternalArtifact {meta['namespace']}/{meta['name']} changed", status=409
            )
        return existing

    async def _write_status(self, ea: JSON, wanted: JSON) -> JSON:
        patch = merge_diff(ea.get("status") or {}, wanted)
        if not patch:
            return ea
        meta = ea["metadata"]
        return await self._kube.patch(
            names.EXTERNAL_ARTIFACTS,
            meta["namespace"],
            meta["name"],
            {"status": patch},
            subresource="status",
        )


def _publishes(ea: Mapping[str, Any], source: JSON, artifact: Mapping[str, Any]) -> bool:
    """Whether the child is ours, undrifted, Ready and publishing exactly `artifact`."""
    status = ea.get("status") or {}
    ready = cond.find(status.get("conditions") or [], reasons.READY)
    return (
        status.get("artifact") == artifact
        and ready is not None
        and ready.get("status") == reasons.TRUE
        and controlled_by(ea, source)
        and not _drifted(ea, desired_metadata(source), desired_spec(source))
    )


def _drifted(ea: Mapping[str, Any], want_meta: Mapping[str, Any], want_spec: Any) -> bool:
    labels = ea["metadata"].get("labels") or {}
    return (
        any(labels.get(k) != v for k, v in want_meta["labels"].items())
        or ea["metadata"].get("ownerReferences") != want_meta["ownerReferences"]
        or ea.get("spec") != want_spec
    )
