"""Failures are classified transient vs configuration, with a reason and Retry-After."""

from __future__ import annotations

import socket
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from generators.base import FetchError, GeneratorSettings, Validators
from generators.http import HttpGenerator
from generators.http_errors import parse_retry_after, redact_url
from generators.requests import HttpRequest
from tests.fixtures.origin import OriginServer


async def _failure(generator: HttpGenerator, request: HttpRequest) -> FetchError:
    return await _failure_with(generator, request, None)


async def _failure_with(
    generator: HttpGenerator, request: HttpRequest, previous: Validators | None
) -> FetchError:
    with pytest.raises(FetchError) as caught:
        await generator.fetch(request, previous)
    return caught.value


async def test_429_is_transient_with_retry_after_seconds(
    http: HttpGenerator, origin: OriginServer
) -> None:
    origin.mode("/api", status=429, retry_after="7")
    error = await _failure(http, HttpRequest(url=origin.url("/api")))
    assert (error.reason, error.transient, error.retry_after) == ("RateLimited", True, 7.0)
    assert "429" in error.message


async def test_503_retry_after_as_http_date(http: HttpGenerator, origin: OriginServer) -> None:
    when = datetime.now(UTC) + timedelta(seconds=120)
    origin.mode("/api", status=503, retry_after=format_datetime(when, usegmt=True))
    error = await _failure(http, HttpRequest(url=origin.url("/api")))
    assert (error.reason, error.transient) == ("OriginUnavailable", True)
    assert error.retry_after is not None
    assert 100 < error.retry_after <= 120


async def test_429_on_the_head_stops_the_fetch_with_retry_after(
    http: HttpGenerator, origin: OriginServer
) -> None:
    origin.mode("/api", status=429, retry_after="3")
    error = await _failure_with(http, HttpRequest(url=origin.url("/api")), Validators(etag='"a"'))
    assert (error.transient, error.retry_after) == (True, 3.0)
    assert [r.method for r in origin.requests] == ["HEAD"]


@pytest.mark.parametrize("status", [500, 502, 504, 408])
async def test_server_errors_are_transient(
    http: HttpGenerator, origin: OriginServer, status: int
) -> None:
    origin.mode("/api", status=status)
    error = await _failure(http, HttpRequest(url=origin.url("/api")))
    assert (error.reason, error.transient, error.retry_after) == ("OriginUnavailable", True, None)


@pytest.mark.parametrize("status", [400, 401, 403, 404, 410])
async def test_client_errors_are_configuration(
    http: HttpGenerator, origin: OriginServer, status: int
) -> None:
    origin.mode("/api", status=status)
    error = await _failure(http, HttpRequest(url=origin.url("/api")))
    assert (error.reason, error.transient) == ("OriginRejectedRequest", False)
    assert str(status) in error.message


async def test_connection_refused_is_transient(http: HttpGenerator) -> None:
    with socket.socket() as sock:  # a port that was just free: nothing listens on it
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    error = await _failure(http, HttpRequest(url=f"http://127.0.0.1:{port}/"))
    assert (error.reason, error.transient) == ("ConnectionFailed", True)


async def test_unknown_host_is_transient(http: HttpGenerator) -> None:
    error = await _failure(http, HttpRequest(url="http://does-not-exist.invalid/"))
    assert (error.reason, error.transient) == ("DNSResolutionFailed", True)


async def test_slow_origin_hits_the_deadline(http: HttpGenerator, origin: OriginServer) -> None:
    origin.set("/slow", body=b"late")
    origin.mode("/slow", delay=5)
    error = await _failure(http, HttpRequest(url=origin.url("/slow"), timeout=0.3))
    assert (error.reason, error.transient) == ("Timeout", True)
    assert "0.3s" in error.message


async def test_deadline_covers_head_and_get_together(
    http: HttpGenerator, origin: OriginServer
) -> None:
    origin.set("/slow", body=b"late", etag='"v2"')
    origin.mode("/slow", delay=0.5)
    request = HttpRequest(url=origin.url("/slow"), timeout=0.8)
    with pytest.raises(FetchError) as caught:
        await http.fetch(request, Validators(etag='"v1"'))
    assert caught.value.reason == "Timeout"
    assert [r.method for r in origin.requests] == ["HEAD", "GET"]


@pytest.mark.parametrize(
    "url", ["ftp://example.com/file", "not a url", "http:///no-host", "file:///etc/passwd"]
)
async def test_bad_urls_are_configuration(http: HttpGenerator, url: str) -> None:
    error = await _failure(http, HttpRequest(url=url))
    assert (error.reason, error.transient) == ("InvalidRequest", False)


async def test_unsupported_method_is_configuration(
    http: HttpGenerator, origin: OriginServer
) -> None:
    error = await _failure(http, HttpRequest(url=origin.url("/"), method="TRACE"))
    assert (error.reason, error.transient) == ("InvalidRequest", False)
    assert origin.requests == []


async def test_wrong_request_type_is_configuration(settings: GeneratorSettings) -> None:
    generator = HttpGenerator(settings)
    with pytest.raises(FetchError) as caught:
        await generator.fetch({"url": "http://example.com"})
    assert caught.value.transient is False


def test_retry_after_parsing() -> None:
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0


def test_redacted_urls_hide_userinfo_and_query() -> None:
    assert redact_url("https://user:pw@api.test:8443/v1?token=t#f") == "https://api.test:8443/v1?…"
    assert redact_url("http://api.test/v1") == "http://api.test/v1"
