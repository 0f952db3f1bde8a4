"""Pooled aiohttp sessions, one per distinct TLS configuration.

Building an SSL context (system trust store, CA bundle, client key) and a
connection pool costs far more than a conditional request, and the fast path
runs thousands of fetches a minute; so sessions are cached by a digest of the
TLS material and reused by every source that shares it. Proxies are per
request in aiohttp and so are not part of the key. Sessions never keep cookies
(`DummyCookieJar`) because sources of different tenants share them, ignore the
environment's proxy settings (only the spec's proxy is used), and resolve
names through the metadata-address guard. The cache is bounded; an evicted
session is closed once its last in-flight fetch releases it.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import shutil
import ssl
import tempfile
from collections.abc import AsyncIterator, Callable

import aiohttp
import structlog
from aiohttp.abc import AbstractResolver

from generators import reasons
from generators.address_guard import GuardedResolver
from generators.base import FetchError
from generators.leases import Close, LeasePool
from generators.requests import ClientCertificate, HttpRequest

log = structlog.get_logger(__name__)

#: distinct TLS configurations kept open at once
MAX_SESSIONS = 64

ResolverFactory = Callable[[], AbstractResolver]


def tls_key(request: HttpRequest) -> str:
    """A digest identifying the TLS configuration of `request` (never the material itself)."""
    cert = request.client_cert
    mode = b"insecure" if request.insecure_skip_verify else b"verify"
    if not request.ca_bundle and cert is None:
        return _plain_key(mode)  # most sources: computed once, not on every fetch
    pems = (cert.cert_pem, cert.key_pem) if cert else (b"", b"")
    return _digest(request.ca_bundle or b"", *pems, mode)


@functools.cache
def _plain_key(mode: bytes) -> str:
    return _digest(b"", b"", b"", mode)


def _digest(*parts: bytes) -> str:
    """sha256 over length-prefixed parts."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


def build_ssl_context(request: HttpRequest, *, key_dir: str | None) -> ssl.SSLContext:
    """System trust plus the spec's CA bundle, the client certificate, and verification mode."""
    context = ssl.create_default_context()
    try:
        if request.ca_bundle:
            context.load_verify_locations(cadata=request.ca_bundle.decode("ascii"))
        if request.client_cert is not None:
            _load_client_cert(context, request.client_cert, key_dir=key_dir)
    except (ssl.SSLError, UnicodeDecodeError, ValueError) as exc:
        what = "client certificate" if request.client_cert else "CA bundle"
        raise FetchError(
            f"the {what} is not usable PEM ({type(exc).__name__})",
            reason=reasons.INVALID_TLS_CONFIG,
            transient=False,
        ) from None
    if request.insecure_skip_verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _load_client_cert(
    context: ssl.SSLContext, cert: ClientCertificate, *, key_dir: str | None
) -> None:
    # ssl can only load a key from a file: a private directory, 0600 files, removed at once
    directory = tempfile.mkdtemp(prefix="exs-mtls-", dir=key_dir)
    try:
        paths = []
        for name, pem in (("cert.pem", cert.cert_pem), ("key.pem", cert.key_pem)):
            path = os.path.join(directory, name)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(pem)
            paths.append(path)
        context.load_cert_chain(certfile=paths[0], keyfile=paths[1])
    finally:
        shutil.rmtree(directory, ignore_errors=True)


class SessionPool:
    """A bounded LRU of aiohttp sessions keyed by `tls_key`."""

    def __init__(
        self,
        *,
        resolver_factory: ResolverFactory,
        allow_link_local: bool,
        allow_loopback: bool,
        key_dir: str | None,
    ) -> None:
        self._resolver_factory = resolver_factory
        self._allow_link_local = allow_link_local
        self._allow_loopback = allow_loopback
        self._key_dir = key_dir
        self._resolver: AbstractResolver | None = None
        self._sessions: LeasePool[aiohttp.ClientSession] = LeasePool(limit=MAX_SESSIONS)

    @property
    def resolver(self) -> AbstractResolver:
        """The resolver every session connects through (guarded unless everything is allowed)."""
        if self._resolver is None:
            inner = self._resolver_factory()
            guarded = not (self._allow_link_local and self._allow_loopback)
            self._resolver = (
                GuardedResolver(
                    inner,
                    allow_link_local=self._allow_link_local,
                    allow_loopback=self._allow_loopback,
                )
                if guarded
                else inner
            )
        return self._resolver

    @contextlib.asynccontextmanager
    async def lease(self, request: HttpRequest) -> AsyncIterator[aiohttp.ClientSession]:
        async def create() -> tuple[aiohttp.ClientSession, Close]:
            session = self._open(request)
            return session, session.close

        async with self._sessions.lease(tls_key(request), create) as session:
            yield session

    def _open(self, request: HttpRequest) -> aiohttp.ClientSession:
        context = build_ssl_context(request, key_dir=self._key_dir)
        if request.insecure_skip_verify:
            log.warning("tls verification disabled for a source (insecureSkipVerify)")
        connector = aiohttp.TCPConnector(ssl=context, resolver=self.resolver)
        return aiohttp.ClientSession(
            connector=connector,
            cookie_jar=aiohttp.DummyCookieJar(),
            trust_env=False,
            timeout=aiohttp.ClientTimeout(total=None),
            headers={"User-Agent": "externalsource-controller"},
        )

    async def aclose(self) -> None:
        await self._sessions.aclose()
        if self._resolver is not None:
            await self._resolver.close()
            self._resolver = None
