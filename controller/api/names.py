"""Every name the controller uses on the Kubernetes API, in one place.

Groups, versions, kinds and plurals of the resources we read and write, the
finalizer, the annotations and labels: the reconciler, the informers, the
watch predicates, the elector and the tests all import them from here, so a
name is spelled once (docs/architecture.md, "One set of API names").
Condition types and reasons live beside them in `controller.api.reasons`.
"""

from __future__ import annotations

from typing import Final

import attrs

GROUP: Final = "source.flux.oddkin.co"
VERSION: Final = "v1alpha1"
API_VERSION: Final = f"{GROUP}/{VERSION}"
KIND: Final = "ExternalSource"
PLURAL: Final = "externalsources"
SINGULAR: Final = "externalsource"
SHORT_NAME: Final = "exs"
CATEGORY: Final = "externalsources"

EXTERNAL_ARTIFACT_API_VERSION: Final = "source.toolkit.fluxcd.io/v1"
EXTERNAL_ARTIFACT_KIND: Final = "ExternalArtifact"

FINALIZER: Final = "source.flux.oddkin.co/finalizer"
REQUESTED_AT_ANNOTATION: Final = "reconcile.fluxcd.io/requestedAt"
REVISION_ANNOTATION: Final = "source.flux.oddkin.co/revision"
#: written on the Lease by the leader: where its artifact server answers (followers forward)
ARTIFACT_SERVER_ANNOTATION: Final = "source.flux.oddkin.co/artifact-server"

MANAGED_BY_LABEL: Final = "app.kubernetes.io/managed-by"
MANAGED_BY: Final = "externalsource-controller"
SHARD_LABEL: Final = "sharding.fluxcd.io/key"
#: Flux's opt-in label on Secrets/ConfigMaps whose changes should trigger reconciles
WATCH_LABEL: Final = "reconcile.fluxcd.io/watch"

#: the field manager of every write (managedFields say who owns what)
FIELD_MANAGER: Final = "externalsource-controller"


@attrs.frozen
class Resource:
    """Where a kind lives in the API: `group_version` is "group/version" (or "v1")."""

    group_version: str
    plural: str
    kind: str

    @property
    def api_version(self) -> str:
        return self.group_version

    def path(self, namespace: str | None, name: str = "", subresource: str = "") -> str:
        """The request path, e.g. /apis/g/v/namespaces/ns/plural/name/status."""
        root = "/api/v1" if self.group_version == "v1" else f"/apis/{self.group_version}"
        parts = [root]
        if namespace:
            parts.append(f"namespaces/{namespace}")
        parts.append(self.plural)
        if name:
            parts.append(name)
        if subresource:
            parts.append(subresource)
        return "/".join(parts)


EXTERNAL_SOURCES: Final = Resource(API_VERSION, PLURAL, KIND)
EXTERNAL_ARTIFACTS: Final = Resource(
    EXTERNAL_ARTIFACT_API_VERSION, "externalartifacts", EXTERNAL_ARTIFACT_KIND
)
SECRETS: Final = Resource("v1", "secrets", "Secret")
EVENTS: Final = Resource("v1", "events", "Event")
LEASES: Final = Resource("coordination.k8s.io/v1", "leases", "Lease")
