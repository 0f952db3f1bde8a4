"""The Manager: one anyio task group that runs the whole runtime.

    servers (health, metrics)        always, bound before anything else runs
    informers (sources, artifacts,   always (followers keep warm caches)
      labelled Secrets)
    heartbeat                        always (feeds /healthz)
    leading: leader election ─▶ leader services (e.g. artifact server) ─▶ workers

Only the leader runs workers and the `leader_services` (async context
managers entered once caches are synced, exited when leadership ends).
Losing the lease cancels that whole scope at once: in-flight reconciles are
cancelled (each puts its key back in the queue) and the manager campaigns
again. Gaining leadership again enqueues every cached source (spread over a
few seconds), so a source whose timer was with the other replica is checked
again; on the first term the informers' initial adds already did that.
Without `--enable-leader-election` the process leads from the start.

Graceful stop (`stop()`, called on SIGTERM/SIGINT): the queue shuts down so
workers take no new key, in-flight reconciles get `--graceful-shutdown-timeout`
to finish, leader services close, the lease is released (also when the run is
cancelled rather than stopped: release is shielded), then everything else is
cancelled and `run` returns. A long-lived task that fails is logged and
restarted with backoff; a server that cannot bind raises out of `run` (the
process exits non-zero and Kubernetes restarts it).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import anyio
import attrs
import structlog

from controller.api.names import (
    EXTERNAL_ARTIFACTS,
    EXTERNAL_SOURCES,
    MANAGED_BY,
    MANAGED_BY_LABEL,
    SECRETS,
)
from controller.runtime import metrics
from controller.runtime.informer import Informer, WatchTimings
from controller.runtime.keys import key_of
from controller.runtime.kube import KubeApis, runtime_namespace
from controller.runtime.leader import LeaderElector, default_identity, lease_name
from controller.runtime.ratelimit import ReconnectBackoff, default_controller_limiter
from controller.runtime.servers import Check, health_app, metrics_app, serving
from controller.runtime.settings import ControllerSettings
from controller.runtime.watches import ArtifactOwnerHandler, SecretUserHandler, SourceHandler
from controller.runtime.worker import Key, Reconcile, run_worker
from controller.runtime.workqueue import WorkQueue

log = structlog.get_logger(__name__)

CONTROLLER_NAME = "externalsource"
LeaderService = Callable[[], contextlib.AbstractAsyncContextManager[Any]]
_HEARTBEAT = 1.0
_HEARTBEAT_STALE = 10.0
_INFORMER_STALE = 300.0
_RESYNC_SPREAD = 5.0  # seconds over which a new leader term re-enqueues every source


class StartupError(Exception):
    """The process cannot run with this environment (one line for the user)."""


@attrs.frozen
class Wiring:
    """What the reconciler side plugs into the runtime (built by controller.wiring)."""

    reconcile: Reconcile
    leader_services: Sequence[LeaderService] = ()
    readiness_checks: Mapping[str, Check] = attrs.field(factory=dict)


class Manager:
    """Composes Kubernetes apis, informers, the queue, leader election, workers and servers."""

    def __init__(
        self,
        *,
        settings: ControllerSettings,
        apis: KubeApis,
        environ: Mapping[str, str],
        identity: str | None = None,
        timings: WatchTimings | None = None,
    ) -> None:
        self.settings = settings
        self.apis = apis
        self.api = apis.main
        watch_namespace = None
        if not settings.watch_all_namespaces:
            watch_namespace = runtime_namespace(environ)
            if watch_namespace is None:
                raise StartupError(
                    "--watch-all-namespaces=false needs RUNTIME_NAMESPACE (or POD_NAMESPACE)"
                )
        self.queue: WorkQueue[Key] = WorkQueue(
            limiter=default_controller_limiter(
                min_delay=settings.min_retry_delay, max_delay=settings.max_retry_delay
            ),
            name=CONTROLLER_NAME,
        )
        self.sources, self.artifacts, self.secrets = self._informers(
            apis, watch_namespace=watch_namespace, timings=timings
        )
        self.informers = tuple(i for i in (self.sources, self.artifacts, self.secrets) if i)
        self.elector = _elector(settings, apis, environ, identity)
        self.health_port: int | None = None
        self.metrics_port: int | None = None
        self._started = asyncio.Event()
        self._stopping = asyncio.Event()
        self._readiness: dict[str, Check] = {
            f"informer-{i.name}": _synced(i) for i in self.informers
        }
        self._beat = 0.0
        self._terms = 0

    def _informers(
        self, apis: KubeApis, *, watch_namespace: str | None, timings: WatchTimings | None
    ) -> tuple[Informer, Informer, Informer | None]:
        """Sources, our ExternalArtifacts, and the labelled Secrets (when watched)."""
        settings = self.settings
        sources = Informer(
            api=apis.sources,
            resource=EXTERNAL_SOURCES,
            namespace=watch_namespace,
            label_selector=settings.watch_label_selector,
            timings=timings,
        )
        sources.add_handler(SourceHandler(self.queue.add))
        # our children only (not every ExternalArtifact of the cluster), whatever the shard
        # selector: children of sharded sources need not carry the shard label
        artifacts = Informer(
            api=apis.artifacts,
            resource=EXTERNAL_ARTIFACTS,
            namespace=watch_namespace,
            label_selector=f"{MANAGED_BY_LABEL}={MANAGED_BY}",
            timings=timings,
        )
        artifacts.add_handler(ArtifactOwnerHandler(self.queue.add))
        secrets = None
        if settings.watch_configs_label_selector:
            secrets = Informer(
                api=apis.secrets,
                resource=SECRETS,
                namespace=watch_namespace,
                label_selector=settings.watch_configs_label_selector,
                timings=timings,
            )
            secrets.add_handler(SecretUserHandler(self.queue.add, sources.list))
        return sources, artifacts, secrets

    @property
    def is_leader(self) -> bool:
        return self.elector is None or self.elector.is_leader

    @property
    def leader_artifact_server(self) -> str | None:
        """The leader's artifact server as read from the Lease (None: unknown, or no election)."""
        return None if self.elector is None else self.elector.leader_artifact_server

    def advertise_artifact_server(self, url: str) -> None:
        """Let followers forward downloads here while this replica leads."""
        if self.elector is not None:
            self.elector.advertise(url)

    def stop(self) -> None:
        """Begin a graceful stop (idempotent; safe from a signal handler)."""
        if not self._stopping.is_set():
            log.info("stopping: finishing in-flight reconciles")
        self._stopping.set()

    async def wait_started(self) -> None:
        """Until the servers are bound (ports known)."""
        await self._started.wait()

    async def run(self, wiring: Wiring) -> None:
        """Run until `stop()` (returns) or cancellation."""
        self._readiness.update(wiring.readiness_checks)
        self._beat = anyio.current_time()
        metrics.MAX_CONCURRENT_RECONCILES.labels(controller=CONTROLLER_NAME).set(
            self.settings.concurrent
        )
        try:
            async with contextlib.AsyncExitStack() as stack:
                self.health_port = await stack.enter_async_context(
                    serving(self._health_app(), self.settings.health_addr)
                )
                self.metrics_port = await stack.enter_async_context(
                    serving(metrics_app(), self.settings.metrics_addr)
                )
                self._started.set()
                async with anyio.create_task_group() as tg:
                    for informer in self.informers:
                        tg.start_soon(_supervise, f"informer-{informer.name}", informer.run)
                    tg.start_soon(_supervise, "heartbeat", self._heartbeat)
                    await self._lead_and_work(wiring)
                    tg.cancel_scope.cancel()
        finally:
            if self.elector is not None:
                with anyio.CancelScope(shield=True):
                    await self.elector.release()
        log.info("stopped")

    async def _lead_and_work(self, wiring: Wiring) -> None:
        while not self._stopping.is_set():
            if self.elector is not None and not await self._until_stop(self.elector.acquire):
                return
            if not await self._lead(wiring):
                return

    async def _lead(self, wiring: Wiring) -> bool:
        """Work while leading; True when leadership was lost (campaign again)."""
        lost = False
        async with anyio.create_task_group() as tg:
            elector = self.elector
            if elector is not None:

                async def keep() -> None:
                    nonlocal lost
                    await elector.hold()
                    lost = True
                    tg.cancel_scope.cancel()

                tg.start_soon(keep)

            async def work() -> None:
                await self._work(wiring)
                tg.cancel_scope.cancel()

            tg.start_soon(work)
        if lost:
            log.warning("stopped work after losing leadership")
        return lost

    async def _work(self, wiring: Wiring) -> None:
        if not await self._until_stop(self._wait_synced):
            return
        self._terms += 1
        if self._terms > 1:
            self._resync()
        async with contextlib.AsyncExitStack() as services:
            for service in wiring.leader_services:
                await services.enter_async_context(service())
            log.info("starting workers", concurrent=self.settings.concurrent)
            async with anyio.create_task_group() as workers:
                for _ in range(self.settings.concurrent):
                    workers.start_soon(self._worker, wiring.reconcile)
                await self._stopping.wait()
                self.queue.shutdown()
                workers.cancel_scope.deadline = (
                    anyio.current_time() + self.settings.graceful_shutdown_timeout
                )
            if workers.cancel_scope.cancelled_caught:
                log.warning("graceful shutdown timeout: in-flight reconciles were cancelled")

    async def _worker(self, reconcile: Reconcile) -> None:
        await run_worker(queue=self.queue, reconcile=reconcile, controller=CONTROLLER_NAME)

    def _resync(self) -> None:
        """Enqueue every cached source, spread over a few seconds (a new leader term)."""
        for obj in self.sources.list():
            self.queue.add_after(key_of(obj), random.uniform(0, _RESYNC_SPREAD))  # noqa: S311

    async def _wait_synced(self) -> None:
        for informer in self.informers:
            await informer.wait_synced()
        log.info("caches synced", sources=len(self.sources.list()))

    async def _until_stop(self, fn: Callable[[], Awaitable[None]]) -> bool:
        """Run `fn` unless a stop comes first; True when `fn` completed."""
        completed = False
        async with anyio.create_task_group() as tg:

            async def run() -> None:
                nonlocal completed
                await fn()
                completed = True
                tg.cancel_scope.cancel()

            async def stop() -> None:
                await self._stopping.wait()
                tg.cancel_scope.cancel()

            tg.start_soon(run)
            tg.start_soon(stop)
        return completed

    async def _heartbeat(self) -> None:
        while True:
            self._beat = anyio.current_time()
            await anyio.sleep(_HEARTBEAT)

    def _health_app(self) -> Any:
        def loop_alive() -> bool:
            return anyio.current_time() - self._beat < _HEARTBEAT_STALE

        liveness: dict[str, Check] = {"event-loop": loop_alive}
        for informer in self.informers:
            liveness[f"informer-{informer.name}"] = _progressing(informer)
        return health_app(
            liveness=liveness,
            readiness=self._readiness,
            leadership=lambda: "disabled" if self.elector is None else self.elector.is_leader,
        )


