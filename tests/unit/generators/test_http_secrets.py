"""No header value, request body, URL credential or proxy password in any message or log."""

from __future__ import annotations

import logging
import socket
import traceback

import pytest
import structlog

from generators.base import FetchError, GeneratorSettings, Validators
from generators.http import HttpGenerator
from generators.requests import HttpRequest, ProxyConfig
from tests.fixtures.origin import ForwardProxy, OriginServer

SECRET = "s3cr3t-Zq8"
HEADERS = {
    "Authorization": f"Bearer {SECRET}-auth",
    "Cookie": f"session={SECRET}-cookie",
    "X-Api-Key": f"{SECRET}-key",
}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_no_secret_in_errors_or_logs(
    settings: GeneratorSettings,
    origin: OriginServer,
    second_origin: OriginServer,
    tls_origin: OriginServer,
    forward_proxy: ForwardProxy,
    caplog: pytest.LogCaptureFixture,
) -> None:
    small = GeneratorSettings(max_body_size=1024, spool_dir=settings.spool_dir, allow_loopback=True)
    generator = HttpGenerator(small)
    origin.mode("/404", status=404)
    origin.mode("/429", status=429, retry_after="1")
    origin.mode("/500", status=500)
    origin.mode("/huge", stream_size=1 << 20)
    origin.mode("/slow", delay=5)
    origin.mode("/meta", redirect="http://169.254.169.254/")
    origin.mode("/away", redirect=second_origin.url("/404"))
    second_origin.mode("/404", status=404)
    forward_proxy.require_auth("user", "right")
    targets = [
        origin.url("/404"),
        origin.url("/429"),
        origin.url("/500"),
        origin.url("/huge"),
        origin.url("/meta"),
        origin.url("/away"),
        f"http://user:{SECRET}-pw@127.0.0.1:{origin.port}/404?token={SECRET}-query",
        f"http://127.0.0.1:{_free_port()}/refused",
        tls_origin.url("/untrusted"),
    ]
    requests = [
        HttpRequest(url=url, method="POST", headers=HEADERS, body=f"{SECRET}-body".encode())
        for url in targets
    ]
    requests.append(HttpRequest(url=origin.url("/slow"), headers=HEADERS, timeout=0.2))
    requests.append(
        HttpRequest(
            url=origin.url("/404"),
            headers=HEADERS,
            proxy=ProxyConfig(address=forward_proxy.url, username="user", password=SECRET),
        )
    )
    errors: list[FetchError] = []
    caplog.set_level(logging.DEBUG)
    try:
        with structlog.testing.capture_logs() as logs:
            for request in requests:
                with pytest.raises(FetchError) as caught:
                    await generator.fetch(request, Validators(etag=f'"{SECRET}"'))
                errors.append(caught.value)
    finally:
        await generator.aclose()

    assert len(errors) == len(requests)
    # the scenarios really are different failures
    assert {e.reason for e in errors} == {
        "OriginRejectedRequest",
        "RateLimited",
        "OriginUnavailable",
        "ResponseTooLarge",
        "AddressNotAllowed",
        "ConnectionFailed",
        "TLSVerificationFailed",
        "Timeout",
        "ProxyAuthenticationFailed",
    }
    for error in errors:
        rendered = "".join(traceback.format_exception(error))
        for text in (error.message, str(error), repr(error), rendered):
            assert SECRET not in text, text
    assert SECRET not in repr(logs)
    assert SECRET not in caplog.text
    assert all(SECRET not in repr(r) for r in requests)
