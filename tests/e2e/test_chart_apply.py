"""The Helm chart and the kustomize manifests applied to a real API server, and the chart's
RBAC proven sufficient by running the controller with nothing else.

Rendering tests (`tests/deploy/`) check what the templates say; only an API
server checks that every object is accepted (schemas, RBAC escalation rules,
PDB/NetworkPolicy validation, the CRD itself). Each documented value
combination (docs/installation.md) is rendered with the real Helm engine and
applied with `kubectl apply --server-side` into its own namespace; minimal
Prometheus Operator CRDs are installed so ServiceMonitor and PrometheusRule are
checked too. Then the controller runs as a local process with a token of the
chart's ServiceAccount (`kubectl create token`), so its requests are authorised
by exactly the chart's Roles: a source with a header Secret reaches Ready and is
deleted cleanly, and the audit log must show no request of that ServiceAccount
refused (403) — a missing verb fails here, not in a user's cluster.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
import yaml

from tests.deploy.rendering import (
    FILESYSTEM,
    FILESYSTEM_RWX,
    MONITORING,
    OVERLAYS,
    S3,
    Obj,
    kustomize,
    manager_args,
    only,
    render_chart,
)
from tests.e2e.conftest import MakeController
from tests.e2e.controlplane import ControlPlane, write_kubeconfig
from tests.e2e.processes import ThreadedOrigin
from tests.e2e.sources import (
    external_source,
    get_artifact,
    get_source,
    wait_condition,
)

FIELD_MANAGER = "externalsource-e2e"
KR8S_VERSION_EVENT = "kubernetes version outside the range kr8s is tested with"
#: the documented installs: (id, values)
COMBINATIONS: list[tuple[str, dict[str, Any]]] = [
    ("defaults", {}),
    ("memory-monitoring", {**MONITORING}),
    ("filesystem", {"storage": FILESYSTEM}),
    ("filesystem-rwx-3-monitoring", {"replicas": 3, "storage": FILESYSTEM_RWX, **MONITORING}),
    ("s3-monitoring", {"storage": S3, **MONITORING}),
    ("s3-3", {"replicas": 3, "storage": S3}),
    ("single-namespace", {"config": {"watch-all-namespaces": False}}),
    ("no-hooks", {"hooks": {"enabled": False}}),
]
#: flags of the chart's manager container that only make sense inside the pod
POD_ONLY_FLAGS = (
    "--metrics-addr=",
    "--health-addr=",
    "--storage-addr=",
    "--storage-adv-addr=",
    "--storage-path=",
    "--hooks-",
)


def monitoring_crd(kind: str, plural: str) -> Obj:
    """A minimal Prometheus Operator CRD: the group/kind/scope, any content accepted."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.monitoring.coreos.com"},
        "spec": {
            "group": "monitoring.coreos.com",
            "scope": "Namespaced",
            "names": {"kind": kind, "plural": plural, "singular": kind.lower()},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "x-kubernetes-preserve-unknown-fields": True,
                        }
                    },
                }
            ],
        },
    }


@pytest.fixture(scope="module")
def monitoring_crds(control_plane: ControlPlane) -> None:
    control_plane.apply(
        monitoring_crd("ServiceMonitor", "servicemonitors"),
        monitoring_crd("PrometheusRule", "prometheusrules"),
    )
    for plural in ("servicemonitors", "prometheusrules"):
        control_plane.kubectl(
            "wait",
            "--for=condition=Established",
            f"crd/{plural}.monitoring.coreos.com",
            "--timeout=30s",
        )


def release_name(namespace: str) -> str:
    return "r" + namespace.rsplit("-", 1)[-1]


def apply_server_side(plane: ControlPlane, objects: list[Obj]) -> list[str]:
    """`kubectl apply --server-side` of `objects`; the objects the API server reports applied."""
    result = plane.kubectl(
        "apply",
        "--server-side",
        f"--field-manager={FIELD_MANAGER}",
        "-f",
        "-",
        input=yaml.safe_dump_all(objects),
    )
    return [line.split()[0] for line in result.stdout.splitlines() if "serverside-applied" in line]


