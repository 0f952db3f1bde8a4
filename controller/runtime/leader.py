"""Leader election on a `coordination.k8s.io/v1` Lease: client-go's algorithm.

- A candidate reads the Lease. It may take it when nobody holds it, when it
  holds it already, or when the holder has not renewed for the lease's
  `leaseDurationSeconds` *as observed locally* (client-go times expiry from
  when this process last saw the record change, never from the timestamps in
  it, so clock skew between nodes cannot steal a lease).
- Every write carries the `resourceVersion` that was read (a merge patch with
  `metadata.resourceVersion` is a precondition for the API server): of two
  candidates racing, one gets 409 Conflict and stays a follower.
- The leader renews every `retry_period`. If it cannot renew within
  `renew_deadline` it stops leading at once (before `lease_duration` expires
  for the others, since renew_deadline < lease_duration).
- On shutdown the leader releases the lease (empty holder, 1 s duration, like
  client-go's ReleaseOnCancel) so a successor takes over at its next retry
  instead of waiting for the lease to expire.
- The elector survives every error of the API (401, 403, 5xx, timeouts,
  garbage): an attempt that fails is a failed attempt, nothing more.
- The leader writes where its artifact server answers into an annotation of
  the Lease; followers, which read the Lease at every retry anyway, forward
  downloads they cannot serve themselves there (docs/operations.md, replicas).

Expiry runs on the event loop's clock (fake under looptime); the timestamps
written into the Lease are wall-clock MicroTime for humans and other tools.
"""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import random
import socket
import uuid
from collections.abc import Callable
from typing import Any

import structlog

from controller.api.names import ARTIFACT_SERVER_ANNOTATION, LEASES
from controller.runtime import metrics
from controller.runtime.client import ApiError, KubeClient
from controller.runtime.ratelimit import Clock, loop_clock

log = structlog.get_logger(__name__)

LEASE_PREFIX = "externalsource-controller-leader-election"
_RETRY_JITTER = 1.2  # client-go's JitterFactor for the acquire loop
_RELEASE_TIMEOUT = 3.0


def lease_name(label_selector: str) -> str:
    """One lease per shard: the selector's hash keeps shards from electing each other."""
    if not label_selector:
        return LEASE_PREFIX
    return f"{LEASE_PREFIX}-{hashlib.sha256(label_selector.encode()).hexdigest()[:8]}"


def default_identity() -> str:
    """client-go's identity: the host (pod) name plus a unique suffix."""
    return f"{socket.gethostname()}_{uuid.uuid4()}"


