"""Helpers for the s3 generator tests: a generator, requests for a moto server's objects.

`spool_dir` comes from the generators' conftest one folder up.
"""

from __future__ import annotations

import pathlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from generators.base import GeneratorSettings
from generators.requests import S3ObjectRequest
from generators.s3 import S3Generator
from tests.fixtures.s3 import MotoServer


@pytest.fixture(autouse=True)
def _isolated_aws_env(s3_default_chain_env: None) -> None:
    """No test here may read a developer's ~/.aws or ask instance metadata."""


@pytest_asyncio.fixture
async def generator(spool_dir: pathlib.Path) -> AsyncIterator[S3Generator]:
    gen = S3Generator(
        GeneratorSettings(  # moto listens on loopback
            max_body_size=1024 * 1024,
            spool_dir=str(spool_dir),
            spool_memory_threshold=16,
            allow_loopback=True,
        )
    )
    yield gen
    await gen.aclose()


def request_for(server: MotoServer, bucket: str, key: str, **overrides: Any) -> S3ObjectRequest:
    values: dict[str, Any] = {
        "bucket": bucket,
        "key": key,
        "endpoint": server.endpoint,
        "region": "us-east-1",
        "access_key": server.access_key,
        "secret_key": server.secret_key,
        "path_style": True,
        "timeout": 10.0,
    }
    values.update(overrides)
    return S3ObjectRequest(**values)
