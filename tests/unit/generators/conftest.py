"""Generators under test, built with a private spool directory so tests can see leftovers."""

from __future__ import annotations

import pathlib
import socket
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from aiohttp.abc import AbstractResolver, ResolveResult

from generators.base import Fetched, FetchResult, GeneratorSettings
from generators.http import HttpGenerator


@pytest.fixture
def spool_dir(tmp_path: pathlib.Path) -> pathlib.Path:
    path = tmp_path / "spool"
    path.mkdir()
    return path


@pytest.fixture
def settings(spool_dir: pathlib.Path) -> GeneratorSettings:
    # the test origins listen on loopback, which the address guard refuses by default
    return GeneratorSettings(
        spool_dir=str(spool_dir), spool_memory_threshold=1024, allow_loopback=True
    )


@pytest_asyncio.fixture
async def http(settings: GeneratorSettings) -> AsyncIterator[HttpGenerator]:
    generator = HttpGenerator(settings)
    yield generator
    await generator.aclose()


def body_of(result: FetchResult) -> bytes:
    assert isinstance(result, Fetched), result
    with result:
        return result.body.read()


class StaticResolver(AbstractResolver):
    """A DNS answer table: the tests' stand-in for a zone an attacker controls."""

    def __init__(self, table: dict[str, list[str]]) -> None:
        self._table = table

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        if host not in self._table:
            raise OSError(socket.EAI_NONAME, "Name or service not known")
        return [
            ResolveResult(
                hostname=host, host=ip, port=port, family=socket.AF_INET, proto=0, flags=0
            )
            for ip in self._table[host]
        ]

    async def close(self) -> None:
        pass