def expected_names(objects: list[Obj]) -> list[str]:
    """`kubectl apply` output names (`kind.group/name`) of `objects`."""
    names = []
    for obj in objects:
        group = obj["apiVersion"].rpartition("/")[0]
        kind = obj["kind"].lower() + (f".{group}" if group else "")
        names.append(f"{kind}/{obj['metadata']['name']}")
    return names


@pytest.fixture
def chart_release(control_plane: ControlPlane, e2e_namespace: str) -> Iterator[str]:
    """A release name unique to the test; its cluster-scoped objects deleted afterwards."""
    release = release_name(e2e_namespace)
    yield release
    for kind in ("clusterrolebindings", "clusterroles"):
        control_plane.kubectl(
            "delete",
            kind,
            "-l",
            f"app.kubernetes.io/instance={release}",
            "--ignore-not-found",
            check=False,
        )


@pytest.mark.parametrize(("values"), [v for _, v in COMBINATIONS], ids=[i for i, _ in COMBINATIONS])
def test_every_chart_object_is_accepted(
    control_plane: ControlPlane,
    monitoring_crds: None,
    e2e_namespace: str,
    chart_release: str,
    values: dict[str, Any],
) -> None:
    objects, _ = render_chart(values, release=chart_release, namespace=e2e_namespace)
    applied = apply_server_side(control_plane, objects)
    assert sorted(applied) == sorted(expected_names(objects))
    deployment = only(objects, "Deployment")
    stored = control_plane.get(
        f"/apis/apps/v1/namespaces/{e2e_namespace}/deployments/{deployment['metadata']['name']}"
    )
    assert stored is not None
    pod = stored["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["automountServiceAccountToken"] is False


#: namespaced kinds of the kustomize install, removed after the test
KUSTOMIZE_WORKLOAD = (
    "Deployment",
    "Service",
    "ConfigMap",
    "NetworkPolicy",
    "PersistentVolumeClaim",
)


def test_every_kustomize_object_is_accepted_and_overlays_switch_in_place(
    control_plane: ControlPlane,
) -> None:
    """base, then filesystem, then s3 on the same live objects, as Flux applies (server-side)."""
    applied_objects: list[Obj] = []
    try:
        for overlay in OVERLAYS:
            objects = kustomize(overlay)
            applied_objects.extend(objects)
            applied = apply_server_side(control_plane, objects)
            assert sorted(applied) == sorted(expected_names(objects)), overlay
            deployment = only(objects, "Deployment")
            stored = control_plane.get(
                "/apis/apps/v1/namespaces/"
                f"{deployment['metadata']['namespace']}/deployments/{deployment['metadata']['name']}"
            )
            assert stored is not None
            rendered_strategy = deployment["spec"]["strategy"]
            assert stored["spec"]["strategy"]["type"] == rendered_strategy["type"], overlay
            assert ("rollingUpdate" in stored["spec"]["strategy"]) == (
                "rollingUpdate" in rendered_strategy
            ), overlay
    finally:
        # the Namespace, ServiceAccount, RBAC and CRD stay: the e2e controllers use them
        for obj in {
            (o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]): o
            for o in applied_objects
        }.values():
            if obj["kind"] in KUSTOMIZE_WORKLOAD:
                control_plane.kubectl(
                    "delete",
                    obj["kind"].lower(),
                    obj["metadata"]["name"],
                    "-n",
                    obj["metadata"]["namespace"],
                    "--ignore-not-found",
                    check=False,
                )


def service_account_kubeconfig(
    plane: ControlPlane, *, namespace: str, service_account: str
) -> os.PathLike[str]:
    token = plane.kubectl(
        "create", "token", service_account, "-n", namespace, "--duration=1h"
    ).stdout.strip()
    return write_kubeconfig(
        plane.directory / f"{namespace}-{service_account}.kubeconfig",
        server=plane.server,
        ca_file=plane.ca_file,
        user={"token": token},
        namespace=namespace,
    )


