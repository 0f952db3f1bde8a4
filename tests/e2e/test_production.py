"""Production behaviour on a real API server: replicas serve downloads, a rotated token keeps the
controller working, leadership that moves and comes back loses no source, drift is repaired
without a fetch, and status says what a user waiting on it needs."""

from __future__ import annotations

import signal
import threading
import time
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import ControllerIdentity, MakeController
from tests.e2e.controlplane import ControlPlane, wait_for
from tests.e2e.election import (
    ELECTION,
    LEASE,
    LEASE_SECONDS,
    candidate_identity,
    lease_path,
    sole_leader,
)
from tests.e2e.processes import ArtifactError, ThreadedOrigin, fetch_artifact
from tests.e2e.sources import (
    artifact_path,
    condition,
    external_source,
    get_artifact,
    get_source,
    request_reconcile,
    wait_condition,
    wait_revision,
)
from tests.fixtures.s3 import FAKE_ACCESS_KEY, FAKE_SECRET_KEY


def _downloads(url: str, digest: str) -> bool:
    try:
        fetch_artifact(url, digest=digest, timeout=3.0)
    except (ArtifactError, httpx.HTTPError):  # connection refused, 502, 503, short body
        return False
    return True


def _backend_flags(storage: str, tmp_path: Any, request: pytest.FixtureRequest) -> list[str]:
    if storage == "filesystem-shared":  # a ReadWriteMany volume: one directory for both
        return [f"--storage-path={tmp_path / 'shared'}"]
    if storage == "s3":
        moto = request.getfixturevalue("moto_server")
        bucket = request.getfixturevalue("s3_bucket")
        credentials = tmp_path / "s3-credentials"
        credentials.mkdir()
        (credentials / "accesskey").write_text(FAKE_ACCESS_KEY)
        (credentials / "secretkey").write_text(FAKE_SECRET_KEY)
        return [
            f"--s3-endpoint={moto.endpoint}",
            f"--s3-bucket={bucket}",
            "--s3-path-style",
            f"--s3-credentials-dir={credentials}",
        ]
    return []


@pytest.mark.parametrize("storage", ["memory", "filesystem-shared", "s3"])
def test_every_replica_answers_downloads_and_a_handover_costs_at_most_a_lease(
    storage: str,
    control_plane: ControlPlane,
    make_controller: MakeController,
    e2e_namespace: str,
    e2e_origin: ThreadedOrigin,
    tmp_path: Any,
    request: pytest.FixtureRequest,
) -> None:
    """200 downloads round-robin over two replicas all verify; after SIGTERM of the leader the
    survivor answers again within about one lease duration, with the same revisions."""
    ns = e2e_namespace
    extra = _backend_flags(storage, tmp_path, request)
    backend = storage.removesuffix("-shared")
    replicas = [make_controller(*ELECTION, *extra, storage=backend, wait=False) for _ in "ab"]
    leader = wait_for(lambda: sole_leader(replicas), timeout=30, what="one leader")
    names = ("one", "two", "three")
    for name in names:
        e2e_origin.set(f"/{name}", body=f'"{name}"'.encode(), etag=f'"{name}"')
    control_plane.apply(
        *(external_source(n, namespace=ns, url=e2e_origin.url(f"/{n}")) for n in names)
    )
    artifacts = {n: wait_condition(control_plane, ns, n)["status"]["artifact"] for n in names}
    for replica in replicas:  # a follower is Ready once it can answer (it knows the leader)
        replica.wait_ready()
    for i in range(200):
        artifact = artifacts[names[i % len(names)]]
        replica = replicas[i % 2]
        files = fetch_artifact(replica.artifact_url(artifact["path"]), digest=artifact["digest"])
        assert files == {"data": f'"{names[i % len(names)]}"'.encode()}

    (survivor,) = [r for r in replicas if r is not leader]
    stopping = threading.Thread(target=leader.stop)
    started = time.monotonic()
    stopping.start()
    failed_at: list[float] = []
    deadline = started + 60
    pending = set(names)
    while pending and time.monotonic() < deadline:
        for name in sorted(pending):
            artifact = artifacts[name]
            if _downloads(survivor.artifact_url(artifact["path"]), artifact["digest"]):
                pending.discard(name)
            else:
                failed_at.append(time.monotonic())
        time.sleep(0.05)
    stopping.join()
    assert not pending, f"never served again by the survivor: {pending}"
    window = (failed_at[-1] - started) if failed_at else 0.0
    assert window < LEASE_SECONDS + 4, f"downloads failed for {window:.1f}s after the SIGTERM"
    wait_for(survivor.is_leader, timeout=LEASE_SECONDS * 3, what="the survivor to lead")
    for name in names:  # rebuilt (memory) or found (shared) under the same revision
        status = get_source(control_plane, ns, name)["status"]  # type: ignore[index]
        assert status["artifact"]["revision"] == artifacts[name]["revision"]