def _elector(
    settings: ControllerSettings,
    apis: KubeApis,
    environ: Mapping[str, str],
    identity: str | None,
) -> LeaderElector | None:
    """The Lease candidate, with `--enable-leader-election`; one Lease per shard."""
    if not settings.enable_leader_election:
        return None
    return LeaderElector(
        api=apis.leader,
        name=lease_name(settings.watch_label_selector),
        namespace=settings.leader_election_namespace
        or runtime_namespace(environ)
        or apis.leader.namespace,
        identity=identity or default_identity(),
        lease_duration=settings.leader_election_lease_duration,
        renew_deadline=settings.leader_election_renew_deadline,
        retry_period=settings.leader_election_retry_period,
    )


def _synced(informer: Informer) -> Check:
    return lambda: informer.has_synced


def _progressing(informer: Informer) -> Check:
    def check() -> bool:
        last = informer.last_progress
        return last is None or anyio.current_time() - last < _INFORMER_STALE

    return check


async def _supervise(name: str, fn: Callable[[], Awaitable[None]]) -> None:
    """Run a long-lived task forever, restarting it with backoff when it ends or fails."""
    backoff = ReconnectBackoff()
    while True:
        try:
            await fn()
            log.error("long-lived task ended; restarting", task=name)
        except Exception:
            log.exception("long-lived task failed; restarting", task=name)
        await backoff.wait()