def _micro_time() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaderElector:
    """Takes, holds and releases one Lease for this process."""

    def __init__(
        self,
        *,
        api: KubeClient,
        name: str,
        namespace: str,
        identity: str,
        artifact_server: str | None = None,
        lease_duration: float,
        renew_deadline: float,
        retry_period: float,
        clock: Clock = loop_clock,
        rnd: Callable[[], float] = random.random,
    ) -> None:
        self._api = api
        self.name = name
        self.namespace = namespace
        self.identity = identity
        self._artifact_server = artifact_server
        #: the leader's artifact server as last read from the Lease (None: unknown)
        self.leader_artifact_server: str | None = None
        self._lease_duration = lease_duration
        self._renew_deadline = renew_deadline
        self._retry_period = retry_period
        self._clock = clock
        self._rnd = rnd
        self._observed_spec: dict[str, Any] | None = None
        self._observed_time = 0.0
        self.is_leader = False
        self._status = metrics.LEADER_STATUS.labels(name=name)
        self._status.set(0)

    async def acquire(self) -> None:
        """Return once this process holds the lease."""
        log.info(
            "waiting for leadership", lease=f"{self.namespace}/{self.name}", identity=self.identity
        )
        while True:
            if await self._try_acquire_or_renew():
                break
            await asyncio.sleep(self._retry_period * (1 + _RETRY_JITTER * self._rnd()))
        self._set_leader(True)
        log.info("became leader", lease=f"{self.namespace}/{self.name}", identity=self.identity)

    async def hold(self) -> None:
        """Renew the lease until a renewal fails for `renew_deadline`; then return (lost)."""
        while True:
            try:
                async with asyncio.timeout(self._renew_deadline):
                    while True:
                        if await self._try_acquire_or_renew():
                            break
                        await asyncio.sleep(self._retry_period)
            except TimeoutError:
                self._set_leader(False)
                log.error("leadership lost: could not renew the lease", lease=self.name)
                return
            await asyncio.sleep(self._retry_period)

    async def release(self) -> None:
        """Give the lease up if we hold it (best effort, bounded)."""
        if not self.is_leader:
            return
        self._set_leader(False)
        try:
            async with asyncio.timeout(_RELEASE_TIMEOUT):
                lease = await self._get()
                spec = (lease or {}).get("spec") or {}
                if lease is None or spec.get("holderIdentity") != self.identity:
                    return
                now = _micro_time()
                released = {
                    "holderIdentity": "",
                    "leaseDurationSeconds": 1,
                    "acquireTime": now,
                    "renewTime": now,
                    "leaseTransitions": spec.get("leaseTransitions", 0),
                }
                await self._update(lease, released)
            log.info("released the lease", lease=self.name)
        except (TimeoutError, ApiError) as exc:
            log.warning("could not release the lease", lease=self.name, error=str(exc))

    def advertise(self, artifact_server: str) -> None:
        """Where this replica's artifact server answers; written into the Lease while leading."""
        self._artifact_server = artifact_server

    def _set_leader(self, leading: bool) -> None:
        self.is_leader = leading
        self._status.set(1 if leading else 0)

    async def _try_acquire_or_renew(self) -> bool:
        try:
            return await self._attempt()
        except ApiError as exc:
            log.warning("lease request failed", lease=self.name, error=exc.message)
        except Exception as exc:  # garbage from the server must not end leader election
            log.warning("lease request failed", lease=self.name, error=type(exc).__name__)
        return False

    async def _attempt(self) -> bool:
        now = _micro_time()
        lease = await self._get()
        if lease is None:
            record = {
                "holderIdentity": self.identity,
                "leaseDurationSeconds": round(self._lease_duration),
                "acquireTime": now,
                "renewTime": now,
                "leaseTransitions": 0,
            }
            created = await self._create(record)
            if created is not None:
                self._observe(created, created.get("spec") or {})
            return created is not None
        spec = lease.get("spec") or {}
        if spec != self._observed_spec:
            self._observe(lease, spec)
        holder = spec.get("holderIdentity") or ""
        duration = float(spec.get("leaseDurationSeconds") or self._lease_duration)
        if holder and holder != self.identity and self._observed_time + duration > self._clock():
            return False
        mine = holder == self.identity
        record = {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": round(self._lease_duration),
            "acquireTime": spec.get("acquireTime", now) if mine else now,
            "renewTime": now,
            "leaseTransitions": int(spec.get("leaseTransitions") or 0) + (0 if mine else 1),
        }
        updated = await self._update(lease, record)
        if updated is None:
            return False
        self._observe(updated, updated.get("spec") or record)
        return True

    def _observe(self, lease: dict[str, Any], spec: dict[str, Any]) -> None:
        self._observed_spec = spec
        self._observed_time = self._clock()
        annotations = (lease.get("metadata") or {}).get("annotations") or {}
        self.leader_artifact_server = (
            annotations.get(ARTIFACT_SERVER_ANNOTATION) if spec.get("holderIdentity") else None
        )

    def _metadata(self, lease: dict[str, Any] | None) -> dict[str, Any]:
        metadata: dict[str, Any] = {"name": self.name, "namespace": self.namespace}
        if lease is not None:
            metadata["resourceVersion"] = lease["metadata"]["resourceVersion"]
        if self._artifact_server:
            metadata["annotations"] = {ARTIFACT_SERVER_ANNOTATION: self._artifact_server}
        return metadata

    async def _get(self) -> dict[str, Any] | None:
        return await self._api.get(LEASES, self.namespace, self.name)

    async def _create(self, spec: dict[str, Any]) -> dict[str, Any] | None:
        body = {
            "apiVersion": LEASES.api_version,
            "kind": LEASES.kind,
            "metadata": self._metadata(None),
            "spec": spec,
        }
        try:
            return await self._api.create(LEASES, self.namespace, body)
        except ApiError as exc:
            if exc.status == 409:  # someone else created it first
                return None
            raise

    async def _update(self, lease: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any] | None:
        """Write `spec` if the Lease is still at the version we read; None when it is not."""
        patch = {"metadata": self._metadata(lease), "spec": spec}
        try:
            return await self._api.patch(LEASES, self.namespace, self.name, patch)
        except ApiError as exc:
            if exc.status == 409:
                return None
            raise
