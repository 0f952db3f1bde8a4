"""ExternalSource helpers for e2e tests: build, apply, read, wait, request a reconcile.

All reads go to the real API server as admin (`ControlPlane.get`), all writes
through `kubectl` (what a user types), so a test asserts what a user sees.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any

from tests.e2e.controlplane import ControlPlane, wait_for

GROUP = "source.flux.oddkin.co"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
ARTIFACT_API_VERSION = "source.toolkit.fluxcd.io/v1"
FINALIZER = "source.flux.oddkin.co/finalizer"
REQUESTED_AT = "reconcile.fluxcd.io/requestedAt"


def external_source(
    name: str,
    *,
    namespace: str,
    url: str,
    interval: str = "1m",
    labels: Mapping[str, str] | None = None,
    **spec: Any,
) -> dict[str, Any]:
    """An ExternalSource manifest with an http generator (extra `spec` keys merged in)."""
    metadata: dict[str, Any] = {"name": name, "namespace": namespace}
    if labels:
        metadata["labels"] = dict(labels)
    return {
        "apiVersion": API_VERSION,
        "kind": "ExternalSource",
        "metadata": metadata,
        "spec": {"interval": interval, "generator": {"type": "http", "http": {"url": url}}, **spec},
    }


def source_path(namespace: str, name: str = "") -> str:
    base = f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/externalsources"
    return f"{base}/{name}" if name else base


def artifact_path(namespace: str, name: str = "") -> str:
    base = f"/apis/{ARTIFACT_API_VERSION}/namespaces/{namespace}/externalartifacts"
    return f"{base}/{name}" if name else base


def get_source(plane: ControlPlane, namespace: str, name: str) -> dict[str, Any] | None:
    """The ExternalSource as the API server has it (None when gone)."""
    return plane.get(source_path(namespace, name))


def get_artifact(plane: ControlPlane, namespace: str, name: str) -> dict[str, Any] | None:
    """The ExternalArtifact as the API server has it (None when gone)."""
    return plane.get(artifact_path(namespace, name))


def condition(obj: Mapping[str, Any], kind: str) -> dict[str, Any] | None:
    """The condition of type `kind` in `obj.status.conditions`, or None."""
    for cond in obj.get("status", {}).get("conditions", []):
        if cond.get("type") == kind:
            return dict(cond)
    return None


def wait_condition(
    plane: ControlPlane,
    namespace: str,
    name: str,
    *,
    kind: str = "Ready",
    status: str = "True",
    reason: str | None = None,
    current: bool = True,
    timeout: float = 30.0,
) -> dict[str, Any]:
    """Wait until the source has condition `kind` with `status` (and `reason`); the source.

    With `current`, the condition must also be about the latest spec
    (`observedGeneration` of the condition equals `metadata.generation`).
    """

    def probe() -> dict[str, Any] | None:
        obj = get_source(plane, namespace, name)
        if obj is None:
            return None
        cond = condition(obj, kind)
        if cond is None or cond.get("status") != status:
            return None
        if reason is not None and cond.get("reason") != reason:
            return None
        generation = obj["metadata"].get("generation")
        if current and cond.get("observedGeneration") not in (None, generation):
            return None
        return obj

    what = f"{namespace}/{name} {kind}={status}" + (f" reason {reason}" if reason else "")
    return wait_for(probe, timeout=timeout, what=what)


def wait_revision(
    plane: ControlPlane,
    namespace: str,
    name: str,
    *,
    not_revision: str | None = None,
    timeout: float = 30.0,
) -> dict[str, Any]:
    """Wait until the source is Ready with a published artifact whose revision differs
    from `not_revision`; the source."""

    def probe() -> dict[str, Any] | None:
        obj = get_source(plane, namespace, name)
        if obj is None:
            return None
        artifact = obj.get("status", {}).get("artifact")
        ready = condition(obj, "Ready")
        if not artifact or ready is None or ready.get("status") != "True":
            return None
        return obj if artifact.get("revision") != not_revision else None

    return wait_for(probe, timeout=timeout, what=f"a new revision of {namespace}/{name}")


def request_reconcile(plane: ControlPlane, namespace: str, name: str) -> str:
    """Set `reconcile.fluxcd.io/requestedAt` (as `flux reconcile` does); the value set."""
    value = datetime.datetime.now(datetime.UTC).isoformat()
    plane.kubectl(
        "annotate",
        "--overwrite",
        "-n",
        namespace,
        f"externalsource/{name}",
        f"{REQUESTED_AT}={value}",
    )
    return value