def refused_requests(plane: ControlPlane, *, user: str, since: int) -> list[str]:
    refused = []
    for event in plane.audit_events(since=since):
        if event.get("user", {}).get("username") != user:
            continue
        if event.get("responseStatus", {}).get("code") != 403:
            continue
        ref = event.get("objectRef", {})
        resource = ref.get("resource", "") + (
            "/" + ref["subresource"] if ref.get("subresource") else ""
        )
        refused.append(
            f"{event.get('verb')} {ref.get('apiGroup', '')}/{resource} "
            f"{ref.get('namespace', '')}/{ref.get('name', '')}"
        )
    return refused


def pod_flags(deployment: Mapping[str, Any]) -> list[str]:
    return [a for a in manager_args(deployment) if not a.startswith(POD_ONLY_FLAGS)]


@pytest.mark.parametrize(
    ("values", "sources_elsewhere"),
    [
        ({"leaderElection": {"enabled": True}}, True),
        ({"leaderElection": {"enabled": True}, "config": {"watch-all-namespaces": False}}, False),
    ],
    ids=["cluster-wide", "single-namespace"],
)
def test_controller_works_with_exactly_the_chart_rbac(
    control_plane: ControlPlane,
    make_controller: MakeController,
    e2e_namespace: str,
    e2e_origin: ThreadedOrigin,
    chart_release: str,
    values: dict[str, Any],
    sources_elsewhere: bool,
) -> None:
    release_ns = e2e_namespace
    objects, _ = render_chart(values, release=chart_release, namespace=release_ns)
    apply_server_side(control_plane, objects)
    service_account = only(objects, "ServiceAccount")["metadata"]["name"]
    user = f"system:serviceaccount:{release_ns}:{service_account}"
    kubeconfig = service_account_kubeconfig(
        control_plane, namespace=release_ns, service_account=service_account
    )
    source_ns = f"{release_ns}-src" if sources_elsewhere else release_ns
    if sources_elsewhere:
        control_plane.kubectl("create", "namespace", source_ns)
    e2e_origin.set("/data", body=b'{"v": 1}', etag='"1"')
    mark = control_plane.audit_mark()
    try:
        controller = make_controller(
            *pod_flags(only(objects, "Deployment")),
            kubeconfig=kubeconfig,
            env={"RUNTIME_NAMESPACE": release_ns},
        )
        control_plane.kubectl(
            "create", "secret", "generic", "api", "-n", source_ns, "--from-literal=X-Api-Key=k-123"
        )
        control_plane.apply(
            external_source(
                "data",
                namespace=source_ns,
                url=e2e_origin.url("/data"),
                generator={
                    "type": "http",
                    "http": {"url": e2e_origin.url("/data"), "headersSecretRef": {"name": "api"}},
                },
            )
        )
        wait_condition(control_plane, source_ns, "data", timeout=60)
        assert get_artifact(control_plane, source_ns, "data") is not None
        sent = {r.headers.get("X-Api-Key") for r in e2e_origin.requests_for("/data")}
        assert sent == {"k-123"}, "the header Secret was read and sent"
        lease = control_plane.get(f"/apis/coordination.k8s.io/v1/namespaces/{release_ns}/leases")
        assert lease is not None
        assert lease["items"], "no leader-election Lease in the namespace"
        control_plane.kubectl("delete", "externalsource", "data", "-n", source_ns, "--timeout=30s")
        assert get_source(control_plane, source_ns, "data") is None
    finally:
        if sources_elsewhere:
            control_plane.kubectl("delete", "namespace", source_ns, "--wait=false", check=False)
    assert refused_requests(control_plane, user=user, since=mark) == []
    # kr8s's "Kubernetes version ... is not supported" is one info line, not a warning on stderr
    assert "UserWarning" not in controller.logs()
    assert len(controller.log_events(KR8S_VERSION_EVENT)) <= 1
