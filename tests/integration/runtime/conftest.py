"""Fixtures of the runtime's integration tests: the fake API server on a real socket."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio
from aiohttp import web

from tests.integration.runtime.fakeapi import FakeApi


@pytest_asyncio.fixture
async def fake_api() -> AsyncIterator[FakeApi]:
    api = FakeApi()
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
