"""Turn HTTP failures into `FetchError`s: a reason, a message, transient or not.

Messages are written for `kubectl describe` and are built here from a fixed
vocabulary (method, redacted URL, status, OS error text) — never from a library
exception's `str()`, which may embed request details — so header values,
request bodies, URL userinfo and query strings cannot reach a status condition
or a log line. Classification follows docs/architecture.md ("Errors"): network
trouble, timeouts, 5xx, 408 and 429 are transient; TLS verification, other
4xx, refused addresses, redirect loops and oversized bodies are configuration
problems.
"""

from __future__ import annotations

import functools
import ssl
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from http import HTTPStatus

import aiohttp
import yarl

from generators import reasons
from generators.address_guard import LINK_LOCAL, LOOPBACK, AddressNotAllowedError
from generators.base import FetchError


@functools.lru_cache(maxsize=4096)
def redact_url(url: yarl.URL | str) -> str:
    """The URL without userinfo, query or fragment (those may carry credentials).

    Cached: every fetch names its URL in its error context, and the same few thousand
    URLs come back every interval."""
    try:
        parsed = url if isinstance(url, yarl.URL) else yarl.URL(url)
        shown = str(parsed.with_user(None).with_query(None).with_fragment(None))
    except (TypeError, ValueError):
        return "<invalid URL>"
    return f"{shown}?…" if parsed.raw_query_string else shown


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a `Retry-After` header (delta-seconds or an HTTP date)."""
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def status_error(*, where: str, status: int, retry_after: str | None = None) -> FetchError:
    """The error for a final response status that is neither 2xx nor an expected 304."""
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "unknown status"
    answered = f"{where}: origin answered {status} {phrase}"
    if status == 429:
        delay = parse_retry_after(retry_after)
        return FetchError(answered, reason=reasons.RATE_LIMITED, retry_after=delay)
    if status == 407:
        return FetchError(
            f"{where}: the proxy refused our credentials (407)",
            reason=reasons.PROXY_AUTHENTICATION_FAILED,
            transient=False,
        )
    if status >= 500 or status == 408:
        delay = parse_retry_after(retry_after) if status == 503 else None
        return FetchError(answered, reason=reasons.ORIGIN_UNAVAILABLE, retry_after=delay)
    if status >= 400:
        return FetchError(answered, reason=reasons.ORIGIN_REJECTED_REQUEST, transient=False)
    return FetchError(answered, reason=reasons.UNEXPECTED_STATUS, transient=False)


def address_refused(*, where: str, host: str, what: str = LINK_LOCAL) -> FetchError:
    flag = "--allow-loopback-addresses" if what == LOOPBACK else "--allow-link-local-addresses"
    return FetchError(
        f"{where}: {host} is {what}, refused ({flag})",
        reason=reasons.ADDRESS_NOT_ALLOWED,
        transient=False,
    )


def address_unchecked(*, where: str, host: str) -> FetchError:
    """Behind a proxy the target's name must still resolve here to be checked: fail closed."""
    return FetchError(
        f"{where}: {host} does not resolve here, so its address cannot be checked and the "
        "request is not sent to the proxy (the address guard fails closed)",
        reason=reasons.DNS_RESOLUTION_FAILED,
        transient=True,
    )


def invalid_request(*, where: str, problem: str) -> FetchError:
    return FetchError(f"{where}: {problem}", reason=reasons.INVALID_REQUEST, transient=False)


def timed_out(*, where: str, timeout: float) -> FetchError:
    return FetchError(f"{where}: no complete answer within {timeout:g}s", reason=reasons.TIMEOUT)


def classify(exc: BaseException, *, where: str) -> FetchError:
    """Map an aiohttp/OS exception raised while talking to an origin to a `FetchError`."""
    if isinstance(exc, aiohttp.ClientConnectorError) and isinstance(
        exc.os_error, AddressNotAllowedError
    ):
        return address_refused(where=where, host=exc.os_error.host, what=exc.os_error.what)
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        detail = _verify_message(exc.certificate_error)
        return FetchError(
            f"{where}: TLS certificate verification failed ({detail})",
            reason=reasons.TLS_VERIFICATION_FAILED,
            transient=False,
        )
    if isinstance(exc, aiohttp.ClientSSLError | ssl.SSLError):
        return FetchError(
            f"{where}: TLS handshake failed ({_ssl_detail(exc)})",
            reason=reasons.TLS_HANDSHAKE_FAILED,
            transient=False,
        )
    if isinstance(exc, aiohttp.ClientHttpProxyError):
        if exc.status == 407:
            return FetchError(
                f"{where}: the proxy refused our credentials (407)",
                reason=reasons.PROXY_AUTHENTICATION_FAILED,
                transient=False,
            )
        return FetchError(f"{where}: the proxy answered {exc.status}", reason=reasons.PROXY_FAILED)
    if isinstance(exc, aiohttp.ClientProxyConnectionError):
        return FetchError(
            f"{where}: cannot connect to the proxy ({_os_detail(exc)})", reason=reasons.PROXY_FAILED
        )
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return FetchError(
            f"{where}: cannot resolve {exc.host} ({_os_detail(exc)})",
            reason=reasons.DNS_RESOLUTION_FAILED,
        )
    if isinstance(exc, aiohttp.ClientConnectorError):
        return FetchError(
            f"{where}: cannot connect to {exc.host}:{exc.port} ({_os_detail(exc)})",
            reason=reasons.CONNECTION_FAILED,
        )
    if isinstance(exc, aiohttp.InvalidURL):
        return invalid_request(where=where, problem="invalid URL")
    if isinstance(exc, TimeoutError):
        return FetchError(f"{where}: the origin stopped answering in time", reason=reasons.TIMEOUT)
    return FetchError(
        f"{where}: connection lost ({type(exc).__name__})", reason=reasons.CONNECTION_FAILED
    )


def _verify_message(error: BaseException) -> str:
    if isinstance(error, ssl.SSLCertVerificationError) and error.verify_message:
        return error.verify_message
    return type(error).__name__


def _ssl_detail(exc: BaseException) -> str:
    if isinstance(exc, aiohttp.ClientConnectorError):
        exc = exc.os_error
    reason = getattr(exc, "reason", None)
    return reason if isinstance(reason, str) and reason else type(exc).__name__


def _os_detail(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__
