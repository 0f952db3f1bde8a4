"""The `http` generator: one HTTP(S) request per fetch, conditional when it can be.

Conditional fetch (docs/architecture.md, step 9): for a GET with the previous
validators, a HEAD with `If-None-Match`/`If-Modified-Since` goes
first; 304 or an unchanged ETag/Last-Modified answers `NotModified` without a
body. A HEAD that is rejected (405/501 or another 4xx, e.g. a URL presigned
for GET only) or that carries no comparable validator falls back to a
conditional GET; a HEAD showing a different validator leads to a plain GET.
Other methods are sent once, unconditionally: `If-None-Match` on a POST means
something else (412 semantics), so their results are always full bodies.

Redirects are followed here, not by aiohttp, so that every hop passes the
address guard, so that request headers (they come from a Secret: tokens,
cookies, API keys) are dropped for good as soon as a hop changes scheme, host
or port, and so that a redirect from https to http is refused (as curl and
Flux do): a downgrade would expose the request and trust an unauthenticated
answer. The whole fetch, all hops included, runs under one
deadline (`HttpRequest.timeout`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import structlog
import yarl
from aiohttp.resolver import ThreadedResolver
from multidict import CIMultiDict

from generators import http_errors, reasons
from generators.address_guard import AddressNotAllowedError, refusal
from generators.base import (
    Fetched,
    FetchError,
    FetchResult,
    GeneratorSettings,
    NotModified,
    SourceGenerator,
    Validators,
)
from generators.http_sessions import ResolverFactory, SessionPool
from generators.requests import HttpRequest
from generators.spool import spool

log = structlog.get_logger(__name__)

METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE"})
REDIRECTS = frozenset({301, 302, 303, 307, 308})
HEAD_REJECTED = frozenset({405, 501})
CHUNK_SIZE = 64 * 1024


class HttpGenerator(SourceGenerator):
    """Fetches `HttpRequest`s; one instance serves every HTTP source of the process."""

    type_name = "http"
    supports_conditional_fetch = True

    def __init__(
        self, settings: GeneratorSettings, *, resolver_factory: ResolverFactory = ThreadedResolver
    ) -> None:
        self._settings = settings
        self._pool = SessionPool(
            resolver_factory=resolver_factory,
            allow_link_local=settings.allow_link_local,
            allow_loopback=settings.allow_loopback,
            key_dir=settings.spool_dir,
        )

    async def fetch(self, config: Any, previous: Validators | None = None) -> FetchResult:
        if not isinstance(config, HttpRequest):
            raise FetchError(
                f"the http generator cannot fetch a {type(config).__name__}",
                reason=reasons.INVALID_REQUEST,
                transient=False,
            )
        method = config.method.upper()
        where = f"{method} {http_errors.redact_url(config.url)}"
        if method not in METHODS:
            raise http_errors.invalid_request(where=where, problem="unsupported method")
        try:
            async with asyncio.timeout(config.timeout):
                async with self._pool.lease(config) as session:
                    exchange = _Exchange(
                        session=session,
                        request=config,
                        settings=self._settings,
                        resolver=self._pool.resolver,
                    )
                    result = await exchange.run(method, previous if method == "GET" else None)
        except TimeoutError:
            raise http_errors.timed_out(where=where, timeout=config.timeout) from None
        log.debug(
            "http fetch done",
            url=http_errors.redact_url(config.url),
            method=method,
            modified=isinstance(result, Fetched),
        )
        return result

    async def aclose(self) -> None:
        await self._pool.aclose()


class _Exchange:
    """One fetch: the HEAD/GET decision, the redirect walk and the body."""

    def __init__(
        self,
        *,
        session: aiohttp.ClientSession,
        request: HttpRequest,
        settings: GeneratorSettings,
        resolver: aiohttp.abc.AbstractResolver,
    ) -> None:
        self._session = session
        self._request = request
        self._settings = settings
        self._resolver = resolver

    async def run(self, method: str, previous: Validators | None) -> FetchResult:
        if not previous:
            return await self._get(method, conditional=None)
        async with self._open("HEAD", _conditional_headers(previous)) as (head, where):
            status, validators = head.status, _validators(head)
        if status == 304:
            return NotModified(_merge(validators, previous))
        if status in HEAD_REJECTED or (400 <= status < 500 and status not in (408, 429)):
            return await self._get(method, conditional=previous)
        if status >= 400:
            raise http_errors.status_error(
                where=where, status=status, retry_after=head.headers.get("Retry-After")
            )
        verdict = _compare(validators, previous)
        if verdict == "same":
            return NotModified(_merge(validators, previous))
        return await self._get(method, conditional=previous if verdict == "unknown" else None)

    async def _get(self, method: str, *, conditional: Validators | None) -> FetchResult:
        extra = _conditional_headers(conditional) if conditional else {}
        async with self._open(method, extra) as (response, where):
            if response.status == 304 and conditional:
                return NotModified(_merge(_validators(response), conditional))
            if not 200 <= response.status < 300:
                raise http_errors.status_error(
                    where=where,
                    status=response.status,
                    retry_after=response.headers.get("Retry-After"),
                )
            try:
                body, size = await spool(
                    response.content.iter_chunked(CHUNK_SIZE),
                    settings=self._settings,
                    declared_length=response.content_length,
                    where=where,
                )
            except (aiohttp.ClientError, OSError) as exc:
                raise http_errors.classify(exc, where=where) from None
            metadata = {
                key: value
                for key in ("etag", "last-modified", "content-type")
                if (value := response.headers.get(key)) is not None
            }
            validators = _validators(response)
            return Fetched(body=body, size=size, validators=validators, metadata=metadata)

    @contextlib.asynccontextmanager
    async def _open(
        self, method: str, extra: dict[str, str]
    ) -> AsyncIterator[tuple[aiohttp.ClientResponse, str]]:
        """Send `method`, following redirects; yields the final response and its `where`."""
        request = self._request
        url = self._parse(request.url, where=f"{method} {http_errors.redact_url(request.url)}")
        first_origin = _origin(url)
        headers: CIMultiDict[str] = CIMultiDict(request.headers)
        body = request.body
        for _ in range(self._settings.max_redirects + 1):
            where = f"{method} {http_errors.redact_url(url)}"
            url, headers = _move_userinfo(url, headers)
            await self._guard(url, where=where)
            sent = headers.copy()
            sent.update(extra)
            response = await self._send(method, url, headers=sent, body=body, where=where)
            if response.status not in REDIRECTS:
                try:
                    yield response, where
                finally:
                    response.release()
                return
            location = response.headers.get("Location")
            response.release()
            if not location:
                raise FetchError(
                    f"{where}: redirect without a Location",
                    reason=reasons.INVALID_REDIRECT,
                    transient=False,
                )
            target = self._parse(url.join(yarl.URL(location)).human_repr(), where=where)
            if url.scheme == "https" and target.scheme == "http":
                # as curl and Flux do: a redirect must not strip TLS from the fetch
                raise FetchError(
                    f"{where}: refusing a redirect from https to http "
                    f"({http_errors.redact_url(target)})",
                    reason=reasons.INVALID_REDIRECT,
                    transient=False,
                )
            url = target
            if headers and _origin(url) != first_origin:
                headers = CIMultiDict()
                log.debug("redirect to another origin, request headers dropped")
            if response.status == 303 or (response.status in (301, 302) and method == "POST"):
                method, body = ("HEAD" if method == "HEAD" else "GET"), None
        raise FetchError(
            f"{method} {http_errors.redact_url(request.url)}: more than "
            f"{self._settings.max_redirects} redirects (--max-redirects)",
            reason=reasons.TOO_MANY_REDIRECTS,
            transient=False,
        )

    async def _send(
        self,
        method: str,
        url: yarl.URL,
        *,
        headers: CIMultiDict[str],
        body: bytes | None,
        where: str,
    ) -> aiohttp.ClientResponse:
        proxy = self._request.proxy
        proxy_headers = {}
        if proxy is not None and proxy.username is not None:
            proxy_headers["Proxy-Authorization"] = aiohttp.encode_basic_auth(
                proxy.username, proxy.password or ""
            )
        try:
            return await self._session.request(
                method,
                url,
                headers=headers,
                data=body,
                allow_redirects=False,
                proxy=proxy.address if proxy else None,
                proxy_headers=proxy_headers or None,
            )
        except (aiohttp.ClientError, OSError) as exc:
            raise http_errors.classify(exc, where=where) from None
        except ValueError:
            problem = "the request cannot be sent (invalid header or URL)"
            raise http_errors.invalid_request(where=where, problem=problem) from None

    async def _guard(self, url: yarl.URL, *, where: str) -> None:
        """Refuse link-local/metadata/loopback targets; names are also filtered at connect time."""
        host = url.raw_host or ""
        settings = self._settings
        if settings.allow_link_local and settings.allow_loopback:
            return
        what = refusal(
            host, allow_link_local=settings.allow_link_local, allow_loopback=settings.allow_loopback
        )
        if what is not None:
            raise http_errors.address_refused(where=where, host=host, what=what)
        if self._request.proxy is not None:
            # the proxy, not our connector, resolves the target: check the name ourselves,
            # and fail closed when we cannot (a name only the proxy resolves is unchecked)
            try:
                await self._resolver.resolve(host, url.port or 0)
            except AddressNotAllowedError as exc:
                raise http_errors.address_refused(where=where, host=host, what=exc.what) from None
            except OSError:
                raise http_errors.address_unchecked(where=where, host=host) from None

    @staticmethod
    def _parse(raw: str, *, where: str) -> yarl.URL:
        try:
            url = yarl.URL(raw)
        except (TypeError, ValueError):
            raise http_errors.invalid_request(where=where, problem="invalid URL") from None
        if url.scheme not in ("http", "https") or not url.raw_host:
            raise http_errors.invalid_request(where=where, problem="URL must be http(s)://host/…")
        return url


def _origin(url: yarl.URL) -> tuple[str, str, int | None]:
    return url.scheme, (url.raw_host or "").lower(), url.port


def _move_userinfo(url: yarl.URL, headers: CIMultiDict[str]) -> tuple[yarl.URL, CIMultiDict[str]]:
    """URL credentials become an Authorization header (an explicit one wins).

    As a request header they are dropped at a cross-origin redirect like any
    other, and the URL used from here on carries no secret.
    """
    if url.raw_user is None:
        return url, headers
    if "Authorization" not in headers:
        headers = headers.copy()
        headers["Authorization"] = aiohttp.encode_basic_auth(url.user or "", url.password or "")
    return url.with_user(None), headers


def _conditional_headers(previous: Validators) -> dict[str, str]:
    headers = {}
    if previous.etag:
        headers["If-None-Match"] = previous.etag
    if previous.last_modified:
        headers["If-Modified-Since"] = previous.last_modified
    return headers


def _validators(response: aiohttp.ClientResponse) -> Validators:
    return Validators(
        etag=response.headers.get("ETag"), last_modified=response.headers.get("Last-Modified")
    )


def _merge(fresh: Validators, previous: Validators) -> Validators:
    return Validators(
        etag=fresh.etag or previous.etag,
        last_modified=fresh.last_modified or previous.last_modified,
    )


def _compare(fresh: Validators, previous: Validators) -> str:
    """'same' / 'changed' by the strongest validator both sides have, else 'unknown'."""
    if fresh.etag and previous.etag:
        return "same" if _weak(fresh.etag) == _weak(previous.etag) else "changed"
    if fresh.last_modified and previous.last_modified:
        return "same" if fresh.last_modified == previous.last_modified else "changed"
    return "unknown"


def _weak(etag: str) -> str:
    return etag.removeprefix("W/")
