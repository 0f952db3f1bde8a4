"""Pooled aiobotocore S3 clients, one per distinct endpoint/credentials/TLS configuration.

Building a client (endpoint rules, signer, connection pool, SSL context) costs
far more than a conditional HEAD, and many sources share an endpoint and a
Secret, so clients are cached by a digest of everything that shapes them —
endpoint, region, addressing style, keys, CA bundle, verification — and never
by the material itself. The cache is bounded (LRU); an evicted client is
closed once its last in-flight fetch releases it. A CA bundle is written to a
private temp file for botocore's `verify=` and removed with its client.

Connections resolve names through the metadata-address guard (an endpoint is
user input: `http://169.254.169.254` with path-style keys would read the node's
credentials), and IP-literal endpoints are checked before a client is made.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import AsyncIterator
from typing import Any

import yarl
from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession, get_session
from aiohttp.resolver import ThreadedResolver

from generators.address_guard import GuardedResolver
from generators.leases import Close, LeasePool
from generators.requests import S3ObjectRequest

#: distinct client configurations kept open at once
MAX_CLIENTS = 32
#: per request attempt; the whole fetch is bounded by `S3ObjectRequest.timeout`
CONNECT_TIMEOUT = 10.0
READ_TIMEOUT = 30.0
MAX_ATTEMPTS = 3


def client_key(request: S3ObjectRequest) -> str:
    """A digest of everything that shapes a client (never the secret material itself)."""
    digest = hashlib.sha256()
    for part in (
        request.endpoint or "",
        request.region or "",
        "path" if request.path_style else "auto",
        "insecure" if request.insecure_skip_verify else "verify",
        request.access_key or "",
        request.secret_key or "",
    ):
        encoded = part.encode()
        digest.update(len(encoded).to_bytes(8, "big") + encoded)
    ca = request.ca_bundle or b""
    digest.update(len(ca).to_bytes(8, "big") + ca)
    return digest.hexdigest()


def endpoint_host(endpoint: str) -> str | None:
    """The host of an http(s) endpoint URL, or None when it is not one."""
    try:
        url = yarl.URL(endpoint)
    except (TypeError, ValueError):
        return None
    if url.scheme not in ("http", "https") or not url.host:
        return None
    return url.host


class ClientPool:
    """Leases shared S3 clients; `aclose()` closes every one of them."""

    def __init__(
        self, *, allow_link_local: bool, allow_loopback: bool, temp_dir: str | None
    ) -> None:
        self._allow_link_local = allow_link_local
        self._allow_loopback = allow_loopback
        self._temp_dir = temp_dir
        self._session: AioSession = get_session()
        self._clients: LeasePool[Any] = LeasePool(limit=MAX_CLIENTS)

    @contextlib.asynccontextmanager
    async def lease(self, request: S3ObjectRequest) -> AsyncIterator[Any]:
        async with self._clients.lease(client_key(request), lambda: self._create(request)) as c:
            yield c

    async def aclose(self) -> None:
        await self._clients.aclose()

    async def _create(self, request: S3ObjectRequest) -> tuple[Any, Close]:
        stack = contextlib.AsyncExitStack()
        verify: str | bool | None = None
        if request.insecure_skip_verify:
            verify = False
        elif request.ca_bundle:
            verify = self._write_ca(request.ca_bundle)
            stack.callback(_remove, verify)
        connector_args: dict[str, Any] = {}
        if not (self._allow_link_local and self._allow_loopback):
            connector_args["resolver"] = GuardedResolver(
                ThreadedResolver(),
                allow_link_local=self._allow_link_local,
                allow_loopback=self._allow_loopback,
            )
        config = AioConfig(
            connect_timeout=CONNECT_TIMEOUT,
            read_timeout=READ_TIMEOUT,
            retries={"mode": "standard", "max_attempts": MAX_ATTEMPTS},
            s3={"addressing_style": "path" if request.path_style else "auto"},
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            connector_args=connector_args,
        )
        keys: dict[str, str] = {}
        if request.access_key and request.secret_key:
            keys = {
                "aws_access_key_id": request.access_key,
                "aws_secret_access_key": request.secret_key,
            }
        try:
            client = await stack.enter_async_context(
                self._session.create_client(
                    "s3",
                    endpoint_url=request.endpoint or None,
                    region_name=request.region or "us-east-1",
                    verify=verify,
                    config=config,
                    **keys,
                )
            )
        except BaseException:
            await stack.aclose()
            raise
        return client, stack.aclose

    def _write_ca(self, pem: bytes) -> str:
        fd, path = tempfile.mkstemp(prefix="s3-ca-", suffix=".pem", dir=self._temp_dir)
        with os.fdopen(fd, "wb") as out:
            out.write(pem)
        return path


def _remove(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
