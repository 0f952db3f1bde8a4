"""Two replicas with leader election on a real API server: one leads, SIGTERM hands over, and
the survivor serves and reconciles every source."""

from __future__ import annotations

import functools

from tests.e2e.conftest import ControllerIdentity, MakeController
from tests.e2e.controlplane import ControlPlane, wait_for
from tests.e2e.election import ELECTION, candidate_identity, lease_path, sole_leader
from tests.e2e.processes import ControllerProcess, ThreadedOrigin, fetch_artifact
from tests.e2e.sources import external_source, request_reconcile, wait_condition, wait_revision

SOURCES = ("alpha", "beta", "gamma")


def test_one_leader_and_sigterm_hands_over_every_source(
    control_plane: ControlPlane,
    controller_identity: ControllerIdentity,
    make_controller: MakeController,
    e2e_namespace: str,
    e2e_origin: ThreadedOrigin,
) -> None:
    ns = e2e_namespace
    for name in SOURCES:
        e2e_origin.set(f"/{name}", body=f'"{name} 1"'.encode(), etag=f'"{name}-1"')
    replicas = [make_controller(*ELECTION), make_controller(*ELECTION)]
    leader = wait_for(lambda: sole_leader(replicas), timeout=20, what="one leader")
    (survivor,) = [r for r in replicas if r is not leader]
    lease = control_plane.get(lease_path(controller_identity))
    assert lease is not None
    assert lease["spec"]["holderIdentity"] == candidate_identity(leader)

    control_plane.apply(
        *(external_source(n, namespace=ns, url=e2e_origin.url(f"/{n}")) for n in SOURCES)
    )
    before = {n: wait_condition(control_plane, ns, n)["status"]["artifact"] for n in SOURCES}
    for artifact in before.values():
        assert artifact["url"] == leader.artifact_url(artifact["path"])

    assert leader.stop() == 0
    wait_for(survivor.is_leader, timeout=10, what="the survivor to take the lease")
    assert sole_leader([survivor]) is survivor

    # the survivor serves every published artifact (rebuilt: its memory storage started empty)
    for name, artifact in before.items():
        wait_for(
            functools.partial(_downloads, survivor, artifact),
            timeout=20,
            what=f"{name}'s artifact to be served by the survivor",
        )
    # ... and reconciles every source: new origin data, new revisions, published by it
    for name in SOURCES:
        e2e_origin.set(f"/{name}", body=f'"{name} 2"'.encode(), etag=f'"{name}-2"')
        request_reconcile(control_plane, ns, name)
    for name in SOURCES:
        after = wait_revision(control_plane, ns, name, not_revision=before[name]["revision"])
        artifact = after["status"]["artifact"]
        assert artifact["url"] == survivor.artifact_url(artifact["path"])
        files = fetch_artifact(artifact["url"], digest=artifact["digest"])
        assert files == {"data": f'"{name} 2"'.encode()}


def _downloads(process: ControllerProcess, artifact: dict[str, str]) -> bool:
    try:
        fetch_artifact(process.artifact_url(artifact["path"]), digest=artifact["digest"])
    except AssertionError:
        return False
    return True
