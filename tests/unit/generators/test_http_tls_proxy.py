"""TLS (CA bundle, verification, insecureSkipVerify), mTLS, and forward proxies."""

from __future__ import annotations

import pathlib

import pytest

from generators.base import FetchError, GeneratorSettings
from generators.http import HttpGenerator
from generators.requests import ClientCertificate, HttpRequest, ProxyConfig
from tests.fixtures.origin import ForwardProxy, OriginServer
from tests.unit.generators.conftest import StaticResolver, body_of


async def test_ca_bundle_makes_the_origin_trusted(
    http: HttpGenerator, tls_origin: OriginServer
) -> None:
    tls_origin.set("/secure", body=b"tls body")
    request = HttpRequest(url=tls_origin.url("/secure"), ca_bundle=tls_origin.ca_pem)
    assert body_of(await http.fetch(request)) == b"tls body"


async def test_unknown_ca_is_a_configuration_error(
    http: HttpGenerator, tls_origin: OriginServer
) -> None:
    with pytest.raises(FetchError) as caught:
        await http.fetch(HttpRequest(url=tls_origin.url("/secure")))
    assert (caught.value.reason, caught.value.transient) == ("TLSVerificationFailed", False)
    assert "certificate" in caught.value.message


async def test_certificate_for_another_name_fails_verification(
    settings: GeneratorSettings, tls_origin: OriginServer
) -> None:
    tls_origin.set("/secure", body=b"x")
    resolver = StaticResolver({"other-name.test": ["127.0.0.1"]})
    generator = HttpGenerator(settings, resolver_factory=lambda: resolver)
    url = tls_origin.url("/secure", host="other-name.test")
    try:
        with pytest.raises(FetchError) as caught:
            await generator.fetch(HttpRequest(url=url, ca_bundle=tls_origin.ca_pem))
    finally:
        await generator.aclose()
    assert (caught.value.reason, caught.value.transient) == ("TLSVerificationFailed", False)
    assert tls_origin.requests == []


async def test_insecure_skip_verify_accepts_an_untrusted_certificate(
    http: HttpGenerator, tls_origin: OriginServer
) -> None:
    tls_origin.set("/secure", body=b"unverified")
    request = HttpRequest(url=tls_origin.url("/secure"), insecure_skip_verify=True)
    assert body_of(await http.fetch(request)) == b"unverified"


async def test_unusable_ca_bundle_is_a_configuration_error(
    http: HttpGenerator, tls_origin: OriginServer
) -> None:
    request = HttpRequest(url=tls_origin.url("/"), ca_bundle=b"not a certificate")
    with pytest.raises(FetchError) as caught:
        await http.fetch(request)
    assert (caught.value.reason, caught.value.transient) == ("InvalidTLSConfig", False)


async def test_client_certificate_is_presented_and_key_files_do_not_linger(
    http: HttpGenerator, mtls_origin: OriginServer, spool_dir: pathlib.Path
) -> None:
    assert mtls_origin.client_cert_pem is not None
    assert mtls_origin.client_key_pem is not None
    mtls_origin.set("/mutual", body=b"hello client")
    request = HttpRequest(
        url=mtls_origin.url("/mutual"),
        ca_bundle=mtls_origin.ca_pem,
        client_cert=ClientCertificate(
            cert_pem=mtls_origin.client_cert_pem, key_pem=mtls_origin.client_key_pem
        ),
    )
    assert body_of(await http.fetch(request)) == b"hello client"
    assert list(spool_dir.iterdir()) == []


async def test_missing_client_certificate_fails(
    http: HttpGenerator, mtls_origin: OriginServer
) -> None:
    mtls_origin.set("/mutual", body=b"x")
    with pytest.raises(FetchError):
        await http.fetch(HttpRequest(url=mtls_origin.url("/mutual"), ca_bundle=mtls_origin.ca_pem))
    assert mtls_origin.requests == []


async def test_plain_http_through_the_proxy(
    http: HttpGenerator, origin: OriginServer, forward_proxy: ForwardProxy
) -> None:
    origin.set("/via", body=b"proxied")
    request = HttpRequest(url=origin.url("/via"), proxy=ProxyConfig(address=forward_proxy.url))
    assert body_of(await http.fetch(request)) == b"proxied"
    assert forward_proxy.requests == [("GET", origin.url("/via"), None)]


async def test_https_is_tunnelled_through_an_authenticating_proxy(
    http: HttpGenerator, tls_origin: OriginServer, forward_proxy: ForwardProxy
) -> None:
    forward_proxy.require_auth("proxy-user", "proxy-pass")
    tls_origin.set("/via", body=b"tunnelled")
    proxy = ProxyConfig(address=forward_proxy.url, username="proxy-user", password="proxy-pass")
    request = HttpRequest(url=tls_origin.url("/via"), ca_bundle=tls_origin.ca_pem, proxy=proxy)
    assert body_of(await http.fetch(request)) == b"tunnelled"
    [(method, target, auth)] = forward_proxy.requests
    assert (method, target) == ("CONNECT", f"127.0.0.1:{tls_origin.port}")
    assert auth is not None
    assert "Proxy-Authorization" not in tls_origin.requests[0].headers


@pytest.mark.parametrize("scheme", ["http", "https"])
async def test_wrong_proxy_credentials_are_configuration(
    http: HttpGenerator,
    origin: OriginServer,
    tls_origin: OriginServer,
    forward_proxy: ForwardProxy,
    scheme: str,
) -> None:
    forward_proxy.require_auth("proxy-user", "proxy-pass")
    target = origin if scheme == "http" else tls_origin
    proxy = ProxyConfig(address=forward_proxy.url, username="proxy-user", password="wrong")
    request = HttpRequest(url=target.url("/via"), ca_bundle=tls_origin.ca_pem, proxy=proxy)
    with pytest.raises(FetchError) as caught:
        await http.fetch(request)
    assert (caught.value.reason, caught.value.transient) == ("ProxyAuthenticationFailed", False)


async def test_metadata_target_is_refused_even_through_a_proxy(
    http: HttpGenerator, forward_proxy: ForwardProxy
) -> None:
    proxy = ProxyConfig(address=forward_proxy.url)
    with pytest.raises(FetchError) as caught:
        await http.fetch(HttpRequest(url="http://169.254.169.254/latest", proxy=proxy))
    assert caught.value.reason == "AddressNotAllowed"
    assert forward_proxy.requests == []
