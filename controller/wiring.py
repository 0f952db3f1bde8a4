"""Builds the reconciler side of the process and plugs it into the runtime Manager.

Everything with a lifetime is opened here and closed on the way out, in
reverse order: generators (connection pools), the storage backend, the hook
whitelist watcher, the event recorder, the artifact server. Every replica
serves artifacts: what its backend does not hold it streams from the leader
(found through the Lease, where each leader writes its own address), and it
is Ready once it can answer a download (docs/operations.md, "Replicas").
A whitelist change re-enqueues every source, because a source stalled on
`HookNotAllowed` must be retried when the whitelist changes even though its
spec did not.
"""

from __future__ import annotations

import contextlib
import functools
import os
import socket
from collections.abc import AsyncIterator

import anyio
import structlog

from controller.api.crd import generator_types
from controller.config import Config
from controller.events import EventRecorder
from controller.fetchrequest import ApiSecretReader
from controller.publishing import Retention
from controller.reconciler import Collaborators, Reconciler, ReconcilerSettings
from controller.runtime.keys import key_of
from controller.runtime.leader import default_identity
from controller.runtime.manager import Manager, StartupError, Wiring
from generators import registry
from hooks.executor import SidecarExecutor
from hooks.runner import HookRunner
from hooks.whitelist_manager import WhitelistManager
from storage.backend import StorageError
from storage.factory import create_backend
from storage.metrics import InstrumentedBackend
from storage.s3 import S3Backend
from storage.server import ArtifactServer

log = structlog.get_logger(__name__)


@contextlib.asynccontextmanager
async def build(config: Config, manager: Manager) -> AsyncIterator[Wiring]:
    problems = registry.check_types(generator_types())
    if problems:
        raise StartupError("; ".join(problems))
    kube = manager.api
    storage = await _open_storage(config)
    generators = {t: registry.create(t, config.generators) for t in registry.supported_types()}
    hooks = config.hooks
    whitelist = None
    if hooks.whitelist:
        whitelist = WhitelistManager(
            hooks.whitelist, reload_interval=hooks.whitelist_reload_interval
        )
    executor = SidecarExecutor(hooks.endpoint, hooks.token_file)
    events = EventRecorder(
        kube,
        events_addr=config.controller.events_addr,
        instance=default_identity(),
        busy=lambda: manager.queue.busy,
    )
    parts = Collaborators(
        kube=kube,
        sources=manager.sources.get,
        artifacts=manager.artifacts.get,
        secrets=ApiSecretReader(kube, manager.secrets.get if manager.secrets else None),
        generators=generators,
        runner=HookRunner(executor, whitelist),
        storage=storage,
        events=events,
    )
    reconciler = Reconciler(parts, _reconciler_settings(config))
    host, port = config.storage.listen_address()
    server = ArtifactServer(
        storage,
        host=host,
        port=port,
        upstream=lambda: None if manager.is_leader else manager.leader_artifact_server,
        ready=lambda: manager.is_leader or storage.shared or bool(manager.leader_artifact_server),
    )
    try:
        async with server, events:  # every replica serves; reconciles only queue events
            manager.advertise_artifact_server(_own_artifact_server(host, server.port))
            yield Wiring(
                reconcile=reconciler.reconcile,
                leader_services=(functools.partial(_watch_whitelist, whitelist, manager),),
                readiness_checks={"artifact-server": lambda: server.serving},
            )
    finally:
        for generator in generators.values():
            await generator.aclose()
        await executor.aclose()
        await storage.aclose()


def _reconciler_settings(config: Config) -> ReconcilerSettings:
    hooks = config.hooks
    return ReconcilerSettings(
        retention=Retention(
            advertised_address=config.storage.advertised_address(),
            records=config.storage.artifact_retention_records,
            ttl=config.storage.artifact_retention_ttl,
        ),
        interval_jitter_percentage=config.controller.interval_jitter_percentage,
        spool_dir=config.generators.spool_dir,
        cel_timeout=hooks.cel_timeout,
        cel_max_input_size=hooks.cel_max_input_size,
        cel_max_memory=hooks.cel_max_memory,
        progress_report_delay=config.controller.progress_report_delay,
    )


async def _open_storage(config: Config) -> InstrumentedBackend:
    """The configured backend; an unusable one (e.g. an unreachable bucket) stops start-up."""
    try:
        storage = create_backend(config.storage, s3=config.s3)
        if isinstance(storage.inner, S3Backend):
            await storage.inner.check()
    except StorageError as exc:
        raise StartupError(exc.message) from exc
    return storage


def _own_artifact_server(host: str | None, port: int) -> str:
    """This replica's artifact server as other replicas reach it: the pod IP in a cluster
    (downward API `POD_IP`), else the listen host, else the host name."""
    address = os.environ.get("POD_IP") or host
    if not address or address in ("0.0.0.0", "::"):  # noqa: S104 - not a bind
        address = socket.gethostname()
    return f"http://[{address}]:{port}" if ":" in address else f"http://{address}:{port}"


@contextlib.asynccontextmanager
async def _watch_whitelist(
    whitelist: WhitelistManager | None, manager: Manager
) -> AsyncIterator[WhitelistManager | None]:
    """Reload the whitelist; when it changes, requeue every source (HookNotAllowed stalls)."""
    if whitelist is None:
        yield None
        return

    async def requeue_on_change() -> None:
        seen = whitelist.generation
        while True:
            await anyio.sleep(whitelist.reload_interval)
            if whitelist.generation != seen:
                seen = whitelist.generation
                log.info("hook whitelist changed; requeueing every source")
                for obj in manager.sources.list():
                    manager.queue.add(key_of(obj))

    async with anyio.create_task_group() as tg:
        tg.start_soon(whitelist.run)
        tg.start_soon(requeue_on_change)
        yield whitelist
        tg.cancel_scope.cancel()