def test_a_rotated_token_keeps_every_source_reconciling(
    control_plane: ControlPlane,
    make_controller: MakeController,
    e2e_namespace: str,
    e2e_origin: ThreadedOrigin,
) -> None:
    """The token the controller authenticates with is revoked and replaced (the kubeconfig it
    reads is rewritten, as a projected token is): it re-reads credentials on the 401 and goes on,
    leader election included; the process never exits."""
    ns = e2e_namespace
    user = ("rotating-controller", "uid-rotating", ["e2e:controllers"])
    control_plane.set_tokens({"first-token-0123456789": user})
    control_plane.restart_apiserver()
    control_plane.bind_cluster_role(user=user[0])
    kubeconfig = control_plane.kubeconfig_for_token("first-token-0123456789", name="rotating")
    controller = make_controller(*ELECTION, kubeconfig=kubeconfig)
    wait_for(controller.is_leader, timeout=30, what="the controller to lead")
    e2e_origin.set("/rot", body=b'"v1"', etag='"v1"')
    control_plane.apply(external_source("rot", namespace=ns, url=e2e_origin.url("/rot")))
    first = wait_condition(control_plane, ns, "rot")["status"]["artifact"]["revision"]

    control_plane.set_tokens({"second-token-9876543210": user})  # the first one is revoked
    control_plane.kubeconfig_for_token("second-token-9876543210", name="rotating")
    control_plane.restart_apiserver()

    e2e_origin.set("/rot", body=b'"v2"', etag='"v2"')
    request_reconcile(control_plane, ns, "rot")
    second = wait_revision(control_plane, ns, "rot", not_revision=first, timeout=60)
    assert condition(second, "Ready")["status"] == "True"  # type: ignore[index]
    assert controller.running
    assert controller.log_events("Kubernetes credentials re-read after 401")
    wait_for(controller.is_leader, timeout=30, what="the controller to lead again")


def _hand_lease_to(plane: ControlPlane, identity: ControllerIdentity, holder: str) -> None:
    """What a successor does once a lease expired: write itself in as the holder."""
    plane.kubectl(
        "patch",
        "lease",
        LEASE,
        "-n",
        identity.namespace,
        "--type=merge",
        "-p",
        f'{{"spec": {{"holderIdentity": "{holder}"}}}}',
    )


def test_leadership_that_moves_and_comes_back_keeps_checking_every_source(
    control_plane: ControlPlane,
    controller_identity: ControllerIdentity,
    make_controller: MakeController,
    e2e_namespace: str,
    e2e_origin: ThreadedOrigin,
) -> None:
    """Leadership goes from A to B and back to A within one process lifetime: each new term
    checks every source within seconds (the origin sees a request per source), not only sources
    whose spec changed, and nothing in flight is dropped."""
    ns = e2e_namespace
    names = ("x1", "x2", "x3", "x4")
    for name in names:
        e2e_origin.set(f"/{name}", body=b"{}", etag=f'"{name}"')
    a = make_controller(*ELECTION)
    wait_for(a.is_leader, timeout=30, what="A to lead")
    b = make_controller(*ELECTION, wait=False)
    control_plane.apply(
        *(external_source(n, namespace=ns, url=e2e_origin.url(f"/{n}")) for n in names)
    )
    for name in names:
        wait_condition(control_plane, ns, name)
    b.wait_ready()
    for new_leader, old in ((b, a), (a, b)):
        e2e_origin.clear_requests()
        _hand_lease_to(control_plane, controller_identity, candidate_identity(new_leader))
        wait_for(
            lambda n=new_leader, o=old: n.is_leader() and not o.is_leader(),
            timeout=20,
            what=f"{new_leader.name} to take over",
        )
        for name in names:
            wait_for(  # a HEAD, or a GET where the new leader's memory storage lacks it
                lambda n=name: bool(e2e_origin.requests_for(f"/{n}")),
                timeout=15,
                what=f"{name} to be checked in {new_leader.name}'s new term",
            )
    assert a.running
    assert b.running


