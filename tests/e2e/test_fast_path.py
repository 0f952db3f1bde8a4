"""The fast path on a real API server: unchanged origin data costs one HEAD and zero API writes."""

from __future__ import annotations

from tests.e2e.conftest import ControllerIdentity, MakeController
from tests.e2e.controlplane import ControlPlane, wait_for
from tests.e2e.processes import ControllerProcess, ThreadedOrigin
from tests.e2e.sources import external_source, get_artifact, get_source, wait_condition

SOURCES = ("alpha", "beta", "gamma")
#: the resources only the controller (and the test, which stays still) write
OURS = ("externalsources", "externalartifacts")


def test_unchanged_origin_costs_zero_api_writes_over_two_checks(
    control_plane: ControlPlane,
    controller_identity: ControllerIdentity,
    make_controller: MakeController,
    e2e_namespace: str,
    e2e_origin: ThreadedOrigin,
) -> None:
    """Two fast-path checks of every source write nothing to the API server.

    How "two intervals" is covered in seconds instead of 2+ minutes (the CRD
    enforces `interval >= 1m`): a controller that starts re-checks every source
    through the same reconcile as the interval timer, and with a persistent
    backend (filesystem) the fast path is allowed at once (observedGeneration
    current, artifact in storage, no pending request, last reconcile succeeded).
    So the controller is stopped once the sources are Ready, and started twice
    more: two fast-path checks of each source, proven by the origin (one HEAD
    per source per start, no GET) and by the controller's own metric. A
    `reconcile.fluxcd.io/requestedAt` change would not do: it forces the slow
    path. The interval timer itself is not exercised here.

    Writes are read from the API server itself: its audit log, which names the
    user (the controller's ServiceAccount) of every request, and its
    `apiserver_request_total` counter for writes on ExternalSources and
    ExternalArtifacts (only the controller writes those while the test stays
    still; namespaces of earlier tests are first allowed to finish terminating).
    """
    ns = e2e_namespace
    for name in SOURCES:
        e2e_origin.set(f"/{name}", body=f'{{"name": "{name}"}}'.encode(), etag=f'"{name}-1"')
    controller = make_controller(storage="filesystem")
    setup_mark = control_plane.audit_mark()
    setup_metrics = control_plane.apiserver_request_total()
    control_plane.apply(
        *(
            external_source(name, namespace=ns, url=e2e_origin.url(f"/{name}"), interval="10m")
            for name in SOURCES
        )
    )
    for name in SOURCES:
        wait_condition(control_plane, ns, name)
    assert controller.stop() == 0
    published = {name: _versions(control_plane, ns, name) for name in SOURCES}
    # both instruments see the writes of a change path (so their silence below means something)
    assert control_plane.audit_writes(user=controller_identity.user, since=setup_mark)
    assert control_plane.count_writes(
        setup_metrics, control_plane.apiserver_request_total(), resources=OURS
    )

    control_plane.wait_namespaces_settled()
    audit_mark = control_plane.audit_mark()
    metrics_before = control_plane.apiserver_request_total()
    e2e_origin.clear_requests()

    for check in (1, 2):
        controller.start().wait_ready()
        _wait_fast_path_checks(controller, e2e_origin, expected=check)
        assert controller.stop() == 0

    writes = control_plane.audit_writes(user=controller_identity.user, since=audit_mark)
    assert writes == [], f"the controller wrote on the fast path: {writes}"
    counted = control_plane.count_writes(
        metrics_before, control_plane.apiserver_request_total(), resources=OURS
    )
    assert counted == {}, f"apiserver_request_total counted writes: {counted}"
    for name in SOURCES:
        assert [r.method for r in e2e_origin.requests_for(f"/{name}")] == ["HEAD", "HEAD"]
        assert _versions(control_plane, ns, name) == published[name]


def _wait_fast_path_checks(
    controller: ControllerProcess, origin: ThreadedOrigin, *, expected: int
) -> None:
    def checked() -> bool:
        heads = all(origin.head_count(f"/{n}") >= expected for n in SOURCES)
        fast = controller.metric("externalsource_reconcile_total", result="not_modified")
        return heads and fast >= len(SOURCES)

    wait_for(checked, timeout=30, what=f"fast-path check #{expected} of every source")


def _versions(plane: ControlPlane, ns: str, name: str) -> tuple[str, str, str]:
    source = get_source(plane, ns, name)
    child = get_artifact(plane, ns, name)
    assert source is not None
    assert child is not None
    return (
        source["metadata"]["resourceVersion"],
        child["metadata"]["resourceVersion"],
        source["status"]["artifact"]["revision"],
    )
