"""The whole controller (Manager + wiring) in-process against the test API server,
a real origin server and the real artifact server."""

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
from tests.harness.apiserver import ApiServer
from tests.integration.runtime.fakeapi import kubeconfig

NS = "apps"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@attrs.define
class Controller:
    api: ApiServer
    manager: Manager
    artifact_base: str
    task: asyncio.Task[None] | None = None

    def source(self, name: str) -> dict[str, Any] | None:
        return self.api.get("externalsources", NS, name)

    def artifact(self, name: str) -> dict[str, Any] | None:
        return self.api.get("externalartifacts", NS, name)

    def enqueue(self, name: str) -> None:
        """What the interval timer does: hand the key to the workers now."""
        self.manager.queue.add(ObjectKey(NS, name))

    async def wait_for(self, check: Callable[[], Any], timeout: float = 10.0) -> Any:
        async with asyncio.timeout(timeout):
            while not (result := check()):
                await asyncio.sleep(0.02)
            return result

    async def idle(self) -> None:
        """Wait until the queue is empty and no reconcile is running."""
        queue = self.manager.queue
        await self.wait_for(lambda: len(queue) == 0 and not queue.processing)


@pytest_asyncio.fixture
async def api_server() -> AsyncIterator[ApiServer]:
    api = ApiServer()
    runner = web.AppRunner(api.app(), handle_signals=False, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    api.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        yield api
    finally:
        api.close_watches()
        await runner.cleanup()


@contextlib.asynccontextmanager
async def run_controller(
    api: ApiServer, *flags: str, port: int | None = None
) -> AsyncIterator[Controller]:
    port = port or free_port()
    config = load_config(
        [
            f"--storage-addr=127.0.0.1:{port}",
            "--health-addr=127.0.0.1:0",
            "--metrics-addr=127.0.0.1:0",
            "--log-level=warn",
            *flags,
        ],
        {},
    )
    apis = await KubeApis.connect(
        qps=1000, burst=1000, environ={}, url=api.url, kubeconfig=kubeconfig(api.url)
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
async def controller(api_server: ApiServer) -> AsyncIterator[Controller]:
    async with run_controller(api_server, "--artifact-retention-ttl=1s") as ctl:
        yield ctl