def test_a_deleted_or_edited_external_artifact_is_restored_without_a_fetch(
    control_plane: ControlPlane,
    make_controller: MakeController,
    e2e_namespace: str,
    e2e_origin: ThreadedOrigin,
) -> None:
    ns = e2e_namespace
    e2e_origin.set("/drift", body=b'{"a": 1}', etag='"d1"')
    make_controller("--watch-label-selector=team=payments")
    source = external_source(
        "drift", namespace=ns, url=e2e_origin.url("/drift"), labels={"team": "payments"}
    )
    control_plane.apply(source)
    published = wait_condition(control_plane, ns, "drift")["status"]["artifact"]
    e2e_origin.clear_requests()

    control_plane.kubectl("delete", "externalartifact", "drift", "-n", ns)

    def restored() -> dict[str, Any] | None:
        ea = get_artifact(control_plane, ns, "drift")
        return ea if ea and (ea.get("status") or {}).get("artifact") == published else None

    wait_for(restored, timeout=20, what="the ExternalArtifact to be restored")
    control_plane.kubectl(
        "patch", "externalartifact", "drift", "-n", ns, "--type=merge",
        "-p", '{"spec": {"sourceRef": {"name": "someone-else"}}}',
    )  # fmt: skip
    wait_for(
        lambda: (
            (get_artifact(control_plane, ns, "drift") or {})["spec"]["sourceRef"]["name"] == "drift"
        ),
        timeout=20,
        what="the edited sourceRef to be repaired",
    )
    assert [r.method for r in e2e_origin.requests_for("/drift") if r.method == "GET"] == []
    assert get_source(control_plane, ns, "drift")["status"]["artifact"] == published  # type: ignore[index]


def test_a_new_source_costs_four_writes_and_status_details_are_right(
    control_plane: ControlPlane,
    controller_identity: ControllerIdentity,
    make_controller: MakeController,
    e2e_namespace: str,
    e2e_origin: ThreadedOrigin,
) -> None:
    """Finalizer, ExternalArtifact, its /status, one ExternalSource /status (Events aside);
    the writes carry our field manager; a stale validator leaves status.artifact.metadata."""
    ns = e2e_namespace
    make_controller()
    e2e_origin.set("/w", body=b"1", etag='"w1"')
    mark = control_plane.audit_mark()
    control_plane.apply(external_source("w", namespace=ns, url=e2e_origin.url("/w")))
    wait_condition(control_plane, ns, "w")
    time.sleep(2)  # late writes (a second reconcile on our own finalizer) would land here
    writes = [
        w
        for w in control_plane.audit_writes(user=controller_identity.user, since=mark)
        if "events" not in w.split()[1]
    ]
    assert len(writes) == 4, writes

    obj = get_source(control_plane, ns, "w")
    assert obj is not None
    managers = {m["manager"] for m in obj["metadata"].get("managedFields", [])}
    assert "externalsource-controller" in managers

    # the origin drops its ETag and sends Last-Modified: the stale etag must go
    e2e_origin.set("/w", body=b"2", last_modified="Wed, 21 Oct 2026 07:28:00 GMT")
    request_reconcile(control_plane, ns, "w")
    updated = wait_revision(
        control_plane, ns, "w", not_revision=obj["status"]["artifact"]["revision"]
    )
    metadata = updated["status"]["artifact"]["metadata"]
    assert "etag" not in metadata
    assert metadata["last-modified"] == "Wed, 21 Oct 2026 07:28:00 GMT"


def test_a_failing_source_answers_a_requested_reconcile(
    control_plane: ControlPlane,
    make_controller: MakeController,
    e2e_namespace: str,
    e2e_origin: ThreadedOrigin,
) -> None:
    """`flux`-style "annotate and wait" also ends on a failing source: lastHandledReconcileAt."""
    ns = e2e_namespace
    make_controller()
    e2e_origin.set("/broken", body=b"x", etag='"b"')
    e2e_origin.mode("/broken", status=500)
    control_plane.apply(external_source("broken", namespace=ns, url=e2e_origin.url("/broken")))
    wait_condition(control_plane, ns, "broken", status="False")
    requested = request_reconcile(control_plane, ns, "broken")
    wait_for(
        lambda: (
            (get_source(control_plane, ns, "broken") or {})
            .get("status", {})
            .get("lastHandledReconcileAt")
            == requested
        ),
        timeout=30,
        what="lastHandledReconcileAt to answer the request",
    )


