"""The whole controller (Manager + wiring) in-process against the Kubernetes API
emulator (tests/harness), a real origin server and the real artifact server."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Callable
from typing import Any

import attrs
import pytest_asyncio
from aiohttp import web

from controller import wiring
from controller.config import load_config
from controller.runtime.keys import ObjectKey
from controller.runtime.kube import KubeApis
from controller.runtime.manager import Manager
from tests.harness import Emulator, kubeconfig

NS = "apps"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@attrs.define
class Controller:
    api: Emulator
    manager: Manager
    artifact_base: str
    task: asyncio.Task[None] | None = None

    def source(self, name: str) -> dict[str, Any] | None:
        return self.api.get_object("externalsources", NS, name)

    def artifact(self, name: str) -> dict[str, Any] | None:
        return self.api.get_object("externalartifacts", NS, name)

    def create(self, obj: dict[str, Any]) -> None:
        """What `kubectl apply` does (validated against the CRD like a real API server)."""
        self.api.create_object("externalsources", obj)

    def patch(self, name: str, patch: dict[str, Any]) -> None:
        self.api.patch_object("externalsources", NS, name, patch)

    def delete(self, name: str) -> None:
        self.api.delete_object("externalsources", NS, name)

    def enqueue(self, name: str) -> None:
        """What the interval timer does: hand the key to the workers now."""
        self.manager.queue.add(ObjectKey(NS, name))

    async def wait_for(self, check: Callable[[], Any], timeout: float = 10.0) -> Any:
        async with asyncio.timeout(timeout):
            while not (result := check()):
                await asyncio.sleep(0.02)
            return result

    async def idle(self) -> None:
        """Wait until the queue is empty, no reconcile is running and the writes settled
        (Events are sent by the recorder's own task, shortly after the reconcile)."""
        queue = self.manager.queue
        await self.wait_for(lambda: len(queue) == 0 and not queue.processing)
        seen = -1
        while seen != len(self.api.writes()):
            seen = len(self.api.writes())
            await asyncio.sleep(0.2)


@contextlib.asynccontextmanager
async def run_controller(
    api: Emulator, *flags: str, port: int | None = None
) -> AsyncIterator[Controller]:
    port = port or free_port()
    config = load_config(
        [
            f"--storage-addr=127.0.0.1:{port}",
            "--health-addr=127.0.0.1:0",
            "--metrics-addr=127.0.0.1:0",
            "--log-level=warn",
            "--allow-loopback-addresses",  # the origin and S3 servers of the tests are local
            "--progress-report-delay=0.3s",
            *flags,
        ],
        {},
    )
    apis = await KubeApis.connect(
        qps=1000, burst=1000, environ={}, url=str(api.url), kubeconfig=kubeconfig(str(api.url))
    )
    manager = Manager(settings=config.controller, apis=apis, environ={})
    try:
        async with wiring.build(config, manager) as wired:
            ctl = Controller(api=api, manager=manager, artifact_base=f"http://127.0.0.1:{port}")
            ctl.task = asyncio.create_task(manager.run(wired))
            await manager.wait_started()
            try:
                yield ctl
            finally:
                manager.stop()
                await ctl.task
    finally:
        await apis.aclose()


@pytest_asyncio.fixture
async def controller(k8s: Emulator) -> AsyncIterator[Controller]:
    async with run_controller(k8s, "--artifact-retention-ttl=1s") as ctl:
        yield ctl


@pytest_asyncio.fixture
async def notification_receiver() -> AsyncIterator[tuple[str, list[dict[str, Any]]]]:
    """A stand-in for Flux's notification-controller: records every event POSTed to it."""
    received: list[dict[str, Any]] = []

    async def handle(request: web.Request) -> web.Response:
        received.append(await request.json())
        return web.Response(status=202)

    app = web.Application()
    app.router.add_post("/", handle)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}/", received
    finally:
        await runner.cleanup()
