"""The ExternalArtifact we publish for each ExternalSource (SPEC §3.2).

Same name and namespace as the source, controlled by it through an
ownerReference (so Kubernetes garbage-collects it too), `spec.sourceRef` with
all four fields (`flux trace` needs them), status written through `/status`.
An ExternalArtifact of that name that another owner controls is never
touched: that is a conflict the user must resolve.

Writes happen only when something differs from what is already there, so a
reconcile that republishes the same revision costs one GET and no write.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from controller import conditions as cond
from controller.api import reasons
from controller.resources import EXTERNAL_ARTIFACTS, KubeClient

MANAGED_BY = {"app.kubernetes.io/managed-by": "externalsource-controller"}
SHARDING_LABEL = "sharding.fluxcd.io/key"


class ArtifactConflictError(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def controlled_by(child: Mapping[str, Any], owner: Mapping[str, Any]) -> bool:
    uid = owner["metadata"].get("uid")
    return any(
        ref.get("controller") and ref.get("uid") == uid
        for ref in child.get("metadata", {}).get("ownerReferences") or ()
    )


def desired_metadata(source: Mapping[str, Any]) -> dict[str, Any]:
    meta = source["metadata"]
    labels = dict(MANAGED_BY)
    if shard := (meta.get("labels") or {}).get(SHARDING_LABEL):
        labels[SHARDING_LABEL] = shard
    return {
        "labels": labels,
        "ownerReferences": [
            {
                "apiVersion": reasons.API_VERSION,
                "kind": reasons.KIND,
                "name": meta["name"],
                "uid": meta.get("uid"),
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ],
    }


def desired_spec(source: Mapping[str, Any]) -> dict[str, Any]:
    meta = source["metadata"]
    return {
        "sourceRef": {
            "apiVersion": reasons.API_VERSION,
            "kind": reasons.KIND,
            "name": meta["name"],
            "namespace": meta["namespace"],
        }
    }


class ExternalArtifactSync:
    def __init__(self, kube: KubeClient) -> None:
        self._kube = kube

    async def sync(self, source: dict[str, Any], artifact: Mapping[str, Any]) -> dict[str, Any]:
        """Create or update the ExternalArtifact and its status; return it."""
        meta = source["metadata"]
        namespace, name = meta["namespace"], meta["name"]
        want_meta, want_spec = desired_metadata(source), desired_spec(source)
        ea = await self._kube.get(EXTERNAL_ARTIFACTS, namespace, name)
        if ea is None:
            ea = await self._kube.create(
                EXTERNAL_ARTIFACTS,
                namespace,
                {
                    "apiVersion": "source.toolkit.fluxcd.io/v1",
                    "kind": "ExternalArtifact",
                    "metadata": {"name": name, "namespace": namespace, **want_meta},
                    "spec": want_spec,
                },
            )
        elif not controlled_by(ea, source):
            raise ArtifactConflictError(
                f"ExternalArtifact '{namespace}/{name}' exists and is not controlled by this "
                "ExternalSource; delete or rename it"
            )
        elif _drifted(ea, want_meta, want_spec):
            labels = dict(ea["metadata"].get("labels") or {}) | want_meta["labels"]
            ea = await self._kube.patch(
                EXTERNAL_ARTIFACTS,
                namespace,
                name,
                {
                    "metadata": {
                        "labels": labels,
                        "ownerReferences": want_meta["ownerReferences"],
                    },
                    "spec": want_spec,
                },
            )
        status = ea.get("status") or {}
        generation = ea["metadata"].get("generation", 1)
        conditions = cond.set_condition(
            status.get("conditions") or [],
            type_=reasons.READY,
            status="True",
            reason=reasons.SUCCEEDED,
            message=f"stored artifact for revision '{artifact['revision']}'",
            generation=generation,
        )
        if status.get("artifact") != artifact or not cond.same(
            status.get("conditions") or [], conditions
        ):
            ea = await self._kube.patch(
                EXTERNAL_ARTIFACTS,
                namespace,
                name,
                {"status": {"artifact": dict(artifact), "conditions": conditions}},
                subresource="status",
            )
        return ea

    async def mark_failed(self, source: dict[str, Any], *, reason: str, message: str) -> None:
        """Ready=False on our ExternalArtifact; `status.artifact` stays (consumers keep it)."""
        meta = source["metadata"]
        ea = await self._kube.get(EXTERNAL_ARTIFACTS, meta["namespace"], meta["name"])
        if ea is None or not controlled_by(ea, source):
            return
        status = ea.get("status") or {}
        ea_reason = reason if reason == reasons.STORAGE_OPERATION_FAILED else reasons.FETCH_FAILED
        conditions = cond.set_condition(
            status.get("conditions") or [],
            type_=reasons.READY,
            status="False",
            reason=ea_reason,
            message=message,
            generation=ea["metadata"].get("generation", 1),
        )
        if not cond.same(status.get("conditions") or [], conditions):
            await self._kube.patch(
                EXTERNAL_ARTIFACTS,
                meta["namespace"],
                meta["name"],
                {"status": {"conditions": conditions}},
                subresource="status",
            )

    async def delete(self, source: dict[str, Any]) -> None:
        meta = source["metadata"]
        ea = await self._kube.get(EXTERNAL_ARTIFACTS, meta["namespace"], meta["name"])
        if ea is not None and controlled_by(ea, source):
            await self._kube.delete(EXTERNAL_ARTIFACTS, meta["namespace"], meta["name"])


def _drifted(ea: Mapping[str, Any], want_meta: Mapping[str, Any], want_spec: Any) -> bool:
    labels = ea["metadata"].get("labels") or {}
    return (
        any(labels.get(k) != v for k, v in want_meta["labels"].items())
        or ea["metadata"].get("ownerReferences") != want_meta["ownerReferences"]
        or ea.get("spec") != want_spec
    )
