"""Leader-election helpers for e2e tests: short lease timings, the Lease, who leads."""

from __future__ import annotations

from tests.e2e.conftest import ControllerIdentity
from tests.e2e.processes import ControllerProcess

LEASE = "externalsource-controller-leader-election"
LEASE_SECONDS = 4.0
#: short lease timings so a hand-over takes a second, not Flux's 35 s
ELECTION = (
    "--enable-leader-election",
    f"--leader-election-lease-duration={LEASE_SECONDS:g}s",
    "--leader-election-renew-deadline=3s",
    "--leader-election-retry-period=500ms",
    "--graceful-shutdown-timeout=5s",
)


def lease_path(identity: ControllerIdentity) -> str:
    """The API path of the controllers' Lease."""
    return f"/apis/coordination.k8s.io/v1/namespaces/{identity.namespace}/leases/{LEASE}"


def sole_leader(replicas: list[ControllerProcess]) -> ControllerProcess | None:
    """The one running replica that leads, or None while there are none or several."""
    leaders = [r for r in replicas if r.running and r.is_leader()]
    return leaders[0] if len(leaders) == 1 else None


def candidate_identity(process: ControllerProcess) -> str:
    """The identity the process campaigns (and, once leading, holds the Lease) with."""
    events = process.log_events("waiting for leadership")
    assert events, f"{process.name} never logged 'waiting for leadership'"
    return str(events[-1]["identity"])
