"""The resource types the emulator serves: built-ins the controller touches, and CRDs.

A `ResourceType` carries what the server needs to treat a resource right:
where it lives (group/version/plural, namespaced), whether `status` is a
subresource (then the main resource and `/status` each change only their own
part), whether `metadata.generation` is maintained (custom resources: yes;
Secrets, Events, Leases: no), and the compiled schema of a CRD. `from_crd()`
reads a CustomResourceDefinition dict (the served+storage version, or every
served version) the way `kubectl apply -f crd.yaml` would make it available.
"""

from __future__ import annotations

from typing import Any

import attrs

from tests.harness.schemas import ResourceSchema

Obj = dict[str, Any]


@attrs.frozen
class ResourceType:
    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool = True
    singular: str = ""
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    status_subresource: bool = False
    generation: bool = False
    schema: ResourceSchema | None = None

    @property
    def key(self) -> str:
        """`group/version/plural` (`v1/secrets` for the core group), kmock's resource notation."""
        return f"{self.group}/{self.version}/{self.plural}" if self.group else f"v1/{self.plural}"

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def qualified(self) -> str:
        """`widgets.example.com` as the server names a resource in error messages."""
        return f"{self.plural}.{self.group}" if self.group else self.plural


BUILTINS: tuple[ResourceType, ...] = (
    ResourceType("", "v1", "secrets", "Secret", singular="secret"),
    ResourceType("", "v1", "configmaps", "ConfigMap", singular="configmap"),
    ResourceType("", "v1", "events", "Event", singular="event"),
    ResourceType("events.k8s.io", "v1", "events", "Event", singular="event"),
    ResourceType("coordination.k8s.io", "v1", "leases", "Lease", singular="lease"),
)


def from_crd(crd: Obj) -> list[ResourceType]:
    """One `ResourceType` per served version of a CustomResourceDefinition."""
    spec = crd["spec"]
    names = spec["names"]
    types = []
    for version in spec["versions"]:
        if not version.get("served", True):
            continue
        openapi = (version.get("schema") or {}).get("openAPIV3Schema")
        types.append(
            ResourceType(
                group=spec["group"],
                version=version["name"],
                plural=names["plural"],
                kind=names["kind"],
                namespaced=spec.get("scope", "Namespaced") == "Namespaced",
                singular=names.get("singular", names["kind"].lower()),
                short_names=tuple(names.get("shortNames", ())),
                categories=tuple(names.get("categories", ())),
                status_subresource="status" in (version.get("subresources") or {}),
                generation=True,
                schema=ResourceSchema.from_openapi(openapi) if openapi else None,
            )
        )
    return types
