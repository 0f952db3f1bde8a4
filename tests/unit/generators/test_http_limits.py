"""The response size limit, enforced while streaming to a spooled temp file."""

from __future__ import annotations

import hashlib
import os
import pathlib

import pytest

from generators.base import Fetched, FetchError, GeneratorSettings
from generators.http import HttpGenerator
from generators.requests import HttpRequest
from tests.fixtures.origin import OriginServer
from tests.unit.generators.conftest import body_of

LIMIT = 256 * 1024


@pytest.fixture
def limited(settings: GeneratorSettings) -> GeneratorSettings:
    return GeneratorSettings(
        max_body_size=LIMIT,
        spool_dir=settings.spool_dir,
        spool_memory_threshold=1024,
        allow_loopback=True,
    )


def _open_files_under(directory: pathlib.Path) -> list[str]:
    """Files this process still holds open in `directory` (unlinked temp files included)."""
    targets = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            targets.append(os.readlink(f"/proc/self/fd/{fd}"))
        except OSError:
            continue
    return [t for t in targets if t.startswith(str(directory))]


async def _too_large(settings: GeneratorSettings, url: str) -> FetchError:
    generator = HttpGenerator(settings)
    try:
        with pytest.raises(FetchError) as caught:
            await generator.fetch(HttpRequest(url=url))
    finally:
        await generator.aclose()
    return caught.value


async def test_chunked_body_over_the_limit_fails_mid_stream_and_leaves_no_file(
    limited: GeneratorSettings, origin: OriginServer, spool_dir: pathlib.Path
) -> None:
    origin.mode("/huge", stream_size=10 * LIMIT)
    error = await _too_large(limited, origin.url("/huge"))
    assert (error.reason, error.transient) == ("ResponseTooLarge", False)
    assert str(LIMIT) in error.message
    assert list(spool_dir.iterdir()) == []
    assert _open_files_under(spool_dir) == []


async def test_declared_length_over_the_limit_is_refused_before_reading(
    limited: GeneratorSettings, origin: OriginServer, spool_dir: pathlib.Path
) -> None:
    origin.mode("/huge", stream_size=10 * LIMIT, declare_length=True)
    error = await _too_large(limited, origin.url("/huge"))
    assert error.reason == "ResponseTooLarge"
    assert list(spool_dir.iterdir()) == []
    assert _open_files_under(spool_dir) == []


async def test_body_exactly_at_the_limit_is_accepted(
    limited: GeneratorSettings, origin: OriginServer
) -> None:
    origin.mode("/edge", stream_size=LIMIT)
    generator = HttpGenerator(limited)
    try:
        result = await generator.fetch(HttpRequest(url=origin.url("/edge")))
    finally:
        await generator.aclose()
    assert isinstance(result, Fetched)
    assert result.size == LIMIT
    assert body_of(result) == b"x" * LIMIT


async def test_large_chunked_body_is_spooled_intact(
    http: HttpGenerator, origin: OriginServer
) -> None:
    payload = bytes(range(256)) * 4096  # 1 MiB, beyond the 1 KiB memory threshold
    origin.set("/big", body=payload)
    origin.mode("/big", chunked=True)
    result = await http.fetch(HttpRequest(url=origin.url("/big")))
    assert isinstance(result, Fetched)
    assert result.size == len(payload)
    assert hashlib.sha256(body_of(result)).digest() == hashlib.sha256(payload).digest()
