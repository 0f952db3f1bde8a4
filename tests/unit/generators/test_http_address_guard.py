"""The metadata-address guard: literals, names resolving there, and every redirect hop."""

from __future__ import annotations

import pytest

from generators.address_guard import is_refused
from generators.base import FetchError, GeneratorSettings
from generators.http import HttpGenerator
from generators.requests import HttpRequest
from tests.fixtures.origin import OriginServer
from tests.unit.generators.conftest import StaticResolver, body_of


@pytest.mark.parametrize(
    ("address", "refused"),
    [
        ("169.254.169.254", True),
        ("169.254.0.1", True),
        ("fe80::1", True),
        ("fe80::1%eth0", True),
        ("fd00:ec2::254", True),
        ("::ffff:169.254.169.254", True),
        ("64:ff9b::a9fe:a9fe", True),
        ("2002:a9fe:a9fe::1", True),
        ("127.0.0.1", False),
        ("10.0.0.1", False),
        ("fd00:ec2::253", False),
        ("::1", False),
        ("example.com", False),
    ],
)
def test_refused_address_ranges(address: str, refused: bool) -> None:
    assert is_refused(address) is refused


async def _refusal(generator: HttpGenerator, url: str) -> FetchError:
    with pytest.raises(FetchError) as caught:
        await generator.fetch(HttpRequest(url=url, timeout=5))
    return caught.value


async def test_metadata_literal_is_refused(http: HttpGenerator) -> None:
    for url in ("http://169.254.169.254/latest/meta-data/", "http://[::ffff:169.254.169.254]/"):
        error = await _refusal(http, url)
        assert (error.reason, error.transient) == ("AddressNotAllowed", False)


async def test_redirect_to_metadata_address_is_refused(
    http: HttpGenerator, origin: OriginServer
) -> None:
    origin.mode("/go", redirect="http://169.254.169.254/latest/meta-data/iam")
    error = await _refusal(http, origin.url("/go"))
    assert error.reason == "AddressNotAllowed"
    assert "169.254.169.254" in error.message


async def test_name_resolving_to_metadata_address_is_refused(
    settings: GeneratorSettings, origin: OriginServer
) -> None:
    resolver = StaticResolver({"metadata.test": ["169.254.169.254"]})
    generator = HttpGenerator(settings, resolver_factory=lambda: resolver)
    origin.mode("/go", redirect="http://metadata.test/latest")
    try:
        error = await _refusal(generator, origin.url("/go"))
    finally:
        await generator.aclose()
    assert (error.reason, error.transient) == ("AddressNotAllowed", False)


async def test_refused_addresses_are_filtered_out_of_a_mixed_answer(
    settings: GeneratorSettings, origin: OriginServer
) -> None:
    resolver = StaticResolver({"mixed.test": ["169.254.169.254", "127.0.0.1"]})
    generator = HttpGenerator(settings, resolver_factory=lambda: resolver)
    origin.set("/data", body=b"safe")
    try:
        url = f"http://mixed.test:{origin.port}/data"
        assert body_of(await generator.fetch(HttpRequest(url=url))) == b"safe"
    finally:
        await generator.aclose()


async def test_allow_link_local_lets_the_request_through(settings: GeneratorSettings) -> None:
    resolver = StaticResolver({"metadata.test": ["169.254.169.254"]})
    allowing = GeneratorSettings(allow_link_local=True, spool_dir=settings.spool_dir)
    generator = HttpGenerator(allowing, resolver_factory=lambda: resolver)
    try:
        with pytest.raises(FetchError) as caught:
            await generator.fetch(HttpRequest(url="http://metadata.test/nothing-here", timeout=1))
    finally:
        await generator.aclose()
    # whatever answers (or not) at that address here, the request was not refused
    assert caught.value.reason != "AddressNotAllowed"
