"""Helpers for the s3 backend tests: settings pointing at a moto server, keys in a Secret dir."""

from __future__ import annotations

import pathlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import pytest_asyncio

from storage.s3 import S3Backend, S3Settings
from tests.fixtures.s3 import MotoServer

MakeBackend = Callable[..., S3Backend]


@pytest.fixture(autouse=True)
def _isolated_aws_env(s3_default_chain_env: None) -> None:
    """No test here may read a developer's ~/.aws or ask instance metadata."""


def write_credentials(directory: pathlib.Path, access_key: str, secret_key: str) -> str:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "accesskey").write_text(access_key + "\n")
    (directory / "secretkey").write_text(secret_key + "\n")
    return str(directory)


def settings_for(server: MotoServer, bucket: str, **overrides: Any) -> S3Settings:
    values: dict[str, Any] = {
        "s3_endpoint": server.endpoint,
        "s3_bucket": bucket,
        "s3_path_style": True,
        "s3_timeout": 5.0,
        "s3_max_attempts": 2,
    }
    values.update(overrides)
    return S3Settings(**values)


@pytest_asyncio.fixture
async def make_backend() -> AsyncIterator[MakeBackend]:
    """Builds backends (settings_for's arguments) and closes them after the test."""
    made: list[S3Backend] = []

    def make(server: MotoServer, bucket: str, **overrides: Any) -> S3Backend:
        page_size = overrides.pop("list_page_size", 1000)
        backend = S3Backend(settings_for(server, bucket, **overrides), list_page_size=page_size)
        made.append(backend)
        return backend

    yield make
    for backend in made:
        await backend.aclose()


async def read_all(backend: S3Backend, key: str) -> bytes:
    return b"".join([chunk async for chunk in backend.open(key)])
