"""Sharding on one real API server: controllers with different `--watch-label-selector` shard
keys each reconcile only their own sources, and their leader-election leases do not collide."""

from __future__ import annotations

from tests.e2e.conftest import ControllerIdentity, MakeController
from tests.e2e.controlplane import ControlPlane, wait_for
from tests.e2e.processes import ThreadedOrigin
from tests.e2e.sources import (
    FINALIZER,
    external_source,
    get_artifact,
    get_source,
    wait_condition,
)

KEY = "sharding.fluxcd.io/key"
ELECTION = (
    "--enable-leader-election",
    "--leader-election-lease-duration=4s",
    "--leader-election-renew-deadline=3s",
    "--leader-election-retry-period=500ms",
)


def test_each_shard_reconciles_only_its_sources_with_its_own_lease(
    control_plane: ControlPlane,
    controller_identity: ControllerIdentity,
    make_controller: MakeController,
    e2e_namespace: str,
    e2e_origin: ThreadedOrigin,
) -> None:
    ns = e2e_namespace
    shards = {
        "shard1": make_controller(*ELECTION, f"--watch-label-selector={KEY}=shard1"),
        "shard2": make_controller(*ELECTION, f"--watch-label-selector={KEY}=shard2"),
    }
    for process in shards.values():
        wait_for(process.is_leader, timeout=20, what=f"{process.name} to lead its shard")

    placement = {"one-a": "shard1", "one-b": "shard1", "two-a": "shard2", "nobody": None}
    for name in placement:
        e2e_origin.set(f"/{name}", body=f'"{name}"'.encode(), etag=f'"{name}"')
    control_plane.apply(
        *(
            external_source(
                name,
                namespace=ns,
                url=e2e_origin.url(f"/{name}"),
                labels={KEY: shard} if shard else None,
            )
            for name, shard in placement.items()
        )
    )
    for name, shard in placement.items():
        if shard is None:
            continue
        artifact = wait_condition(control_plane, ns, name)["status"]["artifact"]
        assert artifact["url"] == shards[shard].artifact_url(artifact["path"]), name
        child = get_artifact(control_plane, ns, name)
        assert child is not None
        assert child["metadata"]["labels"][KEY] == shard

    unsharded = get_source(control_plane, ns, "nobody")
    assert unsharded is not None
    assert FINALIZER not in unsharded["metadata"].get("finalizers", [])
    assert "conditions" not in unsharded.get("status", {})
    assert e2e_origin.requests_for("/nobody") == []
    assert get_artifact(control_plane, ns, "nobody") is None
    for shard, process in shards.items():
        # every log line of a reconcile carries the source's namespace and name
        touched = {e.get("name") for e in process.log_events() if e.get("namespace") == ns}
        assert touched == {n for n, s in placement.items() if s == shard}, process.name

    leases = control_plane.get(
        f"/apis/coordination.k8s.io/v1/namespaces/{controller_identity.namespace}/leases"
    )
    assert leases is not None
    holders = {
        lease["metadata"]["name"]: lease["spec"].get("holderIdentity")
        for lease in leases["items"]
        if lease["metadata"]["name"].startswith("externalsource-controller-leader-election")
        and lease["spec"].get("holderIdentity")  # not one released by an earlier test
    }
    identities = {p.log_events("became leader")[-1]["identity"] for p in shards.values()}
    assert len(holders) == 2, holders
    assert set(holders.values()) == identities