def test_a_source_deleted_during_a_slow_fetch_ends_quietly(
    control_plane: ControlPlane,
    make_controller: MakeController,
    e2e_namespace: str,
    e2e_origin: ThreadedOrigin,
) -> None:
    ns = e2e_namespace
    controller = make_controller()
    e2e_origin.set("/slow", body=b"{}", etag='"s"')
    e2e_origin.mode("/slow", delay=3.0)
    control_plane.apply(external_source("slow", namespace=ns, url=e2e_origin.url("/slow")))
    wait_for(lambda: e2e_origin.requests_for("/slow"), timeout=20, what="the fetch to start")
    control_plane.kubectl("delete", "externalsource", "slow", "-n", ns, "--wait=false")
    wait_for(lambda: get_source(control_plane, ns, "slow") is None, timeout=30, what="deletion")
    time.sleep(4)  # the slow fetch returns meanwhile
    assert get_artifact(control_plane, ns, "slow") is None
    warnings = [
        e
        for e in (control_plane.get(f"/api/v1/namespaces/{ns}/events") or {}).get("items", [])
        if e["type"] == "Warning" and e["involvedObject"]["name"] == "slow"
    ]
    assert warnings == []
    assert not controller.log_events("reconcile failed")
    assert artifact_path(ns, "slow")


def test_a_watched_secret_change_reconciles_its_sources_at_once(
    control_plane: ControlPlane,
    controller_identity: ControllerIdentity,
    make_controller: MakeController,
    e2e_namespace: str,
    e2e_origin: ThreadedOrigin,
) -> None:
    """A Secret labelled `reconcile.fluxcd.io/watch: Enabled` is served from the informer cache
    (no GET per reconcile) and a change of it is fetched with at once — no interval wait, no
    requestedAt."""
    ns = e2e_namespace
    controller = make_controller()
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": "api-key",
            "namespace": ns,
            "labels": {"reconcile.fluxcd.io/watch": "Enabled"},
        },
        "stringData": {"X-Api-Key": "first-key-value"},
    }
    control_plane.apply(secret)
    e2e_origin.set("/keyed", body=b"{}", etag='"k"')
    source = external_source("keyed", namespace=ns, url=e2e_origin.url("/keyed"))
    source["spec"]["generator"]["http"]["headersSecretRef"] = {"name": "api-key"}
    control_plane.apply(source)
    wait_condition(control_plane, ns, "keyed")
    assert e2e_origin.requests_for("/keyed")[-1].headers["X-Api-Key"] == "first-key-value"

    mark = control_plane.audit_mark()
    secret["stringData"] = {"X-Api-Key": "second-key-value"}
    control_plane.apply(secret)
    wait_for(
        lambda: any(
            r.headers.get("X-Api-Key") == "second-key-value"
            for r in e2e_origin.requests_for("/keyed")
        ),
        timeout=15,
        what="the origin to see the new key (an interval is 1m)",
    )
    reads = [
        e
        for e in control_plane.audit_events(since=mark)
        if e.get("user", {}).get("username") == controller_identity.user
        and e.get("objectRef", {}).get("resource") == "secrets"
        and e.get("verb") == "get"
    ]
    assert reads == []  # served from the watch cache
    assert controller.log_events("API Priority and Fairness detected; client-side rate limit off")


def test_a_killed_leader_is_replaced_once_its_lease_expires(
    control_plane: ControlPlane,
    controller_identity: ControllerIdentity,
    make_controller: MakeController,
    e2e_namespace: str,
    e2e_origin: ThreadedOrigin,
) -> None:
    """SIGKILL releases nothing: the follower waits out the lease duration (never less, so two
    leaders never overlap), then leads and reconciles."""
    ns = e2e_namespace
    replicas = [make_controller(*ELECTION, wait=False) for _ in "ab"]
    leader = wait_for(lambda: sole_leader(replicas), timeout=30, what="one leader")
    (follower,) = [r for r in replicas if r is not leader]
    e2e_origin.set("/k", body=b"1", etag='"1"')
    control_plane.apply(external_source("k", namespace=ns, url=e2e_origin.url("/k")))
    first = wait_condition(control_plane, ns, "k")["status"]["artifact"]["revision"]

    leader.stop(sig=signal.SIGKILL)
    killed = time.monotonic()
    wait_for(follower.is_leader, timeout=LEASE_SECONDS * 4, what="the follower to lead")
    assert time.monotonic() - killed >= LEASE_SECONDS - 1.0  # it waited for the expiry
    lease = control_plane.get(lease_path(controller_identity))
    assert lease is not None
    assert lease["spec"]["holderIdentity"] == candidate_identity(follower)
    e2e_origin.set("/k", body=b"2", etag='"2"')
    request_reconcile(control_plane, ns, "k")
    wait_revision(control_plane, ns, "k", not_revision=first)
