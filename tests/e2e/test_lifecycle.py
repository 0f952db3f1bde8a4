"""A source's life as a user lives it on a real cluster: a requested change, an origin outage
and its recovery, then deletion (finalizer, artifacts, garbage collection of the child)."""

from __future__ import annotations

import httpx

from tests.e2e.conftest import MakeController
from tests.e2e.controlplane import ControlPlane, wait_for
from tests.e2e.processes import ThreadedOrigin, fetch_artifact
from tests.e2e.sources import (
    condition,
    external_source,
    get_artifact,
    get_source,
    request_reconcile,
    wait_condition,
    wait_revision,
)


def test_change_outage_recovery_and_deletion(
    control_plane: ControlPlane,
    make_controller: MakeController,
    e2e_namespace: str,
    e2e_origin: ThreadedOrigin,
) -> None:
    ns = e2e_namespace
    e2e_origin.set("/flags", body=b'{"v": 1}', etag='"v1"')
    make_controller("--min-retry-delay=200ms", "--max-retry-delay=2s")
    control_plane.apply(external_source("flags", namespace=ns, url=e2e_origin.url("/flags")))
    first = wait_condition(control_plane, ns, "flags")["status"]["artifact"]

    # requestedAt -> the changed origin data is published as a new revision
    e2e_origin.set("/flags", body=b'{"v": 2}', etag='"v2"')
    requested = request_reconcile(control_plane, ns, "flags")
    changed = wait_revision(control_plane, ns, "flags", not_revision=first["revision"])
    assert changed["status"]["lastHandledReconcileAt"] == requested
    second = changed["status"]["artifact"]
    assert fetch_artifact(second["url"], digest=second["digest"]) == {"data": b'{"v": 2}'}
    child = get_artifact(control_plane, ns, "flags")
    assert child is not None
    assert child["status"]["artifact"]["revision"] == second["revision"]

    # outage: Ready=False, the last good artifact stays published and served
    e2e_origin.mode("/flags", status=503)
    request_reconcile(control_plane, ns, "flags")
    failed = wait_condition(control_plane, ns, "flags", status="False")
    ready = condition(failed, "Ready")
    assert ready is not None
    assert ready["reason"] == "OriginUnavailable"  # docs/generators.md: 5xx
    reconciling = condition(failed, "Reconciling")
    assert reconciling is not None
    assert reconciling["reason"] == "ProgressingWithRetry"
    assert failed["status"]["artifact"]["revision"] == second["revision"]
    child = get_artifact(control_plane, ns, "flags")
    assert child is not None
    assert child["status"]["artifact"]["revision"] == second["revision"]
    assert fetch_artifact(second["url"], digest=second["digest"]) == {"data": b'{"v": 2}'}

    # recovery: the controller's own retry brings it back, same content, same revision
    e2e_origin.mode("/flags")
    recovered = wait_condition(control_plane, ns, "flags", timeout=30)
    assert recovered["status"]["artifact"]["revision"] == second["revision"]
    assert condition(recovered, "Reconciling") is None

    # deletion: the finalizer is released, artifacts are gone, the child is collected
    url = recovered["status"]["artifact"]["url"]
    control_plane.kubectl("delete", "-n", ns, "externalsource/flags", "--timeout=30s")
    assert get_source(control_plane, ns, "flags") is None
    assert httpx.get(url, timeout=5).status_code == 404
    assert httpx.get(first["url"], timeout=5).status_code == 404
    wait_for(
        lambda: get_artifact(control_plane, ns, "flags") is None,
        timeout=30,
        what="the ExternalArtifact to be deleted",
    )


def test_kubernetes_collects_the_child_when_the_controller_is_gone(
    control_plane: ControlPlane,
    make_controller: MakeController,
    e2e_namespace: str,
    e2e_origin: ThreadedOrigin,
) -> None:
    """The owner reference alone is enough for kube-controller-manager's garbage collector:
    with the controller uninstalled, an admin removes the finalizer and the child goes."""
    ns = e2e_namespace
    e2e_origin.set("/flags", body=b"{}", etag='"x"')
    controller = make_controller()
    control_plane.apply(external_source("flags", namespace=ns, url=e2e_origin.url("/flags")))
    wait_condition(control_plane, ns, "flags")
    assert controller.stop() == 0

    control_plane.kubectl("delete", "-n", ns, "externalsource/flags", "--wait=false")
    control_plane.kubectl(
        "patch",
        "-n",
        ns,
        "externalsource/flags",
        "--type=merge",
        "-p",
        '{"metadata":{"finalizers":null}}',
    )
    wait_for(
        lambda: get_source(control_plane, ns, "flags") is None,
        timeout=15,
        what="the source to go",
    )
    wait_for(
        lambda: get_artifact(control_plane, ns, "flags") is None,
        timeout=60,
        what="kube-controller-manager to garbage-collect the ExternalArtifact",
    )
