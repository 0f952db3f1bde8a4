"""Loopback targets in every spelling, fail-closed checks behind a proxy, https→http redirects."""

from __future__ import annotations

import pathlib
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from generators.address_guard import is_loopback
from generators.base import FetchError, GeneratorSettings
from generators.http import HttpGenerator
from generators.requests import HttpRequest, ProxyConfig
from tests.fixtures.origin import ForwardProxy, OriginServer
from tests.unit.generators.conftest import StaticResolver, body_of

#: every spelling of "this host" an attacker tried (issue 13)
LOOPBACK_HOSTS = [
    "127.0.0.1",
    "127.1",
    "127.255.255.254",
    "0x7f.1",
    "0x7f000001",
    "2130706433",
    "0177.0.0.1",
    "0.0.0.0",
    "0",
    "[::1]",
    "[::]",
    "[::ffff:127.0.0.1]",
    "[::ffff:7f00:1]",
    "[0:0:0:0:0:ffff:127.0.0.1]",
    "[64:ff9b::7f00:1]",
    "[2002:7f00:1::1]",
    "[::127.0.0.1]",
]


@pytest.mark.parametrize("host", LOOPBACK_HOSTS)
def test_every_loopback_spelling_is_recognised(host: str) -> None:
    assert is_loopback(host)


@pytest.mark.parametrize("host", ["10.0.0.1", "128.0.0.1", "[::2]", "example.com", "[fe80::1]"])
def test_other_addresses_are_not_loopback(host: str) -> None:
    assert not is_loopback(host)


@pytest_asyncio.fixture
async def strict(spool_dir: pathlib.Path) -> AsyncIterator[HttpGenerator]:
    """The generator with the default settings: loopback refused."""
    generator = HttpGenerator(GeneratorSettings(spool_dir=str(spool_dir)))
    yield generator
    await generator.aclose()


@pytest.mark.parametrize("host", LOOPBACK_HOSTS)
async def test_loopback_targets_are_refused_by_default(
    strict: HttpGenerator, origin: OriginServer, host: str
) -> None:
    origin.set("/metrics", body=b"pod internals")
    with pytest.raises(FetchError) as caught:
        await strict.fetch(HttpRequest(url=f"http://{host}:{origin.port}/metrics", timeout=5))
    assert (caught.value.reason, caught.value.transient) == ("AddressNotAllowed", False)
    assert "loopback" in caught.value.message
    assert "--allow-loopback-addresses" in caught.value.message
    assert origin.requests == []


async def test_a_name_resolving_to_loopback_is_refused(
    spool_dir: pathlib.Path, origin: OriginServer
) -> None:
    resolver = StaticResolver({"internal.test": ["127.0.0.1"]})
    generator = HttpGenerator(
        GeneratorSettings(spool_dir=str(spool_dir)), resolver_factory=lambda: resolver
    )
    try:
        with pytest.raises(FetchError) as caught:
            await generator.fetch(HttpRequest(url=f"http://internal.test:{origin.port}/x"))
    finally:
        await generator.aclose()
    assert caught.value.reason == "AddressNotAllowed"
    assert "internal.test is a loopback address" in caught.value.message
    assert origin.requests == []


async def test_the_flag_allows_loopback(settings: GeneratorSettings, origin: OriginServer) -> None:
    origin.set("/ok", body=b"local")
    generator = HttpGenerator(settings)  # allow_loopback=True, as tests and local mode use
    try:
        assert body_of(await generator.fetch(HttpRequest(url=origin.url("/ok")))) == b"local"
    finally:
        await generator.aclose()


async def test_behind_a_proxy_an_unresolvable_name_fails_closed(
    settings: GeneratorSettings, forward_proxy: ForwardProxy
) -> None:
    """The proxy would resolve it (maybe to a metadata address): unchecked means not sent."""
    resolver = StaticResolver({})
    generator = HttpGenerator(settings, resolver_factory=lambda: resolver)
    proxy = ProxyConfig(address=forward_proxy.url)
    try:
        with pytest.raises(FetchError) as caught:
            await generator.fetch(HttpRequest(url="http://only-the-proxy-knows.test/", proxy=proxy))
    finally:
        await generator.aclose()
    assert (caught.value.reason, caught.value.transient) == ("DNSResolutionFailed", True)
    assert "address guard fails closed" in caught.value.message
    assert forward_proxy.requests == []


async def test_behind_a_proxy_a_name_resolving_to_metadata_is_refused(
    settings: GeneratorSettings, forward_proxy: ForwardProxy
) -> None:
    resolver = StaticResolver({"meta.test": ["169.254.169.254"]})
    generator = HttpGenerator(settings, resolver_factory=lambda: resolver)
    proxy = ProxyConfig(address=forward_proxy.url)
    try:
        with pytest.raises(FetchError) as caught:
            await generator.fetch(HttpRequest(url="http://meta.test/latest", proxy=proxy))
    finally:
        await generator.aclose()
    assert caught.value.reason == "AddressNotAllowed"
    assert forward_proxy.requests == []


async def test_a_redirect_from_https_to_http_is_refused(
    http: HttpGenerator, tls_origin: OriginServer, origin: OriginServer
) -> None:
    origin.set("/plain", body=b"downgraded")
    tls_origin.mode("/secure", redirect=origin.url("/plain"))
    with pytest.raises(FetchError) as caught:
        await http.fetch(HttpRequest(url=tls_origin.url("/secure"), ca_bundle=tls_origin.ca_pem))
    assert (caught.value.reason, caught.value.transient) == ("InvalidRedirect", False)
    assert "refusing a redirect from https to http" in caught.value.message
    assert origin.requests == []


async def test_https_to_https_redirects_are_still_followed(
    http: HttpGenerator, tls_origin: OriginServer
) -> None:
    tls_origin.set("/new", body=b"moved")
    tls_origin.mode("/old", redirect=tls_origin.url("/new"))
    request = HttpRequest(url=tls_origin.url("/old"), ca_bundle=tls_origin.ca_pem)
    assert body_of(await http.fetch(request)) == b"moved"
