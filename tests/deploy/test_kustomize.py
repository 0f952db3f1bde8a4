"""The kustomize base and overlays, rendered by the real `kubectl kustomize`:
every object parses, the pod is hardened, and the controller's own parser
accepts the Deployment args with the overlay's backend."""

from __future__ import annotations

from typing import Any

import pytest

from controller.config import load_config
from tests.deploy.rendering import (
    OVERLAYS,
    assert_hardened,
    container,
    find,
    kustomize,
    manager_args,
    only,
    render_chart,
    setting,
    spec_of,
)

BACKENDS = {"base": "memory", "overlays/filesystem": "filesystem", "overlays/s3": "s3"}


def _env(deployment: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container(deployment, "manager")["env"]}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_renders_a_hardened_controller(overlay: str) -> None:
    objects = kustomize(overlay)
    deployment = only(objects, "Deployment")
    assert_hardened(deployment)
    plain_env = {k: v.get("value", "") for k, v in _env(deployment).items()}
    config = load_config(manager_args(deployment), plain_env)
    assert config.storage.storage_backend == BACKENDS[overlay]
    assert config.controller.enable_leader_election is True
    assert config.storage.storage_adv_addr == (
        "externalsource-controller.externalsource-system.svc.cluster.local."
    )
    manager = container(deployment, "manager")
    assert manager["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert manager["readinessProbe"]["httpGet"]["path"] == "/readyz"
    for obj in objects:
        if obj["kind"] not in (
            "Namespace",
            "ClusterRole",
            "ClusterRoleBinding",
            "CustomResourceDefinition",
        ):
            assert obj["metadata"]["namespace"] == "externalsource-system", obj["metadata"]
    crds = {c["spec"]["names"]["kind"] for c in find(objects, "CustomResourceDefinition")}
    assert crds == {"ExternalSource"}, "ship our CRD, never Flux's ExternalArtifact"
    service = only(objects, "Service")
    assert {"port": 80, "targetPort": "http"}.items() <= service["spec"]["ports"][0].items()
    policy = only(objects, "NetworkPolicy")
    assert policy["spec"]["policyTypes"] == ["Ingress"]


def test_filesystem_overlay_mounts_a_claim() -> None:
    objects = kustomize("overlays/filesystem")
    deployment = only(objects, "Deployment")
    claim = only(objects, "PersistentVolumeClaim")
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    assert volumes["data"]["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]
    config = load_config(manager_args(deployment), {})
    mounts = {m["mountPath"] for m in container(deployment, "manager")["volumeMounts"]}
    assert config.storage.storage_path in mounts
    assert deployment["spec"]["strategy"]["type"] == "Recreate"


def test_s3_overlay_takes_credentials_from_a_secret() -> None:
    deployment = only(kustomize("overlays/s3"), "Deployment")
    config = load_config(manager_args(deployment), {})
    assert config.storage.storage_backend == "s3"
    mounts = {m["mountPath"]: m["name"] for m in container(deployment, "manager")["volumeMounts"]}
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    secret = volumes[mounts[setting(config, spec_of("s3-credentials-dir"))]]["secret"]
    assert secret["secretName"] == "externalsource-s3-credentials"
    assert {i["path"] for i in secret["items"]} == {"accesskey", "secretkey"}
    assert not [e for e in _env(deployment).values() if "secretKeyRef" in e.get("valueFrom", {})]


def test_rbac_grants_the_same_as_the_chart() -> None:
    """One set of permissions: extending the chart's RBAC means extending the base's too."""
    base = kustomize("base")
    chart, _ = render_chart()
    assert (
        only(base, "ClusterRole")["rules"]
        == (find(chart, "ClusterRole", "exs-externalsource-controller")[0]["rules"])
    )
    assert (
        only(base, "Role")["rules"]
        == (find(chart, "Role", "exs-externalsource-controller-leader-election")[0]["rules"])
    )
